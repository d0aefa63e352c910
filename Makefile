# Lichen: the commands the README names.
GO       ?= go
BIN      := bin/lichen
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
STATIC   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

.PHONY: run build test test-go test-js cross bench image image-test image-arm64 image-armv7 clean

run:
	$(GO) run ./cmd/lichen

build:
	$(STATIC) -o $(BIN) ./cmd/lichen

# test: vet and gofmt, the race detector on core, every Go test (the
# end-to-end ones start bin/lichen on a loopback port), then the
# matrix-js-sdk client test.
test: build test-go test-js

test-go:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race ./core/...
	LICHEN_BIN=$(CURDIR)/$(BIN) $(GO) test ./boltstore/... ./transport/... ./cmd/... ./tests/...

test-js:
	cd tests/jsclient && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && LICHEN_BIN=$(CURDIR)/$(BIN) npm test

# cross: static binaries for every board family, with their sizes.
CROSS_TARGETS := linux/amd64 linux/arm64 linux/arm/6 linux/arm/7 linux/mips/softfloat linux/mipsle/softfloat linux/riscv64
cross:
	@mkdir -p dist
	@for t in $(CROSS_TARGETS); do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; variant=$${rest#*/}; [ "$$variant" = "$$rest" ] && variant=; \
		out=dist/lichen-$$os-$$arch$${variant:+-$$variant}; \
		case $$arch in arm) export GOARM=$$variant;; mips|mipsle) export GOMIPS=$$variant;; esac; \
		GOOS=$$os GOARCH=$$arch $(STATIC) -o $$out ./cmd/lichen || exit 1; \
		unset GOARM GOMIPS; \
		printf '%-40s %8d bytes\n' $$out $$(stat -c %s $$out); \
	done

# bench: start a server on loopback and drive it with the load tool.
bench: build
	$(GO) run ./cmd/lichen-bench -bin $(CURDIR)/$(BIN)

# image: the FROM scratch container image (needs a running Docker engine).
image: build
	docker build -f firmware/Dockerfile -t lichen:latest .

# image-test: build the image, then start a container from it and check it
# over HTTP (tests/image; CI runs this after make test).
image-test: image
	LICHEN_TEST_IMAGE=lichen:latest $(GO) test -count=1 ./tests/image/

# image-arm64, image-armv7: the image for ARM boards (release builds, not CI).
# The Dockerfile has no RUN step, so no emulation is needed: the binary is
# cross-compiled (the same file make cross makes), put in a context of its
# own as bin/lichen, and docker build --platform records the platform, which
# is then checked.
image-arm64:
	$(call image_for,arm64,linux/arm64,GOARCH=arm64,dist/lichen-linux-arm64)

image-armv7:
	$(call image_for,armv7,linux/arm/v7,GOARCH=arm GOARM=7,dist/lichen-linux-arm-7)

# image_for: tag, platform, Go target variables, binary path.
define image_for
	@mkdir -p dist/image-$(1)/bin
	GOOS=linux $(3) $(STATIC) -o $(4) ./cmd/lichen
	cp $(4) dist/image-$(1)/bin/lichen
	docker build --platform $(2) -f firmware/Dockerfile -t lichen:$(1) dist/image-$(1)
	@got=$$(docker image inspect -f '{{.Os}}/{{.Architecture}}{{with .Variant}}/{{.}}{{end}}' lichen:$(1)); \
	if [ "$$got" != "$(2)" ]; then echo "lichen:$(1) records $$got, want $(2)"; exit 1; fi; \
	echo "lichen:$(1): $$got"
endef

clean:
	rm -rf bin dist

# Lichen: the commands the README names.
GO       ?= go
BIN      := bin/lichen
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
STATIC   := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'

.PHONY: run build test test-go test-js cross bench image clean

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

clean:
	rm -rf bin dist

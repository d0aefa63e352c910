//go:build pprof

package main

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
)

// Built with -tags pprof, LICHEN_PPROF=127.0.0.1:6060 serves the Go
// profiler: for finding hot paths under load, kept out of release builds.
func init() {
	if addr := os.Getenv("LICHEN_PPROF"); addr != "" {
		go func() { slog.Warn("pprof", "err", http.ListenAndServe(addr, nil)) }()
	}
}

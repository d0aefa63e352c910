// Package codec holds the wire-format functions the HTTP layer applies to
// request and response bodies: JSON validation with a nesting limit, CBOR
// (application/cbor) in both directions, content negotiation, response
// compression (gzip, zstd) and the canonical-JSON number check that events
// must pass.
//
// Everything here is a pure function over byte slices, so that transport can
// call it from fasthttp handlers and tests can call it without a server. The
// package deliberately does not import fasthttp: it is the one place that
// decides what bytes mean, not how they arrive.
package codec

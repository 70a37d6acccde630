// Package bridge routes JSON-RPC between one MCP host (the front: the
// client that spawned mcpbridge, on stdin/stdout) and N backend sessions,
// presenting the backends as one MCP server.
//
// # Typical usage
//
//	err := bridge.Run(ctx, bridge.Config{
//		Backends: []config.Backend{{Name: "files", Kind: config.KindStdio, Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-filesystem", "."}}},
//		Logger:   logger,
//	}, os.Stdin, os.Stdout)
//
// # Message flow
//
//	host stdin ─▶ readFront ─▶ fromHost ─┬─ initialize, ping, server/discover: answered here
//	                                     ├─ one backend (raw mode): forward ──────────────┐
//	                                     └─ several: aggregator (names, URIs, lists) ─────┤
//	                                                                                       ▼
//	host stdout ◀─ front Writer ◀─ reply/toHost ◀─ fromBackend ◀─ link.recvLoop ◀─ backends.Session
//
// Every message is a frame.Frame: its envelope was located by one scan and
// the router changes it only through edits applied while writing. What is
// rewritten:
//   - id: a host request gets a bridge ID toward its backend (one counter for
//     all backends, so one map serves them); a backend's request gets a
//     host-facing ID, never 0. The other side's raw id is spliced back.
//   - progress tokens (params._meta.progressToken of requests and
//     params.progressToken of notifications/progress), both directions.
//   - params.requestId of notifications/cancelled, both directions.
//   - With several backends (or --prefix, or filters): params.name of
//     tools/call and prompts/get, the names in merged lists, and
//     params.logger of log notifications.
//
// Everything else, params and results included, passes byte for byte.
// go-sdk supplies the protocol types only off the hot path (reading an
// initialize result) and the servers and clients of the tests: decoding and
// re-encoding every message through its jsonrpc package costs +40 ms per
// MiB and rounds large integer ids through float64.
//
// With one backend and no filters the bridge is in raw mode: lists and
// unknown methods are forwarded as they are, and the host sees that
// backend's own serverInfo and capabilities.
//
// # Concurrency and ownership
//
// Run owns everything: it starts the front writer (the only goroutine that
// writes stdout), the front reader (the only reader of stdin, which never
// blocks on a backend: it queues or answers), and one link goroutine per
// backend (link.open), which owns that backend's session, its reader
// (recvLoop) and its restarts. Run stops them all and waits for them.
//
// Router state (the idMap, in-flight counts, host state, batches) is one
// struct behind router.mu, changed in small critical sections without I/O.
// Lock order: router.mu, then aggregator.mu; link.mu is a leaf.
//
// Every host request is answered exactly once: by its backend's response,
// by a timeout (-32001), by the loss of its backend (-32603 naming it), or
// by the bridge itself. A host cancellation removes the request, and a late
// answer is dropped. FuzzRouter checks this against a model.
package bridge

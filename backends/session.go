// Package backends keeps one long-lived MCP session per upstream server:
// a child process spoken to over stdio, a streamable-HTTP endpoint, or a
// legacy HTTP+SSE endpoint. Every kind moves raw frames (package frame):
// it never decodes params or results, so what the server sends is what the
// bridge's router sees.
//
// A session does not run the MCP handshake itself: the router sends
// initialize and notifications/initialized like any other message. The
// HTTP kinds watch those two messages go by and keep copies, so that when
// the server loses the session (HTTP 404) they can open a new one and
// replay the handshake without the router's help (issue #5).
//
// # Concurrency and ownership
//
// Open starts the session's goroutines (reader, writer, GET stream); Close
// stops them and waits for them, and for stdio also ends the process
// group. Send is safe for concurrent use and never blocks for long; Recv
// is called by one goroutine, the router's reader for this backend.
package backends

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/rs/zerolog"
)

// A Session is one connection to one upstream MCP server.
type Session interface {
	// Name is the backend's configured name.
	Name() string

	// Send delivers f to the backend without waiting for an answer. It
	// returns an error wrapping frame.ErrQueueFull when the backend is not
	// keeping up, or ErrClosed after the session ended; the frame was not
	// sent then. A request that fails after Send returned nil is answered
	// through Recv with an error response carrying the request's id
	// (code -32603, data.backend naming the backend), so every request
	// sent gets exactly one answer unless the session ends, or the router
	// cancelled it (a notifications/cancelled for it went through Send:
	// nothing waits for its answer, and it may get none).
	Send(f *frame.Frame) error

	// Recv returns the next frame from the backend. It returns an error
	// when the session has ended (the process exited, the connection
	// failed for good, or Close was called); requests still unanswered
	// then will get no answer from this session.
	Recv(ctx context.Context) (*frame.Frame, error)

	// Close ends the session and releases everything it holds. It may run
	// concurrently with Recv and Send, and unblocks Recv.
	Close() error
}

// MethodReinitialized is the method of a notification that a session
// delivers through Recv (it never comes from a server) after it replaced a
// lost upstream session with a new, initialized one; its params are the
// new session's initialize result (its version and capabilities may differ
// from the lost one's). The router must not forward it; it restores the
// state the host set (log level, subscriptions) and refreshes the
// backend's lists.
const MethodReinitialized = "mcpbridge/reinitialized"

// A Restorer is a session that holds what the router sent before it heard
// of a MethodReinitialized until the router calls Restored: the host's
// state (log level, subscriptions) is then back in the new upstream
// session.
type Restorer interface {
	Restored()
}

// SuperviseArg is the first argument that turns the mcpbridge binary into
// a backend's supervisor (see Supervise; not used on Linux, where one
// guard serves every backend).
const SuperviseArg = "__mcpbridge_supervise"

// parentEnv tells the supervisor which process must stay its parent.
const parentEnv = "MCPBRIDGE_SUPERVISOR_PARENT"

// ErrClosed is returned by Send and Recv once a session has ended.
var ErrClosed = errors.New("session closed")

// Options are what every kind of session needs besides its config.
type Options struct {
	Logger zerolog.Logger
	// Redact removes secrets from text before it is logged. If nil,
	// nothing is removed.
	Redact func(string) string
	// MaxMessage caps one message from the backend. If zero,
	// frame.DefaultMaxLine.
	MaxMessage int
	// Supervisor is the path of the mcpbridge binary. On Linux it is
	// re-executed once as the guard that ends the stdio backends' process
	// groups if the bridge dies (see Guard); on other Unix systems each
	// stdio backend runs under it (see Supervise). If empty, only the
	// direct child dies with a killed bridge (and on Linux the rest of a
	// backend's group when the backend exits).
	Supervisor string
}

// Open starts or dials the backend described by cfg. The session lives
// until Close, whatever happens to ctx after Open returns; ctx bounds only
// the start (spawning the process, the SSE endpoint handshake).
func Open(ctx context.Context, cfg config.Backend, opts Options) (Session, error) {
	if opts.Redact == nil {
		opts.Redact = func(s string) string { return s }
	}
	opts.Logger = opts.Logger.With().Str("backend", cfg.Name).Logger()
	switch cfg.Kind {
	case config.KindStdio:
		return openStdio(ctx, cfg, opts)
	case config.KindHTTP:
		return openStreamable(ctx, cfg, opts)
	case config.KindSSE:
		return openSSE(ctx, cfg, opts)
	case config.KindURL:
		return openURL(ctx, cfg, opts)
	}
	return nil, fmt.Errorf("backend %q: unknown kind %q", cfg.Name, cfg.Kind)
}

// failure is the error response a session sends for a request it could not
// deliver or whose answer it lost.
func failure(backend string, id []byte, reason string) *frame.Frame {
	return frame.NewError(id, frame.ErrorObject{
		Code:    frame.CodeInternalError,
		Message: fmt.Sprintf("backend %q: %s", backend, reason),
		Data:    map[string]string{"backend": backend, "reason": reason},
	})
}

// oversized is what ends the wait for a message over --max-message that a
// session skipped, read from its head and tail (h): for an answer, the
// failure to deliver in its place; for a request of the backend's own, the
// refusal to send it back. Both nil when its id is not known.
func oversized(backend string, h frame.Head, err error) (fail, refuse *frame.Frame) {
	switch {
	case h.ID == nil || h.Batch:
		return nil, nil
	case h.Response:
		return failure(backend, h.ID, fmt.Sprintf("its answer was too long for the bridge (--max-message): %v", err)), nil
	}
	return nil, frame.NewError(h.ID, frame.ErrorObject{Code: frame.CodeInvalidRequest, Message: err.Error()})
}

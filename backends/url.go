package backends

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// A urlSession is a backend given only as a URL: it speaks streamable HTTP
// unless the server refuses the very first POST (the router's initialize)
// with 400, 404 or 405, the answers of a legacy HTTP+SSE server; then it
// opens an SSE session, re-sends that first message there and delegates
// everything to it. 401 and 403 never switch: they are about credentials,
// not transports.
//
// Recv reads one channel that a forwarding goroutine per inner session
// fills, so a Recv blocked across the switch keeps working.
type urlSession struct {
	name string
	cfg  config.Backend
	opts Options

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	recv   chan *frame.Frame // never closed: forwarders select on ctx
	wg     sync.WaitGroup    // forwarders and the switch; Add under mu while !closed

	failed  chan struct{} // closed when the current inner session ended for good
	failErr error

	mu        sync.Mutex
	cur       Session
	switching bool           // the SSE session is being opened
	held      []*frame.Frame // what Send got meanwhile, sent once it is open
	closed    bool
	failOnce  sync.Once
	closeOnce sync.Once
}

// openURL returns a session that starts as streamable HTTP; like
// openStreamable it dials nothing yet.
func openURL(_ context.Context, cfg config.Backend, opts Options) (Session, error) {
	if opts.Redact == nil {
		opts.Redact = func(s string) string { return s }
	}
	st, err := newStreamable(cfg, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &urlSession{
		name:   cfg.Name,
		cfg:    cfg,
		opts:   opts,
		ctx:    ctx,
		cancel: cancel,
		recv:   make(chan *frame.Frame, recvBuffer),
		failed: make(chan struct{}),
		cur:    st,
	}
	st.fallback = u.decide
	u.wg.Add(1)
	go u.forward(st)
	return u, nil
}

func (u *urlSession) Name() string { return u.name }

// Restored passes the router's word on to the current inner session.
func (u *urlSession) Restored() {
	u.mu.Lock()
	cur := u.cur
	u.mu.Unlock()
	if r, ok := cur.(Restorer); ok {
		r.Restored()
	}
}

// decide is the streamable session's verdict on its first POST. It runs
// in that POST's goroutine, so the switch itself, which closes the
// streamable session (waiting for that goroutine), runs in its own.
func (u *urlSession) decide(m outMsg, status int, detail string) bool {
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
	default:
		if status/100 == 2 {
			u.opts.Logger.Info().Str("transport", "streamable-http").Msg("backend transport chosen")
		}
		return false
	}
	first := m.f
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || u.switching {
		return false
	}
	u.switching = true
	u.held = append([]*frame.Frame{first}, u.held...)
	u.wg.Add(1)
	go u.switchToSSE(detail)
	return true
}

// switchToSSE opens the SSE session, makes it current and sends it what
// was held, the first message first.
func (u *urlSession) switchToSSE(detail string) {
	defer u.wg.Done()
	u.opts.Logger.Info().Str("transport", "sse").Str("answer", u.opts.Redact(detail)).Msg("backend refused the streamable-HTTP POST; falling back to legacy SSE")
	ctx, cancel := context.WithTimeout(u.ctx, handshakeTimeout)
	next, err := openSSE(ctx, u.cfg, u.opts)
	cancel()

	// Swap under mu, so Send goes to the new session from now on; close
	// and send outside it (both may wait on the network).
	u.mu.Lock()
	old := u.cur
	held := u.held
	u.held = nil
	u.switching = false
	if err == nil && u.closed {
		u.mu.Unlock()
		next.Close()
		return
	}
	if err == nil {
		u.cur = next
		u.wg.Add(1)
		go u.forward(next)
	}
	u.mu.Unlock()

	if err != nil {
		reason := fmt.Sprintf("the server refused the streamable-HTTP POST (%s) and legacy SSE failed too: %s", detail, u.unprefixed(err))
		for _, f := range held {
			if f.Kind == frame.Request {
				u.deliver(failure(u.name, f.OutID(), u.opts.Redact(reason)))
			}
		}
		return
	}
	old.Close()
	for _, f := range held {
		if err := next.Send(f); err != nil && f.Kind == frame.Request {
			u.deliver(failure(u.name, f.OutID(), u.unprefixed(err)))
		}
	}
}

// unprefixed is err's text without the "backend %q: " that failure adds
// again.
func (u *urlSession) unprefixed(err error) string {
	return strings.TrimPrefix(err.Error(), fmt.Sprintf("backend %q: ", u.name))
}

// forward copies in's frames to u.recv until in ends. The end of the
// current session ends u for Recv; the end of a replaced one is expected.
func (u *urlSession) forward(in Session) {
	defer u.wg.Done()
	for {
		f, err := in.Recv(u.ctx)
		if err != nil {
			u.mu.Lock()
			current := u.cur == in
			u.mu.Unlock()
			if current && u.ctx.Err() == nil {
				u.failOnce.Do(func() {
					u.failErr = err
					close(u.failed)
				})
			}
			return
		}
		if !u.deliver(f) {
			return
		}
	}
}

// deliver hands f to Recv, giving up when u closes.
func (u *urlSession) deliver(f *frame.Frame) bool {
	select {
	case u.recv <- f:
		return true
	case <-u.ctx.Done():
		return false
	}
}

// Send goes to the current session. While the switch to SSE is under way
// frames are held (bounded like a session's POSTs) and sent after the
// first one; frames sent before the switch began went to the streamable
// session and got its answers.
func (u *urlSession) Send(f *frame.Frame) error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return fmt.Errorf("backend %q: %w", u.name, ErrClosed)
	}
	if u.switching {
		defer u.mu.Unlock()
		if len(u.held) >= maxOutstandingPosts {
			return fmt.Errorf("backend %q: %w", u.name, frame.ErrQueueFull)
		}
		u.held = append(u.held, f)
		return nil
	}
	cur := u.cur
	u.mu.Unlock()
	return cur.Send(f)
}

// Recv reads what the forwarders copied; once the current session ended
// for good, it drains the rest and returns that session's error.
func (u *urlSession) Recv(ctx context.Context) (*frame.Frame, error) {
	if u.ctx.Err() != nil {
		return nil, fmt.Errorf("backend %q: %w", u.name, ErrClosed)
	}
	select {
	case f := <-u.recv:
		return f, nil
	case <-u.failed:
		select {
		case f := <-u.recv:
			return f, nil
		default:
			return nil, u.failErr
		}
	case <-u.ctx.Done():
		return nil, fmt.Errorf("backend %q: %w", u.name, ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes the current session (the switch closes the one it
// replaced) and waits for the forwarders and any switch under way.
func (u *urlSession) Close() error {
	u.closeOnce.Do(func() {
		u.mu.Lock()
		u.closed = true
		cur := u.cur
		u.mu.Unlock()
		u.cancel()
		_ = cur.Close()
		// A switch under way sees closed and closes what it opened.
		u.wg.Wait()
	})
	return nil
}

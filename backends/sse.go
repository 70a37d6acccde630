package backends

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// maxReconnects is how many reconnections in a row may fail before an SSE
// session gives up; with the backoff that is about half a minute.
const maxReconnects = 10

// An sseSession is a legacy HTTP+SSE session (MCP 2024-11-05): a GET
// event stream whose first event names the endpoint to POST messages to;
// every answer and server message comes on the stream.
//
// Ownership: the run goroutine owns the stream (and every stream after a
// reconnection); each POST has its own goroutine; mu guards the state
// below it.
type sseSession struct {
	*httpCore
	base      *url.URL
	closeOnce sync.Once

	failed  chan struct{} // closed when reconnecting gave up
	failErr error         // why; set before failed is closed

	mu       sync.Mutex
	endpoint string              // where POSTs go; "" while reconnecting
	ready    chan struct{}       // closed while endpoint is usable
	conn     uint64              // connection number, bumped when one is lost
	pending  map[string]struct{} // ids of requests sent and not yet answered
	initReq  []byte              // the router's initialize, as written
	initNote []byte              // the router's notifications/initialized
	reinits  int
	awaitID  string            // id of a replayed initialize whose answer run hands over
	awaitCh  chan *frame.Frame // where run hands it
}

// An sseStream is one connected GET stream.
type sseStream struct {
	ctx         context.Context // ends when the stream is dropped or closed
	cancel      context.CancelFunc
	resp        *http.Response
	rd          *sseReader
	endpoint    string
	conn        uint64
	established atomic.Bool // the handshake went through: counts as a success
}

// openSSE connects the event stream and waits for its endpoint event,
// within ctx (and handshakeTimeout). The stream then lives until Close.
func openSSE(ctx context.Context, cfg config.Backend, opts Options) (Session, error) {
	s, err := newSSE(cfg, opts)
	if err != nil {
		return nil, err
	}
	st, err := s.connect(ctx)
	if err != nil {
		s.shutdown()
		return nil, err
	}
	s.endpoint = st.endpoint
	close(s.ready)
	st.established.Store(true) // the router's handshake is still to come
	s.spawn(func() { s.run(st) })
	if e := s.log.Debug(); e.Enabled() {
		e.Str("endpoint", s.redact(st.endpoint)).Msg("sse: connected")
	}
	return s, nil
}

// newSSE returns an unconnected session; ready starts open (not usable).
func newSSE(cfg config.Backend, opts Options) (*sseSession, error) {
	u, err := parseBackendURL(cfg)
	if err != nil {
		return nil, err
	}
	return &sseSession{
		httpCore: newHTTPCore(cfg, opts),
		base:     u,
		failed:   make(chan struct{}),
		ready:    make(chan struct{}),
		pending:  make(map[string]struct{}),
	}, nil
}

// connect dials the stream within handshakeTimeout (and ctx). If the
// server asks for OAuth authorization, it waits for the flow within ctx
// alone, since the user may take minutes in the browser, and dials once
// more.
func (s *sseSession) connect(ctx context.Context) (*sseStream, error) {
	st, err := s.dialWithin(ctx)
	for range maxRenewals {
		var refused *oauthRefused
		if !errors.As(err, &refused) {
			return st, err
		}
		if err := s.auth.renew(ctx, refused.ticket, refused.resp); err != nil {
			return nil, fmt.Errorf("backend %q: sse: connect: %w", s.name, err)
		}
		st, err = s.dialWithin(ctx)
	}
	return st, err
}

// dialWithin is dial bounded by handshakeTimeout.
func (s *sseSession) dialWithin(ctx context.Context) (*sseStream, error) {
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	return s.dial(hctx)
}

// An oauthRefused is dial's error when the server refused the stream in a
// way the OAuth flow may fix: connect runs it outside the handshake bound.
type oauthRefused struct {
	ticket uint64
	resp   *http.Response // headers only
}

func (e *oauthRefused) Error() string { return "HTTP " + e.resp.Status }

// dial opens the GET stream and waits, within ctx, for its endpoint
// event. The stream itself lives on after ctx: until Close or a drop.
func (s *sseSession) dial(ctx context.Context) (*sseStream, error) {
	// The stream's context is the session's; ctx only bounds the wait for
	// the endpoint, through stop.
	sctx, cancel := context.WithCancel(s.ctx)
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	fail := func(format string, args ...any) (*sseStream, error) {
		cancel()
		if ctx.Err() != nil {
			format += " (%v)"
			args = append(args, ctx.Err())
		}
		return nil, fmt.Errorf("backend %q: sse: "+format, append([]any{s.name}, args...)...)
	}
	req, err := s.newRequest(sctx, http.MethodGet, s.base.String(), nil)
	if err != nil {
		return fail("%v", err)
	}
	req.Header.Set("Accept", mediaSSE)
	var ticket uint64
	if s.auth != nil {
		ticket = s.auth.authorize(req)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fail("connect: %s", s.redact(netReason(err)))
	}
	if s.auth != nil && oauthRefusal(resp) {
		drain(resp)
		resp.Body = http.NoBody
		cancel()
		return nil, &oauthRefused{ticket, resp}
	}
	if resp.StatusCode != http.StatusOK {
		return fail("connect: %s", s.redact(s.statusReason(resp, readErrorBody(resp))))
	}
	if mt := mediaType(resp.Header); mt != mediaSSE {
		drain(resp)
		return fail("connect: answer of type %q is not an event stream", mt)
	}
	rd := newSSEReader(resp.Body, s.maxMsg)
	for {
		ev, err := rd.Next()
		if errors.Is(err, errEventTooLong) {
			continue
		}
		if err != nil {
			resp.Body.Close()
			return fail("no endpoint event: %s", s.redact(streamEnd(err)))
		}
		if ev.Type != "endpoint" {
			continue // nothing can be answered before the endpoint is known
		}
		ep, err := s.resolve(ev.Data)
		if err != nil {
			resp.Body.Close()
			return fail("%v", err)
		}
		if !stop() { // ctx ended meanwhile and cancelled the stream
			resp.Body.Close()
			return fail("no endpoint event in time")
		}
		return &sseStream{ctx: sctx, cancel: cancel, resp: resp, rd: rd, endpoint: ep}, nil
	}
}

// resolve turns an endpoint event's data into the POST URL. It must stay
// on the stream's origin: the configured headers (credentials) go with
// every POST.
func (s *sseSession) resolve(data []byte) (string, error) {
	ep, err := s.base.Parse(strings.TrimSpace(string(data)))
	if err != nil {
		return "", fmt.Errorf("bad endpoint %q: %v", s.redact(string(data)), err)
	}
	if originOf(ep) != originOf(s.base) {
		return "", fmt.Errorf("endpoint %q is not on the origin of %q", s.redact(ep.Redacted()), s.redact(s.base.Redacted()))
	}
	return ep.String(), nil
}

// originOf is u's origin as browsers compare them (the TypeScript SDK's
// SSE client does the same): scheme and host in lower case, the scheme's
// default port spelled out.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// run owns the GET stream: it reads until the stream drops, then
// reconnects with backoff and replays the handshake, until Close or
// maxReconnects failures in a row.
func (s *sseSession) run(st *sseStream) {
	var bo backoff
	failures := 0
	for {
		err := s.read(st)
		st.cancel()
		st.resp.Body.Close()
		if s.ctx.Err() != nil {
			return
		}
		if st.established.Load() {
			failures = 0
			bo.reset()
		}
		s.log.Warn().Str("error", s.redact(streamEnd(err))).Msg("sse: event stream dropped; reconnecting")
		s.dropped()
		for {
			if failures++; failures > maxReconnects {
				s.giveUp(err)
				return
			}
			if !sleepCtx(s.ctx, bo.delay()) {
				return
			}
			st, err = s.reconnect()
			if err == nil {
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn().Str("error", s.redact(err.Error())).Int("attempt", failures).Msg("sse: reconnecting failed")
		}
	}
}

// receive delivers one message of stream st; false once the session is
// closed.
func (s *sseSession) receive(b []byte, st *sseStream) bool {
	f, ok := s.parseMessage(b)
	if !ok {
		return true
	}
	// A response settles its request: it is no longer lost with the
	// stream. The replayed initialize's answer is the replay's alone.
	if f.Kind == frame.Response {
		s.mu.Lock()
		if s.awaitID != "" && string(f.ID()) == s.awaitID {
			ch := s.awaitCh
			s.awaitID, s.awaitCh = "", nil
			s.mu.Unlock()
			ch <- f // buffered, and only one answer is awaited
			return true
		}
		delete(s.pending, string(f.ID()))
		s.mu.Unlock()
	}
	s.ups.note(f, st.conn)
	return s.deliver(f)
}

// tooLong ends what waits for an oversized message of stream st that was
// skipped (oversized), as the stdio stream does; an answer only if its
// request is still pending here.
func (s *sseSession) tooLong(h frame.Head, err error, st *sseStream) {
	fail, refuse := oversized(s.name, h, err)
	if refuse != nil {
		// Noted as a request of this connection, as receive does, so
		// that Send posts the refusal here (an older connection's
		// request of the same id would have it dropped).
		s.ups.note(frame.NewRequest(h.ID, "", nil), st.conn)
		_ = s.Send(refuse)
	}
	if fail == nil {
		return
	}
	s.mu.Lock()
	_, pending := s.pending[string(h.ID)]
	delete(s.pending, string(h.ID))
	s.mu.Unlock()
	if pending {
		s.deliver(fail)
	}
}

// read delivers the messages of one stream until it ends.
func (s *sseSession) read(st *sseStream) error {
	for {
		ev, err := st.rd.Next()
		if errors.Is(err, errEventTooLong) {
			s.log.Warn().Err(err).Msg("skipping an oversized message from backend")
			if ev.Type == "message" { // others are skipped whatever their size
				s.tooLong(frame.PeekOversized(st.rd.Head, st.rd.Tail), err, st)
			}
			continue
		}
		if err != nil {
			return err
		}
		switch ev.Type {
		case "message":
		case "endpoint": // a server may move its endpoint
			if ep, err := s.resolve(ev.Data); err == nil {
				s.mu.Lock()
				if s.conn == st.conn && s.endpoint != "" {
					s.endpoint = ep
				}
				s.mu.Unlock()
			} else {
				s.log.Warn().Str("error", err.Error()).Msg("sse: ignoring an endpoint event")
			}
			continue
		default:
			continue
		}
		if !s.eachMessage(ev.Data, func(b []byte) bool { return s.receive(b, st) }) {
			return s.ctx.Err()
		}
	}
}

// dropped marks the connection lost: POSTs wait for the next one, and the
// requests in flight, whose answers would have come on the lost stream,
// are answered with a failure now.
func (s *sseSession) dropped() {
	s.mu.Lock()
	s.endpoint = ""
	s.ups.forgetBefore(s.conn)
	s.conn++
	select {
	case <-s.ready:
		s.ready = make(chan struct{})
	default:
	}
	lost := s.pending
	s.pending = make(map[string]struct{})
	s.mu.Unlock()
	for id := range lost {
		s.fail([]byte(id), "connection to the backend was lost before the answer; the request may or may not have been carried out")
	}
}

// giveUp ends the session for Recv and Send.
// From then on Recv drains what is buffered and returns the error.
func (s *sseSession) giveUp(last error) {
	s.failErr = fmt.Errorf("backend %q: sse: %w: gave up reconnecting after %d attempts: %s", s.name, ErrClosed, maxReconnects, s.redact(streamEnd(last)))
	s.log.Error().Str("error", s.failErr.Error()).Msg("sse: backend unreachable")
	close(s.failed)
}

// reconnect dials a new stream and starts the replay of the router's
// handshake on it; the stream is usable once the replay succeeds.
func (s *sseSession) reconnect() (*sseStream, error) {
	st, err := s.connect(s.ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	st.conn = s.conn
	s.endpoint = st.endpoint
	initReq, initNote := s.initReq, s.initNote
	s.mu.Unlock()
	if initReq == nil { // the router never initialized: nothing to restore
		st.established.Store(true)
		s.markReady(st)
		return st, nil
	}
	if !s.spawn(func() { s.replay(st, initReq, initNote) }) {
		st.cancel()
		st.resp.Body.Close()
		return nil, s.closedErr()
	}
	return st, nil
}

// replay sends the router's handshake again on a new connection (the
// initialize under an internal id; run hands its answer over) and tells
// the router with a MethodReinitialized notification. If it fails, it
// drops the stream, and run reconnects.
func (s *sseSession) replay(st *sseStream, initReq, initNote []byte) {
	ctx, cancel := context.WithTimeout(st.ctx, handshakeTimeout)
	defer cancel()
	err := func() error {
		s.mu.Lock()
		s.reinits++
		rid := fmt.Sprintf(`"mcpbridge-reinit-%d"`, s.reinits)
		ch := make(chan *frame.Frame, 1)
		s.awaitID, s.awaitCh = rid, ch
		s.mu.Unlock()
		body, err := withID(initReq, []byte(rid))
		if err != nil {
			return fmt.Errorf("stored initialize: %w", err)
		}
		if err := s.postTo(ctx, st.endpoint, body); err != nil {
			return fmt.Errorf("initialize: %w", err)
		}
		var result []byte
		select {
		case ans := <-ch:
			if ans.IsError() {
				return fmt.Errorf("initialize: %s", snippet(ans.Error(), 200))
			}
			result = ans.Result()
		case <-ctx.Done():
			return fmt.Errorf("initialize: no answer: %w", ctx.Err())
		}
		// Before the server may send anything of the new session (it
		// waits for notifications/initialized): the router forgets the
		// lost session's requests to the host first, and restores what
		// the host set (log level, subscriptions) in the new one, which
		// waits until the session is ready.
		s.reinitializing()
		s.deliver(frame.NewNotification(MethodReinitialized, result))
		if initNote != nil {
			note, err := stored(initNote)
			if err != nil {
				return fmt.Errorf("stored initialized: %w", err)
			}
			if err := s.postTo(ctx, st.endpoint, note); err != nil {
				return fmt.Errorf("initialized: %w", err)
			}
		}
		return nil
	}()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn().Str("error", s.redact(err.Error())).Msg("sse: re-initializing the backend failed")
		}
		st.cancel() // a stream without a session is useless: let run reconnect
		return
	}
	st.established.Store(true)
	if s.markReady(st) {
		s.log.Info().Msg("backend session re-initialized")
	}
}

// markReady releases the POSTs waiting for st, unless st was lost too.
func (s *sseSession) markReady(st *sseStream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != st.conn || s.endpoint == "" {
		return false
	}
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	return true
}

// postTo POSTs body and checks for 2xx (the answer comes on the stream).
func (s *sseSession) postTo(ctx context.Context, endpoint string, body *frame.Frame) error {
	req, err := s.newRequest(ctx, http.MethodPost, endpoint, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mediaJSON)
	resp, err := s.do(req)
	if err != nil {
		return errors.New(netReason(err))
	}
	if resp.StatusCode/100 != 2 {
		return errors.New(s.statusReason(resp, readErrorBody(resp)))
	}
	drain(resp)
	return nil
}

// Send starts the POST of f and returns; answers come on the stream. A
// request is pending from here until its answer arrives or it is failed:
// whoever takes it from pending answers it, so it is answered once.
func (s *sseSession) Send(f *frame.Frame) error {
	if s.ctx.Err() != nil {
		return s.closedErr()
	}
	select {
	case <-s.failed:
		return s.failErr
	default:
	}
	spare, err := s.acquireFor(f)
	if err != nil {
		return err
	}
	m := newOutMsg(f)
	m.spare = spare
	m.seen = s.replaced.Load()
	if s.unsent.cancel(&m) {
		// Its request waits for the endpoint and will not be sent.
		s.releaseFor(m)
		s.log.Debug().Msg("a request cancelled before it was sent: it will not be")
		return nil
	}
	s.mu.Lock()
	switch {
	case m.kind == frame.Request && m.method == methodInitialize:
		s.initReq = m.f.Encoded()
	case m.kind == frame.Notification && m.method == methodInitialized:
		s.initNote = m.f.Encoded()
	}
	if m.kind == frame.Request {
		s.pending[string(m.id)] = struct{}{}
	}
	if m.method == methodCancelled {
		// No answer is wanted any more, and a server that follows the
		// spec sends none: the entry would stay until the stream drops.
		delete(s.pending, string(cancelledID(m)))
	}
	s.mu.Unlock()
	if m.kind == frame.Request {
		s.unsent.mark(m.id)
	}
	if m.kind == frame.Response {
		// post drops it if that connection is gone by the time it can go.
		var from upcall
		from, m.hasOrigin = s.ups.take(m.f.OutID())
		m.origin, m.via = from.origin, from.via
	}
	if err := s.launch(m, s.post); err != nil {
		s.unsent.end(m.id)
		return err
	}
	return nil
}

// post runs in m's own goroutine (see launch).
func (s *sseSession) post(m outMsg) {
	ctx := s.ctx
	if m.kind == frame.Request {
		defer s.unsent.end(m.id)
	}
	endpoint, err := s.waitEndpoint(ctx)
	if err != nil {
		s.answerFailure(m, err.Error())
		return
	}
	if m.seen != s.replaced.Load() {
		// Sent before the router knew of the new session.
		s.awaitRestored(ctx, m)
		if endpoint, err = s.waitEndpoint(ctx); err != nil {
			s.answerFailure(m, err.Error())
			return
		}
	}
	if m.kind == frame.Request && !s.isPending(m.id) {
		return // the connection dropped meanwhile and the request was answered
	}
	if m.kind == frame.Request && s.unsent.begin(m.id, sessionState{}, nil) {
		if s.take(m.id) {
			s.fail(m.id, "cancelled before it was sent")
		}
		return
	}
	if m.kind == frame.Response {
		s.mu.Lock()
		lost := !m.hasOrigin || m.origin != s.conn
		s.mu.Unlock()
		if lost {
			// Of a lost connection, or of a request the server cancelled
			// (upcalls.note) or that was answered already.
			s.log.Debug().Msg("dropping an answer to no request of this connection's")
			return
		}
	}
	if m.method == methodCancelled && !waitPosted(ctx, m) {
		return
	}
	req, err := s.newRequest(ctx, http.MethodPost, endpoint, m.f)
	if err != nil {
		s.answerFailure(m, err.Error())
		return
	}
	req.Header.Set("Content-Type", mediaJSON)
	resp, err := s.do(req)
	if m.kind == frame.Request {
		s.unsent.posted(m.id)
	}
	if err != nil {
		s.answerFailure(m, failureReason("post", err))
		return
	}
	if resp.StatusCode/100 == 2 {
		drain(resp) // 202: the answer comes on the stream
		return
	}
	body := readErrorBody(resp)
	if m.kind != frame.Request {
		s.log.Warn().Str("method", m.method).Str("error", s.redact(s.statusReason(resp, body))).Msg("backend refused a message")
		return
	}
	if s.take(m.id) && ctx.Err() == nil {
		s.deliver(s.statusAnswer(m.id, resp, body))
	}
}

// waitEndpoint returns the endpoint to POST to, waiting while the session
// reconnects.
func (s *sseSession) waitEndpoint(ctx context.Context) (string, error) {
	for {
		s.mu.Lock()
		ready, ep := s.ready, s.endpoint
		s.mu.Unlock()
		select {
		case <-ready:
			if ep != "" {
				return ep, nil
			}
			continue // ready was replaced after the snapshot: look again
		default:
		}
		select {
		case <-ready:
		case <-s.failed:
			return "", s.failErr
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// answerFailure answers a request that could not be sent; for other
// messages it only logs.
func (s *sseSession) answerFailure(m outMsg, reason string) {
	if s.ctx.Err() != nil {
		return
	}
	if m.kind != frame.Request {
		s.log.Warn().Str("method", m.method).Str("error", s.redact(reason)).Msg("posting to backend failed")
		return
	}
	if s.take(m.id) {
		s.fail(m.id, reason)
	}
}

// isPending reports whether the request id still awaits its answer.
func (s *sseSession) isPending(id []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pending[string(id)]
	return ok
}

// take removes id from the pending requests; whoever takes it answers it.
func (s *sseSession) take(id []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pending[string(id)]
	delete(s.pending, string(id))
	return ok
}

// Recv returns the next message from the stream, or a failure made up for
// a lost answer, or MethodReinitialized. It fails once the session is
// closed or gave up reconnecting.
func (s *sseSession) Recv(ctx context.Context) (*frame.Frame, error) {
	return s.recvFrame(ctx, s.failed, &s.failErr)
}

// Close stops the stream and every POST and waits for their goroutines.
// The legacy transport has no session to delete: the server ends it when
// the stream closes.
func (s *sseSession) Close() error {
	s.closeOnce.Do(func() {
		s.shutdown()
		s.wg.Wait()
		s.hc.CloseIdleConnections()
	})
	return nil
}

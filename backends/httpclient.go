package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/rawio"
	"github.com/rs/zerolog"
)

// Limits shared by the HTTP kinds.
const (
	// maxOutstandingPosts bounds the POSTs in flight per session; beyond it
	// Send answers frame.ErrQueueFull instead of piling up goroutines.
	maxOutstandingPosts = 4096
	// cancelReserve more are kept for cancellations: with every slot held
	// by calls whose streams stay open, a cancellation that could not be
	// POSTed let the error answers to its call's requests reach the
	// server without it (see order).
	cancelReserve = 64
	// recvBuffer is the depth of the channel Recv reads from.
	recvBuffer = 256
	// errorBodyCap is how much of a non-2xx answer is read: enough for a
	// JSON-RPC error, little enough for an HTML error page.
	errorBodyCap = 64 << 10
	// handshakeTimeout bounds a reconnection's handshake (the SSE endpoint
	// event, a replayed initialize), so a server that accepts and then says
	// nothing cannot hold a session forever.
	handshakeTimeout = 30 * time.Second
	// Reconnection backoff: exponential with jitter between these bounds.
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

// Methods and headers of the MCP HTTP transports.
const (
	methodInitialize  = "initialize"
	methodInitialized = "notifications/initialized"
	methodCancelled   = "notifications/cancelled"
	methodProgress    = "notifications/progress"

	headerSessionID   = "Mcp-Session-Id"
	headerProtocol    = "Mcp-Protocol-Version" // the spec spells it MCP-Protocol-Version; headers are case-insensitive
	headerLastEventID = "Last-Event-ID"

	mediaJSON = "application/json"
	mediaSSE  = "text/event-stream"
)

// newHTTPClient returns the client of one session. Its transport is a
// clone of http.DefaultTransport, so HTTP(S)_PROXY and NO_PROXY apply, with
// room for many parallel calls: over HTTP/1.1 every call in flight holds a
// connection, and the default of 2 idle connections per host would make
// each burst dial anew. There is no client Timeout: answer streams and the
// GET stream are long-lived; the router times requests out.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	t.MaxConnsPerHost = 0
	// net/http's 4 KiB connection buffers cut a 1 MiB message into 256
	// writes and reads, each a system call and a copy; 64 KiB ones make
	// that 16 (issue #6: CPU per large call).
	t.WriteBufferSize = 64 << 10
	t.ReadBufferSize = 64 << 10
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return bodyConn{rawio.Conn(c)}, nil
	}
	return &http.Client{Transport: t, CheckRedirect: sameOriginRedirect}
}

// sameOriginRedirect follows a redirect only within the configured URL's
// origin (scheme, host and port): the configured headers and an OAuth
// token are the server's credentials, and net/http would send the
// headers to any host, and Authorization to the same host on another
// port or from https to http. A server that moved elsewhere (http to
// https too) is refused with where it went: configure that URL.
func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if to, from := originOf(req.URL), originOf(via[0].URL); to != from {
		return fmt.Errorf("redirected from %s to another origin, %s, which the configured headers and credentials are not sent to: configure the URL it redirects to", from, to)
	}
	return nil
}

// A segmentsBody is a request body read from a frame's segments (see
// newRequest) without assembling them.
type segmentsBody struct{ net.Buffers }

func (*segmentsBody) Close() error { return nil }

// A bodyConn is a client connection that sends a segmentsBody with one
// writev straight from the frame's bytes. net/http hands a body it does
// not know to the connection's ReadFrom inside an io.LimitedReader;
// without this it copies it through a 32 KiB buffer, one write system call
// per 32 KiB (issue #6: 33 writes and a 1 MiB copy per 1 MiB call). TLS
// connections wrap this one and do not use it.
type bodyConn struct{ net.Conn }

func (c bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(*segmentsBody); ok && buffersLen(b.Buffers) <= lr.N {
			n, err := rawio.WriteBuffers(c.Conn, &b.Buffers)
			lr.N -= n
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func buffersLen(b net.Buffers) int64 {
	var n int64
	for _, s := range b {
		n += int64(len(s))
	}
	return n
}

// httpCore is what the streamable and SSE sessions share: the client, the
// configured headers, the Recv channel, the POST semaphore and the
// goroutine bookkeeping that Close relies on.
type httpCore struct {
	name   string
	hc     *http.Client
	header map[string]string // cfg.Headers, added to every request
	auth   *oauthClient      // nil when OAuth is off: the hot path pays nothing
	log    zerolog.Logger
	redact func(string) string
	maxMsg int

	ctx    context.Context // ends at Close; every request and wait derives from it
	cancel context.CancelFunc
	recv   chan *frame.Frame // never closed: producers are many; they select on ctx
	sem    chan struct{}     // one slot per outstanding POST
	spare  chan struct{}     // the cancellations' reserve (acquireFor)
	jobs   chan func()       // unbuffered: spawn hands a job to an idle worker

	lifeMu  sync.Mutex // guards closing and wg.Add against Close's wg.Wait
	closing bool
	wg      sync.WaitGroup

	gateMu sync.Mutex
	gate   chan struct{} // closed once the last notifications/initialized was posted
	// cancelling holds, by the id of the request each names, a channel
	// closed once that cancellation's POST is done (see launch).
	cancelMu   sync.Mutex
	cancelling map[string]chan struct{}

	ups    upcalls
	unsent unsent

	// A message the router sent before it heard that the upstream
	// session was replaced (MethodReinitialized) waits, once the new
	// session is up, until the router has restored the host's state in
	// it (Restored), at most restoreHold: a call held across the loss
	// would otherwise reach the server beside the replayed
	// logging/setLevel, and its logs be filtered at the server's default.
	// replaced counts the MethodReinitialized delivered; a message notes
	// the count when it is sent (outMsg.seen).
	replaced    atomic.Uint64
	restoreMu   sync.Mutex
	restoreGate chan struct{} // open while the router restores; nil when none
}

// restoreHold bounds the wait of awaitRestored (the router waits at most
// 2 s for its replayed requests' answers).
const restoreHold = 3 * time.Second

// reinitializing runs just before a MethodReinitialized is delivered.
func (c *httpCore) reinitializing() {
	c.restoreMu.Lock()
	if c.restoreGate != nil {
		close(c.restoreGate) // an earlier replacement's waiters go on
	}
	c.restoreGate = make(chan struct{})
	c.restoreMu.Unlock()
	c.replaced.Add(1)
}

// Restored tells the session that the router has restored the host's
// state after the last MethodReinitialized (Restorer).
func (c *httpCore) Restored() {
	c.restoreMu.Lock()
	if c.restoreGate != nil {
		close(c.restoreGate)
		c.restoreGate = nil
	}
	c.restoreMu.Unlock()
}

// awaitRestored holds m, if the router sent it before it heard of the
// latest replacement, until that replacement's state is restored.
func (c *httpCore) awaitRestored(ctx context.Context, m outMsg) {
	if m.seen == c.replaced.Load() {
		return
	}
	c.restoreMu.Lock()
	gate := c.restoreGate
	c.restoreMu.Unlock()
	if gate == nil {
		return
	}
	t := time.NewTimer(restoreHold)
	defer t.Stop()
	select {
	case <-gate:
	case <-t.C:
	case <-ctx.Done():
	}
}

// unsent holds, by id, the requests handed to Send and not yet past their
// POST: whether one is being POSTed now, and whether the router cancelled
// it. A request cancelled before its POST (waiting for
// notifications/initialized, a new session or a reconnection) is never
// sent, and its cancellation is not sent either: each message has its own
// POST goroutine, and the cancellation's would wait behind the same gate
// and could reach the server first. A streamable request cancelled while
// its POST is out is not sent again to a new session after a 404.
type unsent struct {
	mu   sync.Mutex
	reqs map[string]unsentReq
}

// An unsentReq is the state of a request in unsent; stop, if not nil, is
// closed when it is cancelled (see stopped).
type unsentReq struct {
	posting, cancelled bool
	stop               chan struct{}
	// abort, if not nil, ends the request's POST (its answer stream):
	// once the router cancelled the request, no answer of it is wanted,
	// and a server that follows the spec sends none, so the stream would
	// stay open, holding a connection and a POST slot, for as long as
	// the server keeps it.
	abort context.CancelFunc
	// sent is the streamable session the request was last POSTed in, so
	// that its cancellation goes there too (it stays there, resumed in it,
	// after the bridge moved to another).
	sent sessionState
	// postedAt is when the request's current POST began, answered its
	// answer (headers) came or it failed; waiting, made by a cancellation
	// that came before, is closed then (see waitPosted).
	postedAt time.Time
	answered bool
	waiting  chan struct{}
}

// mark records that request id waits to be POSTed (again).
func (u *unsent) mark(id []byte) {
	u.mu.Lock()
	if u.reqs == nil {
		u.reqs = make(map[string]unsentReq)
	}
	r := u.reqs[string(id)]
	r.posting = false
	u.reqs[string(id)] = r
	u.mu.Unlock()
}

// begin is called before each POST of request id, in streamable session
// st (zero for SSE), with what ends that POST (nil for SSE, whose POSTs
// are answered at once). It reports whether the request was cancelled
// meanwhile: then it must not be sent.
func (u *unsent) begin(id []byte, st sessionState, abort context.CancelFunc) (cancelled bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, ok := u.reqs[string(id)]
	if !ok || r.cancelled {
		return ok
	}
	r.posting, r.sent, r.abort = true, st, abort
	r.postedAt, r.answered = time.Now(), false
	u.reqs[string(id)] = r
	return false
}

// posted is called when a POST of request id was answered or failed.
func (u *unsent) posted(id []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if r, ok := u.reqs[string(id)]; ok {
		r.answered = true
		if r.waiting != nil {
			close(r.waiting)
			r.waiting = nil
		}
		u.reqs[string(id)] = r
	}
}

// isCancelled reports whether the router cancelled request id (still
// between Send and the end of its answer).
func (u *unsent) isCancelled(id []byte) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reqs[string(id)].cancelled
}

// stopped returns a channel closed once the router cancels request id
// (closed already if it did); nil, never closed, for a request not held
// here. A wait for the request (a resumption's retry delay) ends with it.
func (u *unsent) stopped(id []byte) <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	r, ok := u.reqs[string(id)]
	if !ok {
		return nil
	}
	if r.stop == nil {
		r.stop = make(chan struct{})
		if r.cancelled {
			close(r.stop)
		}
		u.reqs[string(id)] = r
	}
	return r.stop
}

// end forgets request id: it was sent, or will not be.
func (u *unsent) end(id []byte) {
	u.mu.Lock()
	if r, ok := u.reqs[string(id)]; ok && r.waiting != nil {
		close(r.waiting)
	}
	delete(u.reqs, string(id))
	u.mu.Unlock()
}

// cancel marks the request a notifications/cancelled is about as
// cancelled, and reports whether the cancellation need not be sent: the
// request was not POSTed yet, and now will not be. Called from Send, not
// from the POST goroutine, which would wait behind the same gate as the
// request and lose the race to it. A request being POSTed has its POST
// ended, and m notes the session it was POSTed in.
func (u *unsent) cancel(m *outMsg) bool {
	if m.method != methodCancelled {
		return false
	}
	f, err := frame.Parse(m.f.Encoded())
	if err != nil {
		return false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	id := string(f.Bytes(f.Param("requestId")))
	r, ok := u.reqs[id]
	if !ok {
		return false
	}
	if r.stop != nil && !r.cancelled {
		close(r.stop)
	}
	if r.posting {
		m.cancelIn, m.cancelSet = r.sent, true
		m.abortReq = r.abort
		if !r.answered {
			if r.waiting == nil {
				r.waiting = make(chan struct{})
			}
			m.reqWaiting, m.reqPostedAt = r.waiting, r.postedAt
		}
	}
	r.cancelled = true
	u.reqs[id] = r
	return !r.posting
}

// cancelGrace bounds how long after its request's POST began a
// cancellation waits for that POST to be answered (waitPosted): a server
// that answers a call's POST only with its first event, as go-sdk's does,
// sends nothing sooner for a silent call.
const cancelGrace = 500 * time.Millisecond

// waitPosted holds cancellation m until the POST of the request it names
// was answered (the server has the request then), or until cancelGrace
// after that POST began. Every POST travels on a connection of its own,
// and a cancellation sent at once can reach the server before its request;
// the server then ignores it (it "MAY ignore" one naming an unknown
// request) and runs the request to its end. It reports false if ctx ended
// first.
func waitPosted(ctx context.Context, m outMsg) bool {
	if m.reqWaiting == nil {
		return true
	}
	d := cancelGrace - time.Since(m.reqPostedAt)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.reqWaiting:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}

// upcalls remembers where each server request came from, by its id as
// delivered: the legacy SSE connection or the streamable session
// generation. The host's answer to a request of a connection or session
// since lost is dropped, not posted to the new one, whose server numbers
// its own requests from the start again and could take it for one of
// them.
type upcalls struct {
	mu   sync.Mutex
	from map[string]upcall
}

// An upcall is where a server request came from: its origin, and the
// request whose answer stream carried it (frame.Via), if any.
type upcall struct {
	origin uint64
	via    string
}

// note records that request f came from origin. A server's cancellation
// of its own request forgets it: an entry only an answer removes would
// stay for the session's life, and a late answer of the host's then has
// no origin and is dropped (as one to a request of a lost session or
// connection, or a second answer, is).
func (u *upcalls) note(f *frame.Frame, origin uint64) {
	switch {
	case f.Kind == frame.Request:
		u.mu.Lock()
		if u.from == nil {
			u.from = make(map[string]upcall)
		}
		u.from[string(f.ID())] = upcall{origin, string(f.Via)}
		u.mu.Unlock()
	case f.Kind == frame.Notification && f.Method == methodCancelled:
		id := f.Bytes(f.Param("requestId"))
		u.mu.Lock()
		delete(u.from, string(id))
		u.mu.Unlock()
	}
}

// take returns and forgets where the request answered by id came from.
func (u *upcalls) take(id []byte) (from upcall, ok bool) {
	u.mu.Lock()
	from, ok = u.from[string(id)]
	delete(u.from, string(id))
	u.mu.Unlock()
	return from, ok
}

// forgetBefore drops the requests of origins older than origin: those of
// an origin lost one step earlier are kept, as their answers may still be
// on their way, and the rest (requests never answered) would pile up.
func (u *upcalls) forgetBefore(origin uint64) {
	u.mu.Lock()
	for id, o := range u.from {
		if o.origin < origin {
			delete(u.from, id)
		}
	}
	u.mu.Unlock()
}

// newHTTPCore sets up what both kinds share; its ctx lives until Close.
func newHTTPCore(cfg config.Backend, opts Options) *httpCore {
	ctx, cancel := context.WithCancel(context.Background())
	redact := opts.Redact
	if redact == nil {
		redact = func(s string) string { return s }
	}
	max := opts.MaxMessage
	if max <= 0 {
		max = frame.DefaultMaxLine
	}
	c := &httpCore{
		name:   cfg.Name,
		hc:     newHTTPClient(),
		header: cfg.Headers,
		log:    opts.Logger,
		redact: redact,
		maxMsg: max,
		ctx:    ctx,
		cancel: cancel,
		recv:   make(chan *frame.Frame, recvBuffer),
		sem:    make(chan struct{}, maxOutstandingPosts),
		spare:  make(chan struct{}, cancelReserve),
		jobs:   make(chan func()),
	}
	c.auth = newOAuthClient(cfg, c)
	return c
}

// parseBackendURL checks that cfg.URL is an absolute http(s) URL.
func parseBackendURL(cfg config.Backend) (*url.URL, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("backend %q: bad url: %w", cfg.Name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend %q: url must be absolute http or https, not %q", cfg.Name, u.Redacted())
	}
	return u, nil
}

// Name is the backend's configured name.
func (c *httpCore) Name() string { return c.name }

func (c *httpCore) closedErr() error { return fmt.Errorf("backend %q: %w", c.name, ErrClosed) }

// launch orders m after notifications/initialized and POSTs it with post
// in its own goroutine, which holds the semaphore slot the caller acquired
// and, for notifications/initialized, opens the gate of what follows once
// post returned.
func (c *httpCore) launch(m outMsg, post func(outMsg)) error {
	c.order(&m)
	if !c.spawn(func() {
		defer c.releaseFor(m)
		if m.gate != nil {
			defer close(m.gate)
		}
		if m.cancelDone != nil {
			defer m.cancelDone()
		}
		if !c.waitTurn(m) {
			return
		}
		if e := c.log.Debug(); e.Enabled() {
			e.Str("kind", m.kind.String()).Str("method", m.method).Bytes("id", m.id).Int("bytes", m.f.Len()).Msg("to backend")
		}
		post(m)
	}) {
		c.releaseFor(m)
		if m.cancelDone != nil {
			m.cancelDone()
		}
		return c.closedErr()
	}
	return nil
}

// spawn runs fn in a goroutine that Close waits for. It reports false,
// running nothing, once Close has begun.
//
// The goroutines are workers that stay for workerIdle after their job,
// taking the next one: a POST goes through net/http's deep call chains,
// and growing a fresh goroutine's stack to fit them was a tenth of the
// bridge's CPU per small call (issue #6).
func (c *httpCore) spawn(fn func()) bool {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.closing {
		return false
	}
	select {
	case c.jobs <- fn: // an idle worker took it
		return true
	default:
	}
	c.wg.Add(1)
	go c.worker(fn)
	return true
}

// workerIdle is how long a worker waits for another job before it ends.
const workerIdle = 10 * time.Second

// worker runs fn, then the jobs spawn hands it, until it has been idle
// for workerIdle or the session closes.
func (c *httpCore) worker(fn func()) {
	defer c.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(workerIdle)
		select {
		case fn = <-c.jobs:
		case <-idle.C:
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// shutdown stops new goroutines and cancels the running ones; the caller
// then waits for them with c.wg.Wait.
func (c *httpCore) shutdown() {
	c.lifeMu.Lock()
	c.closing = true
	c.lifeMu.Unlock()
	c.cancel()
}

// acquire takes a POST slot or fails at once: Send never blocks.
func (c *httpCore) acquire() error {
	select {
	case c.sem <- struct{}{}:
		return nil
	default:
		return fmt.Errorf("backend %q: %d posts outstanding: %w", c.name, cap(c.sem), frame.ErrQueueFull)
	}
}

// acquireFor takes a slot for f: a cancellation that finds none takes one
// of the reserve. spare reports which it took, for releaseFor.
func (c *httpCore) acquireFor(f *frame.Frame) (spare bool, err error) {
	err = c.acquire()
	if err == nil || f.Kind != frame.Notification || f.Method != methodCancelled {
		return false, err
	}
	select {
	case c.spare <- struct{}{}:
		return true, nil
	default:
		return false, err
	}
}

// release gives back the slot acquire took, when the POST is done.
func (c *httpCore) release() { <-c.sem }

// releaseFor gives back the slot m took.
func (c *httpCore) releaseFor(m outMsg) {
	if m.spare {
		<-c.spare
		return
	}
	c.release()
}

// deliver hands f to Recv. It gives up (false) when the session closes,
// so no producer outlives Close.
func (c *httpCore) deliver(f *frame.Frame) bool {
	if e := c.log.Debug(); e.Enabled() {
		e.Str("kind", f.Kind.String()).Str("method", f.Method).Bytes("id", f.ID()).Int("bytes", len(f.Raw())).Msg("from backend")
	}
	select {
	case c.recv <- f:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// fail answers the request id with a failure, unless the session is
// closing (the router stops listening then).
func (c *httpCore) fail(id []byte, reason string) {
	if c.ctx.Err() != nil {
		return
	}
	c.deliver(failure(c.name, id, c.redact(reason)))
}

// recvFrame is Recv for both kinds. failed, if not nil, is closed when the
// session gave up for good; *failErr is the reason then.
func (c *httpCore) recvFrame(ctx context.Context, failed <-chan struct{}, failErr *error) (*frame.Frame, error) {
	if c.ctx.Err() != nil {
		return nil, c.closedErr()
	}
	select {
	case f := <-c.recv:
		return f, nil
	case <-c.ctx.Done():
		return nil, c.closedErr()
	case <-failed:
		select { // what arrived before the end is still delivered
		case f := <-c.recv:
			return f, nil
		default:
			return nil, *failErr
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// smallBody is the largest POST body assembled into one buffer: up to
// there a second system call costs more than the copy; beyond, a fresh
// buffer costs page faults.
const smallBody = 32 << 10

// newRequest builds a request carrying the configured headers. Header
// values are never logged: they may hold secrets. The body, if not nil, is
// read from the frame's own bytes and edits (frame.Segments): a large
// message is never assembled into a new buffer first (issue #6).
func (c *httpCore) newRequest(ctx context.Context, method, target string, body *frame.Frame) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		bodyReader := func() (io.ReadCloser, error) {
			if body.Len() <= smallBody {
				// net/http writes headers and body of an in-memory
				// reader with one system call (anything else gets a
				// second, for the headers alone).
				return io.NopCloser(bytes.NewReader(body.Encoded())), nil
			}
			return &segmentsBody{body.Segments()}, nil
		}
		req.Body, _ = bodyReader()
		req.GetBody = bodyReader // for redirects
		req.ContentLength = int64(body.Len())
	}
	for k, v := range c.header {
		if strings.EqualFold(k, "Host") {
			req.Host = v // net/http ignores a Host entry in Header
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

// do sends req. With OAuth in use it carries the backend's access token,
// and a refusal the authorization flow may fix (oauthRefusal) runs that
// flow, or waits for the one under way, and sends req once more; a failed
// flow is an *authError. req's body must be replayable (GetBody).
func (c *httpCore) do(req *http.Request) (*http.Response, error) {
	if c.auth == nil {
		return c.hc.Do(req)
	}
	ticket := c.auth.authorize(req)
	resp, err := c.hc.Do(req)
	// At most two renewals: a refresh, then, if the refreshed token is
	// refused too, the browser.
	for range maxRenewals {
		if err == nil && !oauthRefusal(resp) {
			c.auth.accepted(ticket)
			return resp, nil
		}
		if err != nil || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		drain(resp)
		resp.Body = http.NoBody // the handler reads the headers alone
		if err := c.auth.renew(req.Context(), ticket, resp); err != nil {
			return nil, err
		}
		retry := req.Clone(req.Context())
		retry.Header.Del("Authorization")
		if req.GetBody != nil {
			if retry.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		ticket = c.auth.authorize(retry)
		resp, err = c.hc.Do(retry)
	}
	return resp, err
}

// maxRenewals bounds the authorizations one request may wait for.
const maxRenewals = 2

// doOnce sends req with the access token, if any, and never starts a
// flow (the DELETE that ends a session).
func (c *httpCore) doOnce(req *http.Request) (*http.Response, error) {
	if c.auth != nil {
		c.auth.authorize(req)
	}
	return c.hc.Do(req)
}

// failureReason is the reason a request fails with when sending it
// (what, "post") failed with err.
func failureReason(what string, err error) string {
	var ae *authError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	return what + ": " + netReason(err)
}

// statusAnswer is the answer to the request id whose POST got the non-2xx
// resp (body is the start of its body): the body itself when it is a
// JSON-RPC error for id, otherwise a failure naming the status.
func (c *httpCore) statusAnswer(id []byte, resp *http.Response, body []byte) *frame.Frame {
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden && mediaType(resp.Header) == mediaJSON {
		if f, err := frame.Parse(bytes.Clone(body)); err == nil && f.Kind == frame.Response && f.IsError() && bytes.Equal(f.ID(), id) {
			return f
		}
	}
	return failure(c.name, id, c.redact(c.statusReason(resp, body)))
}

// statusReason explains a non-2xx answer. For 401 and 403 it says how to
// pass credentials, since that is nearly always the fix, unless OAuth
// gave them, and what the server said (a 403 may have another reason: an
// address allowlist, say).
func (c *httpCore) statusReason(resp *http.Response, body []byte) string {
	// Scrubbed before it is cut, so that no part of a token is left.
	said := snippet([]byte(scrubCredentials(string(body), resp.Request)), 200)
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		if said != "" {
			return fmt.Sprintf("HTTP %s: %s", resp.Status, said)
		}
		return "HTTP " + resp.Status
	}
	sent := resp.Request != nil && resp.Request.Header.Get("Authorization") != ""
	configured := false
	for k := range c.header {
		configured = configured || strings.EqualFold(k, "Authorization")
	}
	var why string
	switch {
	case c.auth != nil && sent && !configured:
		why = fmt.Sprintf("the server refused the request with the OAuth authorization it gave (HTTP %s); to start over, remove the backend's file in the OAuth directory (see README) or pass a token with --header '%s:Authorization: Bearer …'", resp.Status, c.name)
	case configured:
		why = fmt.Sprintf("the server refused the configured credentials (HTTP %s); pass others with --header '%s:Authorization: Bearer …'", resp.Status, c.name)
	case resp.StatusCode == http.StatusForbidden:
		why = fmt.Sprintf("the server refused the request (HTTP %s); if it needs credentials, pass them with --header '%s:Authorization: Bearer …'", resp.Status, c.name)
	default:
		why = fmt.Sprintf("the server refused the request for lack of credentials (HTTP %s); pass them with --header '%s:Authorization: Bearer …'", resp.Status, c.name)
	}
	if said != "" {
		why += "; it said: " + said
	}
	return why
}

// scrubCredentials removes from s, text of a server's answer to req, the
// credentials req carried: a server that echoes the request (a debugging
// proxy, an error page such as Express's "Cannot POST /mcp/KEY/sse")
// would otherwise put an OAuth access token, which no configured value
// names, or an API key in the URL (hosted services put one in its path or
// query), into the log and the host's error. URL parts shorter than
// urlKeyMin are words ("mcp", "v1"), not keys, and stay.
func scrubCredentials(s string, req *http.Request) string {
	if req == nil {
		return s
	}
	v := req.Header.Get("Authorization")
	if _, tok, ok := strings.Cut(v, " "); ok && len(tok) >= 6 {
		s = strings.ReplaceAll(s, tok, "[REDACTED]")
	}
	if len(v) >= 6 {
		s = strings.ReplaceAll(s, v, "[REDACTED]")
	}
	if u := req.URL; u != nil {
		parts := append(strings.Split(u.EscapedPath(), "/"), strings.Split(u.Path, "/")...)
		for _, vs := range u.Query() {
			parts = append(parts, vs...)
		}
		for _, kv := range strings.Split(u.RawQuery, "&") {
			if _, v, ok := strings.Cut(kv, "="); ok {
				parts = append(parts, v) // as sent, percent-encoded
			}
		}
		for _, p := range parts {
			if len(p) >= urlKeyMin {
				s = strings.ReplaceAll(s, p, "[REDACTED]")
			}
		}
	}
	return s
}

// urlKeyMin is the length from which a URL's path segment or query value
// may be a key (scrubCredentials).
const urlKeyMin = 16

// netReason describes a failed round trip without the "Post \"url\":"
// prefix net/http adds (the URL may carry a token in its query).
func netReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// snippet is the first n bytes of b as one trimmed, valid UTF-8 line.
func snippet(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	cut := len(b) > n
	if cut {
		b = b[:n]
		for len(b) > 0 && !utf8.Valid(b) { // do not split a rune
			b = b[:len(b)-1]
		}
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if cut {
		s += "…"
	}
	return s
}

// mediaType is the Content-Type of h without parameters, lower-cased.
func mediaType(h http.Header) string {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// readErrorBody reads the start of a non-2xx answer and closes it.
func readErrorBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyCap))
	return b
}

// drain discards a small remainder of a body before closing it, so the
// connection can be reused.
func drain(resp *http.Response) {
	// Not an event stream: one may stay open for ever (a server that
	// answers a notification with a stream it keeps, against the spec's
	// 202 with no body, held everything sent after it); closing it loses
	// only the connection.
	if mediaType(resp.Header) != mediaSSE {
		_, _ = io.CopyN(io.Discard, resp.Body, errorBodyCap)
	}
	resp.Body.Close()
}

// readBody reads a whole body of at most max bytes, in one allocation when
// the length is announced.
func readBody(resp *http.Response, max int) ([]byte, error) {
	if n := resp.ContentLength; n > int64(max) {
		return nil, fmt.Errorf("answer of %d bytes is over the cap of %d", n, max)
	} else if n >= 0 {
		b := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	// io.ReadAll grows by append, several times cheaper than
	// bytes.Buffer.ReadFrom for a 16 MiB chunked answer.
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("answer is over the cap of %d bytes", max)
	}
	return b, nil
}

// splitJSON returns the messages of an application/json answer: one
// object, or a JSON array of them (a batch answer).
func splitJSON(body []byte) ([][]byte, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, errors.New("empty answer")
	}
	if b[0] != '[' {
		return [][]byte{b}, nil
	}
	var parts []json.RawMessage // rare path: a batch
	if err := json.Unmarshal(b, &parts); err != nil {
		return nil, fmt.Errorf("answer is not JSON: %w", err)
	}
	msgs := make([][]byte, len(parts))
	for i, p := range parts {
		msgs[i] = p
	}
	return msgs, nil
}

// An outMsg is a frame on its way to the server, with what the HTTP
// kinds need to know about it.
type outMsg struct {
	f      *frame.Frame // owned by the session; posted with its edits applied
	kind   frame.Kind   //
	method string
	id     []byte // a request's id as written: answers carry this one
	first  bool   // the session's first POST (URL backends decide on it)
	seen   uint64 // httpCore.replaced when it was sent (awaitRestored)
	// origin, if hasOrigin, is for an answer to a server's request: the
	// SSE connection or streamable session generation it came from
	// (upcalls).
	origin    uint64
	hasOrigin bool

	after <-chan struct{} // if not nil, post only once it is closed
	gate  chan struct{}   // for notifications/initialized: closed once posted
	spare bool            // its POST slot is one of the cancellations' reserve
	// via, for an answer to a server request, is the id of the request
	// whose answer stream the server's request came on (frame.Via), if
	// any; afterCancel is then closed once the cancellation of that
	// request sent before this answer was POSTed. cancelDone, for a
	// cancellation, is called once its POST is done (see launch).
	via         string
	afterCancel <-chan struct{}
	cancelDone  func()

	// cancelIn, if cancelSet, is for a notifications/cancelled: the
	// streamable session its request was POSTed in, looked up in Send
	// (unsent.cancel then ends that request's POST, and with it the
	// record).
	cancelIn  sessionState
	cancelSet bool
	// reqWaiting, if not nil, is closed once the POST of the request a
	// cancellation names, begun at reqPostedAt, was answered (see
	// waitPosted).
	reqWaiting  <-chan struct{}
	reqPostedAt time.Time
	// abortReq, if not nil, ends the cancelled request's POST: called
	// once this cancellation was POSTed, so that the server hears it
	// before it sees the stream go (go-sdk's server then never cancelled
	// the tool's handler, and its session could not close).
	abortReq context.CancelFunc
}

// order keeps notifications/initialized ahead of what the router sends
// after it, and a request's cancellation ahead of the answers to the
// server requests that came on that request's answer stream, sent after
// it. Each message has its own POST goroutine and connection, so without
// this a tools/call sent right after initialized could reach the server
// first (servers may refuse requests before initialized), and the error
// answer to a cancelled call's sampling request, which the router sends
// right after the call's cancellation, did so nearly always: the server's
// tool saw its sampling fail, returned, and the cancellation named a
// finished request. Other answers never wait for a cancellation.
func (c *httpCore) order(m *outMsg) {
	c.gateMu.Lock()
	m.after = c.gate
	if m.kind == frame.Notification && m.method == methodInitialized {
		c.gate = make(chan struct{})
		m.gate = c.gate
	}
	c.gateMu.Unlock()
	switch {
	case m.kind == frame.Response && m.via != "":
		c.cancelMu.Lock()
		m.afterCancel = c.cancelling[m.via]
		c.cancelMu.Unlock()
	case m.kind == frame.Notification && m.method == methodCancelled:
		id := string(cancelledID(*m))
		done := make(chan struct{})
		c.cancelMu.Lock()
		if c.cancelling == nil {
			c.cancelling = make(map[string]chan struct{})
		}
		c.cancelling[id] = done
		c.cancelMu.Unlock()
		m.cancelDone = sync.OnceFunc(func() {
			close(done)
			c.cancelMu.Lock()
			if c.cancelling[id] == done {
				delete(c.cancelling, id)
			}
			c.cancelMu.Unlock()
		})
	}
}

// cancelWait bounds how long an answer waits behind a cancellation (see
// order): the cancellation may itself wait up to cancelGrace for its
// request's POST, and its own POST may hang.
const cancelWait = cancelGrace + 2*time.Second

// waitTurn waits for the message m must follow; false if the session
// closed meanwhile. It runs in m's POST goroutine.
func (c *httpCore) waitTurn(m outMsg) bool {
	if m.after != nil {
		select {
		case <-m.after:
		case <-c.ctx.Done():
			return false
		}
	}
	if m.afterCancel != nil {
		t := time.NewTimer(cancelWait)
		defer t.Stop()
		select {
		case <-m.afterCancel:
		case <-t.C:
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

func newOutMsg(f *frame.Frame) outMsg {
	m := outMsg{f: f, kind: f.Kind, method: f.Method}
	if f.Kind == frame.Request {
		m.id = f.OutID()
	}
	return m
}

// withID returns the stored request body as a frame with its id replaced.
func withID(body, id []byte) (*frame.Frame, error) {
	f, err := frame.Parse(bytes.Clone(body))
	if err != nil {
		return nil, err
	}
	if f.Kind != frame.Request {
		return nil, fmt.Errorf("not a request: %s", f.Kind)
	}
	f.SetID(id)
	return f, nil
}

// stored returns a stored handshake message as a frame to post.
func stored(body []byte) (*frame.Frame, error) {
	return frame.Parse(bytes.Clone(body))
}

// isAnswer reports whether f is the response to the request id.
func isAnswer(f *frame.Frame, id []byte) bool {
	return f.Kind == frame.Response && id != nil && bytes.Equal(f.ID(), id)
}

// protocolVersion reads result.protocolVersion of an initialize response
// (off the hot path: once per session).
func protocolVersion(f *frame.Frame) string {
	var r struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if f.IsError() || json.Unmarshal(f.Result(), &r) != nil {
		return ""
	}
	return r.ProtocolVersion
}

// A backoff yields reconnection delays: doubling from backoffMin to
// backoffMax, each with "equal jitter" (half fixed, half random) so that
// many bridges restarted together do not reconnect in lockstep.
type backoff struct{ next time.Duration }

func (b *backoff) delay() time.Duration {
	if b.next < backoffMin {
		b.next = backoffMin
	}
	d := b.next
	b.next = min(2*b.next, backoffMax)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.next = backoffMin }

// sleepCtx waits d, or less if ctx ends first; it reports whether the
// full delay passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// eachMessage calls fn with each message of an event's data: the data
// itself, or the members of a JSON-RPC batch (which 2025-03-26 allows on
// an event stream, and the legacy SSE transport's JSON-RPC too), until fn
// returns false. It reports whether fn never did.
func (c *httpCore) eachMessage(data []byte, fn func([]byte) bool) bool {
	if b := bytes.TrimLeft(data, " \t\r\n"); len(b) == 0 || b[0] != '[' {
		return fn(data)
	}
	msgs, err := splitJSON(data)
	if err != nil {
		c.log.Warn().Err(err).Str("data", c.redact(snippet(data, 200))).Msg("skipping a message from backend that is not JSON-RPC")
		return true
	}
	for _, m := range msgs {
		if !fn(m) {
			return false
		}
	}
	return true
}

// parseMessage parses one message from the backend, logging (not
// failing on) what is not JSON-RPC.
func (c *httpCore) parseMessage(data []byte) (*frame.Frame, bool) {
	f, err := frame.Parse(data)
	if err != nil {
		c.log.Warn().Err(err).Str("data", c.redact(snippet(data, 200))).Msg("skipping a message from backend that is not JSON-RPC")
		return nil, false
	}
	return f, true
}

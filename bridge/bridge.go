package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/rs/zerolog"
)

// Config is everything Run needs. Zero values have the defaults given on
// each field.
type Config struct {
	Backends []config.Backend
	Logger   zerolog.Logger

	// InitTimeout bounds the backends' initialize. If zero, 60s (a first
	// npx run is slow). A backend slower than this is added when it comes
	// up, and the host is told with list_changed.
	InitTimeout time.Duration
	// Timeout is the default idle timeout of a host request, reset by each
	// progress notification for it. If zero, 5m. Negative disables.
	Timeout time.Duration
	// MaxTimeout is the default absolute cap of a host request. If zero,
	// 1h. Negative disables.
	MaxTimeout time.Duration
	// Separator joins backend and tool names. If empty, "_".
	Separator string
	// Prefix asks for prefixed names even with a single backend.
	Prefix bool
	// MaxLine caps one line from the host. If zero, frame.DefaultMaxLine.
	MaxLine int
	// Version is the bridge's own serverInfo.version.
	Version string
	// Redact removes secrets from text before it is logged. If nil, nothing
	// is removed.
	Redact func(string) string
	// Open starts a backend session. If nil, backends.Open. Tests use it to
	// reach in-process servers.
	Open func(ctx context.Context, cfg config.Backend, opts backends.Options) (backends.Session, error)
	// ShutdownGrace bounds closing the backends at exit. If zero, 5s.
	ShutdownGrace time.Duration
	// Supervisor is passed on to backends.Options: the mcpbridge binary,
	// re-executed as the guard of the stdio backends' process groups
	// (Linux) or as the leader of each (other Unix systems). If empty,
	// none.
	Supervisor string
}

func (c *Config) setDefaults() {
	if c.InitTimeout == 0 {
		c.InitTimeout = 60 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.MaxTimeout == 0 {
		c.MaxTimeout = time.Hour
	}
	if c.Separator == "" {
		c.Separator = "_"
	}
	if c.Redact == nil {
		c.Redact = func(s string) string { return s }
	}
	if c.Open == nil {
		c.Open = backends.Open
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// ErrBackendsFailed is returned by Run when no backend could be initialized:
// the host's initialize got an error and the bridge must exit non-zero.
var ErrBackendsFailed = errors.New("no backend could be initialized")

// Run serves one MCP host on in/out until in ends or ctx is done. Every
// request read before the end of in is answered (bounded by the request
// timeouts); then every backend is closed. Nothing but JSON-RPC is written
// to out.
func Run(ctx context.Context, cfg Config, in io.Reader, out io.Writer) error {
	cfg.setDefaults()
	if len(cfg.Backends) == 0 {
		return errors.New("no backends")
	}
	r := newRouter(cfg, out)
	return r.run(ctx, in)
}

// router is the bridge: the front (host) side, the links to the backends,
// and the maps between them.
type router struct {
	cfg    Config
	log    zerolog.Logger
	front  *frame.Writer
	links  []*link
	byName map[string]*link
	// raw is true with one backend, no forced prefix and no filters: names
	// and lists pass through byte for byte.
	raw bool

	// life ends when the bridge shuts down; every wait selects on it.
	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // link goroutines

	mu  sync.Mutex // guards everything below and the idMap
	ids *idMap
	// inflight counts host requests not yet answered, for the drain at EOF.
	inflight int
	drained  chan struct{} // closed by whoever takes inflight to 0 while draining
	draining bool

	host hostState
	agg  *aggregator
	// batches maps the raw ids of a batch's requests to the batch that
	// gathers their answers (2025-03-26 JSON-RPC batches).
	batches map[string]*batch
	// pending holds, by raw id, the host requests the reader handed on
	// that are not in the id map yet: queued behind initialize, or routed
	// by a goroutine of the aggregator (which may wait for lists). A
	// notifications/cancelled marks one, and the request is dropped where
	// it leaves this state (takePending). Each request has its own entry
	// (a host may reuse an id once it cancelled the request that had it:
	// the cancellation must not drop the new one, and the old one must not
	// be answered under the shared id). npending counts the ids, so that
	// the hot path need not lock when there are none.
	pending  map[string][]*pendingReq
	npending atomic.Int32
	// reading is the batch whose members the reader is handing on (nil
	// for a single message): the batch a pending request belongs to is the
	// one it came in, not whichever holds its id. Only the reader
	// goroutine touches it.
	reading *batch
}

// A pendingReq is one host request waiting to be routed.
type pendingReq struct {
	f         *frame.Frame // the request itself: its identity
	batch     *batch       // the batch it came in, if any
	cancelled bool
}

// hostState is what the host told us at initialize and since.
type hostState struct {
	initStarted bool
	initParams  []byte        // host's initialize params, protocolVersion negotiated
	version     string        // negotiated protocol version
	initialized chan struct{} // closed when the host sent notifications/initialized
	initDone    chan struct{} // closed when the host's initialize was answered
	queued      []*frame.Frame
	assumeTimer *time.Timer         // assumes initialized for a host that asks without it (armAssume)
	held        []heldFrame         // backends' messages waiting for the host's initialized
	released    bool                // held messages sent: backends' messages go straight to the host
	heldFull    bool                // held reached maxHeld: the overflow was logged
	listChanged map[string]bool     // list kinds whose listChanged capability the host was given
	open        bool                // queued released: host requests are routed at once
	releasing   bool                // releaseQueued is routing the queue
	inputEnded  bool                // the host's input ended (or the bridge gives up)
	logLevel    []byte              // raw params of the last logging/setLevel
	subs        map[string]*hostSub // by uri
	fatal       error               // set when the bridge must exit non-zero
}

// A hostSub is one resources/subscribe of the host, replayed to the
// backend that holds it when that backend restarts.
type hostSub struct {
	params []byte // raw params of the subscribe
	// owner is the backend that took the subscribe: the one whose restart
	// replays it.
	owner *link
	// fronts are the host's ids of the subscribes to it still waiting
	// for a backend's answer; confirmed is set once a backend took one.
	// Only a confirmed subscription is replayed; one every subscribe of
	// which was refused, failed or cancelled is forgotten (see
	// router.subscribed).
	fronts    []string
	confirmed bool
}

func newRouter(cfg Config, out io.Writer) *router {
	r := &router{
		cfg:     cfg,
		log:     cfg.Logger,
		front:   frame.NewWriter(out, 1024, 0),
		byName:  make(map[string]*link),
		ids:     newIDMap(),
		batches: make(map[string]*batch),
		pending: make(map[string][]*pendingReq),
	}
	r.host.initialized = make(chan struct{})
	r.host.initDone = make(chan struct{})
	r.host.subs = make(map[string]*hostSub)
	filters := false
	for i := range cfg.Backends {
		l := newLink(r, cfg.Backends[i])
		r.links = append(r.links, l)
		r.byName[l.name] = l
		filters = filters || l.cfg.Filtered()
	}
	r.raw = len(r.links) == 1 && !cfg.Prefix && !filters
	r.agg = newAggregator(r)
	return r
}

func (r *router) run(ctx context.Context, in io.Reader) error {
	r.life, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer r.cancel()

	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan error, 1)
	go func() { writerDone <- r.front.Run(writerCtx) }()

	for _, l := range r.links {
		r.wg.Add(1)
		go l.open()
	}

	readDone := make(chan error, 1)
	go func() { readDone <- r.readFront(in) }()

	var err error
	writerEnded := false
	select {
	case err = <-readDone:
		if err != nil {
			r.log.Error().Err(err).Msg("reading from host")
		}
		r.log.Info().Msg("host input ended; answering what is in flight")
		r.mu.Lock()
		r.host.inputEnded = true
		noInitialized := r.host.initStarted && !isClosed(r.host.initialized)
		r.mu.Unlock()
		if noInitialized {
			// A script that pipes initialize and its calls without
			// notifications/initialized: the host will send nothing more,
			// so the backends are told it is initialized and the calls are
			// routed as if it had said so.
			r.log.Warn().Msg("the host's input ended without notifications/initialized; taking it as initialized")
			r.hostNotification(frame.NewNotification(mInitialized, nil))
		}
		r.releaseQueued()
		r.failUpsAtEOF()
		if werr, ended := r.drain(ctx, writerDone); ended {
			// The answers have nowhere to go.
			writerEnded = true
			r.log.Error().Err(werr).Msg("writing to host")
			if err == nil || errors.Is(err, io.EOF) {
				err = werr
			}
		}
	case <-ctx.Done():
		r.log.Info().Msg("stopping on signal")
	case <-r.life.Done():
		// The bridge gave up (no backend could be initialized).
	case err = <-writerDone:
		writerEnded = true
		r.log.Error().Err(err).Msg("writing to host")
	}

	// Close every backend, all at once, within the grace period.
	r.cancel()
	r.mu.Lock()
	if t := r.host.assumeTimer; t != nil {
		t.Stop()
	}
	r.mu.Unlock()
	closed := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, l := range r.links {
			wg.Add(1)
			go func() { defer wg.Done(); l.close() }()
		}
		wg.Wait()
		r.wg.Wait()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(r.cfg.ShutdownGrace):
		r.log.Warn().Msg("backends did not close within the grace period")
	}
	stopWriter()
	if !writerEnded { // its one value was taken above otherwise
		// Bounded: a host that stopped reading its stdout holds the
		// writer in a write that nothing ends; the process exits anyway.
		select {
		case werr := <-writerDone:
			if werr != nil && err == nil && !errors.Is(werr, context.Canceled) {
				err = werr
			}
		case <-time.After(r.cfg.ShutdownGrace):
			r.log.Warn().Msg("the host is not reading what the bridge writes; stopping without it")
		}
	}
	r.mu.Lock()
	fatal := r.host.fatal
	r.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// drain waits until every host request read so far has been answered, or
// ctx is done. Request timeouts bound it.
//
// It also ends when the writer to the host does (writerDone delivers its
// result): then it returns that result and ended true.
func (r *router) drain(ctx context.Context, writerDone <-chan error) (werr error, ended bool) {
	r.mu.Lock()
	if r.inflight == 0 && len(r.host.queued) == 0 {
		r.mu.Unlock()
		return nil, false
	}
	r.draining = true
	r.drained = make(chan struct{})
	ch := r.drained
	r.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	case werr = <-writerDone:
		return werr, true
	}
	return nil, false
}

// answered records that one host request got its answer. Call with r.mu held.
func (r *router) answeredLocked() {
	r.inflight--
	if r.draining && r.inflight <= 0 && len(r.host.queued) == 0 && r.drained != nil {
		close(r.drained)
		r.drained = nil
	}
}

// toHost queues f for the host.
func (r *router) toHost(f *frame.Frame) {
	if err := r.front.Put(r.life, f); err != nil {
		r.log.Debug().Err(err).Msg("dropping a message for the host at shutdown")
	}
}

// reply answers the host request whose raw id is id with f, and counts
// it. An answer that belongs to a batch waits for the batch's others. The
// answer is queued for the host before it is counted: the drain at stdin
// EOF ends when the count reaches zero, and must not end with an answer
// still to be queued (FuzzRouter found that race).
func (r *router) reply(id []byte, f *frame.Frame) {
	key := string(id)
	if id == nil {
		key = "null"
	}
	r.mu.Lock()
	if b := r.batches[key]; b != nil {
		f = b.add(key, f, r.batches)
	}
	r.mu.Unlock()
	if f != nil {
		r.toHost(f)
	}
	r.mu.Lock()
	r.answeredLocked()
	r.mu.Unlock()
}

// markPendingLocked records that the host request f was handed on
// without entering the id map yet (see pending). r.mu is held.
func (r *router) markPendingLocked(f *frame.Frame) {
	key := string(f.ID())
	if len(r.pending[key]) == 0 {
		r.npending.Add(1)
	}
	r.pending[key] = append(r.pending[key], &pendingReq{f: f, batch: r.reading})
}

// cancelPendingLocked marks the latest pending host request with raw id
// id that is not cancelled yet, and reports whether one waits with that
// id. r.mu is held.
func (r *router) cancelPendingLocked(id []byte) bool {
	ps := r.pending[string(id)]
	for i := len(ps) - 1; i >= 0; i-- {
		if !ps[i].cancelled {
			ps[i].cancelled = true
			break
		}
	}
	return len(ps) > 0
}

// takePending is called where host request f leaves the reader's hands
// for good without entering the id map: answered at once where it is
// routed (refuse). It ends the request's pending state, if it had one, and
// reports whether the host cancelled it meanwhile: then the request is
// dropped unanswered, as a cancelled request is (issue #3), counted as
// done, and a batch it belongs to stops waiting for it.
func (r *router) takePending(f *frame.Frame) (cancelled bool) {
	if r.npending.Load() == 0 {
		return false
	}
	r.mu.Lock()
	cancelled, batchDone := r.takePendingLocked(f)
	r.mu.Unlock()
	if cancelled {
		r.finishDropped(f.ID(), batchDone)
	}
	return cancelled
}

// takePendingLocked is takePending's part under r.mu, also used where f
// enters the id map (forward, claim, under the same lock as the map); if
// it reports f cancelled, the caller calls finishDropped after unlocking.
func (r *router) takePendingLocked(f *frame.Frame) (cancelled bool, batchDone *frame.Frame) {
	if len(r.pending) == 0 {
		return false, nil // the usual case: nothing waits to be routed
	}
	key := string(f.ID())
	ps := r.pending[key]
	i := slices.IndexFunc(ps, func(p *pendingReq) bool { return p.f == f })
	if i < 0 {
		return false, nil
	}
	p := ps[i]
	if ps = slices.Delete(ps, i, i+1); len(ps) == 0 {
		delete(r.pending, key)
		r.npending.Add(-1)
	} else {
		r.pending[key] = ps
	}
	if !p.cancelled {
		return false, nil
	}
	// Dropped, it answers nobody: its batch, if it came in one, stops
	// waiting for it (not another batch whose member reuses the id).
	if b := r.batches[key]; b != nil && b == p.batch {
		batchDone = b.add(key, nil, r.batches)
	}
	return true, batchDone
}

// refuse answers host request f with an error where it is routed, unless
// the host cancelled it while it waited to be (then it is dropped).
func (r *router) refuse(f *frame.Frame, code int, msg string, data any) {
	if r.takePending(f) {
		return
	}
	r.replyError(f.ID(), code, msg, data)
}

// finishDropped completes dropping a request the host cancelled before it
// was routed: the batch it completed goes out, then it is counted as done.
func (r *router) finishDropped(id []byte, batchDone *frame.Frame) {
	if batchDone != nil {
		r.toHost(batchDone)
	}
	r.mu.Lock()
	r.answeredLocked()
	r.mu.Unlock()
	r.log.Debug().Bytes("frontID", id).Msg("dropping a request the host cancelled before it was routed")
}

func (r *router) replyError(id []byte, code int, msg string, data any) {
	r.reply(id, frame.NewError(id, frame.ErrorObject{Code: code, Message: msg, Data: data}))
}

// backendError is the one shape of "a backend failed" errors (-32603 with
// data.backend), as the README's error table documents.
func backendErrorData(backend, reason string) map[string]string {
	return map[string]string{"backend": backend, "reason": reason}
}

// readFront is the only reader of the host's stdin. It never blocks on a
// backend: everything it hands on is queued or answered at once.
func (r *router) readFront(in io.Reader) error {
	lr := frame.NewLineReader(in, r.cfg.MaxLine)
	for first := true; ; first = false {
		line, err := lr.Next()
		if first && err == nil {
			// A UTF-8 byte order mark before the first message (Windows
			// PowerShell pipes add one) is not part of it.
			if line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")); len(line) == 0 {
				continue
			}
		}
		if errors.Is(err, frame.ErrTooLong) {
			r.log.Warn().Err(err).Msg("host sent an oversized message")
			h := frame.PeekOversized(line, lr.Tail())
			if h.Response {
				// The host's answer to a backend's request: nothing answers
				// an answer, but the backend must not wait for it.
				if h.ID != nil {
					r.hostResponse(frame.NewError(h.ID, frame.ErrorObject{Code: frame.CodeInternalError, Message: "the client's answer was too long for the bridge: " + err.Error()}))
				}
				continue
			}
			if h.ID == nil && !h.Batch && strings.HasPrefix(h.Method, "notifications/") {
				// A notification (its method is one, and no id is in its
				// head or its tail): "the receiver MUST NOT send a
				// response". It is dropped, and logged above.
				continue
			}
			r.mu.Lock()
			r.inflight++
			r.mu.Unlock()
			// A batch, or an id not seen whole: one error with id null.
			r.replyError(h.ID, frame.CodeInvalidRequest, err.Error(), nil)
			continue
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if line[0] == '[' {
			r.handleBatch(line)
			continue
		}
		r.handleFrontLine(line)
	}
}

func (r *router) handleFrontLine(line []byte) {
	f, err := frame.Parse(line)
	if err != nil {
		r.mu.Lock()
		r.inflight++
		r.mu.Unlock()
		if errors.Is(err, frame.ErrParse) {
			r.log.Warn().Err(err).Msg("host sent a line that is not JSON")
			r.replyError(nil, frame.CodeParseError, err.Error()+" (each JSON-RPC message must be on one line of its own, as stdio requires: jq -c, not jq)", nil)
			return
		}
		r.log.Warn().Err(err).Msg("host sent an invalid message")
		var id []byte
		if f != nil {
			id = f.ID()
		}
		if h := frame.PeekHead(line); h.Response {
			// Meant as an answer to a backend's request ("result" and
			// "error" both, say): nothing answers an answer, but the
			// backend must not wait for it.
			if id != nil {
				r.hostResponse(frame.NewError(id, frame.ErrorObject{Code: frame.CodeInternalError, Message: "the client's answer was not valid JSON-RPC: " + err.Error()}))
			}
			r.mu.Lock()
			r.answeredLocked()
			r.mu.Unlock()
			return
		}
		r.replyError(id, frame.CodeInvalidRequest, err.Error(), nil)
		return
	}
	if e := r.log.Debug(); e.Enabled() {
		e.Str("method", f.Method).Bytes("frontID", f.ID()).Str("kind", f.Kind.String()).Int("len", len(f.Raw())).Msg("from host")
	}
	r.fromHost(f)
}

// A batch gathers the answers to the requests of one JSON array.
type batch struct {
	waiting map[string]int // raw id → answers still due
	left    int
	out     []*frame.Frame
}

// add records f as the answer for id and returns the array to write once
// every answer is in, else nil. Call with r.mu held.
// A nil f is a member that gets no answer (cancelled).
func (b *batch) add(id string, f *frame.Frame, all map[string]*batch) *frame.Frame {
	if f != nil {
		b.out = append(b.out, f)
	}
	b.left--
	if b.waiting[id]--; b.waiting[id] == 0 {
		delete(all, id)
	}
	if b.left > 0 || len(b.out) == 0 {
		return nil
	}
	return frame.Batch(b.out)
}

// handleBatch answers a JSON array (2025-03-26 batches) with an array of
// the answers to its requests; notifications in it get none.
func (r *router) handleBatch(line []byte) {
	var items []json.RawMessage
	if err := json.Unmarshal(line, &items); err != nil {
		r.mu.Lock()
		r.inflight++
		r.mu.Unlock()
		r.replyError(nil, frame.CodeParseError, "parse error: "+err.Error(), nil)
		return
	}
	if len(items) == 0 {
		r.mu.Lock()
		r.inflight++
		r.mu.Unlock()
		r.replyError(nil, frame.CodeInvalidRequest, "invalid request: empty batch", nil)
		return
	}
	b := &batch{waiting: map[string]int{}}
	member := make([]bool, len(items)) // answered inside the batch
	r.mu.Lock()
	for i, it := range items {
		id := []byte("null") // what an invalid member's error will carry
		f, err := frame.Parse(bytes.Clone(it))
		switch {
		case err == nil && f.Kind != frame.Request:
			continue // notifications and responses are not answered
		case err != nil && frame.PeekHead(it).Response:
			continue // an invalid answer is not answered either (handleFrontLine)
		case f != nil && f.ID() != nil:
			id = f.ID()
		}
		if _, taken := r.batches[string(id)]; taken && b.waiting[string(id)] == 0 {
			continue // the id belongs to another batch in flight: answered alone
		}
		b.waiting[string(id)]++
		b.left++
		r.batches[string(id)] = b
		member[i] = true
	}
	r.mu.Unlock()
	for i, it := range items {
		if member[i] {
			r.reading = b
		}
		r.handleFrontLine([]byte(it))
		r.reading = nil
	}
}

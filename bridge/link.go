package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/rs/zerolog"
)

// Restart policy for a backend that dies after it once initialized.
const (
	restartGiveUp  = 8 // consecutive failed starts before giving up
	restartHealthy = time.Minute
)

// The backoff between restarts: doubling from restartFirst up to
// restartMax, with jitter. Variables only so that a test can give up in
// milliseconds.
var (
	restartFirst = 200 * time.Millisecond
	restartMax   = 10 * time.Second
)

// A link is the router's side of one backend: its session, its state, and
// the goroutine that reads from it (recvLoop, owned by open).
type link struct {
	r    *router
	name string
	cfg  config.Backend
	log  zerolog.Logger

	timeout, maxTimeout time.Duration
	// upAnswered is when the host last answered one of its requests that
	// named no call (upcall.call nil; UnixNano): its calls' idle windows
	// start again then.
	upAnswered atomic.Int64

	mu        sync.Mutex
	sess      backends.Session // nil until opened, and between restarts
	ready     bool             // initialized and notifications/initialized sent
	everReady bool
	downErr   error // why it is not ready (start or init failure, exit)
	initRes   *initResult
	closing   bool
	// initSent says this session got its notifications/initialized; the
	// link is ready (takes host requests) only from then on.
	initSent bool

	// restored, if set, is closed once the host's log level and
	// subscriptions replayed on the current session are answered (or
	// restoreWait passed): host requests wait for it (forward), so that a
	// call made right after a restart logs at the level the host set.
	// Atomic: forward reads it for every host request.
	restored atomic.Pointer[chan struct{}]

	// sessEnded is closed when sess's reader ended, endErr (set before)
	// saying why: initialize reports that rather than a bare "closed".
	sessEnded chan struct{}
	endErr    error

	// opened is closed when the first open attempt finished (sess or downErr set).
	opened chan struct{}
	// settled is closed when the first initialize finished either way.
	settled chan struct{}
	settle  sync.Once
}

// initResult is what the bridge reads of a backend's initialize answer.
type initResult struct {
	raw          json.RawMessage
	Version      string                     `json:"protocolVersion"`
	Capabilities map[string]json.RawMessage `json:"capabilities"`
	ServerInfo   json.RawMessage            `json:"serverInfo"`
	Instructions string                     `json:"instructions"`
}

func newLink(r *router, cfg config.Backend) *link {
	l := &link{
		r:          r,
		name:       cfg.Name,
		cfg:        cfg,
		log:        r.log.With().Str("backend", cfg.Name).Logger(),
		timeout:    pickDuration(cfg.Timeout, r.cfg.Timeout),
		maxTimeout: pickDuration(cfg.MaxTimeout, r.cfg.MaxTimeout),
		opened:     make(chan struct{}),
		settled:    make(chan struct{}),
	}
	return l
}

func pickDuration(own *time.Duration, def time.Duration) time.Duration {
	if own != nil {
		return *own
	}
	return def
}

// everStarted reports whether the backend was initialized once already.
func (l *link) everStarted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.everReady
}

func (l *link) isReady() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// send passes f to the backend, or says why it cannot.
func (l *link) send(f *frame.Frame) error {
	l.mu.Lock()
	s, ready, down := l.sess, l.ready, l.downErr
	l.mu.Unlock()
	if s == nil || (!ready && f.Method != mInitialize && f.Method != mInitialized) {
		if down == nil {
			down = errors.New("not initialized yet")
		}
		return fmt.Errorf("backend %q is not available: %s", l.name, strings.TrimPrefix(down.Error(), l.prefix()))
	}
	return s.Send(f)
}

// open is the link's lifetime goroutine: start the session, initialize it
// when the host's initialize arrives, relay until it ends, and restart it
// with backoff if it dies after it once worked.
func (l *link) open() {
	defer l.r.wg.Done()
	r := l.r
	failures := 0
	for attempt := 0; ; attempt++ {
		started := time.Now()
		err := l.session(attempt)
		if r.life.Err() != nil {
			return
		}
		l.mu.Lock()
		ever := l.everReady
		l.mu.Unlock()
		if !ever {
			// It never worked: the first failure is final (the host's
			// initialize reports it), as issue #3 asks.
			l.log.Error().Err(err).Msg("backend failed")
			return
		}
		if time.Since(started) > restartHealthy {
			failures = 0
		}
		failures++
		if failures > restartGiveUp {
			l.log.Error().Err(err).Int("attempts", failures-1).Msg("backend keeps dying; giving up on it")
			l.setDown(fmt.Errorf("gave up after %d restarts: %w", failures-1, err))
			if !r.raw {
				// Its tools leave the merged lists, and the host hears so.
				r.agg.backendChanged(l)
			}
			return
		}
		delay := min(restartFirst<<(failures-1), restartMax)
		delay = delay/2 + rand.N(delay/2+1) // jitter
		l.log.Warn().Err(err).Dur("retryIn", delay).Msg("backend lost; restarting")
		select {
		case <-time.After(delay):
		case <-r.life.Done():
			return
		}
	}
}

// session runs one session of the backend from start to end.
func (l *link) session(attempt int) error {
	r := l.r
	openWait := r.cfg.InitTimeout
	if attempt == 0 && len(r.links) > 1 {
		openWait = time.Duration(math.MaxInt64) // joins late instead (see initialize)
	}
	ctx, cancel := context.WithTimeout(r.life, openWait)
	s, err := r.cfg.Open(ctx, l.cfg, backends.Options{Logger: r.log, Redact: r.cfg.Redact, MaxMessage: r.cfg.MaxLine, Supervisor: r.cfg.Supervisor})
	cancel()
	if attempt == 0 {
		defer closeOnce(l.opened)
	}
	if err != nil {
		l.setDown(err)
		l.settleNow()
		return err
	}
	recvDone := make(chan error, 1)
	ended := make(chan struct{})
	l.mu.Lock()
	l.sess, l.sessEnded, l.endErr = s, ended, nil
	closing := l.closing
	l.mu.Unlock()
	if closing {
		s.Close()
		return context.Canceled
	}
	if attempt == 0 {
		closeOnce(l.opened)
	}
	go func() {
		err := l.recvLoop(s)
		l.mu.Lock()
		l.endErr = err
		l.mu.Unlock()
		recvDone <- err
		close(ended)
	}()

	if attempt > 0 {
		// A restart: initialize with what the host gave us, restore its
		// state. A backend that dies before it answers is restarted again
		// (after the backoff), not waited for until --init-timeout.
		if err := l.initialize(ended); err != nil {
			s.Close()
			<-recvDone
			l.setDown(err)
			return err
		}
		l.restoreState(true)
		r.agg.backendChanged(l)
	}
	err = <-recvDone
	l.setDown(err)
	// Answer what was in flight before the (possibly slow) close ladder.
	l.failInFlight(err)
	s.Close()
	return err
}

func closeOnce(ch chan struct{}) {
	if !isClosed(ch) {
		close(ch)
	}
}

func (l *link) settleNow() { l.settle.Do(func() { close(l.settled) }) }

func (l *link) setDown(err error) {
	l.mu.Lock()
	l.ready = false
	l.sess = nil
	if err != nil {
		l.downErr = err
	}
	l.mu.Unlock()
}

// recvLoop is the only reader of the session.
func (l *link) recvLoop(s backends.Session) error {
	for {
		f, err := s.Recv(l.r.life)
		if err != nil {
			return err
		}
		if e := l.log.Debug(); e.Enabled() {
			e.Str("method", f.Method).Bytes("backendID", f.ID()).Str("kind", f.Kind.String()).Int("len", len(f.Raw())).Msg("from backend")
		}
		l.r.fromBackend(l, f)
	}
}

// failInFlight answers every host request still waiting on this backend
// with an error that names it (issue #5: within 1 s of its death).
func (l *link) failInFlight(cause error) {
	r := l.r
	r.mu.Lock()
	calls := r.ids.callsOf(l)
	for _, c := range calls {
		r.ids.dropCall(c)
		c.timer.stop()
	}
	r.mu.Unlock()
	reason := "connection to the backend was lost"
	if cause != nil && !errors.Is(cause, context.Canceled) {
		reason += ": " + strings.TrimPrefix(cause.Error(), l.prefix())
	}
	l.mu.Lock()
	closing := l.closing
	l.mu.Unlock()
	if closing || r.life.Err() != nil {
		// The bridge is the one stopping (a signal, or the host's input
		// ended and the drain ran out): the backend did nothing wrong.
		reason = "mcpbridge is shutting down: the request was cut short"
	}
	l.abandonUps(reason)
	for _, c := range calls {
		msg := fmt.Sprintf("backend %q: %s", l.name, reason)
		ef := frame.NewError(frame.AppendInt(nil, c.backendID), frame.ErrorObject{Code: frame.CodeInternalError, Message: msg, Data: backendErrorData(l.name, reason)})
		if c.done != nil {
			c.done(ef)
			continue
		}
		r.replyError(c.frontID, frame.CodeInternalError, msg, backendErrorData(l.name, reason))
	}
}

// initialize runs the MCP handshake with the host's parameters and waits
// for the host's own notifications/initialized before sending the
// backend its own (issue #3).
//
// The wait is bounded by --init-timeout, except for a first start among
// several backends: the host's initialize is answered without a slow one,
// which joins when it comes up (a first npx download can take minutes).
//
// ended, if not nil, is closed when the session ends: the wait ends then
// too. (The first start's session is watched by session, whose
// failInFlight answers the initialize request when it ends.)
func (l *link) initialize(ended <-chan struct{}) error {
	r := l.r
	bounded := len(r.links) == 1 || l.everStarted()
	r.mu.Lock()
	params := r.host.initParams
	r.mu.Unlock()
	if ended == nil {
		l.mu.Lock()
		ended = l.sessEnded
		l.mu.Unlock()
	}
	answer := make(chan *frame.Frame, 1)
	c := r.ask(l, mInitialize, params, func(f *frame.Frame) { answer <- f })
	var f *frame.Frame
	var timeout <-chan time.Time
	if bounded {
		timer := time.NewTimer(r.cfg.InitTimeout)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case f = <-answer:
	case <-timeout:
		r.takeCall(c)
		return fmt.Errorf("initialize: no answer within %v (--init-timeout)", r.cfg.InitTimeout)
	case <-ended:
		r.takeCall(c)
		return l.endedErr()
	case <-r.life.Done():
		return r.life.Err()
	}
	if f.IsError() {
		var e frame.ErrorObject
		_ = json.Unmarshal(f.Error(), &e)
		if unreachable(f) && strings.Contains(e.Message, backends.ErrClosed.Error()) {
			// Sent to a session that had just ended (a server that
			// exits at once): its reader says why (exit status, last
			// stderr line), soon.
			select {
			case <-ended:
				return l.endedErr()
			case <-time.After(endWait):
			}
		}
		return fmt.Errorf("initialize: %s", strings.TrimPrefix(e.Message, l.prefix()))
	}
	res, err := readInitResult(f.Result())
	if err == nil {
		err = l.adopt(res)
	}
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	l.log.Info().Str("protocolVersion", res.Version).Msg("backend initialized")
	l.mu.Lock()
	l.initSent = false
	l.everReady = true
	l.downErr = nil
	l.mu.Unlock()
	// The host's initialized comes first; if it came already, ours goes now.
	l.sendInitialized()
	return nil
}

// endWait bounds how long initialize waits for a session that refused its
// request as closed to say why it ended.
const endWait = 2 * time.Second

// endedErr is initialize's error for a session that ended: why, from its
// reader.
func (l *link) endedErr() error {
	l.mu.Lock()
	err := l.endErr
	l.mu.Unlock()
	if err == nil {
		return errors.New("initialize: the backend's session ended before it answered")
	}
	return fmt.Errorf("initialize: %s", strings.TrimPrefix(err.Error(), l.prefix()))
}

// sendInitialized sends notifications/initialized to a backend whose
// initialize was answered, once the host has sent its own, and only then
// marks the link ready for host requests. It is called by the host's
// reader when the host's initialized arrives, and by initialize.
func (l *link) sendInitialized() {
	if !isClosed(l.r.host.initialized) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.initRes == nil || l.initSent || l.sess == nil {
		return
	}
	if err := l.sess.Send(frame.NewNotification(mInitialized, nil)); err != nil {
		l.log.Warn().Err(err).Msg("sending notifications/initialized")
		return
	}
	l.initSent = true
	l.ready = true
}

// sendAny sends f on the current session whatever the link's state.
func (l *link) sendAny(f *frame.Frame) error {
	l.mu.Lock()
	s := l.sess
	l.mu.Unlock()
	if s == nil {
		return fmt.Errorf("backend %q is not available", l.name)
	}
	return s.Send(f)
}

// readInitResult reads a backend's initialize result.
func readInitResult(b []byte) (*initResult, error) {
	res := &initResult{raw: append(json.RawMessage(nil), b...)}
	if err := json.Unmarshal(b, res); err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	return res, nil
}

// adopt makes res the backend's initialize result, whose capabilities
// decide what the bridge sends it (log level, subscriptions) and offers
// the host, unless its protocol version is one the bridge does not speak:
// a client "SHOULD disconnect" then, and relaying on would fail later and
// less clearly (a streamable-HTTP server refuses every request carrying a
// version header it does not know).
func (l *link) adopt(res *initResult) error {
	if res.Version == "" {
		// Required, but some servers leave it out; relaying works all
		// the same, so take it to be the version the bridge asked for.
		l.r.mu.Lock()
		res.Version = l.r.host.version
		l.r.mu.Unlock()
		l.log.Warn().Str("protocolVersion", res.Version).Msg("the backend's initialize answer has no protocolVersion; taking it to be the one asked for")
	}
	if !handshakeVersions[res.Version] {
		return fmt.Errorf("the backend answered protocol version %q, which the bridge does not speak (%s)", res.Version, spokenVersions())
	}
	l.mu.Lock()
	prev := l.initRes
	l.initRes = res
	l.mu.Unlock()
	if prev != nil && prev.Version != res.Version {
		l.log.Warn().Str("was", prev.Version).Str("protocolVersion", res.Version).Msg("the backend's new session speaks another protocol version; MCP has no way to tell the host")
	}
	return nil
}

// reinitialized is called when an HTTP session replaced a lost upstream
// session on its own, result being the new session's initialize result:
// adopt it, restore what the host set and refresh lists. A new session
// that speaks a version the bridge does not is ended: the link restarts
// it, and its initialize fails with that reason until the server changes.
func (l *link) reinitialized(result []byte) {
	l.log.Info().Msg("backend session re-initialized")
	if len(result) > 0 {
		res, err := readInitResult(result)
		if err == nil {
			err = l.adopt(res)
		}
		if err != nil && res != nil {
			l.log.Error().Err(err).Msg("ending the backend's new session")
			l.mu.Lock()
			s := l.sess
			l.mu.Unlock()
			if s != nil {
				go s.Close() // not here: this is its reader
			}
			return
		}
		if err != nil {
			l.log.Warn().Err(err).Msg("the new session's initialize result; keeping the lost one's")
		}
	}
	// The lost session's requests to the host died with it, and the new
	// session numbers its own from the start again: an old one left in
	// the map would refuse a new one as a duplicate, or take the host's
	// late answer meant for the old one.
	l.abandonUps("the backend's session was lost and replaced")
	l.restoreState(true)
	l.r.agg.backendChanged(l)
}

// abandonUps forgets the backend's requests still waiting on the host and
// tells the host they are cancelled (a sampling or elicitation dialog
// can close); an answer the host sends anyway is dropped as unknown.
func (l *link) abandonUps(reason string) {
	r := l.r
	r.mu.Lock()
	ups := r.ids.upsOf(l)
	for _, u := range ups {
		r.ids.dropUp(u)
	}
	r.ids.dropTasksOf(l) // their progress tokens went with the session
	r.mu.Unlock()
	r.cancelUps(l, ups, reason)
	if len(ups) > 0 {
		l.log.Info().Int("requests", len(ups)).Str("reason", reason).Msg("cancelled the backend's requests to the host")
	}
}

// cancelUps tells the host that ups, requests of backend l it no longer
// waits on (already dropped from the maps), are cancelled.
func (r *router) cancelUps(l *link, ups []*upcall, reason string) {
	for _, u := range ups {
		params, _ := json.Marshal(map[string]any{"requestId": u.hostID, "reason": fmt.Sprintf("backend %q: %s", l.name, reason)})
		r.toHost(frame.NewNotification(mCancelled, params))
	}
}

// endUpsFor cancels, toward the host, the requests a backend sent for
// call c (upcall.call: they came on its streamable answer stream), once c
// ended without the backend's answer (the host cancelled it, or it timed
// out). The server cancels them itself, but on that answer stream, which
// the bridge closes (unsent.cancel): the host's sampling dialog would stay
// open. The backend gets an error for each, since the host's answer, if
// it still comes, is dropped: a server that runs the cancelled call on
// (the spec lets it) would wait on it for ever.
func (r *router) endUpsFor(c *call, reason string) {
	r.mu.Lock()
	var ups []*upcall
	for _, u := range r.ids.ups {
		if u.call == c {
			ups = append(ups, u)
		}
	}
	for _, u := range ups {
		r.ids.dropUp(u)
	}
	r.mu.Unlock()
	if len(ups) > 0 {
		r.cancelUps(c.backend, ups, reason)
		for _, u := range ups {
			if !u.own {
				_ = u.backend.send(frame.NewError(u.backendID, frame.ErrorObject{Code: frame.CodeInternalError, Message: "cancelled by mcpbridge: " + reason}))
			}
		}
	}
}

// unavailable is why l takes no request now, for errors that name it
// already ("backend %q: " + unavailable()).
func (l *link) unavailable() string {
	l.mu.Lock()
	down := l.downErr
	l.mu.Unlock()
	if down == nil {
		return "backend is not available"
	}
	return "backend is not available: " + strings.TrimPrefix(down.Error(), l.prefix())
}

// named is msg naming l once: the backends' errors name theirs already.
func (l *link) named(msg string) string {
	if strings.HasPrefix(msg, l.prefix()) {
		return msg
	}
	return l.prefix() + msg
}

// prefix is how errors name l.
func (l *link) prefix() string { return fmt.Sprintf("backend %q: ", l.name) }

// restoreWait bounds how long host requests wait for the replay of the
// host's state on a new session (restoreState).
const restoreWait = 2 * time.Second

// awaitRestored waits, at most restoreWait, for the host's state to be
// replayed on l's session.
func (l *link) awaitRestored() {
	gate := l.restored.Load()
	if gate == nil {
		return
	}
	select {
	case <-*gate:
	case <-l.r.life.Done():
	}
}

// restoring reports whether host requests to l would wait (awaitRestored).
func (l *link) restoring() bool {
	gate := l.restored.Load()
	return gate != nil && !isClosed(*gate)
}

// restoreState replays the host's log level and subscriptions, on a
// backend that restarted or joined late; one that restarted also hears
// that the host's roots may have changed. It never blocks (a session's
// re-initialize calls it from the link's reader): host requests wait
// (awaitRestored) until the replayed requests are answered, at most
// restoreWait.
func (l *link) restoreState(restarted bool) {
	gate := make(chan struct{})
	l.restored.Store(&gate)
	var (
		open    sync.Once
		waiting atomic.Int32
	)
	release := func() {
		open.Do(func() {
			close(gate)
			// An HTTP session holds what it took before the router knew
			// of its replacement until now (backends.Restorer).
			l.mu.Lock()
			s := l.sess
			l.mu.Unlock()
			if rs, ok := s.(backends.Restorer); ok {
				rs.Restored()
			}
		})
	}
	answered := func(*frame.Frame) {
		if waiting.Add(-1) == 0 {
			release()
		}
	}
	r := l.r
	r.mu.Lock()
	// Only a host that declared roots.listChanged sends the notification
	// (the capability says it will), so only then does the bridge.
	rootsNotify := string(rawField(rawField(rawField(r.host.initParams, "capabilities"), "roots"), "listChanged")) == "true"
	level := r.host.logLevel
	subs := make([][]byte, 0, len(r.host.subs))
	for _, s := range r.host.subs {
		if s.confirmed && (s.owner == nil || s.owner == l) {
			subs = append(subs, s.params)
		}
	}
	r.mu.Unlock()
	setLevel := level != nil && l.declares("logging")
	if !l.servesResources(mSubscribe) {
		subs = nil
	}
	n := len(subs)
	if setLevel {
		n++
	}
	if n == 0 {
		release()
	} else {
		waiting.Store(int32(n))
		time.AfterFunc(restoreWait, release) // a no-op if all came back first
	}
	if setLevel {
		r.ask(l, mSetLevel, level, answered)
	}
	for _, p := range subs {
		r.ask(l, mSubscribe, p, answered)
	}
	// Roots live with the host: a restarted backend that cares asks for
	// them again on this hint.
	if rootsNotify && restarted {
		if err := l.send(frame.NewNotification("notifications/roots/list_changed", nil)); err != nil {
			l.log.Debug().Err(err).Msg("sending roots/list_changed after a restart")
		}
	}
}

func (l *link) close() {
	l.mu.Lock()
	l.closing = true
	s := l.sess
	l.mu.Unlock()
	if s != nil {
		if err := s.Close(); err != nil {
			l.log.Debug().Err(err).Msg("closing backend")
		}
	}
}

// askHost sends the host a request of the bridge's own on l's behalf
// (upcall.own): it is cancelled toward the host like l's own requests
// when l's session ends, and its answer goes to answered, if not nil.
func (r *router) askHost(l *link, method string, params []byte, answered func(*frame.Frame)) {
	r.mu.Lock()
	if r.host.inputEnded {
		r.mu.Unlock()
		return
	}
	key := fmt.Appendf(nil, `"mcpbridge-own-%d"`, r.ids.issue())
	u, ok := r.ids.addUp(l, key)
	if ok {
		u.own, u.holdsNone, u.ownAnswer = true, true, answered
	}
	r.mu.Unlock()
	if ok {
		r.toHost(frame.NewRequest(frame.AppendInt(nil, u.hostID), method, params))
	}
}

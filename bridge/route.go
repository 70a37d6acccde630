package bridge

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/frame"
)

// Method names the router treats specially (go-sdk keeps its own unexported).
const (
	mInitialize       = "initialize"
	mInitialized      = "notifications/initialized"
	mPing             = "ping"
	mDiscover         = "server/discover"
	mCancelled        = "notifications/cancelled"
	mProgress         = "notifications/progress"
	mMessage          = "notifications/message"
	mSetLevel         = "logging/setLevel"
	mTaskGet          = "tasks/get"
	mTaskResult       = "tasks/result"
	mTaskCancel       = "tasks/cancel"
	mTaskList         = "tasks/list"
	mTaskStatus       = "notifications/tasks/status"
	mToolsCall        = "tools/call"
	mElicit           = "elicitation/create"
	mElicitDone       = "notifications/elicitation/complete"
	mSubscribe        = "resources/subscribe"
	mUnsubscribe      = "resources/unsubscribe"
	mToolsChanged     = "notifications/tools/list_changed"
	mPromptsChanged   = "notifications/prompts/list_changed"
	mResourcesChanged = "notifications/resources/list_changed"
	latestVersion     = "2025-11-25"
)

// handshakeVersions are the protocol versions the front negotiates; any
// other (empty, unknown, newer such as the stateless 2026-07-28) gets the
// latest handshake-era version.
var handshakeVersions = map[string]bool{
	"2024-11-05": true, "2025-03-26": true, "2025-06-18": true, "2025-11-25": true,
}

// spokenVersions lists handshakeVersions, oldest first, for errors.
func spokenVersions() string {
	return strings.Join(slices.Sorted(maps.Keys(handshakeVersions)), ", ")
}

// fromHost routes one valid message from the host.
func (r *router) fromHost(f *frame.Frame) {
	switch f.Kind {
	case frame.Response:
		r.hostResponse(f)
		return
	case frame.Notification:
		r.hostNotification(f)
		return
	}
	r.mu.Lock()
	r.inflight++
	started, initialized, open := r.host.initStarted, isClosed(r.host.initialized), r.host.open
	r.mu.Unlock()
	switch f.Method {
	case mInitialize:
		r.handleInitialize(f)
		return
	case mDiscover:
		// Hosts such as Claude Code probe for the stateless 2026-07-28
		// protocol first; "not found" sends them to initialize.
		r.replyError(f.ID(), frame.CodeMethodNotFound, "method not found: server/discover (this server speaks the initialize handshake)", nil)
		return
	case mPing:
		if !initialized || !r.raw {
			r.reply(f.ID(), frame.NewResult(f.ID(), []byte("{}")))
			return
		}
		// With one backend the ping goes on to it (it keeps a remote
		// session that expires when idle alive), but the bridge is the
		// server the host pings, and it "MUST respond promptly with an
		// empty response" (ping.mdx): whatever the backend answers, or
		// at once if it is down, the host gets {}.
		id := bytes.Clone(f.ID())
		r.ask(r.links[0], mPing, nil, func(*frame.Frame) { r.reply(id, frame.NewResult(id, []byte("{}"))) })
		return
	}
	if !open {
		if !started {
			r.replyError(f.ID(), frame.CodeInvalidRequest, "invalid request: the session is not initialized yet (send initialize first)", nil)
			return
		}
		// Pipelined behind initialize (a script piping a session), or sent
		// before notifications/initialized (backends get theirs only
		// then, and some refuse requests before it): hold it until both,
		// in order (releaseQueued).
		r.mu.Lock()
		if !r.host.open {
			r.markPendingLocked(f)
			r.host.queued = append(r.host.queued, f)
			r.armAssumeLocked()
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
	if !r.raw {
		// The aggregator routes it from a goroutine of its own.
		r.mu.Lock()
		r.markPendingLocked(f)
		r.mu.Unlock()
	}
	r.route(f)
}

// route sends a host request to where it belongs, once initialized.
func (r *router) route(f *frame.Frame) {
	if r.raw {
		r.rememberState(f)
		if l := r.links[0]; l.restoring() {
			// Not on the host's reader, which must never wait on a
			// backend (pings, cancellations, answers come behind it):
			// marked pending, so a cancellation meanwhile finds it.
			r.mu.Lock()
			r.markPendingLocked(f)
			r.mu.Unlock()
			go r.forward(l, f, nil)
			return
		}
		r.forward(r.links[0], f, nil)
		return
	}
	r.agg.route(f)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// forward sends a host request to backend l under a fresh bridge ID and
// progress token; the answer comes back through backendResponse. edit, if
// not nil, rewrites the frame further (prefixed names) before it is sent.
func (r *router) forward(l *link, f *frame.Frame, edit func(*frame.Frame)) {
	l.awaitRestored()
	c := &call{backend: l, method: f.Method, frontID: bytes.Clone(f.ID())}
	tok := f.Param("_meta", "progressToken")
	switch f.Method {
	case mToolsCall:
		c.task = f.Param("task").Ok()
	case mTaskResult:
		c.taskID, _ = f.String(f.Param("taskId"))
	case mSubscribe:
		c.subParams = bytes.Clone(f.Params())
	}
	r.mu.Lock()
	// Pending no more and in the map under one lock: a cancellation finds
	// it in one or the other.
	if cancelled, batchDone := r.takePendingLocked(f); cancelled {
		r.mu.Unlock()
		r.finishDropped(f.ID(), batchDone)
		return
	}
	ok := r.ids.addCall(c, tok.Ok())
	r.mu.Unlock()
	if !ok {
		r.replyError(f.ID(), frame.CodeInvalidRequest, "invalid request: id is already in use by a request in flight", nil)
		return
	}
	f.SetID(frame.AppendInt(nil, c.backendID))
	if tok.Ok() {
		c.frontToken = bytes.Clone(f.Bytes(tok))
		f.Replace(tok, frame.AppendInt(nil, c.token))
	}
	if edit != nil {
		edit(f)
	}
	r.startTimer(c)
	err := l.send(f)
	if err != nil {
		if r.takeCall(c) {
			r.replyError(c.frontID, frame.CodeInternalError, err.Error(), backendErrorData(l.name, err.Error()))
		}
	}
	if !c.sendState.CompareAndSwap(callSending, callSent) && err == nil {
		// The host cancelled it while it was on its way: the
		// cancellation follows it now.
		if err := l.send(c.cancelNote); err != nil {
			r.log.Debug().Err(err).Msg("could not pass a cancellation on")
		}
	}
}

// takeCall removes c if it is still in flight; false means someone else
// (answer, timeout, cancel, backend loss) already finished it.
func (r *router) takeCall(c *call) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids.calls[c.backendID] != c {
		return false
	}
	r.ids.dropCall(c)
	c.timer.stop()
	return true
}

// ask sends the bridge's own request to l; done gets the answer (or a
// synthesized error if the backend is lost). The call returned is for
// cancelAsk. A progress token in params (the host's, in a request the
// bridge passes on as its own: a fanned-out logging/setLevel, a replayed
// subscription, a read tried on backend after backend) becomes a fresh
// bridge token, as in a forwarded request: tokens MUST be unique across
// the backend's active requests, and the host's need not be unique
// among the bridge's. Progress on it is dropped.
func (r *router) ask(l *link, method string, params []byte, done func(*frame.Frame)) *call {
	c := &call{backend: l, method: method, done: done}
	f := frame.NewRequest([]byte("0"), method, params)
	tok := f.Param("_meta", "progressToken")
	r.mu.Lock()
	r.ids.addCall(c, tok.Ok())
	r.mu.Unlock()
	f.SetID(frame.AppendInt(nil, c.backendID))
	if tok.Ok() {
		f.Replace(tok, frame.AppendInt(nil, c.token))
	}
	if method != mInitialize {
		// initialize has its own bound (--init-timeout, or none for a
		// backend that joins late), and must not be cancelled.
		r.startTimer(c)
	}
	if err := l.send(f); err != nil {
		if r.takeCall(c) {
			done(frame.NewError(f.ID(), frame.ErrorObject{Code: frame.CodeInternalError, Message: err.Error(), Data: backendErrorData(l.name, err.Error())}))
		}
	}
	return c
}

// cancelAsk gives up on the bridge's own request c, if it is still in
// flight, and tells its backend why; its late answer is dropped.
func (r *router) cancelAsk(c *call, reason string) {
	if !r.takeCall(c) {
		return
	}
	params, _ := json.Marshal(map[string]any{"requestId": c.backendID, "reason": reason})
	if err := c.backend.send(frame.NewNotification(mCancelled, params)); err != nil {
		r.log.Debug().Err(err).Msg("could not pass a cancellation on")
	}
	// After the cancellation (see hostCancel).
	r.endUpsFor(c, "the request they were made for was cancelled")
}

// hostResponse is the host's answer to a backend's request.
func (r *router) hostResponse(f *frame.Frame) {
	id, ok := frame.Int(f.ID())
	r.mu.Lock()
	var u *upcall
	var tok upToken
	var forCall *callTimer
	if ok {
		if u = r.ids.ups[id]; u != nil {
			tok = r.ids.upToks[u.token]
			r.ids.dropUp(u)
			if u.call != nil && r.ids.calls[u.call.backendID] == u.call {
				// Still in flight: an ended call's stopped timer must
				// not be armed again.
				forCall = u.call.timer
			}
		}
	}
	r.mu.Unlock()
	if u == nil {
		r.log.Warn().Bytes("frontID", f.ID()).Msg("dropping the host's answer to an unknown request")
		return
	}
	if u.own {
		// The bridge's own request for the backend (askURLs).
		r.log.Debug().Str("backend", u.backend.name).Bytes("answer", f.Raw()).Msg("the host answered the bridge's own request")
		if u.ownAnswer != nil {
			u.ownAnswer(f)
		}
		return
	}
	// The calls waiting on this answer get a full idle window from now
	// (startTimer): the one it was for, or all the backend's.
	switch {
	case u.call != nil:
		forCall.progress()
	case !u.holdsNone:
		u.backend.upAnswered.Store(time.Now().UnixNano())
	}
	if u.pollTask != "" {
		r.taskPolled(u, f)
	}
	if u.task && u.token != 0 && !f.IsError() {
		if task := createdTask(f); task != "" {
			// The host runs the request as a task: its progress goes on
			// coming on the token.
			r.mu.Lock()
			r.ids.keepUpTaskToken(u, task, tok)
			r.mu.Unlock()
		}
	}
	if !r.raw {
		if u.task {
			r.agg.learnClientTask(u.backend, f)
		}
		if u.listTasks {
			r.agg.onlyTasksOf(u.backend, f)
		}
	}
	f.SetID(u.backendID)
	if err := u.backend.send(f); err != nil {
		r.log.Warn().Err(err).Str("backend", u.backend.name).Msg("could not pass the host's answer on")
	}
}

func (r *router) hostNotification(f *frame.Frame) {
	switch f.Method {
	case mInitialized:
		r.mu.Lock()
		if isClosed(r.host.initialized) {
			r.mu.Unlock()
			return
		}
		close(r.host.initialized)
		r.mu.Unlock()
		// Each initialized backend gets its own notifications/initialized
		// now, before this reader hands on the host's next line: servers
		// (the Python SDK's) refuse requests that come before it. Backends
		// still initializing send theirs when they finish (link.initialize).
		for _, l := range r.links {
			l.sendInitialized()
		}
		// What backends sent before the host was ready goes out now, in
		// order, and then what the host asked before it was.
		r.releaseHeld()
		r.releaseQueued()
		return
	case mCancelled:
		r.hostCancel(f)
		return
	case mProgress:
		r.hostProgress(f)
		return
	}
	if !isClosed(r.host.initDone) {
		r.log.Debug().Str("method", f.Method).Msg("dropping a notification sent before initialize")
		return
	}
	if f.Method == mTaskStatus {
		r.taskStatus(nil, f, true)
	}
	if f.Method == mTaskStatus && !r.raw {
		// About a task the host runs for one backend's request: to that
		// backend only. A task the bridge does not know served no
		// request it saw: its status (whose statusMessage may sum up
		// another backend's request) goes to none rather than to all.
		if l := r.agg.taskStatusDown(f); l != nil {
			if err := l.send(f); err != nil {
				r.log.Warn().Err(err).Str("backend", l.name).Str("method", f.Method).Msg("could not pass a notification on")
			}
		} else {
			r.log.Debug().Msg("dropping the host's status of a task the bridge does not know")
		}
		return
	}
	// Everything else (roots/list_changed, unknown notifications) goes to
	// every backend that is up.
	for _, l := range r.links {
		if l.isReady() {
			g := f
			if len(r.links) > 1 {
				g, _ = frame.Parse(bytes.Clone(f.Raw()))
			}
			if err := l.send(g); err != nil {
				r.log.Warn().Err(err).Str("backend", l.name).Str("method", f.Method).Msg("could not pass a notification on")
			}
		}
	}
}

// hostCancel maps the host's notifications/cancelled to the backend's id.
// The backend's late answer is dropped (the call is gone from the map).
func (r *router) hostCancel(f *frame.Frame) {
	rid := f.Param("requestId")
	r.mu.Lock()
	c := r.ids.byFront[string(f.Bytes(rid))]
	var batchDone *frame.Frame
	if c != nil {
		r.ids.dropCall(c)
		c.timer.stop()
		r.answeredLocked() // the host expects no answer now
		// A cancelled member of a batch is answered by nobody: the batch
		// must not wait for it.
		if b := r.batches[string(c.frontID)]; b != nil {
			batchDone = b.add(string(c.frontID), nil, r.batches)
		}
	}
	if c == nil {
		if r.cancelPendingLocked(f.Bytes(rid)) {
			r.mu.Unlock()
			r.log.Debug().Bytes("frontID", f.Bytes(rid)).Msg("cancel for a request not routed yet: it will be dropped")
			return
		}
	}
	r.mu.Unlock()
	if batchDone != nil {
		r.toHost(batchDone)
	}
	if c == nil {
		r.log.Debug().Bytes("frontID", f.Bytes(rid)).Msg("cancel for a request not in flight")
		return
	}
	if c.backend == nil {
		// A request the bridge answers itself (a merged list, a read tried
		// on several backends): its answer is dropped, and the backend
		// requests made for it are cancelled.
		if c.claimed != nil {
			c.claimed.cancel()
		}
		return
	}
	f.Replace(rid, frame.AppendInt(nil, c.backendID))
	c.cancelNote = f
	if !c.sendState.CompareAndSwap(callSending, callCancelled) { // else forward sends it after the request
		if err := c.backend.send(f); err != nil {
			r.log.Debug().Err(err).Msg("could not pass a cancellation on")
		}
	}
	// Only then are the backend's requests made for the call failed: a
	// tool whose sampling request failed first went on, and heard of the
	// cancellation of a request it had already answered (or, over HTTP,
	// not at all).
	r.endUpsFor(c, "the host cancelled the request they were made for")
}

// hostProgress is the host reporting progress on a backend's request.
func (r *router) hostProgress(f *frame.Frame) {
	tok := f.Param("progressToken")
	n, ok := frame.Int(f.Bytes(tok))
	r.mu.Lock()
	t, found := r.ids.upToks[n]
	r.mu.Unlock()
	if !ok || !found {
		r.log.Debug().Msg("dropping host progress for an unknown token")
		return
	}
	f.Replace(tok, t.raw)
	if err := t.backend.send(f); err != nil {
		r.log.Debug().Err(err).Msg("could not pass progress on")
	}
}

// fromBackend routes one message from backend l.
func (r *router) fromBackend(l *link, f *frame.Frame) {
	switch f.Kind {
	case frame.Response:
		r.backendResponse(l, f)
	case frame.Request:
		r.backendRequest(l, f)
	case frame.Notification:
		r.backendNotification(l, f)
	}
}

func (r *router) backendResponse(l *link, f *frame.Frame) {
	id, ok := frame.Int(f.ID())
	r.mu.Lock()
	var c *call
	if ok {
		c = r.ids.calls[id]
		if c != nil && c.backend == l {
			r.ids.dropCall(c)
			c.timer.stop()
		} else {
			c = nil
		}
	}
	tasks := len(r.ids.taskToks) > 0
	r.mu.Unlock()
	if c != nil && (c.task && (c.token != 0 || !r.raw) || tasks && isTaskMethod(c.method)) {
		r.taskAnswered(l, c, f)
	}
	if c == nil {
		r.log.Debug().Str("backend", l.name).Bytes("backendID", f.ID()).Msg("dropping an answer to no request in flight (cancelled, timed out, or unknown)")
		return
	}
	if c.done != nil {
		c.done(f)
		return
	}
	if c.subParams != nil {
		r.subscribed(c.frontID, c.subParams, l, !f.IsError())
	}
	if !r.raw && f.IsError() {
		r.agg.tagElicitationError(l, f)
	}
	f.SetID(c.frontID)
	r.reply(c.frontID, f)
}

// backendRequest relays a backend's request (sampling, elicitation, roots,
// ping, or one the bridge does not know) under a host-facing ID. It is held
// until the host has initialized.
func (r *router) backendRequest(l *link, f *frame.Frame) {
	if r.holdForHost(heldFrame{link: l, f: f}) {
		return
	}
	r.requestUp(l, f)
}

// requestUp maps a backend's request for the host and sends it.
func (r *router) requestUp(l *link, f *frame.Frame) {
	if !r.raw && isTaskMethod(f.Method) {
		// Checked before r.mu is taken: the end of the host's input
		// (failUpsAtEOF) must find the request registered below, or
		// find the input ended here, under one hold of the lock.
		if refusal := r.agg.hostTaskRefusal(l, f); refusal != nil {
			_ = l.send(refusal)
			return
		}
	}
	r.mu.Lock()
	if r.host.inputEnded {
		r.mu.Unlock()
		// The host can send no answer any more: say so at once, rather
		// than let the backend's tool call wait for one until it times out.
		_ = l.send(frame.NewError(f.ID(), hostGone))
		return
	}
	u, ok := r.ids.addUp(l, bytes.Clone(f.ID()))
	var tokSpan frame.Span
	var forCall *callTimer
	if ok {
		if tokSpan = f.Param("_meta", "progressToken"); tokSpan.Ok() {
			r.ids.addUpToken(u, bytes.Clone(f.Bytes(tokSpan)))
		}
		u.task = f.Param("task").Ok()
		u.listTasks = f.Method == mTaskList
		if isTaskMethod(f.Method) {
			u.pollMethod = f.Method
			u.pollTask, _ = f.String(f.Param("taskId"))
		}
		if f.Method == mElicit && !r.raw {
			r.agg.tagElicitation(l, f)
		}
		// A request of a task's (the related-task _meta) belongs to the
		// task, not to the request on whose stream it came (a tasks/result
		// the host may give up and poll tasks/get instead): it outlives it,
		// and holds no call's idle timeout (the task may wait for input
		// for hours; tasks/result has no idle timeout).
		u.holdsNone = f.Param("_meta", relatedTask).Ok()
		if n, isInt := frame.Int(f.Via); isInt && !u.holdsNone {
			c := r.ids.calls[n]
			if c == nil {
				// Sent for a call that has ended (cancelled or timed
				// out while its answer stream was still open): nobody
				// waits for its answer, and the server's cancellation of
				// it would come on a stream the bridge closes.
				r.ids.dropUp(u)
				r.mu.Unlock()
				_ = l.send(frame.NewError(f.ID(), frame.ErrorObject{Code: frame.CodeInternalError, Message: "cancelled by mcpbridge: the request it was made for has ended"}))
				return
			}
			if c.backend == l {
				u.call, forCall = c, c.timer
			}
		}
	}
	r.mu.Unlock()
	// The backend is working on that call: its idle window starts again
	// (and is held while the host answers; see startTimer).
	forCall.progress()
	if !ok {
		_ = l.send(frame.NewError(f.ID(), frame.ErrorObject{Code: frame.CodeInvalidRequest, Message: "invalid request: id is already in use by a request in flight"}))
		return
	}
	f.SetID(frame.AppendInt(nil, u.hostID))
	if tokSpan.Ok() {
		f.Replace(tokSpan, frame.AppendInt(nil, u.token))
	}
	r.toHost(f)
}

func (r *router) backendNotification(l *link, f *frame.Frame) {
	if f.Method == mCancelled && r.holdForHost(heldFrame{link: l, f: f}) {
		// It may name a request still held: mapped after that one, in order.
		return
	}
	r.notificationUp(l, f)
}

// notificationUp maps a backend's notification for the host and sends it,
// or holds it, mapped, until the host has initialized.
func (r *router) notificationUp(l *link, f *frame.Frame) {
	switch f.Method {
	case mProgress:
		tok := f.Param("progressToken")
		n, ok := frame.Int(f.Bytes(tok))
		r.mu.Lock()
		c := r.ids.tokens[n]
		r.mu.Unlock()
		if !ok || c == nil || c.backend != l {
			r.log.Debug().Str("backend", l.name).Msg("dropping progress for no request in flight")
			return
		}
		c.timer.progress()
		if c.frontToken == nil { // the bridge's own request
			return
		}
		f.Replace(tok, c.frontToken)
	case mCancelled:
		// The backend gave up on its own request to the host.
		rid := f.Param("requestId")
		r.mu.Lock()
		u := r.ids.upByID[upKey{l, string(f.Bytes(rid))}]
		if u != nil {
			r.ids.dropUp(u)
		}
		r.mu.Unlock()
		if u == nil {
			return
		}
		f.Replace(rid, frame.AppendInt(nil, u.hostID))
	case backends.MethodReinitialized:
		l.reinitialized(f.Params())
		return
	case mToolsChanged, mPromptsChanged, mResourcesChanged:
		if !r.raw {
			r.agg.listChanged(l, f.Method)
			return
		}
	case mMessage:
		if !r.raw {
			r.agg.tagLogger(l, f)
		}
	case mElicitDone:
		if !r.raw {
			r.agg.tagElicitation(l, f)
			r.agg.urlDone(l, f)
		}
	case mTaskStatus:
		r.taskStatus(l, f, false)
		if !r.raw {
			r.agg.taskStatusUp(l, f)
		}
	}
	if r.holdForHost(heldFrame{link: l, f: f, mapped: true}) {
		return
	}
	r.toHost(f)
}

// hostGone answers a backend's request to the host once the host's input
// has ended.
var hostGone = frame.ErrorObject{Code: frame.CodeInternalError, Message: "the host closed its input: it cannot answer"}

// failUpsAtEOF answers every backend request still waiting on the host
// with hostGone, once the host's input has ended: the tool calls waiting
// on them can finish, and the drain with them (a second stress review
// found the bridge lingering until --timeout).
func (r *router) failUpsAtEOF() {
	r.mu.Lock()
	ups := make([]*upcall, 0, len(r.ids.ups))
	for _, u := range r.ids.ups {
		ups = append(ups, u)
	}
	for _, u := range ups {
		r.ids.dropUp(u)
	}
	r.mu.Unlock()
	for _, u := range ups {
		if !u.own {
			_ = u.backend.send(frame.NewError(u.backendID, hostGone))
		}
	}
}

// heldFrame is a backend's message kept until the host has initialized.
// A mapped one (a notification) is ready for the host as it is; the
// others (requests, cancellations) are mapped when released, in order, as
// if they had just arrived: mapping a frame twice edits it twice.
type heldFrame struct {
	link   *link
	f      *frame.Frame
	mapped bool
}

// holdForHost keeps h, a backend's request or notification, until the
// host's notifications/initialized has been seen and everything held
// before it released, and reports whether it did. The link's reader must
// never block on that: the host's initialize answer may depend on the same
// backend. A ping is answered here meanwhile, as the spec allows pings
// before initialization.
func (r *router) holdForHost(h heldFrame) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.host.released {
		return false
	}
	if h.f.Kind == frame.Request && h.f.Method == mPing {
		_ = h.link.sendAny(frame.NewResult(h.f.ID(), []byte("{}")))
		return true
	}
	if len(r.host.held) >= maxHeld && !isClosed(r.host.initialized) {
		// A host that sent initialize and then nothing (no initialized,
		// no request, its input open) would have every backend message
		// kept for the bridge's life. Past the bound, requests are
		// refused (the backend need not wait for an answer) and
		// notifications dropped.
		if !r.host.heldFull {
			r.host.heldFull = true
			r.log.Warn().Int("held", len(r.host.held)).Msg("the host has not sent notifications/initialized; dropping backend messages from now on")
		}
		if h.f.Kind == frame.Request {
			_ = h.link.sendAny(frame.NewError(h.f.ID(), frame.ErrorObject{Code: frame.CodeInternalError, Message: "the host has not initialized its session: it cannot answer yet"}))
		}
		return true
	}
	r.host.held = append(r.host.held, h)
	return true
}

// maxHeld bounds the backend messages held until the host initializes.
const maxHeld = 4096

// releaseHeld sends the host what backends sent before it initialized,
// in order, and then lets their messages through. What arrives meanwhile
// is held too and released in the next round, so nothing overtakes what
// came before it (a backend's cancellation of a request still held, say).
func (r *router) releaseHeld() {
	for {
		r.mu.Lock()
		held := r.host.held
		r.host.held = nil
		if len(held) == 0 {
			r.host.released = true
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		for _, h := range held {
			switch {
			case h.mapped:
				r.toHost(h.f)
			case h.f.Kind == frame.Request:
				r.requestUp(h.link, h.f)
			default:
				r.notificationUp(h.link, h.f)
			}
		}
	}
}

// callTimer is a request's idle timeout (reset by progress) and absolute cap.
type callTimer struct {
	idle, max *time.Timer
	idleDur   time.Duration
}

func (t *callTimer) stop() {
	if t == nil {
		return
	}
	if t.idle != nil {
		t.idle.Stop()
	}
	if t.max != nil {
		t.max.Stop()
	}
}

func (t *callTimer) progress() {
	if t != nil && t.idle != nil {
		t.idle.Reset(t.idleDur)
	}
}

// startTimer arms c's timeouts. Sampling and elicitation wait on a person
// and never go this way: they are backend → host requests.
func (r *router) startTimer(c *call) {
	idle, max := c.backend.timeout, c.backend.maxTimeout
	if c.method == mTaskResult {
		// It waits for the task to end (spec: "MUST block"), which is the
		// point of a task, and the task's progress comes on another
		// token: only --max-timeout bounds it.
		idle = 0
	}
	if idle <= 0 && max <= 0 {
		return
	}
	t := &callTimer{idleDur: idle}
	fire := func(what string, d time.Duration) func() {
		return func() { r.expire(c, what, d) }
	}
	r.mu.Lock()
	if r.ids.calls[c.backendID] != c {
		// It ended already (the host cancelled it as it was routed):
		// armed now, its timers would hold it until they fire.
		r.mu.Unlock()
		return
	}
	if idle > 0 {
		t.idle = time.AfterFunc(idle, func() {
			// A backend waiting on the host (sampling, elicitation, roots:
			// often a person answering) is not idle: the call it asked for
			// waits with it (all its calls, when it did not say which),
			// and the idle window starts again once nothing of its is
			// pending with the host. --max-timeout still bounds them.
			r.mu.Lock()
			ended := r.ids.calls[c.backendID] != c
			waiting := r.ids.waitsOnHost(c)
			r.mu.Unlock()
			if ended {
				return // answered meanwhile: nothing to time out
			}
			if waiting {
				t.progress()
				return
			}
			if since := time.Since(time.Unix(0, c.backend.upAnswered.Load())); since < idle {
				t.idle.Reset(idle - since) // the host answered it lately
				return
			}
			r.expire(c, "no answer or progress for", idle)
		})
	}
	if max > 0 {
		t.max = time.AfterFunc(max, fire("no answer within", max))
	}
	c.timer = t
	r.mu.Unlock()
}

// expire ends a call that timed out: the backend is told to cancel and the
// host gets -32001.
func (r *router) expire(c *call, what string, d time.Duration) {
	if !r.takeCall(c) {
		return
	}
	reason := strings.TrimSpace(what + " " + d.String())
	r.log.Warn().Str("backend", c.backend.name).Str("method", c.method).Str("reason", reason).Msg("request timed out")
	params, _ := json.Marshal(map[string]any{"requestId": c.backendID, "reason": "timed out in mcpbridge: " + reason})
	_ = c.backend.send(frame.NewNotification(mCancelled, params))
	r.endUpsFor(c, "the request they were made for timed out in mcpbridge") // after it (see hostCancel)
	msg := "request timed out: backend " + quote(c.backend.name) + ": " + reason
	if c.done != nil {
		c.done(frame.NewError(frame.AppendInt(nil, c.backendID), frame.ErrorObject{Code: frame.CodeTimeout, Message: msg, Data: backendErrorData(c.backend.name, reason)}))
		return
	}
	r.replyError(c.frontID, frame.CodeTimeout, msg, backendErrorData(c.backend.name, reason))
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

package bridge

import (
	"context"
	"sync/atomic"

	"github.com/mcpbridge/mcpbridge/frame"
)

// The ID and token maps. Everything here is pure (no I/O) and guarded by
// router.mu; FuzzIDMap checks it against a reference model.
//
// Direction host → backend: every request gets a fresh bridge ID (unique
// across all backends, so one map serves them all) and, if it asked for
// progress, a fresh bridge progress token. The host's own id and token are
// kept as raw bytes and spliced back unchanged.
//
// Direction backend → host: every request gets a fresh host-facing ID
// (never 0: the TypeScript SDK ignores cancellations of request 0) and
// the backend's raw id is kept to splice back into the host's answer.

// A call is one request in flight from the host (or from the bridge
// itself) to one backend.
type call struct {
	backendID int64
	backend   *link
	method    string

	// frontID is the host's raw id; nil for the bridge's own requests
	// (initialize, list gathering), whose answer goes to done instead.
	frontID []byte
	done    func(*frame.Frame)

	// token is the bridge's progress token for this call (0: none) and
	// frontToken the host's raw token it stands for.
	token      int64
	frontToken []byte

	timer *callTimer // nil when no timeout applies

	// task is set for a task-augmented tools/call (params.task): its
	// answer is a CreateTaskResult, searched for the task it made.
	task bool
	// taskID is the task a tasks/result waits for: its error answer (the
	// error of the task's failed request) ends the task too.
	taskID string
	// subParams are the params of a host's resources/subscribe, recorded
	// (router.subscribed) once the backend took it.
	subParams []byte

	// sendState orders a host's cancellation after the request it
	// cancels: forward sets callSent once it handed the request to the
	// backend; a cancellation that comes first sets callCancelled and
	// leaves itself in cancelNote, which forward sends after the request
	// (before, it could reach the backend first and be ignored there,
	// and the request ran to its end).
	sendState  atomic.Int32
	cancelNote *frame.Frame

	// claimed is set for a host request the bridge answers itself from
	// several backends (aggregator.claim): cancelling it ends the
	// bridge's own requests made for it.
	claimed *claimState
}

// The states of call.sendState.
const (
	callSending int32 = iota
	callSent
	callCancelled
)

// claimState is the context of a claimed call's own backend requests.
type claimState struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// An upcall is one request in flight from a backend to the host
// (sampling, elicitation, roots, ping, or anything unknown).
type upcall struct {
	hostID    int64
	backend   *link
	backendID []byte // raw, as the backend sent it
	token     int64  // bridge progress token toward the host, or 0
	// task is set for a task-augmented request (params.task), whose
	// answer may be a CreateTaskResult; listTasks for tasks/list.
	task, listTasks bool

	// call is the request the backend said this one is for (frame.Via:
	// it came on that request's answer stream), or nil when it cannot
	// tell (stdio, legacy SSE, the standalone stream). It holds the idle
	// timeout of that call only, or of all the backend's calls if nil.
	call *call
	// own marks the bridge's own request to the host on the backend's
	// behalf (askURLs): its answer goes to ownAnswer, not the backend.
	own       bool
	ownAnswer func(*frame.Frame)
	// holdsNone: the request waits on the host for no call of the
	// backend's (the bridge's own, or a task's input, which belongs to a
	// task rather than to a request): no call's idle timeout waits for it.
	holdsNone bool
	// pollTask is the host's task a backend's tasks/get, tasks/result or
	// tasks/cancel is about, and pollMethod which: the host's answer may
	// show the task ended (taskPolled).
	pollTask, pollMethod string
}

// An upToken routes the host's progress for a backend's request back.
type upToken struct {
	backend *link
	raw     []byte
}

type upKey struct {
	backend *link
	id      string
}

// idMap holds every mapping. The zero value is not usable; see newIDMap.
type idMap struct {
	next    int64             // last ID or token issued; IDs and tokens share it
	calls   map[int64]*call   // bridge ID → call
	byFront map[string]*call  // host raw id → call, for duplicates and cancels
	ups     map[int64]*upcall // host-facing ID → upcall
	upByID  map[upKey]*upcall // (backend, backend raw id) → upcall, for the backend's cancels
	tokens  map[int64]*call   // bridge progress token → call
	upToks  map[int64]upToken // host-facing progress token → backend token

	// A task-augmented request is answered at once (CreateTaskResult) but
	// its progress token "remains valid throughout the task lifetime"
	// (spec 2025-11-25, tasks): the token stays in tokens (upToks) until
	// the task ends, is forgotten with its backend's session, or the
	// table is full.
	taskToks   map[taskKey]int64 // a backend's task → bridge token (in tokens)
	upTaskToks map[taskKey]int64 // the host's task for a backend's request → host-facing token (in upToks)
}

// A taskKey names a task: the backend it runs on (server side) or serves
// (client side), and its id.
type taskKey struct {
	backend *link
	id      string
}

func newIDMap() *idMap {
	return &idMap{
		calls:   make(map[int64]*call),
		byFront: make(map[string]*call),
		ups:     make(map[int64]*upcall),
		upByID:  make(map[upKey]*upcall),
		tokens:  make(map[int64]*call),
		upToks:  make(map[int64]upToken),

		taskToks:   make(map[taskKey]int64),
		upTaskToks: make(map[taskKey]int64),
	}
}

// keepTaskToken keeps c's progress token routed after its answer, which
// made task id on l.
func (m *idMap) keepTaskToken(l *link, id string, c *call) {
	if len(m.taskToks) >= maxTasks {
		for k, tok := range m.taskToks { // map order: an arbitrary half
			if len(m.taskToks) < maxTasks/2 {
				break
			}
			delete(m.tokens, tok)
			delete(m.taskToks, k)
		}
	}
	c.timer = nil // stopped: progress must not restart it
	m.tokens[c.token] = c
	m.taskToks[taskKey{l, id}] = c.token
}

// keepUpTaskToken keeps u's host-facing token routed after the host's
// answer, which made the host's task id; t is its entry in upToks.
func (m *idMap) keepUpTaskToken(u *upcall, id string, t upToken) {
	if len(m.upTaskToks) >= maxTasks {
		for k, tok := range m.upTaskToks {
			if len(m.upTaskToks) < maxTasks/2 {
				break
			}
			delete(m.upToks, tok)
			delete(m.upTaskToks, k)
		}
	}
	m.upToks[u.token] = t
	m.upTaskToks[taskKey{u.backend, id}] = u.token
}

// endTask forgets the progress token of a backend's task (client false)
// or of the host's task for a backend (client true).
func (m *idMap) endTask(l *link, id string, client bool) {
	k := taskKey{l, id}
	if client {
		if tok, ok := m.upTaskToks[k]; ok {
			delete(m.upToks, tok)
			delete(m.upTaskToks, k)
		}
		return
	}
	if tok, ok := m.taskToks[k]; ok {
		delete(m.tokens, tok)
		delete(m.taskToks, k)
	}
}

// dropTasksOf forgets the task tokens of l's session, which is gone.
func (m *idMap) dropTasksOf(l *link) {
	for k, tok := range m.taskToks {
		if k.backend == l {
			delete(m.tokens, tok)
			delete(m.taskToks, k)
		}
	}
	for k, tok := range m.upTaskToks {
		if k.backend == l {
			delete(m.upToks, tok)
			delete(m.upTaskToks, k)
		}
	}
}

func (m *idMap) issue() int64 {
	m.next++
	return m.next
}

// addCall registers c under a new bridge ID. A host request whose raw id is
// still in flight is refused (ok false): JSON-RPC ids must be unique among
// outstanding requests, and answering both would cross them.
func (m *idMap) addCall(c *call, wantToken bool) bool {
	if c.frontID != nil {
		if _, dup := m.byFront[string(c.frontID)]; dup {
			return false
		}
		m.byFront[string(c.frontID)] = c
	}
	c.backendID = m.issue()
	m.calls[c.backendID] = c
	if wantToken {
		c.token = m.issue()
		m.tokens[c.token] = c
	}
	return true
}

func (m *idMap) dropCall(c *call) {
	delete(m.calls, c.backendID)
	if c.frontID != nil && m.byFront[string(c.frontID)] == c {
		delete(m.byFront, string(c.frontID))
	}
	if c.token != 0 {
		delete(m.tokens, c.token)
	}
}

// callsOf returns the calls in flight to backend l.
func (m *idMap) callsOf(l *link) []*call {
	var out []*call
	for _, c := range m.calls {
		if c.backend == l {
			out = append(out, c)
		}
	}
	return out
}

// waitsOnHost reports whether call c's backend has a request pending with
// the host that may be for c: one sent for c, or one whose call the
// backend did not tell. Off the hot path: only when a call's idle timeout
// fires.
func (m *idMap) waitsOnHost(c *call) bool {
	for _, u := range m.ups {
		if u.backend == c.backend && !u.holdsNone && (u.call == nil || u.call == c) {
			return true
		}
	}
	return false
}

// addUp registers a backend's request toward the host. A backend that
// reuses an id still in flight gets ok false.
func (m *idMap) addUp(l *link, backendID []byte) (*upcall, bool) {
	k := upKey{l, string(backendID)}
	if _, dup := m.upByID[k]; dup {
		return nil, false
	}
	u := &upcall{hostID: m.issue(), backend: l, backendID: backendID}
	m.ups[u.hostID] = u
	m.upByID[k] = u
	return u, true
}

func (m *idMap) addUpToken(u *upcall, raw []byte) int64 {
	u.token = m.issue()
	m.upToks[u.token] = upToken{u.backend, raw}
	return u.token
}

func (m *idMap) dropUp(u *upcall) {
	delete(m.ups, u.hostID)
	delete(m.upByID, upKey{u.backend, string(u.backendID)})
	if u.token != 0 {
		delete(m.upToks, u.token)
	}
}

// upsOf returns the backend's requests still waiting on the host.
func (m *idMap) upsOf(l *link) []*upcall {
	var out []*upcall
	for _, u := range m.ups {
		if u.backend == l {
			out = append(out, u)
		}
	}
	return out
}

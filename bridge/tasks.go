package bridge

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/mcpbridge/mcpbridge/frame"
)

// Tasks (MCP 2025-11-25) with several backends. A task id is made by the
// side that runs the task and is unique only there, so the bridge routes
// by remembering which backend each task came from; ids are never
// rewritten (a host correlates them with the related-task _meta of other
// messages). With one backend everything is relayed untouched and none
// of this runs.
//
// Server side: a backend's task is learned from its answer to a
// task-augmented tools/call (CreateTaskResult), from its
// notifications/tasks/status and from tasks/list; tasks/get, tasks/result
// and tasks/cancel go to that backend. Client side: a task the host runs
// for a backend's request (sampling, elicitation) is learned from the
// host's answer; the host's notifications/tasks/status about it goes to
// that backend only.
type taskOwners struct {
	mu     sync.Mutex
	server map[string]taskOwner // task id → backend that runs it
	client map[string]taskOwner // host's task id → backend whose request it serves
}

type taskOwner struct {
	link  *link
	ended bool // seen in a terminal status: kept (its result is there until its ttl), dropped first
}

// maxTasks bounds each table: a long-lived bridge that fills one forgets
// the tasks seen to end first, then an arbitrary half (forgotten tasks are
// found again through tasks/list).
const maxTasks = 10000

// taskResultMax is the largest tasks/get or tasks/cancel answer searched
// for the task's status (a GetTaskResult is a few hundred bytes). A
// CreateTaskResult is searched whatever its size: it is the answer to a
// task-augmented request, which the bridge knows, so no other answer is
// scanned on the hot path.
const taskResultMax = 4096

// table returns the server or client table, made on first use; t.mu held.
func (t *taskOwners) table(client bool) map[string]taskOwner {
	p := &t.server
	if client {
		p = &t.client
	}
	if *p == nil {
		*p = make(map[string]taskOwner)
	}
	return *p
}

func (t *taskOwners) learn(client bool, id string, l *link) {
	if id == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	table := t.table(client)
	if len(table) >= maxTasks {
		for k, o := range table {
			if o.ended {
				delete(table, k)
			}
		}
	}
	if len(table) >= maxTasks {
		for k := range table { // still full: an arbitrary half
			if len(table) < maxTasks/2 {
				break
			}
			delete(table, k)
		}
	}
	table[id] = taskOwner{link: l}
}

// ended marks a task seen to end, if the bridge knows it.
func (t *taskOwners) ended(client bool, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	table := t.table(client)
	if o, ok := table[id]; ok {
		table[id] = taskOwner{link: o.link, ended: true}
	}
}

func (t *taskOwners) owner(client bool, id string) *link {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.table(client)[id].link
}

// Owners are kept when a backend restarts or its HTTP session is renewed:
// a task is bound to its requestor, not to a session, and lives for its
// ttl (a server without tasks.list, the kind the spec recommends when it
// cannot tell requestors apart, could not be asked for it again). A task
// gone with a restarted process is reported unknown by the backend
// itself.

// relatedTask is the _meta key that ties a message to a task.
const relatedTask = "io.modelcontextprotocol/related-task"

func isTaskMethod(m string) bool { return m == mTaskGet || m == mTaskResult || m == mTaskCancel }

// terminalStatus reports whether a task in this status has ended.
func terminalStatus(s string) bool { return s == "completed" || s == "failed" || s == "cancelled" }

// taskAnswered follows the tasks in a backend's answer to call c, in
// either mode: a task-augmented tools/call keeps the host's progress token
// routed for the task's lifetime (and, with several backends, tells the
// aggregator who runs the task); a tasks/get or tasks/cancel that shows
// the task ended, or a tasks/result (it blocks until the end), lets the
// token go.
func (r *router) taskAnswered(l *link, c *call, f *frame.Frame) {
	if f.IsError() {
		// tasks/result of a task whose request failed answers that
		// request's error: the task has ended. Not an error the bridge
		// made (the backend down, a timeout): that says nothing of it.
		if c.method == mTaskResult && c.taskID != "" && !unreachable(f) {
			r.taskEnded(l, c.taskID, false)
		}
		return
	}
	res := f.ResultSpan()
	var id string
	switch c.method {
	case mToolsCall:
		// Scanned once for both uses: the progress token, and with
		// several backends the task's owner.
		if id = createdTask(f); id == "" {
			return
		}
		if c.token != 0 {
			r.mu.Lock()
			r.ids.keepTaskToken(l, id, c)
			r.mu.Unlock()
		}
		if !r.raw {
			r.agg.tasks.learn(false, id, l)
		}
		return
	case mTaskGet, mTaskCancel:
		if res.End-res.Start > taskResultMax {
			return
		}
		status, _ := f.String(f.Field(res, "status"))
		if !terminalStatus(status) {
			return
		}
		id, _ = f.String(f.Field(res, "taskId"))
	case mTaskResult:
		id, _ = f.String(f.Field(res, "_meta", relatedTask, "taskId"))
	}
	if id != "" {
		r.taskEnded(l, id, false)
	}
}

// taskEnded lets the progress token of a task seen to end go (a
// backend's, or with client the host's for l), and marks the task's
// owner ended (the first forgotten should the table fill).
func (r *router) taskEnded(l *link, id string, client bool) {
	r.mu.Lock()
	r.ids.endTask(l, id, client)
	r.mu.Unlock()
	if !r.raw {
		r.agg.tasks.ended(client, id)
	}
}

// taskStatus follows a notifications/tasks/status: a task that ended
// needs its progress token no more. From a backend (host false) it is
// about that backend's task; from the host, about a task the host runs
// for one of the backends.
func (r *router) taskStatus(l *link, f *frame.Frame, host bool) {
	status, _ := f.String(f.Param("status"))
	if !terminalStatus(status) {
		return
	}
	id, _ := f.String(f.Param("taskId"))
	if host && !r.raw {
		r.agg.tasks.ended(true, id) // a backend's is marked by taskStatusUp, which learns it
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !host {
		r.ids.endTask(l, id, false)
		return
	}
	for _, l := range r.links {
		r.ids.endTask(l, id, true)
	}
}

// taskPolled follows the host's answer to a backend's tasks/get,
// tasks/result or tasks/cancel of a task the host runs for it: one that
// shows the task ended (a terminal status; any answer to tasks/result,
// which waits for the end, an error being the task's failed request) lets
// the task's progress token go, as the host's status notification would.
func (r *router) taskPolled(u *upcall, f *frame.Frame) {
	if u.pollMethod != mTaskResult {
		res := f.ResultSpan()
		if f.IsError() || res.End-res.Start > taskResultMax {
			return
		}
		if status, _ := f.String(f.Field(res, "status")); !terminalStatus(status) {
			return
		}
	}
	r.taskEnded(u.backend, u.pollTask, true)
}

// createdTask returns the task id of a CreateTaskResult answer
// ({"task":{"taskId":...}}) to a task-augmented request, or "" (a server
// may answer such a request without a task).
func createdTask(f *frame.Frame) string {
	id, _ := f.String(f.Field(f.ResultSpan(), "task", "taskId"))
	return id
}

// learnClientTask notes the task the host created in answer to a
// backend's request.
func (a *aggregator) learnClientTask(l *link, f *frame.Frame) {
	if f.IsError() {
		return
	}
	if id := createdTask(f); id != "" {
		a.tasks.learn(true, id, l)
	}
}

// taskStatusUp notes the task of a backend's notifications/tasks/status,
// and whether it ended.
func (a *aggregator) taskStatusUp(l *link, f *frame.Frame) {
	if id, ok := f.String(f.Param("taskId")); ok {
		a.tasks.learn(false, id, l)
		if status, _ := f.String(f.Param("status")); terminalStatus(status) {
			a.tasks.ended(false, id)
		}
	}
}

// hostTaskRefusal is the answer to backend l's tasks/get, tasks/result or
// tasks/cancel about a task of the host's, when the task does not serve a
// request of l's: the host sees the bridge as one requestor, so without
// this check one backend could read or cancel the task another asked for
// (the spec: receivers "MUST reject" requests for tasks of another
// authorization context). Nil when l may ask.
func (a *aggregator) hostTaskRefusal(l *link, f *frame.Frame) *frame.Frame {
	id, _ := f.String(f.Param("taskId"))
	if a.tasks.owner(true, id) == l {
		return nil
	}
	return frame.NewError(f.ID(), frame.ErrorObject{Code: frame.CodeInvalidParams, Message: "unknown task: " + quote(id)})
}

// onlyTasksOf cuts the host's answer to backend l's tasks/list down to
// the tasks that serve l's requests (see hostTaskRefusal).
func (a *aggregator) onlyTasksOf(l *link, f *frame.Frame) {
	res := f.ResultSpan()
	list := f.Field(res, "tasks")
	if f.IsError() || !list.Ok() {
		return
	}
	var tasks []json.RawMessage
	if json.Unmarshal(f.Bytes(list), &tasks) != nil {
		return
	}
	kept := []json.RawMessage{}
	for _, t := range tasks {
		var task struct {
			TaskID string `json:"taskId"`
		}
		if json.Unmarshal(t, &task) == nil && a.tasks.owner(true, task.TaskID) == l {
			kept = append(kept, t)
		}
	}
	b, _ := json.Marshal(kept)
	f.Replace(list, b)
}

// taskStatusDown returns the backend the host's notifications/tasks/status
// is about, or nil if the bridge does not know the task.
func (a *aggregator) taskStatusDown(f *frame.Frame) *link {
	id, _ := f.String(f.Param("taskId"))
	return a.tasks.owner(true, id)
}

// byTask routes tasks/get, tasks/result and tasks/cancel to the backend
// that runs the task. A task the bridge has not seen (it restarted a
// backend since, or forgot it) is looked for with tasks/list first.
func (a *aggregator) byTask(f *frame.Frame) {
	r := a.r
	id, ok := f.String(f.Param("taskId"))
	if !ok {
		r.refuse(f, frame.CodeInvalidParams, f.Method+": params.taskId must be a string", nil)
		return
	}
	owner := a.tasks.owner(false, id)
	if owner == nil {
		a.gatherTasks()
		owner = a.tasks.owner(false, id)
	}
	switch {
	case owner == nil:
		r.refuse(f, frame.CodeInvalidParams, "unknown task: "+quote(id), nil)
	case !owner.isReady():
		reason := owner.unavailable()
		r.refuse(f, frame.CodeInternalError, fmt.Sprintf("backend %q: %s", owner.name, reason), backendErrorData(owner.name, reason))
	default:
		r.forward(owner, f, nil)
	}
}

// runsTasks reports whether l declared tasks.requests.tools.call: whether
// it may run a task (tools/call is the one request a server's task can
// wrap), and the host may task-augment its tools.
func (l *link) runsTasks() bool {
	c, ok := l.capability("tasks")
	return ok && runsTasks(c)
}

// runsTasks reports whether a server's tasks capability has
// requests.tools.call.
func runsTasks(tasks json.RawMessage) bool {
	return rawField(rawField(rawField(tasks, "requests"), "tools"), "call") != nil
}

// noTaskSupport returns tool with an execution.taskSupport other than
// "forbidden" made "forbidden": the tool of a backend that did not
// declare tasks.requests.tools.call, which the spec says a client MUST
// NOT task-augment whatever the tool says, while the merged capabilities
// may declare it for another backend's tools.
func noTaskSupport(tool json.RawMessage) json.RawMessage {
	exec := frame.Member(tool, "execution")
	ts := frame.Member(exec, "taskSupport")
	if ts == nil || string(ts) == `"forbidden"` {
		return tool
	}
	return frame.SetMember(tool, "execution", frame.SetMember(exec, "taskSupport", []byte(`"forbidden"`)))
}

// listsTasks reports whether l declared tasks.list.
func (l *link) listsTasks() bool {
	c, ok := l.capability("tasks")
	return ok && rawField(c, "list") != nil
}

// gatherTasks asks every ready backend that lists tasks for all of them,
// learns who runs each, and returns them in declared order (a backend
// that fails is left out and logged).
func (a *aggregator) gatherTasks() []json.RawMessage {
	per := make([][]json.RawMessage, len(a.r.links))
	var wg sync.WaitGroup
	for i, l := range a.r.links {
		if !l.isReady() || !l.listsTasks() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			its, _, err := a.items(l, "tasks/list", "tasks")
			if err != nil {
				l.log.Warn().Err(err).Msg("leaving the backend out of tasks/list")
				return
			}
			for _, it := range its {
				var t struct {
					TaskID string `json:"taskId"`
				}
				if json.Unmarshal(it, &t) == nil {
					a.tasks.learn(false, t.TaskID, l)
				}
			}
			per[i] = its
		}()
	}
	wg.Wait()
	all := []json.RawMessage{}
	for _, its := range per {
		all = append(all, its...)
	}
	return all
}

// listTasks answers tasks/list with every backend's tasks, in one page.
func (a *aggregator) listTasks(f *frame.Frame) {
	c, ok := a.claim(f)
	if !ok {
		return
	}
	if a.refuseCursor(c, f) {
		return
	}
	body, _ := json.Marshal(map[string][]json.RawMessage{"tasks": a.gatherTasks()})
	a.answer(c, frame.NewResult(f.ID(), body))
}

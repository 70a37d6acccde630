package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// The aggregator presents several backends as one server (issue #4): it
// merges lists, prefixes tool and prompt names, and routes each request by
// lookup tables built from the backends' own lists — never by parsing a
// name back, since backend and tool names may contain the separator.
//
// Pagination: the bridge gathers every page of every backend and answers
// with one complete list (no nextCursor). Lists of backends that declared
// listChanged are cached until their list_changed or restart.
type aggregator struct {
	r *router

	mu    sync.Mutex
	names map[string]map[string]target // kind ("tools", "prompts") → exposed name → target
	uris  map[string]*link             // resource URI → first backend (declared order) that listed it
	// urisStale says a backend announced a change of its resources since
	// uris was built: the next routing by URI lists again first, so a
	// host that follows a resource link without re-listing still reaches
	// the right backend.
	urisStale bool
	tmpls     map[*link][]string // backend → its resource URI templates
	cache     map[*link]map[string][]json.RawMessage
	// merged holds the host's answer per list kind while every backend's
	// part of it is cached: a repeated tools/list costs no backend request
	// and no re-encoding (issue #6: 2,000 tools in ≤ 2 ms). Cleared with
	// any backend's cache.
	merged map[string][]byte
	// gen counts the announced changes of all backends' lists. What is
	// fetched while it moves is served but not cached: a list_changed
	// handled while a list answer is on its way must not be undone by
	// storing the older answer afterwards.
	gen uint64
	// tablesGen is, per list kind, the gen at which the routing tables
	// installed last (names, uris, tmpls) began to be gathered: a gather
	// that began earlier does not overwrite them (a slow list finishing
	// after a newer one would hide the tools the host was just shown).
	tablesGen map[string]uint64

	tasks taskOwners // who runs each task (tasks.go)

	// urlAsked holds the tagged ids of the URL elicitations the bridge
	// put to the host for a backend that refused a list with -32042
	// (askURLs), until the backend changes: the id of a completed one
	// (done) is kept, so that a refusal sent before the completion and
	// handled after it does not ask again (ids are unique per server).
	urlAsked map[string]urlAsk

	// notifyWaiting holds the list_changed methods waiting for the host's
	// notifications/initialized (notifyHost).
	notifyWaiting map[string]bool
}

type target struct {
	link     *link
	original string
	filtered bool
}

// listKinds maps list methods to the member that holds their items.
var listKinds = map[string]string{
	"tools/list":               "tools",
	"prompts/list":             "prompts",
	"resources/list":           "resources",
	"resources/templates/list": "resourceTemplates",
}

func newAggregator(r *router) *aggregator {
	return &aggregator{
		r:         r,
		names:     map[string]map[string]target{"tools": {}, "prompts": {}},
		uris:      map[string]*link{},
		tmpls:     map[*link][]string{},
		cache:     map[*link]map[string][]json.RawMessage{},
		merged:    map[string][]byte{},
		tablesGen: map[string]uint64{},
	}
}

// route handles one host request in aggregate mode.
func (a *aggregator) route(f *frame.Frame) {
	r := a.r
	var held *link // where the host's subscription went, looked up before rememberState forgets it
	if f.Method == mSubscribe || f.Method == mUnsubscribe {
		uri, _ := f.String(f.Param("uri"))
		held = r.subOwner(uri)
	}
	r.rememberState(f)
	if kind, ok := listKinds[f.Method]; ok {
		go a.list(f, kind)
		return
	}
	switch f.Method {
	case "tools/call":
		go a.byName(f, "tools", f.Param("name"))
	case "prompts/get":
		go a.byName(f, "prompts", f.Param("name"))
	case "resources/read":
		go a.byURI(f, nil)
	case mSubscribe, mUnsubscribe:
		go a.byURI(f, held)
	case "completion/complete":
		go a.completion(f)
	case mSetLevel:
		go a.fanOut(f)
	case mTaskGet, mTaskResult, mTaskCancel:
		go a.byTask(f)
	case mTaskList:
		go a.listTasks(f)
	default:
		r.refuse(f, frame.CodeMethodNotFound, "method not found: "+f.Method, nil)
	}
}

// listWait bounds how long a merged list waits for one backend: a backend
// that stopped reading (or answering) is left out of the list, logged,
// instead of holding every other backend's tools back until the request
// timeout (issue #5: one backend never stalls the others).
const listWait = 10 * time.Second

// askWait sends the bridge's own request to l and waits for its answer,
// at most wait if wait > 0, and until ctx ends: then the backend is told
// with notifications/cancelled, and a late answer is dropped.
func (a *aggregator) askWait(ctx context.Context, l *link, method string, params []byte, wait time.Duration) (*frame.Frame, error) {
	ch := make(chan *frame.Frame, 1)
	c := a.r.ask(l, method, params, func(f *frame.Frame) { ch <- f })
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case f := <-ch:
		if f.IsError() {
			return f, &answerError{f, fmt.Sprintf("backend %q: %s: %s", l.name, method, errorMessage(f))}
		}
		return f, nil
	case <-timeout:
		a.r.cancelAsk(c, fmt.Sprintf("no answer within %v", wait))
		return nil, fmt.Errorf("backend %q: %s: no answer within %v", l.name, method, wait)
	case <-ctx.Done():
		a.r.cancelAsk(c, "the host cancelled its request")
		return nil, ctx.Err()
	case <-a.r.life.Done():
		return nil, a.r.life.Err()
	}
}

// An answerError is a backend's error answer to the bridge's own request.
type answerError struct {
	f   *frame.Frame
	msg string
}

func (e *answerError) Error() string { return e.msg }

func errorMessage(f *frame.Frame) string {
	var e frame.ErrorObject
	_ = json.Unmarshal(f.Error(), &e)
	return e.Message
}

// maxPages bounds the pages of one list gathered from one backend.
const maxPages = 1000

// itemKey is the member that names an item of each list kind.
var itemKey = map[string]string{"tools": "name", "prompts": "name", "resources": "uri", "resourceTemplates": "uriTemplate"}

// items returns every item of one list of l, all pages, from cache when
// the backend promised to tell us of changes.
func (a *aggregator) items(l *link, method, kind string) (its []json.RawMessage, cached bool, err error) {
	a.mu.Lock()
	if c, ok := a.cache[l][kind]; ok {
		a.mu.Unlock()
		return c, true, nil
	}
	gen := a.gen
	a.mu.Unlock()
	all := []json.RawMessage{} // not nil: an empty list is an answer, not a backend that is down
	var cursor json.RawMessage
	seen := map[string]bool{}  // cursors asked for
	names := map[string]bool{} // item keys listed
	for page := 0; page < maxPages; page++ {
		var params []byte
		if cursor != nil {
			params, _ = json.Marshal(map[string]json.RawMessage{"cursor": cursor})
		}
		f, err := a.askWait(a.r.life, l, method, params, listWait)
		if err != nil {
			return nil, false, err
		}
		var res map[string]json.RawMessage
		if err := json.Unmarshal(f.Result(), &res); err != nil {
			return nil, false, fmt.Errorf("backend %q: %s: reading the answer: %w", l.name, method, err)
		}
		var its []json.RawMessage
		_ = json.Unmarshal(res[kind], &its)
		for _, it := range its {
			// An item named twice (pages that repeat) is listed once: a
			// backend cannot serve two of one name.
			if k := frame.Member(it, itemKey[kind]); k != nil {
				if names[string(k)] {
					continue
				}
				names[string(k)] = true
			}
			all = append(all, it)
		}
		cursor = res["nextCursor"]
		if len(cursor) == 0 || string(cursor) == "null" || string(cursor) == `""` {
			break
		}
		if seen[string(cursor)] || page == maxPages-1 {
			// A cursor that comes round again (or never ends) would list
			// the same items again and again: what came so far is the list.
			a.r.log.Warn().Str("backend", l.name).Str("method", method).Int("pages", page+1).Msg("backend's list pages do not end (a cursor repeats); using the pages so far")
			break
		}
		seen[string(cursor)] = true
	}
	if l.declaresListChanged(kind) {
		a.mu.Lock()
		if a.gen == gen {
			if a.cache[l] == nil {
				a.cache[l] = map[string][]json.RawMessage{}
			}
			a.cache[l][kind] = all
		}
		a.mu.Unlock()
	}
	return all, false, nil
}

// capability returns the capability of list kind that l's initialize
// answer declared, and whether it declared one.
func (l *link) capability(kind string) (json.RawMessage, bool) {
	l.mu.Lock()
	res := l.initRes
	l.mu.Unlock()
	if res == nil {
		return nil, false
	}
	if kind == "resourceTemplates" {
		kind = "resources"
	}
	c, ok := res.Capabilities[kind]
	return c, ok
}

// declares reports whether l declared the capability of list kind: a
// backend that did not is not asked for that list (the TypeScript SDK's
// servers answer -32601, which would keep the merged list from ever being
// cached and log a warning each time).
func (l *link) declares(kind string) bool {
	_, ok := l.capability(kind)
	return ok
}

func (l *link) declaresListChanged(kind string) bool {
	raw, _ := l.capability(kind)
	var c struct {
		ListChanged bool `json:"listChanged"`
	}
	_ = json.Unmarshal(raw, &c)
	return c.ListChanged
}

// list answers a list request with every backend's items merged.
func (a *aggregator) list(f *frame.Frame, kind string) {
	c, ok := a.claim(f)
	if !ok {
		return
	}
	if a.refuseCursor(c, f) {
		return
	}
	body, err := a.gather(f.Method, kind)
	if err != nil {
		a.answer(c, frame.NewError(f.ID(), frame.ErrorObject{Code: frame.CodeInternalError, Message: err.Error()}))
		return
	}
	a.answer(c, frame.NewResult(f.ID(), body))
}

// refuseCursor answers -32602 to a merged list request c (f) that carries
// a cursor, and reports whether it did. The bridge answers every merged
// list in one page and never gave a cursor out, and the pagination spec
// says an invalid cursor SHOULD get -32602 (the whole list again would
// repeat every item to a host that pages on). An empty or null cursor
// counts as none.
func (a *aggregator) refuseCursor(c *call, f *frame.Frame) bool {
	cur := f.Param("cursor")
	if v := string(f.Bytes(cur)); !cur.Ok() || v == "null" || v == `""` {
		return false
	}
	a.answer(c, frame.NewError(f.ID(), frame.ErrorObject{Code: frame.CodeInvalidParams, Message: "invalid cursor: mcpbridge answers merged lists in one page and gives out no cursor"}))
	return true
}

// claim registers a host request that the bridge answers itself from
// several backends, so that a duplicate id in flight is refused and a
// cancellation drops the answer, as for forwarded requests. ok is false
// when the request was answered already (a duplicate) or dropped (the host
// cancelled it before it got here).
func (a *aggregator) claim(f *frame.Frame) (*call, bool) {
	ctx, cancel := context.WithCancel(a.r.life)
	c := &call{method: f.Method, frontID: bytes.Clone(f.ID()), claimed: &claimState{ctx, cancel}}
	a.r.mu.Lock()
	if cancelled, batchDone := a.r.takePendingLocked(f); cancelled {
		a.r.mu.Unlock()
		cancel()
		a.r.finishDropped(f.ID(), batchDone)
		return nil, false
	}
	ok := a.r.ids.addCall(c, false)
	a.r.mu.Unlock()
	if !ok {
		cancel()
		a.r.replyError(f.ID(), frame.CodeInvalidRequest, "invalid request: id is already in use by a request in flight", nil)
	}
	return c, ok
}

// answer replies to a claimed request unless the host cancelled it.
func (a *aggregator) answer(c *call, g *frame.Frame) {
	c.claimed.cancel()
	if a.r.takeCall(c) {
		a.r.reply(c.frontID, g)
	}
}

// gather collects one list from every ready backend, in declared order,
// rebuilds the routing table for it, and returns the host's answer
// ({"tools":[...]} and so on). A backend that fails is skipped and logged
// with its name (rclone union style).
func (a *aggregator) gather(method, kind string) ([]byte, error) {
	a.mu.Lock()
	body := a.merged[kind]
	a.mu.Unlock()
	if body != nil {
		return body, nil
	}
	a.mu.Lock()
	startGen := a.gen
	a.mu.Unlock()
	per := make([][]json.RawMessage, len(a.r.links))
	cacheable := make([]bool, len(a.r.links)) // this backend's part will not change unannounced
	var wg sync.WaitGroup
	for i, l := range a.r.links {
		if !l.isReady() {
			continue
		}
		if !l.declares(kind) {
			// It has no such list, and will not until it restarts.
			per[i], cacheable[i] = []json.RawMessage{}, true
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			its, cached, err := a.items(l, method, kind)
			if err != nil {
				l.log.Warn().Err(err).Msg("leaving the backend out of a merged list")
				a.askURLs(l, err)
				return
			}
			if !cached {
				a.urlsSettled(l, "")
			}
			per[i] = its
			cacheable[i] = cached || l.declaresListChanged(kind)
		}()
	}
	wg.Wait()
	// A backend that is down or failed may bring its part later.
	allCached := !slices.Contains(cacheable, false)
	merged := []json.RawMessage{}
	a.mu.Lock()
	defer a.mu.Unlock()
	fresh := a.gen == startGen // no change announced while gathering
	// Routing tables only from a gather at least as recent as the last
	// one installed; the answer is built either way.
	install := startGen >= a.tablesGen[kind]
	if install {
		a.tablesGen[kind] = startGen
	}
	switch kind {
	case "tools", "prompts":
		table := map[string]target{}
		// Keep the last known names of backends that are down, so a call
		// to them names the backend instead of "unknown tool".
		for n, t := range a.names[kind] {
			if per[indexOf(a.r.links, t.link)] == nil {
				table[n] = t
			}
		}
		for i, l := range a.r.links {
			for _, it := range per[i] {
				var orig string
				if json.Unmarshal(frame.Member(it, "name"), &orig) != nil {
					continue // not an object with a string name
				}
				filtered := kind == "tools" && !l.allows(orig)
				name := a.exposedName(table, l, orig)
				table[name] = target{l, orig, filtered}
				if filtered {
					continue
				}
				if kind == "tools" && !l.runsTasks() {
					it = noTaskSupport(it)
				}
				if name == orig {
					merged = append(merged, it)
					continue
				}
				q, _ := json.Marshal(name)
				merged = append(merged, frame.SetMember(it, "name", q))
			}
		}
		if install {
			a.names[kind] = table
		}
	case "resources":
		uris := map[string]*link{}
		for i, l := range a.r.links {
			for _, it := range per[i] {
				var m struct {
					URI string `json:"uri"`
				}
				_ = json.Unmarshal(it, &m)
				if _, seen := uris[m.URI]; seen {
					// Shadowed: reads and subscriptions of the URI go to
					// the first backend that listed it, so the host is
					// shown that one only.
					continue
				}
				uris[m.URI] = l
				merged = append(merged, it)
			}
		}
		if install {
			a.uris = uris
			a.urisStale = !fresh
		}
	case "resourceTemplates":
		for i, l := range a.r.links {
			var ts []string
			for _, it := range per[i] {
				var m struct {
					URITemplate string `json:"uriTemplate"`
				}
				_ = json.Unmarshal(it, &m)
				ts = append(ts, m.URITemplate)
				merged = append(merged, it)
			}
			if per[i] != nil && install {
				a.tmpls[l] = ts
			}
		}
	}
	body, _ = json.Marshal(map[string][]json.RawMessage{kind: merged})
	if allCached && fresh {
		a.merged[kind] = body
	}
	return body, nil
}

func indexOf(ls []*link, l *link) int {
	for i, x := range ls {
		if x == l {
			return i
		}
	}
	return 0
}

func (l *link) allows(tool string) bool { return l.cfg.Allows(tool) }

// nameByte reports whether c may appear in a name hosts accept
// (^[a-zA-Z0-9_-]{1,64}$: Claude and VS Code enforce it). Hand-written
// rather than a regexp: compiling one at init costs every process start
// (issue #6: cold start), the guard's and supervisors' included.
func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func validHostName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

// cleanName replaces each run of bytes hosts refuse with one '_'.
func cleanName(s string) string {
	var b strings.Builder
	run := false
	for i := 0; i < len(s); i++ {
		if nameByte(s[i]) {
			b.WriteByte(s[i])
			run = false
		} else if !run {
			b.WriteByte('_')
			run = true
		}
	}
	return b.String()
}

// exposedName is the name the host sees for backend l's item orig: valid
// for real hosts (^[a-zA-Z0-9_-]{1,64}$), deterministic, and unique in
// table. A cleaned, shortened or de-duplicated name gets a short hash of
// the full name, so it is stable across restarts.
func (a *aggregator) exposedName(table map[string]target, l *link, orig string) string {
	sep := a.r.cfg.Separator
	full := orig
	if len(a.r.links) > 1 || a.r.cfg.Prefix {
		full = l.name + sep + orig
	}
	name := full
	if !validHostName(name) {
		name = cleanName(name)
		if len(name) > 64 || name != full {
			name = withHash(name, full)
		}
	}
	if t, taken := table[name]; taken && (t.link != l || t.original != orig) {
		was := name
		name = withHash(name, full+"\x00"+l.name)
		l.log.Warn().Str("name", was).Str("as", name).Str("collidesWith", t.link.name).Msg("name collision resolved")
	} else if name != full {
		l.log.Info().Str("name", full).Str("as", name).Msg("name rewritten to be valid for hosts")
	}
	return name
}

func withHash(name, of string) string {
	sum := sha256.Sum256([]byte(of))
	h := hex.EncodeToString(sum[:4])
	if len(name) > 64-9 {
		name = name[:64-9]
	}
	return name + "_" + h
}

// lookup finds the target of a prefixed name, gathering the lists first if
// the host calls before it has listed (scripts do).
func (a *aggregator) lookup(kind, name string) (target, bool) {
	a.mu.Lock()
	t, ok := a.names[kind][name]
	a.mu.Unlock()
	if ok {
		return t, true
	}
	method := kind + "/list"
	if _, err := a.gather(method, kind); err != nil {
		return target{}, false
	}
	a.mu.Lock()
	t, ok = a.names[kind][name]
	a.mu.Unlock()
	return t, ok
}

// byName routes tools/call and prompts/get.
func (a *aggregator) byName(f *frame.Frame, kind string, nameSpan frame.Span) {
	r := a.r
	name, _ := f.String(nameSpan)
	t, ok := a.lookup(kind, name)
	what := strings.TrimSuffix(kind, "s")
	switch {
	case !ok:
		if l := a.downOwner(name); l != nil {
			reason := l.unavailable()
			r.refuse(f, frame.CodeInternalError, fmt.Sprintf("%s %q: backend %q: %s", what, name, l.name, reason), backendErrorData(l.name, reason))
			return
		}
		r.refuse(f, frame.CodeInvalidParams, fmt.Sprintf("unknown %s: %q%s", what, name, a.didYouMean(kind, name)), nil)
		return
	case t.filtered:
		r.refuse(f, frame.CodeInvalidParams, fmt.Sprintf("%s %q is not allowed by this bridge's filters", what, name), map[string]string{"backend": t.link.name})
		return
	case !t.link.isReady():
		reason := t.link.unavailable()
		r.refuse(f, frame.CodeInternalError, fmt.Sprintf("backend %q: %s", t.link.name, reason), backendErrorData(t.link.name, reason))
		return
	}
	orig, _ := json.Marshal(t.original)
	r.forward(t.link, f, func(g *frame.Frame) { g.Replace(nameSpan, orig) })
}

// downOwner returns the backend that never came up whose prefix name
// carries (NAME + separator), or nil: it never listed its names, so they
// are all unknown, but the host should hear why. (The names of one that
// was up are known from its lists, and a name it never listed is
// unknown.)
func (a *aggregator) downOwner(name string) *link {
	for _, l := range a.r.links {
		if !strings.HasPrefix(name, l.name+a.r.cfg.Separator) {
			continue
		}
		l.mu.Lock()
		never := !l.ready && !l.everReady
		l.mu.Unlock()
		if never {
			return l
		}
	}
	return nil
}

// didYouMean names, for an unknown name, the names the host sees for a
// backend's item of that name (kind's names are prefixed per backend).
func (a *aggregator) didYouMean(kind, name string) string {
	var seen []string
	a.mu.Lock()
	for exposed, t := range a.names[kind] {
		if t.original == name && !t.filtered {
			seen = append(seen, exposed)
		}
	}
	a.mu.Unlock()
	if len(seen) == 0 {
		return ""
	}
	slices.Sort(seen)
	return fmt.Sprintf(" (with several backends names carry their backend's: did you mean %q?)", strings.Join(seen, `" or "`))
}

// byURI routes resources/read, subscribe and unsubscribe. URIs are never
// rewritten: a resource link inside a tool result must stay readable.
func (a *aggregator) byURI(f *frame.Frame, subHeld *link) {
	r := a.r
	uri, _ := f.String(f.Param("uri"))
	if subHeld != nil && subHeld.isReady() {
		// A subscription, or its end, goes to the backend that holds it.
		r.forward(subHeld, f, nil)
		return
	}
	if owner := a.listedOwner(uri); owner != nil {
		if !owner.servesResources(f.Method) {
			// The merged server declares subscriptions if one backend
			// has them; this resource's backend did not negotiate them.
			r.refuse(f, frame.CodeInvalidParams, fmt.Sprintf("resource %q does not support subscriptions (its backend %q does not offer them)", uri, owner.name), map[string]string{"backend": owner.name})
			return
		}
		r.forward(owner, f, nil)
		return
	}
	// Nobody listed it: backends whose templates match first, then the
	// others in declared order, moving on at "not found".
	c, ok := a.claim(f)
	if !ok {
		return
	}
	// Each try is the bridge's own request (askWait), under a progress
	// token of its own: the host's cannot be mapped across several tries.
	params := f.Params()
	_, _ = a.gather("resources/templates/list", "resourceTemplates")
	var first, rest []*link
	a.mu.Lock()
	for _, l := range r.links {
		if !l.isReady() || !l.servesResources(f.Method) {
			// A backend without resources answers -32601, which would end
			// the search before the backend that has it.
			continue
		}
		if matchesAny(a.tmpls[l], uri) {
			first = append(first, l)
		} else {
			rest = append(rest, l)
		}
	}
	a.mu.Unlock()
	var notFound, failed *frame.Frame
	for _, l := range append(first, rest...) {
		g, err := a.askWait(c.claimed.ctx, l, f.Method, params, 0)
		if c.claimed.ctx.Err() != nil {
			return // the host cancelled it: the answer is dropped
		}
		switch {
		case g == nil:
			// No answer at all (the bridge is stopping).
		case err == nil:
			if f.Method == mSubscribe {
				r.subscribed(f.ID(), f.Params(), l, true)
			}
			g.SetID(f.ID())
			a.answer(c, g)
			return
		case resourceNotFound(g, uri):
			notFound = g
			continue
		case unreachable(g):
			// The backend could not be asked (down, lost, timed out):
			// the URI may be another's; if nobody has it, this failure
			// is the answer, since it may have been this backend's.
			if failed == nil {
				failed = g
			}
			continue
		default:
			// The backend's own error about the URI: its answer.
			a.tagElicitationError(l, g)
			g.SetID(f.ID())
			a.answer(c, g)
			return
		}
		break
	}
	for _, g := range []*frame.Frame{failed, notFound} {
		if g != nil {
			g.SetID(f.ID())
			a.answer(c, g)
			return
		}
	}
	a.answer(c, frame.NewError(f.ID(), frame.ErrorObject{Code: frame.CodeNotFound, Message: "resource not found: " + uri, Data: map[string]string{"uri": uri}}))
}

// servesResources reports whether l declared what resources method needs:
// resources, and for (un)subscribe resources.subscribe.
func (l *link) servesResources(method string) bool {
	c, ok := l.capability("resources")
	if !ok {
		return false
	}
	if method == mSubscribe || method == mUnsubscribe {
		return string(rawField(c, "subscribe")) == "true"
	}
	return true
}

// unreachable reports whether an error answer is the bridge's own for a
// backend it could not ask or that did not answer in time (-32603 or
// -32001 with data.backend), not the backend's.
func unreachable(f *frame.Frame) bool {
	var e struct {
		Code int `json:"code"`
		Data struct {
			Backend string `json:"backend"`
		} `json:"data"`
	}
	return json.Unmarshal(f.Error(), &e) == nil && (e.Code == frame.CodeInternalError || e.Code == frame.CodeTimeout) && e.Data.Backend != ""
}

// resourceNotFound reports whether a backend's error answer means "no such
// resource" rather than a failure worth passing on: -32002 (the MCP
// spec's code), or -32602 as go-sdk (SEP-2164: with data.uri) and the
// TypeScript SDK (with a "not found" message) answer today, or code 0
// with "Unknown resource", as the Python SDK's FastMCP answers (its
// server turns any exception into code 0).
func resourceNotFound(f *frame.Frame, uri string) bool {
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			URI string `json:"uri"`
		} `json:"data"`
	}
	if json.Unmarshal(f.Error(), &e) != nil {
		return false
	}
	switch e.Code {
	case frame.CodeNotFound:
		return true
	case frame.CodeInvalidParams:
		return e.Data.URI == uri || strings.Contains(strings.ToLower(e.Message), "not found")
	case 0:
		// Only what FastMCP says of a URI it does not have: any failure
		// of a Python handler is code 0 too ("file not found" among them).
		m := strings.ToLower(e.Message)
		return strings.Contains(m, "unknown resource") || strings.Contains(m, "resource not found")
	}
	return false
}

// matchesAny reports whether uri could come from one of the RFC 6570
// templates: literal parts must match, each {expression} matches anything.
func matchesAny(templates []string, uri string) bool {
	for _, t := range templates {
		var b strings.Builder
		b.WriteString("^")
		for {
			i := strings.IndexByte(t, '{')
			if i < 0 {
				b.WriteString(regexp.QuoteMeta(t))
				break
			}
			b.WriteString(regexp.QuoteMeta(t[:i]))
			j := strings.IndexByte(t[i:], '}')
			if j < 0 {
				break
			}
			b.WriteString(".*")
			t = t[i+j+1:]
		}
		b.WriteString("$")
		if re, err := regexp.Compile(b.String()); err == nil && re.MatchString(uri) {
			return true
		}
	}
	return false
}

// completion routes completion/complete by its reference.
func (a *aggregator) completion(f *frame.Frame) {
	r := a.r
	ref := f.Param("ref")
	typ, _ := f.String(f.Field(ref, "type"))
	switch typ {
	case "ref/prompt":
		nameSpan := f.Field(ref, "name")
		name, _ := f.String(nameSpan)
		if t, ok := a.lookup("prompts", name); ok && !t.filtered && t.link.isReady() && !t.link.declares("completions") {
			a.noCompletions(f)
			return
		}
		a.byName(f, "prompts", nameSpan)
		return
	case "ref/resource":
		// "The URI or URI template of the resource" (schema 2025-11-25):
		// a template a backend listed, else a resource it listed, else
		// a URI one of its templates makes.
		uri, _ := f.String(f.Field(ref, "uri"))
		if owner := a.resourceRefOwner(uri); owner != nil {
			if !owner.declares("completions") {
				a.noCompletions(f)
				return
			}
			r.forward(owner, f, nil)
			return
		}
	}
	r.refuse(f, frame.CodeInvalidParams, "completion: no backend owns this reference", nil)
}

// noCompletions answers a completion for a reference whose backend did
// not declare completions (the merged server declares them if one
// backend does): no values, which is true, rather than sending that
// backend a request it never negotiated.
func (a *aggregator) noCompletions(f *frame.Frame) {
	if a.r.takePending(f) {
		return // the host cancelled it
	}
	a.r.reply(f.ID(), frame.NewResult(f.ID(), []byte(`{"completion":{"values":[],"total":0,"hasMore":false}}`)))
}

// listedOwner returns the backend that listed the resource uri, from the
// merged list (gathered again if stale or if uri is not in it), or nil.
func (a *aggregator) listedOwner(uri string) *link {
	a.mu.Lock()
	owner, stale := a.uris[uri], a.urisStale
	a.mu.Unlock()
	if owner == nil || stale {
		_, _ = a.gather("resources/list", "resources")
		a.mu.Lock()
		owner = a.uris[uri]
		a.mu.Unlock()
	}
	return owner
}

// resourceRefOwner returns the backend a completion's ref/resource uri
// belongs to, or nil: the first in declared order that listed it as a
// template, else the one that listed it as a resource, else the first
// whose templates match it.
func (a *aggregator) resourceRefOwner(uri string) *link {
	r := a.r
	_, _ = a.gather("resources/templates/list", "resourceTemplates")
	a.mu.Lock()
	for _, l := range r.links {
		if slices.Contains(a.tmpls[l], uri) {
			a.mu.Unlock()
			return l
		}
	}
	a.mu.Unlock()
	if owner := a.listedOwner(uri); owner != nil {
		return owner
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range r.links {
		if matchesAny(a.tmpls[l], uri) {
			return l
		}
	}
	return nil
}

// fanOut sends logging/setLevel to every ready backend that declared
// logging and answers {} once all have answered, if one of them took it;
// if every one refused it (an invalid level: -32602), the host gets the
// first refusal. Failures are logged.
func (a *aggregator) fanOut(f *frame.Frame) {
	c, ok := a.claim(f)
	if !ok {
		return
	}
	type refused struct {
		l   *link
		g   *frame.Frame
		err error
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		took     bool
		refusals []refused
	)
	for _, l := range a.r.links {
		if !l.isReady() || !l.declares("logging") {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := a.askWait(c.claimed.ctx, l, f.Method, f.Params(), listWait)
			if err != nil && c.claimed.ctx.Err() == nil {
				l.log.Warn().Err(err).Msg("fan-out request failed")
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				took = true
			case g != nil:
				refusals = append(refusals, refused{l, g, err})
			}
		}()
	}
	wg.Wait()
	if !took && len(refusals) > 0 {
		// The first refusal in declared order, its elicitation ids
		// tagged as any backend's error to the host is.
		first := refusals[0]
		for _, r := range refusals[1:] {
			if indexOf(a.r.links, r.l) < indexOf(a.r.links, first.l) {
				first = r
			}
		}
		a.tagElicitationError(first.l, first.g)
		first.g.SetID(f.ID())
		a.answer(c, first.g)
		return
	}
	// Others took it: a backend that wants the user at a URL first
	// (-32042) would go unheard behind the host's {}.
	for _, r := range refusals {
		a.askURLs(r.l, r.err)
	}
	a.answer(c, frame.NewResult(f.ID(), []byte("{}")))
}

// tagLogger marks a log notification with its origin: logger becomes NAME
// or NAME/logger.
func (a *aggregator) tagLogger(l *link, f *frame.Frame) {
	s := f.Param("logger")
	if old, ok := f.String(s); ok {
		v, _ := json.Marshal(l.name + "/" + old)
		f.Replace(s, v)
		return
	}
	if p := f.Param(); p.Ok() && f.Bytes(p)[0] == '{' && !s.Ok() {
		v, _ := json.Marshal(l.name)
		f.InsertMember(p, "logger", v)
	}
}

// The id of a URL-mode elicitation "must be unique within the context of
// the server" (schema 2025-11-25), and the host, which sees one server,
// ignores a notifications/elicitation/complete naming one already
// completed: two backends' ids are kept apart as NAME/id, in
// elicitation/create, in its notifications/elicitation/complete and in the
// data of a -32042 URLElicitationRequiredError. The host never sends the
// id back, so nothing is mapped in the other direction.

// tagElicitation marks the elicitationId in f's params with l's name.
func (a *aggregator) tagElicitation(l *link, f *frame.Frame) {
	s := f.Param("elicitationId")
	if id, ok := f.String(s); ok {
		v, _ := json.Marshal(l.name + "/" + id)
		f.Replace(s, v)
	}
}

// tagElicitationError marks the elicitation ids of a -32042 error answer
// with l's name (an error answer: off the hot path; the error object is
// re-encoded).
func (a *aggregator) tagElicitationError(l *link, f *frame.Frame) {
	if !bytes.Contains(f.Error(), []byte("-32042")) {
		return
	}
	var e map[string]json.RawMessage
	var data map[string]json.RawMessage
	var els []map[string]json.RawMessage
	if json.Unmarshal(f.Error(), &e) != nil || string(e["code"]) != "-32042" ||
		json.Unmarshal(e["data"], &data) != nil || json.Unmarshal(data["elicitations"], &els) != nil {
		return
	}
	for _, el := range els {
		var id string
		if json.Unmarshal(el["elicitationId"], &id) == nil {
			el["elicitationId"], _ = json.Marshal(l.name + "/" + id)
		}
	}
	data["elicitations"], _ = json.Marshal(els)
	e["data"], _ = json.Marshal(data)
	b, _ := json.Marshal(e)
	f.Replace(f.ErrorSpan(), b)
}

// listChanged drops l's cached list and tells the host once.
func (a *aggregator) listChanged(l *link, method string) {
	kind := strings.TrimSuffix(strings.TrimPrefix(method, "notifications/"), "/list_changed")
	a.mu.Lock()
	a.gen++
	delete(a.cache[l], kind)
	delete(a.merged, kind)
	if kind == "resources" {
		a.urisStale = true
		delete(a.cache[l], "resourceTemplates")
		delete(a.merged, "resourceTemplates")
	}
	a.mu.Unlock()
	a.notifyHost(method)
}

// backendChanged is called when l joined late, restarted or re-initialized.
func (a *aggregator) backendChanged(l *link) {
	a.mu.Lock()
	a.gen++
	delete(a.cache, l)
	clear(a.merged)
	a.urisStale = true
	for id, o := range a.urlAsked {
		if o.link == l {
			delete(a.urlAsked, id) // a new session may ask again
		}
	}
	a.mu.Unlock()
	if !isClosed(a.r.host.initDone) {
		return
	}
	for _, m := range []string{mToolsChanged, mPromptsChanged, mResourcesChanged} {
		a.notifyHost(m)
	}
}

func (a *aggregator) notifyHost(method string) {
	r := a.r
	kind := strings.TrimSuffix(strings.TrimPrefix(method, "notifications/"), "/list_changed")
	if !isClosed(r.host.initialized) {
		// One of each kind waits for the host: the host needs to hear a
		// list changed once, not once per change before it was ready.
		a.mu.Lock()
		waiting := a.notifyWaiting[method]
		if !waiting {
			if a.notifyWaiting == nil {
				a.notifyWaiting = map[string]bool{}
			}
			a.notifyWaiting[method] = true
		}
		a.mu.Unlock()
		if waiting {
			return
		}
	}
	go func() {
		t := time.NewTimer(time.Minute)
		defer t.Stop()
		ready := false
		select {
		case <-r.host.initialized:
			ready = true
		case <-r.life.Done():
		case <-t.C:
		}
		a.mu.Lock()
		delete(a.notifyWaiting, method)
		a.mu.Unlock()
		if !ready {
			return
		}
		r.mu.Lock()
		announced := r.host.listChanged[kind]
		r.mu.Unlock()
		if !announced {
			// The host was not offered listChanged for this kind.
			return
		}
		r.toHost(frame.NewNotification(method, nil))
	}()
}

// subscribed confirms the host's subscription made by its
// resources/subscribe front (with params), once backend l took it: l's
// restart replays it, whatever the URI table says then. It was recorded,
// unconfirmed, when the request was routed (rememberState), so that an
// unsubscribe routed before this answer forgets it; a subscribe refused,
// failed, timed out or cancelled stays unconfirmed, is never replayed,
// and is forgotten at the next subscribe (pruneSubsLocked): the host is
// not subscribed and will never unsubscribe.
// A refusal (ok false) forgets it at once.
func (r *router) subscribed(front, params []byte, l *link, ok bool) {
	var p struct {
		URI string `json:"uri"`
	}
	_ = json.Unmarshal(params, &p)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.host.subs[p.URI]
	if s == nil || s.confirmed {
		return
	}
	i := slices.Index(s.fronts, string(front))
	switch {
	case i < 0:
	case ok:
		s.owner, s.confirmed, s.fronts = l, true, nil
	default:
		if s.fronts = slices.Delete(s.fronts, i, i+1); len(s.fronts) == 0 {
			delete(r.host.subs, p.URI)
		}
	}
}

// pruneSubsLocked forgets the subscriptions never confirmed whose
// subscribe is no longer waiting or in flight. r.mu is held.
func (r *router) pruneSubsLocked() {
	for uri, s := range r.host.subs {
		if s.confirmed {
			continue
		}
		s.fronts = slices.DeleteFunc(s.fronts, func(front string) bool {
			return r.ids.byFront[front] == nil && len(r.pending[front]) == 0
		})
		if len(s.fronts) == 0 {
			delete(r.host.subs, uri)
		}
	}
}

// subOwner is the backend that holds the host's subscription to uri, or
// nil.
func (r *router) subOwner(uri string) *link {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.host.subs[uri]; s != nil {
		return s.owner
	}
	return nil
}

// rememberState records what the host set, to restore it on a backend
// that restarts (issue #5).
func (r *router) rememberState(f *frame.Frame) {
	switch f.Method {
	case mSetLevel:
		r.mu.Lock()
		r.host.logLevel = bytes.Clone(f.Params())
		r.mu.Unlock()
	case mSubscribe:
		uri, _ := f.String(f.Param("uri"))
		r.mu.Lock()
		r.pruneSubsLocked()
		switch s := r.host.subs[uri]; {
		case s == nil:
			r.host.subs[uri] = &hostSub{params: bytes.Clone(f.Params()), fronts: []string{string(f.ID())}}
		case !s.confirmed:
			// Subscribed again before an answer: whichever is taken
			// confirms it.
			s.params, s.fronts = bytes.Clone(f.Params()), append(s.fronts, string(f.ID()))
		} // confirmed: subscribed again, it stays where it is
		r.mu.Unlock()
	case mUnsubscribe:
		uri, _ := f.String(f.Param("uri"))
		r.mu.Lock()
		if r.ids.byFront[string(f.ID())] == nil {
			// (One reusing the id of a request in flight is refused,
			// and changes nothing.)
			delete(r.host.subs, uri)
		}
		r.mu.Unlock()
	}
}

// A backend may refuse any request with -32042 until the user has done
// something at a URL (elicitation 2025-11-25, "URL Elicitation Required
// Error"): connect an account, say. With one backend the host gets the
// error and opens the URL. Merged, a list request is the bridge's own, and
// leaving the backend out of the list would hide it with no word why: so
// the bridge puts the elicitations to the host itself, as URL-mode
// elicitation/create requests (ids tagged NAME/id, as the backend's own
// are), if the host takes them. When the backend then sends
// notifications/elicitation/complete for one, its lists are fetched
// again (list_changed), now with its items.

// maxURLAsked bounds the URL elicitations remembered (completed ones are
// forgotten first when it is reached).
const maxURLAsked = 256

type urlAsk struct {
	link *link
	done bool // the backend sent notifications/elicitation/complete
}

// askURLs puts the URL elicitations of l's -32042 answer in err to the
// host, each once until l completes it or changes.
func (a *aggregator) askURLs(l *link, err error) {
	var ae *answerError
	if !errors.As(err, &ae) || !bytes.Contains(ae.f.Error(), []byte("-32042")) {
		return
	}
	r := a.r
	r.mu.Lock()
	takes := rawField(rawField(rawField(r.host.initParams, "capabilities"), "elicitation"), "url") != nil
	r.mu.Unlock()
	if !takes {
		l.log.Warn().Msg("the backend asks for a URL elicitation, which the host did not declare it takes")
		return
	}
	var e struct {
		Code int `json:"code"`
		Data struct {
			Elicitations []struct {
				Mode    string `json:"mode"`
				ID      string `json:"elicitationId"`
				URL     string `json:"url"`
				Message string `json:"message"`
			} `json:"elicitations"`
		} `json:"data"`
	}
	if json.Unmarshal(ae.f.Error(), &e) != nil || e.Code != -32042 {
		return
	}
	// One refusal's elicitations at a time per backend: a server that
	// makes a new id for each refusal (a UUID) would otherwise have the
	// host show one prompt per list gathered, all for one connection.
	// Checked and taken under one lock: lists are gathered concurrently.
	var ids []string
	var params [][]byte
	a.mu.Lock()
	for _, o := range a.urlAsked {
		if o.link == l && !o.done {
			a.mu.Unlock()
			return
		}
	}
	if len(a.urlAsked) >= maxURLAsked {
		for k, o := range a.urlAsked {
			if o.done {
				delete(a.urlAsked, k)
			}
		}
	}
	for _, el := range e.Data.Elicitations {
		id := l.name + "/" + el.ID
		if _, asked := a.urlAsked[id]; asked || el.Mode != "url" || el.ID == "" || el.URL == "" || len(a.urlAsked) >= maxURLAsked {
			continue
		}
		if a.urlAsked == nil {
			a.urlAsked = map[string]urlAsk{}
		}
		a.urlAsked[id] = urlAsk{link: l}
		ids = append(ids, el.ID)
		p, _ := json.Marshal(map[string]string{"mode": "url", "elicitationId": id, "url": el.URL, "message": el.Message})
		params = append(params, p)
	}
	a.mu.Unlock()
	for i, id := range ids {
		tagged := l.name + "/" + id
		r.askHost(l, mElicit, params[i], func(f *frame.Frame) {
			// Declined, cancelled or failed: the user will not complete
			// it, and the backend's next refusal may ask again.
			if action, _ := f.String(f.Field(f.ResultSpan(), "action")); f.IsError() || action != "accept" {
				a.urlsSettled(l, tagged)
			}
		})
		l.log.Info().Str("elicitationId", id).Msg("the backend needs the user at a URL first: asked the host")
	}
}

// urlsSettled marks l's outstanding URL elicitations done (only the one
// tagged id, if not ""), so that a later refusal asks the host again: the
// backend answered a list (it needs the user no more, whether or not it
// says so: notifications/elicitation/complete is optional), or the host
// declined.
func (a *aggregator) urlsSettled(l *link, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, o := range a.urlAsked {
		if o.link == l && !o.done && (id == "" || k == id) {
			a.urlAsked[k] = urlAsk{link: l, done: true}
		}
	}
}

// urlDone follows a backend's notifications/elicitation/complete: if it
// completes one of askURLs', the backend's lists are fetched again.
func (a *aggregator) urlDone(l *link, f *frame.Frame) {
	id, ok := f.String(f.Param("elicitationId")) // as the backend sent it: edits apply when written
	if !ok {
		return
	}
	id = l.name + "/" + id
	a.mu.Lock()
	o, ok := a.urlAsked[id]
	asked := ok && o.link == l && !o.done
	if asked {
		a.urlAsked[id] = urlAsk{link: l, done: true}
		a.gen++
		delete(a.cache, l)
		clear(a.merged)
		a.urisStale = true
	}
	a.mu.Unlock()
	if asked {
		for _, m := range []string{mToolsChanged, mPromptsChanged, mResourcesChanged} {
			a.notifyHost(m)
		}
	}
}

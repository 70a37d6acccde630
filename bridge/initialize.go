package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// handleInitialize answers the host's initialize itself, after initializing
// every backend once, in parallel, with the host's real capabilities and
// clientInfo (issue #3). It runs in its own goroutine so that the host's
// stdin keeps being read (ping, cancellations) meanwhile.
func (r *router) handleInitialize(f *frame.Frame) {
	r.mu.Lock()
	if r.host.initStarted {
		r.mu.Unlock()
		r.replyError(f.ID(), frame.CodeInvalidRequest, "invalid request: initialize was already received", nil)
		return
	}
	r.host.initStarted = true
	r.mu.Unlock()

	asked, _ := f.String(f.Param("protocolVersion"))
	version := asked
	if !handshakeVersions[version] {
		version = latestVersion
	}
	// The backends get the host's own params, byte for byte (unknown
	// capability keys, _meta, clientInfo), with only the version set.
	params := f.Params()
	if params == nil || params[0] != '{' {
		params = []byte(`{}`)
	}
	pf, _ := frame.Parse(append([]byte(`{"jsonrpc":"2.0","method":"x","params":`), append(bytes.Clone(params), '}')...))
	pv, _ := json.Marshal(version)
	if s := pf.Param("protocolVersion"); s.Ok() {
		pf.Replace(s, pv)
	} else {
		pf.InsertMember(pf.Param(), "protocolVersion", pv)
	}
	pf2, _ := frame.Parse(pf.Encoded())
	r.mu.Lock()
	r.host.initParams = bytes.Clone(pf2.Params())
	r.host.version = version
	r.mu.Unlock()
	r.log.Info().Str("asked", asked).Str("protocolVersion", version).Msg("host initialize")

	id := bytes.Clone(f.ID())
	go r.initializeBackends(id, version)
}

func (r *router) initializeBackends(id []byte, version string) {
	var wg sync.WaitGroup
	for _, l := range r.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer l.settleNow()
			select {
			case <-l.opened:
			case <-r.life.Done():
				return
			}
			l.mu.Lock()
			s, openErr := l.sess, l.downErr
			l.mu.Unlock()
			if s == nil {
				l.log.Error().Err(openErr).Msg("backend could not start")
				return
			}
			if err := l.initialize(nil); err != nil {
				l.log.Error().Err(err).Msg("backend could not be initialized")
				l.mu.Lock()
				l.downErr = err
				l.mu.Unlock()
				return
			}
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	t := time.NewTimer(r.cfg.InitTimeout)
	defer t.Stop()
	select {
	case <-all:
	case <-t.C:
		r.log.Warn().Dur("initTimeout", r.cfg.InitTimeout).Msg("answering initialize without the backends that are still starting")
	case <-r.life.Done():
		// Stopping (a signal) before the backends were up: the host's
		// initialize is in flight and gets its answer like any request.
		r.replyError(id, frame.CodeInternalError, "mcpbridge is shutting down: the backends were not initialized", nil)
		return
	}

	var up []*link
	var failures []string
	for _, l := range r.links {
		l.mu.Lock()
		ready, why := l.everReady && l.downErr == nil && l.sess != nil, l.downErr
		l.mu.Unlock()
		if ready {
			up = append(up, l)
			continue
		}
		if why == nil {
			why = fmt.Errorf("still starting after %v", r.cfg.InitTimeout)
		}
		failures = append(failures, l.named(why.Error()))
		if len(r.links) > 1 {
			// Late backends join when they come up (issue #4).
			go r.joinLate(l)
		}
	}
	if len(up) == 0 {
		msg := "no backend could be initialized: " + strings.Join(failures, "; ")
		data := map[string]any{"reason": strings.Join(failures, "; ")}
		if len(r.links) == 1 {
			data["backend"] = r.links[0].name
		}
		r.mu.Lock()
		r.host.fatal = fmt.Errorf("%w: %s", ErrBackendsFailed, strings.Join(failures, "; "))
		r.mu.Unlock()
		r.replyError(id, frame.CodeInternalError, msg, data)
		r.finishInit(true)
		// The bridge has nothing to offer: stop, exit non-zero.
		r.cancel()
		return
	}
	r.reply(id, frame.NewResult(id, r.initializeResult(version, up)))
	r.finishInit(false)
}

// joinLate waits for a backend that missed the host's initialize and tells
// the host about its tools once it is up.
func (r *router) joinLate(l *link) {
	select {
	case <-l.settled:
	case <-r.life.Done():
		return
	}
	if l.isReady() {
		l.log.Info().Msg("backend joined late")
		// What the host set meanwhile (log level, subscriptions) applies
		// to it too; fanOut skipped it while it was not ready.
		l.restoreState(false)
		r.agg.backendChanged(l)
	}
}

// finishInit marks the host's initialize answered and releases the host
// requests queued behind it if the host has sent notifications/initialized
// too (or has no more to say, or the bridge is giving up: fatal).
func (r *router) finishInit(fatal bool) {
	r.mu.Lock()
	close(r.host.initDone)
	r.host.inputEnded = r.host.inputEnded || fatal
	r.armAssumeLocked()
	r.mu.Unlock()
	r.releaseQueued()
}

// assumeGrace is how long host requests wait for notifications/initialized
// once the host's initialize was answered. A host that follows the spec
// sends it before anything else; one that asks without it (a script
// that pipes initialize and its calls and keeps its input open) is then
// taken as initialized, as at the end of its input.
const assumeGrace = time.Second

// armAssumeLocked starts the assumeGrace timer once the initialize was
// answered and a host request waits for notifications/initialized.
// r.mu is held.
func (r *router) armAssumeLocked() {
	h := &r.host
	if h.assumeTimer != nil || h.open || h.inputEnded || len(h.queued) == 0 ||
		!isClosed(h.initDone) || isClosed(h.initialized) {
		return
	}
	h.assumeTimer = time.AfterFunc(assumeGrace, func() {
		r.mu.Lock()
		skip := isClosed(r.host.initialized) || r.host.inputEnded || r.life.Err() != nil
		r.mu.Unlock()
		if skip {
			return
		}
		r.log.Warn().Dur("after", assumeGrace).Msg("the host sent requests but no notifications/initialized; taking it as initialized")
		r.hostNotification(frame.NewNotification(mInitialized, nil))
	})
}

// releaseQueued routes, in order, the host requests held until its
// initialize was answered and it sent notifications/initialized, once both
// happened, or once the initialize was answered and the host's input
// ended (a host that never sends initialized still gets its answers).
//
// Until the queue is empty, requests that come meanwhile join it: the
// release may run beside the reader (the assumeGrace timer), and must not
// let a later request overtake a held one.
func (r *router) releaseQueued() {
	r.mu.Lock()
	if r.host.open || r.host.releasing || !isClosed(r.host.initDone) || !(isClosed(r.host.initialized) || r.host.inputEnded) {
		r.mu.Unlock()
		return
	}
	r.host.releasing = true
	for {
		queued := r.host.queued
		r.host.queued = nil
		if len(queued) == 0 {
			r.host.open, r.host.releasing = true, false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		for _, f := range queued {
			if r.life.Err() != nil {
				r.refuse(f, frame.CodeInternalError, "the bridge is shutting down", nil)
				continue
			}
			r.route(f)
		}
		r.mu.Lock()
	}
}

// announceListChanged records that the host was told the list kind k
// ("tools", "prompts", "resources") may change (capabilities.k.listChanged):
// the bridge sends its own notifications/k/list_changed only then.
func (r *router) announceListChanged(k string) {
	r.mu.Lock()
	if r.host.listChanged == nil {
		r.host.listChanged = map[string]bool{}
	}
	r.host.listChanged[k] = true
	r.mu.Unlock()
}

// initializeResult is the bridge's answer to the host's initialize.
func (r *router) initializeResult(version string, up []*link) []byte {
	type result struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      json.RawMessage `json:"serverInfo"`
		Instructions    string          `json:"instructions,omitempty"`
	}
	if r.raw {
		// One backend: the host sees that server, as directly as possible.
		// The backend's version, whatever the host asked: a server that
		// does not support the requested version "MUST respond with
		// another protocol version it supports", and the host decides
		// whether it can speak that (adopt refused any the bridge cannot).
		res := up[0].initRes
		v := res.Version
		caps := json.RawMessage(`{}`)
		if c := rawField(res.raw, "capabilities"); c != nil {
			caps = c
		}
		for _, k := range []string{"tools", "prompts", "resources"} {
			if string(rawField(rawField(caps, k), "listChanged")) == "true" {
				r.announceListChanged(k)
			}
		}
		// The backend's own result, _meta and members unknown to the
		// bridge included, with the required members there.
		if b := bytes.TrimSpace(res.raw); len(b) > 0 && b[0] == '{' {
			vb, _ := json.Marshal(v)
			out := frame.SetMember(b, "protocolVersion", vb)
			if frame.Member(out, "capabilities") == nil {
				out = frame.SetMember(out, "capabilities", caps)
			}
			if res.ServerInfo == nil {
				out = frame.SetMember(out, "serverInfo", r.serverInfo())
			}
			return out
		}
		info := res.ServerInfo
		if info == nil {
			info = r.serverInfo()
		}
		b, _ := json.Marshal(result{v, caps, info, res.Instructions})
		return b
	}
	caps := map[string]json.RawMessage{}
	var instr []string
	for _, l := range up {
		if l.initRes.Version > version {
			// It refused the host's version. The merged server still
			// speaks the host's: the others do, and MCP versions add
			// members a client ignores more than they change them.
			l.log.Warn().Str("protocolVersion", l.initRes.Version).Str("host", version).Msg("the backend answered a newer protocol version than the host asked for; its messages may carry what the host did not negotiate")
		}
		for k, v := range l.initRes.Capabilities {
			caps[k] = mergeJSON(caps[k], v)
		}
		if l.initRes.Instructions != "" {
			instr = append(instr, "## "+l.name+"\n"+l.initRes.Instructions)
		}
	}
	narrowTasks(caps, up)
	// Logging is always offered: the bridge relays any backend's log
	// messages (one that logs without declaring it too, or one that joins
	// late) and takes logging/setLevel itself, passing it on to the
	// backends that declared logging, now and when they (re)join.
	caps["logging"] = mergeJSON(caps["logging"], json.RawMessage(`{}`))
	// The bridge tells the host when backends join, restart or change its
	// lists. Tools are always offered (a late backend may bring some);
	// prompts and resources when a backend that is up has them.
	for _, k := range []string{"tools", "prompts", "resources"} {
		if _, ok := caps[k]; ok || k == "tools" {
			caps[k] = mergeJSON(caps[k], json.RawMessage(`{"listChanged":true}`))
			r.announceListChanged(k)
		}
	}
	cb, _ := json.Marshal(caps)
	b, _ := json.Marshal(result{version, cb, r.serverInfo(), strings.Join(instr, "\n\n")})
	return b
}

// narrowTasks keeps tasks.list and tasks.cancel in the merged
// capabilities only if every backend that runs tasks (runsTasks; one
// that declares tasks without tools.call makes none) declared them: a
// task of a backend without list, retrievable with tasks/get, would be
// missing from the merged tasks/list (the spec: it "MUST be retrievable
// via tasks/list"), and one without cancel answers tasks/cancel -32601.
func narrowTasks(caps map[string]json.RawMessage, up []*link) {
	merged, ok := caps["tasks"]
	if !ok {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(merged, &m) != nil || m == nil {
		return
	}
	for _, k := range []string{"list", "cancel"} {
		for _, l := range up {
			if own, has := l.initRes.Capabilities["tasks"]; has && runsTasks(own) && rawField(own, k) == nil {
				delete(m, k)
				break
			}
		}
	}
	caps["tasks"], _ = json.Marshal(m)
}

func (r *router) serverInfo() json.RawMessage {
	b, _ := json.Marshal(map[string]string{"name": "mcpbridge", "version": r.cfg.Version})
	return b
}

// rawField returns obj's member key as raw bytes, or nil.
func rawField(obj []byte, key string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return nil
	}
	return m[key]
}

// mergeJSON unions two JSON values: objects member by member, true wins
// over false, otherwise the first value is kept. Unknown capability keys
// survive as they are.
func mergeJSON(a, b json.RawMessage) json.RawMessage {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal(a, &ma) == nil && json.Unmarshal(b, &mb) == nil && ma != nil && mb != nil {
		for k, v := range mb {
			ma[k] = mergeJSON(ma[k], v)
		}
		out, _ := json.Marshal(ma)
		return out
	}
	if string(b) == "true" {
		return b
	}
	return a
}

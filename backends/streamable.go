package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
)

// Resumption of an answer stream that broke before the answer came.
const (
	resumeAttempts = 3                     // consecutive failed reconnections
	resumeDefault  = time.Second           // delay when the server sent no retry field
	minReconnect   = 10 * time.Millisecond // delay for a retry field of 0
	deleteTimeout  = 2 * time.Second
	// answerGrace is how long an answer stream may stay open after the
	// answer. Servers end it right away; reading to that end lets the
	// connection be reused (a body closed early costs a new TLS handshake).
	answerGrace = time.Second
)

// A streamable is a streamable-HTTP session (MCP 2025-03-26 and later):
// one POST per message to cfg.URL, answered with 202, one JSON message or
// an SSE stream of messages ending with the answer, plus an optional GET
// stream for what the server sends on its own.
//
// Ownership: each POST has its own goroutine, which owns that response and
// delivers its answer; the GET goroutine owns the GET stream. mu guards
// the session state below it, which every goroutine reads through state().
type streamable struct {
	*httpCore
	url string

	// fallback, if set (URL backends), learns how the first POST was
	// answered (detail explains a non-2xx status). If it returns true it
	// has taken the message over and this session delivers nothing for it.
	fallback  func(m outMsg, status int, detail string) bool
	firstSent atomic.Bool
	closeOnce sync.Once

	mu        sync.Mutex
	sessionID string // from the initialize answer's Mcp-Session-Id
	protocol  string // the initialize result's protocolVersion
	gen       uint64 // upstream session generation: bumped by each re-initialization
	lost      bool   // the server lost generation gen and no re-initialization succeeded yet
	rejoining *rejoinCall
	reinits   int    // re-initializations started, for their internal ids
	initReq   []byte // the router's initialize, as written, replayed after a loss
	initNote  []byte // the router's notifications/initialized, as written
	getCancel context.CancelFunc
	// getReady is closed once the standalone stream of generation getGen
	// had a first answer; getRefused says the server refused it with a
	// 4xx other than 405 (perhaps only until notifications/initialized).
	getReady   chan struct{}
	getGen     uint64
	getRefused bool
}

// A rejoinCall is one re-initialization in flight; requests that found
// the session lost wait for it instead of starting their own.
type rejoinCall struct {
	done chan struct{}
	err  error // set before done is closed
}

// sessionState is a snapshot of what a request is sent with.
type sessionState struct {
	sessionID, protocol string
	gen                 uint64
	lost                bool
}

// openStreamable returns a streamable-HTTP session for cfg.URL. ctx is not
// used: nothing is dialled until the router's first Send.
func openStreamable(_ context.Context, cfg config.Backend, opts Options) (Session, error) {
	s, err := newStreamable(cfg, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newStreamable does no network I/O: the router's initialize is the first
// request.
func newStreamable(cfg config.Backend, opts Options) (*streamable, error) {
	u, err := parseBackendURL(cfg)
	if err != nil {
		return nil, err
	}
	return &streamable{httpCore: newHTTPCore(cfg, opts), url: u.String()}, nil
}

// state snapshots what the next request goes out with. A request keeps
// its snapshot: on a 404 its generation says which session was lost.
func (s *streamable) state() sessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sessionState{s.sessionID, s.protocol, s.gen, s.lost}
}

// Send starts the POST of f and returns; its answer, or a failure, comes
// through Recv. The session owns f from here: its bytes are posted (and,
// for the handshake, kept) without a copy unless the router edited it.
func (s *streamable) Send(f *frame.Frame) error {
	if s.ctx.Err() != nil {
		return s.closedErr()
	}
	spare, err := s.acquireFor(f)
	if err != nil {
		if f.Kind == frame.Notification && f.Method == methodCancelled {
			// No room to POST the cancellation, its reserve included
			// (every slot held, maybe by calls like the one it cancels):
			// that call's POST still ends, which frees a slot.
			m := newOutMsg(f)
			if !s.unsent.cancel(&m) && m.abortReq != nil {
				m.abortReq()
			}
		}
		return err
	}
	m := newOutMsg(f)
	m.spare = spare
	m.seen = s.replaced.Load()
	m.first = s.firstSent.CompareAndSwap(false, true)
	s.observe(m)
	switch {
	case m.kind == frame.Request:
		s.unsent.mark(m.id)
	case m.kind == frame.Response:
		// postOther drops it if that session is gone by the time it can go.
		var from upcall
		from, m.hasOrigin = s.ups.take(m.f.OutID())
		m.origin, m.via = from.origin, from.via
	case s.unsent.cancel(&m):
		// Its request was never sent and will not be: nothing to say.
		// Checked here, not in the POST goroutine, which would wait
		// behind the same gate as the request and lose the race to it.
		s.releaseFor(m)
		s.log.Debug().Msg("a request cancelled before it was sent: it will not be")
		return nil
	}
	if err := s.launch(m, s.post); err != nil {
		s.unsent.end(m.id)
		return err
	}
	return nil
}

// observe keeps the handshake messages for replay after a session loss.
func (s *streamable) observe(m outMsg) {
	switch {
	case m.kind == frame.Request && m.method == methodInitialize:
		s.mu.Lock()
		s.initReq = m.f.Encoded()
		s.mu.Unlock()
	case m.kind == frame.Notification && m.method == methodInitialized:
		s.mu.Lock()
		s.initNote = m.f.Encoded()
		s.mu.Unlock()
	}
}

// post runs in m's own goroutine (see launch).
func (s *streamable) post(m outMsg) {
	if m.kind == frame.Request {
		s.postRequest(m)
	} else {
		s.postOther(m)
	}
}

// postRequest POSTs a request and delivers exactly one answer for it:
// the server's, or a failure.
func (s *streamable) postRequest(m outMsg) {
	// The request's own context: cancelling it aborts a stream that stays
	// open after the answer.
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	defer s.unsent.end(m.id)
	isInit := m.method == methodInitialize
	// At most two rounds: the second only after the server lost the
	// session and a new one was set up.
	for retried := false; ; retried = true {
		st := s.state()
		if st.lost && !isInit {
			// A re-initialization failed earlier (the server was down, say):
			// try again before sending into a session that is gone.
			if err := s.rejoin(ctx, st.gen); err != nil {
				s.fail(m.id, fmt.Sprintf("the server lost the session and starting a new one failed: %v", err))
				return
			}
			st = s.state()
		}
		if !isInit && m.seen != s.replaced.Load() {
			// Sent before the router knew of the new session.
			s.awaitRestored(ctx, m)
			st = s.state()
		}
		if s.unsent.begin(m.id, st, cancel) {
			s.fail(m.id, "cancelled before it was sent")
			return
		}
		resp, err := s.postBody(ctx, m.f, st, isInit)
		s.unsent.posted(m.id)
		if err != nil {
			// Refused, reset, DNS, or aborted by its cancellation
			// (unsent.cancel): fail fast, the router decides what next.
			s.fail(m.id, failureReason("post", err))
			return
		}
		if resp.StatusCode/100 == 2 {
			s.answered(m, resp, nil)
			if isInit {
				// A new upstream session: requests still carrying an
				// older one find it replaced if they hit a 404.
				s.mu.Lock()
				s.sessionID = resp.Header.Get(headerSessionID)
				s.gen++
				s.lost = false
				st.gen = s.gen // what the answer stream carries belongs to it
				st.sessionID = s.sessionID
				s.mu.Unlock()
			}
			ok, err := s.readAnswer(ctx, cancel, resp, m.id, st, func(f *frame.Frame) {
				if isInit {
					// Before delivering: the router's next message
					// must already carry the version header.
					s.learnProtocol(f)
					if !f.IsError() {
						// Open the standalone stream now, as go-sdk's
						// client does, while the host reads this answer
						// and sends notifications/initialized: the
						// first messages after that wait for the
						// stream (postOther), and this takes that wait
						// off the cold start (issue #6).
						s.startGET()
					}
				}
				s.deliver(f)
			})
			switch {
			case err != nil:
				// Also when its cancellation aborted the stream
				// (unsent.cancel): every request sent gets one answer
				// (Session.Send); the router drops this one.
				s.fail(m.id, err.Error())
			case !ok:
				s.log.Debug().Bytes("id", m.id).Msg("request accepted with 202: its answer comes on the GET stream")
			}
			return
		}
		body := readErrorBody(resp)
		if s.answered(m, resp, body) {
			return // a URL backend switched to SSE and re-sent m there
		}
		if !retried && !isInit && s.sessionLost(resp.StatusCode, body, st, m.id) {
			s.log.Debug().Int("status", resp.StatusCode).Msg("backend lost the session")
			// Unsent again until the new session has it: a cancellation
			// meanwhile stops it here instead of racing it there.
			s.unsent.mark(m.id)
			if err := s.rejoin(ctx, st.gen); err != nil {
				s.fail(m.id, fmt.Sprintf("the server lost the session (HTTP %s) and starting a new one failed: %v", resp.Status, err))
				return
			}
			continue
		}
		// 401/403, 5xx, other 4xx: one answer naming the status (also if
		// the request's cancellation cut its body short: only a closing
		// session answers nothing).
		if s.ctx.Err() == nil {
			s.deliver(s.statusAnswer(m.id, resp, body))
		}
		return
	}
}

// answered tells the URL fallback how the first POST was answered (body
// is the start of a non-2xx answer). It reports whether the fallback took
// the message over.
func (s *streamable) answered(m outMsg, resp *http.Response, body []byte) bool {
	if !m.first || s.fallback == nil {
		return false
	}
	detail := ""
	if resp.StatusCode/100 != 2 {
		detail = s.statusReason(resp, body)
	}
	return s.fallback(m, resp.StatusCode, detail)
}

// postOther POSTs a notification or a response; nothing answers those, so
// failures are only logged.
func (s *streamable) postOther(m outMsg) {
	if m.abortReq != nil {
		defer m.abortReq() // the request's POST, once its cancellation went
	}
	ctx := s.ctx
	st := s.state()
	if m.kind == frame.Response && (!m.hasOrigin || m.origin != st.gen) {
		// The request came in a session since replaced (the router had
		// not heard of it yet when the host's answer came), or the server
		// cancelled it (upcalls.note), or it was answered already.
		s.log.Debug().Msg("dropping an answer to no request of this session's")
		return
	}
	if m.method == methodCancelled {
		if !waitPosted(ctx, m) {
			return
		}
		st = s.state()
		if rst := m.cancelIn; m.cancelSet && rst.sessionID != "" && rst.gen != st.gen {
			// About a request still running in the session it was sent
			// in, which the bridge has left since (a stale 404): that
			// session's server is the one to cancel it.
			s.postIn(ctx, m, rst)
			return
		}
	}
	if st.lost {
		if m.kind == frame.Response || m.method == methodProgress {
			// About a request of the lost session, whose ids and tokens
			// the new session reuses for its own: drop it.
			s.log.Debug().Str("kind", m.kind.String()).Msg("dropping a message of a lost session")
			return
		}
		// A new session is being set up (or the last try failed): the
		// rest belongs in it (a cancellation names a request under the
		// bridge's own id, unique across sessions). Without a session id
		// the server would take the POST as a session of its own and
		// drop it unseen.
		if err := s.rejoin(ctx, st.gen); err != nil {
			if ctx.Err() == nil {
				s.log.Warn().Str("method", m.method).Str("error", s.redact(err.Error())).Msg("dropping a message: the server lost the session and starting a new one failed")
			}
			return
		}
		st = s.state()
	}
	resp, err := s.postBody(ctx, m.f, st, false)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn().Str("method", m.method).Str("error", s.redact(netReason(err))).Msg("posting to backend failed")
		}
		return
	}
	if resp.StatusCode/100 == 2 {
		drain(resp)
		s.answered(m, resp, nil)
		if m.method == methodInitialized {
			// The session is fully open: now the server may talk on its
			// own. Hold what the router sends next (m's gate) until the
			// standalone stream is up or refused: a server sends
			// notifications that belong to no request only there, and
			// drops them while it is missing (a list_changed right after a
			// first tool call was lost that way under load). Bounded, so a
			// server slow to answer the GET costs at most once a second.
			s.awaitGET()
		}
		return
	}
	body := readErrorBody(resp)
	if s.answered(m, resp, body) {
		return
	}
	if s.sessionLost(resp.StatusCode, body, st, nil) {
		// Nothing to retry (a notification or answer for the old session
		// means nothing to a new one), but the next request should not
		// pay for the discovery.
		s.log.Debug().Int("status", resp.StatusCode).Msg("backend lost the session")
		if err := s.rejoin(ctx, st.gen); err != nil && ctx.Err() == nil {
			s.log.Warn().Str("error", s.redact(err.Error())).Msg("re-initializing the backend failed")
		}
		return
	}
	s.log.Warn().Str("method", m.method).Str("error", s.redact(s.statusReason(resp, body))).Msg("backend refused a message")
}

// postIn POSTs notification m in session st (not the current one); a
// failure is only logged: that session may be gone for good.
func (s *streamable) postIn(ctx context.Context, m outMsg, st sessionState) {
	resp, err := s.postBody(ctx, m.f, st, false)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Debug().Str("method", m.method).Str("error", s.redact(netReason(err))).Msg("posting to an earlier session failed")
		}
		return
	}
	drain(resp)
}

// cancelledID is the requestId a notifications/cancelled names, or nil.
func cancelledID(m outMsg) []byte {
	f, err := frame.Parse(m.f.Encoded())
	if err != nil {
		return nil
	}
	return f.Bytes(f.Param("requestId"))
}

// sessionLost reports whether a non-2xx answer means the server no longer
// knows the session the request carried: 404 (the spec's signal), or a
// 400 that talks about the session (what several servers send instead).
//
// Not when the body is the JSON-RPC answer to the request itself (id, the
// request's; nil for other messages): that is the request's own error
// ("invalid params: session_id is required"), which servers answering
// with a matching HTTP status send, while a server that lost the session
// answers with id null or none (go-sdk, the TypeScript and Python SDKs).
func (s *streamable) sessionLost(status int, body []byte, st sessionState, id []byte) bool {
	if st.sessionID == "" {
		return false
	}
	if status != http.StatusNotFound && !(status == http.StatusBadRequest && bytes.Contains(bytes.ToLower(body), []byte("session"))) {
		return false
	}
	if id != nil && bytes.Contains(body, []byte(`"jsonrpc"`)) {
		if f, err := frame.Parse(bytes.Clone(body)); err == nil && isAnswer(f, id) {
			return false
		}
	}
	return true
}

// postBody sends one POST. An initialize goes without session and
// protocol headers: it starts a session.
func (s *streamable) postBody(ctx context.Context, body *frame.Frame, st sessionState, init bool) (*http.Response, error) {
	req, err := s.newRequest(ctx, http.MethodPost, s.url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mediaJSON)
	req.Header.Set("Accept", mediaJSON+", "+mediaSSE)
	if !init {
		s.sessionHeaders(req, st)
	}
	return s.do(req)
}

// sessionHeaders adds what identifies the upstream session, once known.
func (s *streamable) sessionHeaders(req *http.Request, st sessionState) {
	if st.sessionID != "" {
		req.Header.Set(headerSessionID, st.sessionID)
	}
	if st.protocol != "" {
		req.Header.Set(headerProtocol, st.protocol)
	}
}

// learnProtocol keeps the version the server chose in its initialize
// result, for the MCP-Protocol-Version header of every later request.
func (s *streamable) learnProtocol(f *frame.Frame) {
	if v := protocolVersion(f); v != "" {
		s.mu.Lock()
		s.protocol = v
		s.mu.Unlock()
	}
}

// readAnswer reads a 2xx answer to the request id and closes it. The
// response for id goes to onAnswer, every other message to Recv. ok is
// false, with a nil error, for 202/204: the answer will come another way.
// An error means the answer was lost. cancel cancels ctx, the request's
// own context. st is the session the request was sent in: the answer's
// messages belong to its generation, and a resumption goes to it.
func (s *streamable) readAnswer(ctx context.Context, cancel context.CancelFunc, resp *http.Response, id []byte, st sessionState, onAnswer func(*frame.Frame)) (ok bool, err error) {
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNoContent {
		drain(resp)
		return false, nil
	}
	switch mt := mediaType(resp.Header); mt {
	case mediaJSON:
		defer resp.Body.Close()
		return true, s.readJSONAnswer(resp, id, st.gen, onAnswer)
	case mediaSSE:
		return true, s.readStreamAnswer(ctx, cancel, resp, id, st, onAnswer)
	default:
		drain(resp)
		return true, fmt.Errorf("answer of type %q (HTTP %s) is neither JSON nor an event stream", mt, resp.Status)
	}
}

// readJSONAnswer reads an application/json answer: one message, or an
// array of them; the response for id goes to onAnswer.
func (s *streamable) readJSONAnswer(resp *http.Response, id []byte, gen uint64, onAnswer func(*frame.Frame)) error {
	body, err := readBody(resp, s.maxMsg)
	if err != nil {
		return fmt.Errorf("reading the answer: %s", netReason(err))
	}
	msgs, err := splitJSON(body)
	if err != nil {
		return err
	}
	got := false
	for _, b := range msgs {
		f, ok := s.parseMessage(b)
		switch {
		case !ok:
		case !got && isAnswer(f, id):
			got = true
			onAnswer(f)
		default:
			s.deliverFrom(viaRequest(f, id), gen)
		}
	}
	if !got {
		return errors.New("the server's answer did not contain the response")
	}
	return nil
}

// readStreamAnswer reads an SSE answer until the response for id. If the
// stream breaks first and the server gave its events ids, it resumes with
// GET and Last-Event-ID, as the spec's "Resumability and Redelivery" asks:
// after the server's retry delay, for as long as the request lasts while
// reconnecting works (2025-11-25 lets a server close the stream at any
// time and have the client poll: "disconnection SHOULD NOT be interpreted
// as the client cancelling its request"), and until resumeAttempts
// reconnections in a row failed.
func (s *streamable) readStreamAnswer(ctx context.Context, cancel context.CancelFunc, resp *http.Response, id []byte, st sessionState, onAnswer func(*frame.Frame)) error {
	gen := st.gen
	rd := getSSEReader(resp.Body, s.maxMsg)
	defer putSSEReader(rd)
	body := resp.Body
	attempts := 0
	var tooBig error
	for {
		_, got, err := s.pumpAnswer(rd, id, gen, onAnswer, &tooBig)
		if got {
			// Read on to the end the server is about to send, within bounds.
			t := time.AfterFunc(answerGrace, cancel)
			_, _ = s.pumpAll(rd, gen)
			t.Stop()
		}
		body.Close()
		switch {
		case got:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case tooBig != nil:
			return fmt.Errorf("skipped a message from the server: %v", tooBig)
		case rd.LastEventID == "":
			return fmt.Errorf("the server ended the answer stream before the answer (%s)", streamEnd(err))
		}
		for {
			if s.unsent.isCancelled(id) {
				// The router cancelled it (the host did, or it timed out):
				// no answer will come to poll for.
				return errors.New("cancelled while its answer stream was resumed")
			}
			if attempts++; attempts > resumeAttempts {
				return fmt.Errorf("the answer stream broke (%s) and resuming it failed %d times", streamEnd(err), resumeAttempts)
			}
			delay := resumeDefault
			if rd.RetrySet {
				// The spec: the client MUST respect it. 0 is "at once",
				// floored so that a server that closes every stream at
				// once is not polled in a busy loop.
				delay = max(rd.Retry, minReconnect)
			}
			// The delay is the server's, and may be long: a cancellation
			// ends the wait, so the call holds nothing once it ended.
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-s.unsent.stopped(id):
				t.Stop()
			}
			if s.unsent.isCancelled(id) {
				return errors.New("cancelled while its answer stream was resumed")
			}
			// In the stream's own session: its event ids mean nothing
			// to another (and while a new one is set up there is none).
			r, gerr := s.get(ctx, st, rd.LastEventID)
			if gerr == nil {
				body = r.Body
				rd.Reset(body)
				attempts = 0
				break
			}
			var se *statusError
			if errors.As(gerr, &se) && se.code == http.StatusNotFound && st.sessionID != "" {
				// The server lost the session, and the answer with it
				// (the spec: on a 404 for its session the client MUST
				// start a new one): the call fails now, and the next
				// request finds the new session.
				if rerr := s.rejoin(s.ctx, st.gen); rerr != nil && s.ctx.Err() == nil {
					s.log.Warn().Str("error", s.redact(rerr.Error())).Msg("re-initializing the backend failed")
				}
				return errors.New("the server lost the session while the answer stream was resumed (HTTP 404): its answer is gone")
			}
			err = gerr
			if e := s.log.Debug(); e.Enabled() {
				e.Str("error", s.redact(gerr.Error())).Msg("resuming an answer stream failed")
			}
		}
	}
}

// streamEnd describes why a stream ended, for failures and logs.
func streamEnd(err error) string {
	if err == nil || errors.Is(err, io.EOF) {
		return "end of stream"
	}
	return netReason(err)
}

// viaRequest marks f, a server's request that came on the answer stream
// of request id, as sent for it (frame.Via), so that the router holds that
// call's idle timeout, not every call's, while the host answers it. A nil
// id (the standalone stream) marks nothing.
func viaRequest(f *frame.Frame, id []byte) *frame.Frame {
	if id != nil && f.Kind == frame.Request {
		f.Via = id
	}
	return f
}

// deliverFrom delivers f, a message of session generation gen.
func (s *streamable) deliverFrom(f *frame.Frame, gen uint64) bool {
	s.ups.note(f, gen)
	return s.deliver(f)
}

// pumpAnswer delivers the messages of one answer stream until the
// response for id (got) or the end of the stream (err). With a nil id it
// delivers everything until the end (the standalone stream).
func (s *streamable) pumpAnswer(rd *sseReader, id []byte, gen uint64, onAnswer func(*frame.Frame), tooBig *error) (progress, got bool, err error) {
	for {
		ev, err := rd.Next()
		if errors.Is(err, errEventTooLong) {
			s.log.Warn().Err(err).Msg("skipping an oversized message from backend")
			*tooBig = err
			continue
		}
		if err != nil {
			return progress, false, err
		}
		if ev.Type != "message" {
			continue
		}
		progress = true
		answered := false
		if !s.eachMessage(ev.Data, func(b []byte) bool {
			f, ok := s.parseMessage(b)
			switch {
			case !ok:
				return true
			case !answered && isAnswer(f, id):
				onAnswer(f)
				answered = true
				return true
			}
			return s.deliverFrom(viaRequest(f, id), gen)
		}) {
			return progress, answered, s.ctx.Err()
		}
		if answered {
			return progress, true, nil
		}
	}
}

// get opens an event stream with GET: the standalone stream, or the
// resumption of an answer stream (lastID set). Only a 2xx event stream is
// returned; anything else is an error of type *statusError.
func (s *streamable) get(ctx context.Context, st sessionState, lastID string) (*http.Response, error) {
	req, err := s.newRequest(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", mediaSSE)
	s.sessionHeaders(req, st)
	if lastID != "" {
		req.Header.Set(headerLastEventID, lastID)
	}
	resp, err := s.do(req)
	if err != nil {
		return nil, errors.New(netReason(err))
	}
	if resp.StatusCode/100 != 2 || mediaType(resp.Header) != mediaSSE {
		drain(resp)
		return nil, &statusError{code: resp.StatusCode, status: resp.Status, media: mediaType(resp.Header)}
	}
	return resp, nil
}

// A statusError is a GET answered with something other than a 2xx event
// stream; listen tells "no stream here" from "try again later" by code.
type statusError struct {
	code          int
	status, media string
}

func (e *statusError) Error() string {
	if e.code/100 == 2 {
		return fmt.Sprintf("HTTP %s with content type %q instead of an event stream", e.status, e.media)
	}
	return "HTTP " + e.status
}

// getReadyWait bounds how long the first messages after
// notifications/initialized wait for the standalone stream.
const getReadyWait = time.Second

// startGET (re)starts the standalone GET stream for the current session
// generation, stopping the previous one. getReady is closed once its first
// attempt has an answer (a stream, a refusal, or an error).
func (s *streamable) startGET() {
	ready := make(chan struct{})
	s.mu.Lock()
	if s.getCancel != nil {
		s.getCancel()
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.getCancel = cancel
	gen := s.gen
	s.getReady, s.getGen, s.getRefused = ready, gen, false
	s.mu.Unlock()
	signal := sync.OnceFunc(func() { close(ready) })
	if !s.spawn(func() { defer cancel(); defer signal(); s.listen(ctx, gen, signal) }) {
		cancel()
		signal()
	}
}

// awaitGET runs once notifications/initialized was posted: the session is
// fully open and the server may talk on its own. It holds what the router
// sends next until the standalone stream is up or refused: a server sends
// notifications that belong to no request only there, and drops them while
// it is missing (a list_changed right after a first tool call was lost
// that way under load). The stream was normally opened at the initialize
// answer; a server that refused it before initialized is asked once more.
// Bounded, so a server slow to answer the GET costs at most once a second.
func (s *streamable) awaitGET() {
	t := time.NewTimer(getReadyWait)
	defer t.Stop()
	wait := func() bool {
		s.mu.Lock()
		ready := s.getReady
		if s.getGen != s.gen {
			ready = nil // the stream of a session since lost
		}
		s.mu.Unlock()
		if ready == nil {
			return false
		}
		select {
		case <-ready:
		case <-t.C:
			return true
		case <-s.ctx.Done():
			return true
		}
		s.mu.Lock()
		refused := s.getRefused
		s.mu.Unlock()
		return !refused
	}
	if !wait() {
		s.startGET()
		wait()
	}
}

// listen owns the standalone GET stream of session generation gen: it
// delivers every message and reconnects with backoff when the stream
// drops, until ctx ends, the session is replaced, or the server says it
// offers no such stream.
func (s *streamable) listen(ctx context.Context, gen uint64, ready func()) {
	var bo backoff
	lastID := ""
	var retry time.Duration // the server's last retry: field, if retrySet
	retrySet := false
	streamed := false // a GET of this session was answered with a stream
	for ctx.Err() == nil {
		st := s.state()
		if st.gen != gen || st.lost {
			return
		}
		resp, err := s.get(ctx, st, lastID)
		ready()
		if ctx.Err() != nil {
			if err == nil {
				resp.Body.Close()
			}
			return
		}
		var se *statusError
		switch {
		case errors.As(err, &se) && se.code == http.StatusBadRequest && lastID != "":
			// The replay was refused: go-sdk answers 400 when its event
			// store no longer has the events after lastID (a 404 would
			// mean the session). Those events are gone, the session need
			// not be: open the stream afresh; a 400 to that one says
			// whether the session is lost.
			s.log.Debug().Msg("standalone event stream: the server refused to replay it; reopening without Last-Event-ID")
			lastID = ""
		case errors.As(err, &se) && streamed && st.sessionID != "" && (se.code == http.StatusNotFound || se.code == http.StatusBadRequest):
			// The stream worked in this session and now the server does
			// not know the session: it restarted or expired it. Open a new
			// one now rather than at the host's next request, so server
			// notifications and restored subscriptions resume within
			// seconds (issue #5); rejoin restarts this stream.
			s.log.Info().Int("status", se.code).Msg("backend lost the session (standalone stream); starting a new one")
			// The session's context, not this stream's: rejoin replaces
			// (cancels) this stream.
			if err := s.rejoin(s.ctx, gen); err != nil && s.ctx.Err() == nil {
				s.log.Warn().Str("error", s.redact(err.Error())).Msg("re-initializing the backend failed")
			}
			return
		case errors.As(err, &se) && se.code != http.StatusConflict && se.code != http.StatusTooManyRequests && se.code < 500:
			// 405 is the spec's "no stream here"; other 4xx (a 404 from a
			// server without GET routes, too) mean the same for us. A lost
			// session shows on the next POST.
			if e := s.log.Debug(); e.Enabled() {
				e.Str("answer", se.Error()).Msg("backend offers no standalone event stream")
			}
			if se.code != http.StatusMethodNotAllowed { // 405: no stream, ever
				s.mu.Lock()
				if s.getGen == gen {
					s.getRefused = true
				}
				s.mu.Unlock()
			}
			return
		case err != nil:
			if e := s.log.Debug(); e.Enabled() {
				e.Str("error", s.redact(err.Error())).Msg("standalone event stream: connecting failed")
			}
		default:
			streamed = true
			rd := newSSEReader(resp.Body, s.maxMsg)
			rd.LastEventID, rd.idBuf = lastID, lastID // as Reset does
			// The reconnection time lasts across connections (the SSE
			// standard); a server need not repeat its retry: field.
			rd.Retry, rd.RetrySet = retry, retrySet
			progress, err := s.pumpAll(rd, gen)
			resp.Body.Close()
			progress = progress || rd.LastEventID != lastID
			lastID = rd.LastEventID
			retry, retrySet = rd.Retry, rd.RetrySet
			if ctx.Err() != nil {
				return
			}
			if progress {
				bo.reset()
			}
			if e := s.log.Debug(); e.Enabled() {
				e.Str("end", s.redact(streamEnd(err))).Msg("standalone event stream ended; reconnecting")
			}
			if rd.RetrySet {
				if !sleepCtx(ctx, max(rd.Retry, minReconnect)) { // the spec: the client MUST respect it
					return
				}
				continue
			}
		}
		if !sleepCtx(ctx, bo.delay()) {
			return
		}
	}
}

// pumpAll delivers every message of a stream until it ends; progress
// says a message came.
func (s *streamable) pumpAll(rd *sseReader, gen uint64) (progress bool, err error) {
	var tooBig error
	progress, _, err = s.pumpAnswer(rd, nil, gen, nil, &tooBig)
	return progress, err
}

// rejoin replaces upstream session generation gen, which the server lost,
// with a new one: it replays the router's initialize (under an internal
// id; its answer is consumed here) and initialized notification, then
// tells the router with a MethodReinitialized notification. Concurrent
// callers for the same generation share one re-initialization; a caller
// whose generation was already replaced returns at once.
func (s *streamable) rejoin(ctx context.Context, gen uint64) error {
	s.mu.Lock()
	if s.gen != gen && !s.lost {
		s.mu.Unlock()
		return nil
	}
	if c := s.rejoining; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.initReq == nil {
		s.mu.Unlock()
		return errors.New("no initialize request to replay")
	}
	c := &rejoinCall{done: make(chan struct{})}
	s.rejoining = c
	s.lost = true
	s.sessionID = ""
	s.reinits++
	n := s.reinits
	initReq, initNote := s.initReq, s.initNote
	if s.getCancel != nil {
		s.getCancel() // the old session's stream is gone with it
		s.getCancel = nil
		s.getReady = nil
	}
	s.mu.Unlock()
	s.log.Info().Msg("backend lost the session; starting a new one")

	rctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	result, err := s.replay(rctx, n, initReq, initNote)
	cancel()

	if err == nil {
		// Before any message of the new session can reach Recv (requests
		// waiting for this rejoin go on once it is published, and once
		// the router has restored the host's state: awaitRestored; the
		// new standalone stream starts after): the router forgets the
		// lost session's requests to the host first, and restores what
		// the host set (log level, subscriptions) in the new one.
		s.reinitializing()
		s.deliver(frame.NewNotification(MethodReinitialized, result))
	}
	// Publish the outcome: on success the generation moves on, so a request
	// that fails later with the old one knows it was already handled.
	s.mu.Lock()
	s.rejoining = nil
	if err == nil {
		s.gen++
		s.lost = false
		s.ups.forgetBefore(s.gen - 1)
	}
	c.err = err
	close(c.done)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.log.Info().Msg("backend session re-initialized")
	// The new session's standalone stream, as at the router's first
	// initialize answer: also when the session was lost before the host
	// sent notifications/initialized.
	s.startGET()
	return nil
}

// replay runs the handshake of a new upstream session.
func (s *streamable) replay(ctx context.Context, n int, initReq, initNote []byte) (result []byte, err error) {
	ictx, icancel := context.WithCancel(ctx) // the initialize exchange's own
	defer icancel()
	rid := fmt.Appendf(nil, `"mcpbridge-reinit-%d"`, n)
	body, err := withID(initReq, rid)
	if err != nil {
		return nil, fmt.Errorf("stored initialize: %w", err)
	}
	resp, err := s.postBody(ictx, body, sessionState{}, true)
	if err != nil {
		return nil, fmt.Errorf("initialize: %s", netReason(err))
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("initialize: %s", s.statusReason(resp, readErrorBody(resp)))
	}
	sid := resp.Header.Get(headerSessionID)
	s.mu.Lock()
	s.sessionID = sid // set early: a resumed answer stream needs it
	gen := s.gen + 1  // the new session's, once rejoin publishes it
	s.mu.Unlock()
	var ans *frame.Frame
	ok, err := s.readAnswer(ictx, icancel, resp, rid, sessionState{sessionID: sid, gen: gen}, func(f *frame.Frame) { ans = f })
	switch {
	case err != nil:
		return nil, fmt.Errorf("initialize: %w", err)
	case !ok || ans == nil:
		return nil, errors.New("initialize: no answer")
	case ans.IsError():
		return nil, fmt.Errorf("initialize: %s", snippet(ans.Error(), 200))
	}
	st := sessionState{sessionID: sid, protocol: protocolVersion(ans)}
	s.mu.Lock()
	s.protocol = st.protocol
	s.mu.Unlock()
	result = ans.Result()
	if initNote == nil {
		return result, nil
	}
	note, err := stored(initNote)
	if err != nil {
		return nil, fmt.Errorf("stored initialized: %w", err)
	}
	resp, err = s.postBody(ctx, note, st, false)
	if err != nil {
		return nil, fmt.Errorf("initialized: %s", netReason(err))
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("initialized: %s", s.statusReason(resp, readErrorBody(resp)))
	}
	drain(resp)
	return result, nil
}

// Recv returns the next message from the server: answers, its requests
// and notifications, failures made up for lost answers, and
// MethodReinitialized. It fails only once the session is closed.
func (s *streamable) Recv(ctx context.Context) (*frame.Frame, error) {
	return s.recvFrame(ctx, nil, nil)
}

// Close cancels every request and stream, ends the upstream session with
// DELETE (best effort, bounded) and waits for the session's goroutines.
func (s *streamable) Close() error {
	s.closeOnce.Do(func() {
		st := s.state()
		s.shutdown()
		if st.sessionID != "" {
			ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
			if req, err := s.newRequest(ctx, http.MethodDelete, s.url, nil); err == nil {
				s.sessionHeaders(req, st)
				if resp, err := s.doOnce(req); err == nil {
					drain(resp)
				}
			}
			cancel()
		}
		s.wg.Wait()
		s.hc.CloseIdleConnections()
	})
	return nil
}

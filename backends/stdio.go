package backends

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/rawio"
	"github.com/rs/zerolog"
)

// stdioQueue and stdioQueueBytes bound what waits for a stdio backend to
// read its stdin: a backend that stops reading costs at most this much and
// never stalls the others (issue #5). The frame count is as deep as HTTP
// backends' posts in flight: a host's burst of a few thousand calls is
// taken while a healthy backend works through it (with one thread, the
// host's reader queues a whole read of lines before the writer runs; a
// 1,024-frame queue answered hundreds of calls of a 2,000-call burst with
// "queue full"). The bytes bound keeps a stuck backend's cost in memory.
const (
	stdioQueue      = 4096
	stdioQueueBytes = 32 << 20
)

// closeGrace is how long each step of the shutdown ladder waits.
const closeGrace = 1500 * time.Millisecond

// A stream is a session over newline-delimited JSON-RPC on a reader and a
// writer: the framing half of a stdio backend, and what tests use to reach
// an in-process server over pipes.
type stream struct {
	name string
	log  zerolog.Logger
	out  *frame.Writer // owned by writeLoop
	in   chan *frame.Frame

	cancel     context.CancelFunc // stops writeLoop
	writerDone chan struct{}      // closed by writeLoop after it closed w
	readDone   chan struct{}      // closed by readLoop at the end of r
	w          io.Closer
	// ended says why the stream ended; set before in is closed.
	ended func() string
	// inRead is set while the reader waits for a line (not while it
	// hands one on): how waitLoop tells a reader that waits for output
	// that will not come from one that is busy.
	inRead atomic.Bool
	// writeFailed ends the stream when writing to it failed (the peer
	// closed its input): nothing more can be sent, so what waits on it
	// must end. It closes r if it can; a process session kills the
	// process. Set before the writer starts.
	writeFailed func()
}

// NewStream returns a session speaking newline-delimited JSON-RPC over r
// and w. Close closes w and waits for the writer; the session ends when r
// does. It is how in-process servers are reached in tests.
func NewStream(name string, r io.Reader, w io.WriteCloser, opts Options) Session {
	return newStream(name, r, w, opts)
}

func newStream(name string, r io.Reader, w io.WriteCloser, opts Options) *stream {
	return startStream(name, r, w, opts, nil)
}

// startStream is newStream with what ends the stream if a write to it
// fails; nil closes r if r is an io.Closer.
func startStream(name string, r io.Reader, w io.WriteCloser, opts Options, writeFailed func()) *stream {
	if writeFailed == nil {
		writeFailed = func() {
			if c, ok := r.(io.Closer); ok {
				_ = c.Close()
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{
		name:       name,
		log:        opts.Logger,
		out:        frame.NewWriter(w, stdioQueue, stdioQueueBytes),
		in:         make(chan *frame.Frame, 256),
		cancel:     cancel,
		writerDone: make(chan struct{}),
		readDone:   make(chan struct{}),
		w:          w,
		ended:      func() string { return "stream ended" },

		writeFailed: writeFailed,
	}
	go s.writeLoop(ctx)
	go s.readLoop(r, opts.MaxMessage)
	return s
}

func (s *stream) Name() string { return s.name }

func (s *stream) Send(f *frame.Frame) error {
	select {
	case <-s.readDone:
		return fmt.Errorf("backend %q: %w", s.name, ErrClosed)
	case <-s.writerDone:
		// Closed, or its input failed (writeLoop): nothing queued now
		// would ever be written.
		return fmt.Errorf("backend %q: %w: its input is closed", s.name, ErrClosed)
	default:
	}
	if err := s.out.TryPut(f); err != nil {
		return fmt.Errorf("backend %q: stdin: %w", s.name, err)
	}
	return nil
}

func (s *stream) Recv(ctx context.Context) (*frame.Frame, error) {
	select {
	case f, ok := <-s.in:
		if ok {
			return f, nil
		}
		return nil, fmt.Errorf("backend %q: %w: %s", s.name, ErrClosed, s.ended())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// writeLoop owns w: it writes until Close, flushes what is queued, then
// closes w (for a process: its stdin, the first step of the shutdown ladder).
func (s *stream) writeLoop(ctx context.Context) {
	defer close(s.writerDone)
	defer s.w.Close()
	if err := s.out.Run(ctx); err != nil {
		if ctx.Err() != nil {
			s.log.Debug().Err(err).Msg("writing to backend")
			return
		}
		// The backend closed its input (a broken pipe) but may go on
		// living: the requests queued or sent will get no answer, and
		// no new one can reach it. The stream ends, so that they are
		// answered with an error and the backend is restarted.
		s.log.Warn().Err(err).Msg("writing to backend failed; ending its session")
		s.writeFailed()
	}
}

// readLoop owns r and closes s.in when it ends.
func (s *stream) readLoop(r io.Reader, max int) {
	defer close(s.readDone)
	defer close(s.in)
	lr := frame.NewLineReader(r, max)
	for {
		s.inRead.Store(true)
		line, err := lr.Next()
		s.inRead.Store(false)
		if errors.Is(err, frame.ErrTooLong) {
			s.log.Warn().Err(err).Msg("skipping oversized line from backend")
			s.tooLong(frame.PeekOversized(line, lr.Tail()), err)
			continue
		}
		if err != nil {
			return
		}
		msgs := [][]byte{line}
		if b := bytes.TrimLeft(line, " \t\r\n"); len(b) > 0 && b[0] == '[' {
			// A JSON-RPC batch, which 2025-03-26 allows on stdio and
			// obliges a client to take: its messages one by one.
			if msgs, err = splitJSON(line); err != nil {
				s.log.Warn().Err(err).Str("line", truncate(line, 200)).Msg("skipping a line from backend that is not JSON-RPC")
				continue
			}
		}
		for _, m := range msgs {
			f, err := frame.Parse(m)
			if err != nil {
				// Servers that "work in Claude Desktop" print banners: skip, never die.
				s.log.Warn().Err(err).Str("line", truncate(m, 200)).Msg("skipping a line from backend that is not JSON-RPC")
				continue
			}
			s.in <- f
		}
	}
}

// tooLong ends what waits for an oversized message that was skipped
// (oversized): the request it answers gets an error in its place (else
// the host's call would wait for --timeout), and a request of the
// backend's own is refused, as the bridge refuses one from the host.
func (s *stream) tooLong(h frame.Head, err error) {
	fail, refuse := oversized(s.name, h, err)
	if fail != nil {
		s.in <- fail
	}
	if refuse != nil {
		_ = s.Send(refuse)
	}
}

// stopWriter asks the writer to flush and close w, waiting at most grace;
// a peer that stopped reading gets w closed under the writer.
func (s *stream) stopWriter(grace time.Duration) {
	s.cancel()
	select {
	case <-s.writerDone:
	case <-time.After(grace):
		_ = s.w.Close()
		<-s.writerDone
	}
}

// Close of a bare stream: flush, close w, wait for the reader.
func (s *stream) Close() error {
	s.stopWriter(closeGrace)
	<-s.readDone
	return nil
}

// A stdioSession is a child process speaking newline-delimited JSON-RPC.
type stdioSession struct {
	*stream
	cmd    *exec.Cmd
	exited <-chan struct{} // closed once the process exited and its group was ended (Linux)
	done   chan struct{}   // closed by waitLoop when the process has exited
	// stdout and stderr are the read ends of the process's pipes, closed
	// under their readers if something outlives the process holding them
	// (see waitLoop).
	stdout, stderr io.Closer
	// stdoutPipe is stdout's pipe as exec made it (stdout wraps it), for
	// asking how much it holds unread.
	stdoutPipe any
	// outRead and errRead count what was read from stdout and stderr,
	// for drainAfterExit.
	outRead, errRead *readCounter
	exit             error // set by waitLoop before done is closed
	// lastStderr is the last line the process wrote to stderr (redacted,
	// cut at lastStderrMax), for exitReason.
	lastStderr atomic.Pointer[string]
	once       sync.Once
	release    func() // lets go of the Windows Job Object, ending the tree
}

func openStdio(ctx context.Context, cfg config.Backend, opts Options) (Session, error) {
	if cfg.Dir != "" {
		// Checked first: exec reports a missing directory as a missing
		// command, and users go looking for their interpreter.
		if fi, err := os.Stat(cfg.Dir); err != nil {
			return nil, fmt.Errorf("backend %q: cwd: %w", cfg.Name, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("backend %q: cwd %s: not a directory", cfg.Name, cfg.Dir)
		}
	}
	env := mergeEnv(os.Environ(), cfg.Env)
	path, err := lookPath(cfg.Command, envValue(env, "PATH"), cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", cfg.Name, err)
	}
	cmd := exec.Command(path, cfg.Args...)
	cmd.Args[0] = cfg.Command
	supervise := opts.Supervisor != "" && !guardSupported
	if supervise {
		cmd.Path, cmd.Args = supervised(opts.Supervisor, path, cfg.Args)
		env = append(env, parentEnv+"="+strconv.Itoa(os.Getpid()))
	}
	cmd.Env = env
	cmd.Dir = cfg.Dir
	setProcessGroup(cmd, supervise)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("backend %q: stdin pipe: %w", cfg.Name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("backend %q: stdout pipe: %w", cfg.Name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("backend %q: stderr pipe: %w", cfg.Name, err)
	}
	guardReady(opts)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("backend %q: start %s: %w", cfg.Name, opts.Redact(cfg.Command), err)
	}
	release, err := attachTree(cmd)
	if err != nil {
		opts.Logger.Warn().Err(err).Msg("the backend's process tree may outlive the bridge")
	}
	exited := trackExit(cmd, opts)
	growPipe(stdin)
	growPipe(stdout)
	stdoutPipe := any(stdout)
	// The bridge's ends of the pipes are its own descriptions, non-blocking
	// (os.Pipe): read and written raw (issue #6).
	stdout, stdin = rawio.ReadCloser(stdout), rawio.WriteCloser(stdin)
	s := &stdioSession{cmd: cmd, exited: exited, done: make(chan struct{}), release: sync.OnceFunc(release), stdout: stdout, stderr: stderr, stdoutPipe: stdoutPipe,
		outRead: &readCounter{r: stdout}, errRead: &readCounter{r: stderr}}
	s.stream = startStream(cfg.Name, s.outRead, stdin, opts, func() {
		// SIGTERM, then SIGKILL if it will not go: the requests it read
		// may still be answered meanwhile. Not once it was reaped: its
		// group id may be another's by then.
		if closed(s.done) {
			return
		}
		signalGroup(cmd, false)
		go func() {
			if !s.wait(closeGrace) {
				signalGroup(cmd, true)
			}
		}()
	})
	s.stream.ended = s.exitReason
	// The arguments only at debug level: they may hold a token ("--api-key
	// ${TOKEN}", mcp-remote's "--header Authorization:...") that is not a
	// configured secret the log redacts.
	s.log.Info().Int("pid", cmd.Process.Pid).Str("command", opts.Redact(cfg.Command)).Int("args", len(cfg.Args)).Msg("backend started")
	s.log.Debug().Str("command", opts.Redact(strings.Join(append([]string{cfg.Command}, cfg.Args...), " "))).Msg("backend command line")
	stderrDone := make(chan struct{})
	go s.stderrLoop(s.errRead, opts.Redact, stderrDone)
	go s.waitLoop(stderrDone)
	return s, nil
}

func (s *stdioSession) exitReason() string {
	select {
	case <-s.done:
	case <-time.After(closeGrace):
		return "stdout closed"
	}
	why := "process exited with status 0"
	if s.exit != nil {
		why = "process exited: " + s.exit.Error()
	}
	// Its last words: a server that exits at start says why on stderr
	// ("missing required argument"), and the host may show no logs.
	if last := s.lastStderr.Load(); last != nil {
		why += "; its last stderr line: " + strconv.Quote(*last)
	}
	return why
}

// lastStderrMax bounds the stderr line an exit reason quotes.
const lastStderrMax = 300

// stderrLineMax bounds what is logged of one stderr line: a longer line is
// cut (its length noted), and the lines after it are logged as usual.
const stderrLineMax = 64 << 10

// stderrLoop copies the child's stderr into our log (never to stdout), a
// line at a time, until the process closes it.
func (s *stdioSession) stderrLoop(stderr io.Reader, redact func(string) string, done chan struct{}) {
	defer close(done)
	br := bufio.NewReaderSize(stderr, 4096)
	var line []byte
	cut := 0 // bytes of the line beyond stderrLineMax, not logged
	for {
		chunk, err := br.ReadSlice('\n')
		take := min(len(chunk), stderrLineMax-len(line))
		line = append(line, chunk[:take]...)
		cut += len(chunk) - take
		if err == bufio.ErrBufferFull {
			continue // the line goes on
		}
		if len(line) > 0 {
			text := redact(strings.TrimRight(string(line), "\r\n"))
			if t := strings.TrimSpace(text); t != "" {
				t = t[:min(len(t), lastStderrMax)]
				s.lastStderr.Store(&t)
			}
			e := s.log.Info().Str("stderr", text)
			if cut > 0 {
				e = e.Int("truncatedBytes", cut)
			}
			e.Msg("backend stderr")
		}
		line, cut = line[:0], 0
		if err != nil {
			return // EOF: the process closed its stderr
		}
	}
}

// waitLoop reaps the process once its stdout and stderr are at EOF, as
// exec.Cmd.Wait requires, and trackExit has ended the rest of its group.
func (s *stdioSession) waitLoop(stderrDone chan struct{}) {
	if guardSupported {
		<-s.exited
		s.drainAfterExit(stderrDone)
	}
	<-s.readDone
	<-stderrDone
	<-s.exited
	s.exit = s.cmd.Wait()
	close(s.done)
}

// drainAfterExit, where the exit is seen before the reaping (Linux),
// reads the exited process's pipes to their end, or until what it wrote
// is read when something else holds them. A descendant that left the
// backend's process group (setsid, Python's start_new_session) and kept
// its stdout or stderr would otherwise hold the session open for as long
// as it lives, a dead backend never noticed (its calls waiting for
// --timeout, no restart) nor reaped; so the pipes are closed under their
// readers. What the backend wrote before it exited is all delivered
// (though it may still wait in the reader's buffer, which a close does
// not drop), however slowly the host reads: a pipe is closed once
//   - it holds no unread byte: the backend can write no more, so all it
//     wrote has been read; or
//   - more has been read from it than it held when first asked after the
//     exit, plus what one read takes: a pipe is read in order, so all the
//     backend wrote came first, and the rest was written by something
//     else (a holder that writes faster than the bridge reads never lets
//     the pipe be found empty).
//
// The pipes are asked from a step after the exit on, so that the usual
// end of a pipe (every writer gone) is seen as such; for emptiness,
// stdout on two steps in a row while its reader waits for a line: a read
// of an empty pipe with no other writer would have ended at once. A pipe
// that cannot be asked (closed already) counts as empty.
func (s *stdioSession) drainAfterExit(stderrDone chan struct{}) {
	t := time.NewTicker(exitStep)
	defer t.Stop()
	held := 0          // steps in a row the pipe was found empty
	outClosed := false // stdout closed here; its reader ends on its own
	var marks [2]drainMark
	for {
		var open <-chan struct{}
		var pipe any
		var read *readCounter
		var m *drainMark
		switch {
		case !closed(s.readDone) && !outClosed:
			open, pipe, read, m = s.readDone, s.stdoutPipe, s.outRead, &marks[0]
		case !closed(stderrDone):
			open, pipe, read, m = stderrDone, s.stderr, s.errRead, &marks[1]
		default:
			return
		}
		select {
		case <-open:
			continue
		case <-t.C:
		}
		out := open == s.readDone
		unread, known := pipeUnread(pipe)
		if known && !m.set {
			// Asked before the count is taken: a read between the two
			// makes the bound later, never earlier.
			m.set, m.held, m.base = true, int64(unread), read.n.Load()
		}
		switch {
		case m.set && read.n.Load()-m.base > m.held+pipeBytes:
			// Read past all the backend left: another writer. The slack
			// is for a read under way when the pipe was asked, whose
			// bytes had left the pipe but were not counted yet (a read
			// takes at most what a pipe holds).
		case known && unread > 0 || out && !s.inRead.Load():
			held = 0
			continue
		default:
			if held++; out && held < 2 {
				continue
			}
		}
		s.closeHeld(out)
		held, outClosed = 0, outClosed || out
	}
}

// pipeBytes is the size the backend's pipes are grown to (growPipe),
// at least what one read of them returns.
const pipeBytes = 1 << 20

// A drainMark is what drainAfterExit found in a pipe of the exited
// backend when it first asked.
type drainMark struct {
	set  bool
	held int64 // bytes the pipe held unread
	base int64 // bytes read from it by then
}

// readCounter counts the bytes read through it: what drainAfterExit
// compares with what a pipe held (an atomic add per read, not per line).
type readCounter struct {
	r io.Reader
	n atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// closeHeld closes a pipe of the exited backend that something else holds
// (stdout if out, else stderr), for drainAfterExit.
func (s *stdioSession) closeHeld(out bool) {
	if out {
		s.log.Warn().Msg("the backend exited, but a process it started still holds its output; closing it")
		_ = s.stdout.Close()
		return
	}
	s.log.Debug().Msg("the backend exited, but a process it started still holds its stderr; closing it")
	_ = s.stderr.Close()
}

// exitStep is how often drainAfterExit asks an exited stdio backend's
// pipes whether they hold anything unread.
const exitStep = 100 * time.Millisecond

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Close ends the process as the MCP spec asks for stdio (lifecycle,
// "Shutdown"): "the client SHOULD initiate shutdown by first closing the
// input stream to the child process, waiting for the server to exit, or
// sending SIGTERM if the server does not exit within a reasonable time,
// and then SIGKILL". Signals go to the whole process group, so `npx`'s
// node and `sh -c`'s server go too.
func (s *stdioSession) Close() error {
	s.once.Do(func() {
		s.stopWriter(closeGrace) // flushes what is queued, then closes stdin
		if s.wait(closeGrace) {
			return
		}
		signalGroup(s.cmd, false)
		if s.wait(closeGrace) {
			return
		}
		signalGroup(s.cmd, true)
		if !s.wait(closeGrace) {
			s.log.Error().Msg("backend process did not exit after SIGKILL")
		}
	})
	if !guardSupported {
		// Whatever else the group left behind goes with it (on Linux
		// trackExit did that before the process was reaped).
		signalGroup(s.cmd, true)
	}
	s.release()
	return nil
}

func (s *stdioSession) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.done:
		return true
	case <-t.C:
		return false
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// mergeEnv returns base with overrides applied (later entries win).
func mergeEnv(base []string, overrides map[string]string) []string {
	env := make([]string, 0, len(base)+len(overrides)+1)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := overrides[k]; ok || k == config.NestedEnv {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range overrides {
		env = append(env, k+"="+v)
	}
	depth, _ := strconv.Atoi(os.Getenv(config.NestedEnv))
	return append(env, config.NestedEnv+"="+strconv.Itoa(depth+1))
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// lookPath finds command in the backend's own PATH (hosts such as Claude
// Desktop start us with a bare PATH, and a backend's env may set its own).
// A relative command or PATH entry is relative to the backend's working
// directory dir, as it would be for the backend itself. The path returned
// is absolute: exec resolves a relative one against cmd.Dir again, so a
// relative command in a relative dir ("./server.sh" in "sub") was looked
// for in sub/sub.
func lookPath(command, pathEnv, dir string) (string, error) {
	inDir := func(p string) string {
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return p
	}
	if strings.ContainsRune(command, filepath.Separator) || strings.ContainsRune(command, '/') {
		p := inDir(command)
		if err := executable(p); err != nil {
			return "", fmt.Errorf("command %s: %w", command, err)
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		for _, p := range candidates(inDir(filepath.Join(d, command))) {
			if executable(p) == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("command %q not found in PATH=%q", command, pathEnv)
}

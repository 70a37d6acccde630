//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A proc is a child process this program started. Its stdin and stdout are
// plain pipes the caller owns, so Wait never races a reader; stderr is kept
// as a bounded tail for error messages. Every proc is registered until it has
// been waited for, so killAll can clean up on any exit path.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  *os.File // our end of the child's stdin; nil unless asked for
	stdout *os.File // our end of the child's stdout; nil unless asked for
	stderr *tail
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's error, valid after done
	once   sync.Once     // for stop
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

// startProc starts cmd in its own process group. With pipes, stdin and stdout
// are connected to pipes the caller reads and writes; otherwise they are
// /dev/null. firstLine, if not nil, receives the first line of stderr.
func startProc(name string, cmd *exec.Cmd, pipes bool, firstLine chan<- string) (p *proc, err error) {
	p = &proc{name: name, cmd: cmd, stderr: &tail{max: 64 << 10}, done: make(chan struct{})}
	var closeAfterStart, closeOnError []*os.File
	defer func() {
		for _, f := range closeAfterStart {
			f.Close()
		}
		if err != nil {
			for _, f := range closeOnError {
				f.Close()
			}
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			closeOnError = append(closeOnError, r, w)
		}
		return r, w, err
	}
	if pipes {
		inR, inW, err := pipe()
		if err != nil {
			return nil, err
		}
		outR, outW, err := pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdin, cmd.Stdout = inR, outW
		p.stdin, p.stdout = inW, outR
		closeAfterStart = append(closeAfterStart, inR, outW)
	}
	errR, errW, err := pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = errW
	closeAfterStart = append(closeAfterStart, errW)
	// Own process group, so a bridge and the backends it spawned die
	// together; SIGKILL if this program dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	go func() {
		defer errR.Close()
		br := bufio.NewReader(errR)
		if firstLine != nil {
			line, _ := br.ReadString('\n')
			p.stderr.Write([]byte(line))
			firstLine <- strings.TrimSpace(line)
		}
		_, _ = io.Copy(p.stderr, br)
	}()
	go func() {
		p.err = cmd.Wait()
		// Out of the registry before done closes: whoever waits on done
		// (stop, the test counting what is left) must see it gone.
		procsMu.Lock()
		delete(procs, p)
		procsMu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process: it closes our pipe ends (EOF on the child's stdin),
// sends sig unless it is 0, waits up to grace, then kills the process group
// and waits for it. Only the first call does anything.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) error {
	p.once.Do(func() { p.stopOnce(sig, grace) })
	<-p.done
	return p.err
}

func (p *proc) stopOnce(sig syscall.Signal, grace time.Duration) {
	if p.stdin != nil {
		p.stdin.Close()
	}
	if sig != 0 {
		_ = p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	// The group may still hold grandchildren (a bridge's stdio backend):
	// give them the same grace, then kill what is left.
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); {
		if syscall.Kill(-p.pid(), 0) != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	if p.stdout != nil {
		p.stdout.Close()
	}
}

// killAll kills every process still running and waits for each. It is the
// last line of defence on error paths.
func killAll() {
	procsMu.Lock()
	var ps []*proc
	for p := range procs {
		ps = append(ps, p)
	}
	procsMu.Unlock()
	for _, p := range ps {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// echoHTTP is a running `echoserver -http`.
type echoHTTP struct {
	p     *proc
	url   string // the MCP endpoint
	stats string // the /stats URL
}

func startEchoHTTP(ctx context.Context, bin string) (*echoHTTP, error) {
	first := make(chan string, 1)
	p, err := startProc("echoserver -http", exec.Command(bin, "-http", "127.0.0.1:0"), false, first)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var line string
	select {
	case line = <-first:
	case <-ctx.Done():
	}
	url, ok := strings.CutPrefix(line, "listening ")
	if !ok || !strings.HasSuffix(url, "/mcp") {
		p.stop(syscall.SIGTERM, 3*time.Second)
		return nil, fmt.Errorf("echoserver -http: no listen line (%v): %q", ctx.Err(), p.stderr)
	}
	return &echoHTTP{p: p, url: url, stats: strings.TrimSuffix(url, "/mcp") + "/stats"}, nil
}

func (e *echoHTTP) stop() { e.p.stop(syscall.SIGTERM, 3*time.Second) }

// counts is what the echo server counted; see testdata/echoserver.
type counts struct {
	Sessions int64 `json:"sessions"` // initialize requests
	Messages int64 `json:"messages"` // JSON-RPC messages received
	Requests int64 `json:"requests"` // HTTP requests to /mcp
	Posts    int64 `json:"posts"`
	Gets     int64 `json:"gets"`
	Deletes  int64 `json:"deletes"`
}

func (c counts) minus(d counts) counts {
	return counts{c.Sessions - d.Sessions, c.Messages - d.Messages, c.Requests - d.Requests,
		c.Posts - d.Posts, c.Gets - d.Gets, c.Deletes - d.Deletes}
}

var statsClient = &http.Client{Timeout: 5 * time.Second}

func (e *echoHTTP) counts(ctx context.Context) (counts, error) {
	var c counts
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.stats, nil)
	if err != nil {
		return c, err
	}
	resp, err := statsClient.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("GET %s: %s", e.stats, resp.Status)
	}
	return c, json.NewDecoder(resp.Body).Decode(&c)
}

// readCountsFile reads the counts a stdio echoserver writes on exit.
func readCountsFile(path string) (counts, error) {
	var c counts
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

// clockTicks is the unit of the CPU times in /proc/PID/stat.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, perr := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && perr == nil && n > 0 {
		return float64(n)
	}
	return 100
})

// cpuSeconds is the user+system CPU time of pid (not its children).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields start after its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / clockTicks(), nil
}

// memKiB returns VmRSS and VmHWM (the peak) of pid in KiB.
func memKiB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	return rss, hwm, nil
}

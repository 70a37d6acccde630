package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func nonblocking(t *testing.T, f *os.File) bool {
	t.Helper()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

// nonblockingCopies returns pid's descriptors, other than 0 and 1, open on
// the same pipe or socket as f and in non-blocking mode.
func nonblockingCopies(t *testing.T, pid int, f *os.File) []int {
	t.Helper()
	want, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		if e.Name() == "0" || e.Name() == "1" {
			continue
		}
		if link, _ := os.Readlink(filepath.Join(dir, e.Name())); link != want {
			continue
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				if fl, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64); err == nil && fl&unix.O_NONBLOCK != 0 {
					n, _ := strconv.Atoi(e.Name())
					fds = append(fds, n)
				}
			}
		}
	}
	return fds
}

// polled returns the descriptors registered with pid's epoll instances:
// those its Go runtime serves by the poller.
func polled(t *testing.T, pid int) map[int]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds := map[int]bool{}
	for _, e := range ents {
		if link, _ := os.Readlink(filepath.Join(dir, e.Name())); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "tfd:" {
				n, _ := strconv.Atoi(f[1])
				fds[n] = true
			}
		}
	}
	return fds
}

// startOn starts mcpbridge in front of the test's "solo" stdio server with
// the given stdin and stdout, which the test keeps its own copies of.
func startOn(t *testing.T, stdin, stdout *os.File) (cmd *exec.Cmd, exited <-chan struct{}, waitErr *error) {
	cmd = exec.Command(bridgeBin, "--stdio", stdioBackend("solo"))
	cmd.Env = append(os.Environ(), serverEnvFor("solo")...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mcpbridge stderr:\n%s", tail(stderr.String(), 4000))
		}
	})
	return cmd, done, &werr
}

func awaitExit(t *testing.T, exited <-chan struct{}, waitErr *error) {
	t.Helper()
	select {
	case <-exited:
		if *waitErr != nil {
			t.Errorf("exit: %v", *waitErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("mcpbridge still running 5 s after stdin EOF")
	}
}

// The host's stdin and stdout pipes keep their blocking mode, while the
// bridge reads and writes them through non-blocking descriptions of its
// own, served by the runtime's poller (issue #6): O_NONBLOCK belongs to
// the open file description, which the host shares.
func TestHostPipesStayBlocking(t *testing.T) {
	pipe := func() (r, w *os.File) {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		// Blocking, as a host hands them over: os.File does not poll them,
		// and exec passes them on unchanged.
		r, w = os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
		t.Cleanup(func() { r.Close(); w.Close() })
		return r, w
	}
	inR, inW := pipe()
	outR, outW := pipe()
	cmd, exited, waitErr := startOn(t, inR, outW)

	if _, err := inW.WriteString(initLine + "\n"); err != nil {
		t.Fatal(err)
	}
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(outR).ReadString('\n')
		answer <- line
	}()
	select {
	case line := <-answer:
		if !strings.Contains(line, `"result"`) {
			t.Fatalf("initialize answered %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no initialize answer within 10 s")
	}
	if nonblocking(t, inR) || nonblocking(t, outW) {
		t.Errorf("while running: the host's stdin non-blocking %v, stdout %v; want neither", nonblocking(t, inR), nonblocking(t, outW))
	}
	pid := cmd.Process.Pid
	a, b := nonblockingCopies(t, pid, inR), nonblockingCopies(t, pid, outW)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("the bridge holds non-blocking descriptors %v of its stdin pipe and %v of its stdout pipe; want one each", a, b)
	}
	if p := polled(t, pid); !p[a[0]] || !p[b[0]] {
		t.Errorf("descriptors %d and %d are not served by the poller (registered: %v)", a[0], b[0], p)
	}
	// And the bridge waits for the host there: no thread sits in read(0).
	time.Sleep(50 * time.Millisecond)
	if n := threadsReadingFD0(t, pid); n != 0 {
		t.Errorf("%d threads of the bridge are blocked in read(2) on fd 0", n)
	}

	inW.Close()
	awaitExit(t, exited, waitErr)
	if nonblocking(t, inR) || nonblocking(t, outW) {
		t.Errorf("after exit: stdin non-blocking %v, stdout %v; want neither", nonblocking(t, inR), nonblocking(t, outW))
	}
}

// One socket as both stdin and stdout (inetd, socat EXEC:, systemd socket
// units): both fds share its mode flag, so both must be served by the
// poller, or writes fail with EAGAIN once the socket buffer is full. A
// 4 MiB echo is answered in full, and the socket is blocking again after
// the bridge exits.
func TestOneSocketForStdinAndStdout(t *testing.T) {
	host, child := socketpair(t)
	_, exited, waitErr := startOn(t, child, child)

	text := strings.Repeat("x", 4<<20)
	go func() {
		host.WriteString(initLine + "\n" + `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" + echoCall("7", text) + "\n")
	}()
	got := make(chan string, 1)
	go func() {
		r := bufio.NewReaderSize(host, 1<<20)
		for {
			line, err := r.ReadString('\n')
			if err != nil || strings.Contains(line, `"id":7`) {
				got <- line
				return
			}
		}
	}()
	select {
	case line := <-got:
		if !strings.Contains(line, text) {
			t.Fatalf("the 4 MiB echo came back as %d bytes: %.200q", len(line), line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to the 4 MiB echo within 30 s")
	}
	unix.Shutdown(int(host.Fd()), unix.SHUT_WR) // stdin EOF
	awaitExit(t, exited, waitErr)
	if nonblocking(t, child) {
		t.Errorf("after exit the socket is still non-blocking")
	}
}

// threadsReadingFD0 counts pid's threads blocked in read(2) on fd 0, from
// /proc/PID/task/*/syscall (the system call number, then its arguments).
func threadsReadingFD0(t *testing.T, pid int) int {
	t.Helper()
	var read string
	switch runtime.GOARCH {
	case "amd64":
		read = "0"
	case "arm64":
		read = "63"
	default:
		t.Skipf("read(2)'s number on %s is not known here", runtime.GOARCH)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if f := strings.Fields(string(b)); len(f) >= 2 && f[0] == read && f[1] == "0x0" {
			n++
		}
	}
	return n
}

// A host that stops reading its socket: the bridge's next write fails with
// EPIPE, which must come back as an error (not SIGPIPE, which Go raises
// for fd 1 and which would skip restoring the socket's blocking mode). The
// bridge exits and the socket is blocking again.
func TestSocketHostGoneIsRestored(t *testing.T) {
	host, child := socketpair(t)
	_, exited, waitErr := startOn(t, child, child)
	r := bufio.NewReader(host)
	host.WriteString(initLine + "\n")
	if line, _ := r.ReadString('\n'); !strings.Contains(line, `"result"`) {
		t.Fatalf("initialize answered %q", line)
	}
	unix.Shutdown(int(host.Fd()), unix.SHUT_RD) // the host stops reading
	host.WriteString(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" + echoCall("2", "hi") + "\n")
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("mcpbridge still running 10 s after its host stopped reading")
	}
	if ee, ok := (*waitErr).(*exec.ExitError); ok && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
		t.Errorf("mcpbridge was killed by %v; want an exit", ee.ProcessState.Sys().(syscall.WaitStatus).Signal())
	}
	if nonblocking(t, child) {
		t.Errorf("after exit the socket is still non-blocking")
	}
}

// socketpair returns the host's end and the bridge's end of a new socket
// pair, closed when the test ends.
func socketpair(t *testing.T) (host, child *os.File) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host, child = os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "child")
	t.Cleanup(func() { host.Close(); child.Close() })
	return host, child
}

package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The host's stdin and stdout pipes are non-blocking (served by the
// runtime's poller) while the bridge runs, and blocking again once it has
// exited: O_NONBLOCK belongs to the open file description, which the host
// shares (issue #6).
func TestHostPipesAreBlockingAgainAtExit(t *testing.T) {
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
	nonblocking := func(f *os.File) bool {
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fl&unix.O_NONBLOCK != 0
	}
	inR, inW := pipe()
	outR, outW := pipe()

	cmd := exec.Command(bridgeBin, "--stdio", stdioBackend("solo"))
	cmd.Env = append(os.Environ(), serverEnvFor("solo")...)
	cmd.Stdin, cmd.Stdout = inR, outW // the test keeps its copies to look at
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		if t.Failed() {
			t.Logf("mcpbridge stderr:\n%s", tail(stderr.String(), 4000))
		}
	}()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()

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
	if !nonblocking(inR) || !nonblocking(outW) {
		t.Errorf("while running: stdin non-blocking %v, stdout %v; want both", nonblocking(inR), nonblocking(outW))
	}

	inW.Close()
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("exit: %v", waitErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("mcpbridge still running 5 s after stdin EOF; stderr:\n%s", tail(stderr.String(), 3000))
	}
	if nonblocking(inR) || nonblocking(outW) {
		t.Errorf("after exit: stdin non-blocking %v, stdout %v; want neither", nonblocking(inR), nonblocking(outW))
	}
}

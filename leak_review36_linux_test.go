//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// review36FDs counts pid's open file descriptors.
func review36FDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// review36Children counts pid's child processes, and those of them that
// are zombies (exited and never reaped).
func review36Children(pid int) (all, zombies int) {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		all++
		if fields[0] == "Z" {
			zombies++
		}
	}
	return all, zombies
}

// Checked, released: a stdio backend that crashes (with a call in flight
// and a sampling request of its own waiting on the host) and is restarted
// five times leaves the bridge with the descriptors and children it had:
// each session's pipes are closed and each process reaped.
func TestStdioRestartsReleaseFDs(t *testing.T) {
	const k = 5
	p := startBridge(t, serverEnvFor("fragile"), "--stdio", stdioBackend("fragile"))
	handshake(t, p)
	p.Send(echoCall("900", "x"))
	p.Response("900")
	pid := p.cmd.Process.Pid
	time.Sleep(300 * time.Millisecond)
	baseFD := review36FDs(pid)
	baseKids, _ := review36Children(pid)
	for i := range k {
		p.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":"b%d","method":"tools/call","params":{"name":"block","arguments":{}}}`, i))
		p.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":"s%d","method":"tools/call","params":{"name":"sample","arguments":{}}}`, i))
		for deadline := time.Now().Add(10 * time.Second); p.Count(func(g *frame.Frame) bool { return g.Method == "sampling/createMessage" }) <= i; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no sampling request in round %d:\n%s", i, p.Dump())
			}
		}
		p.Send(fmt.Sprintf(`{"jsonrpc":"2.0","id":"c%d","method":"tools/call","params":{"name":"crash","arguments":{}}}`, i))
		p.Response(fmt.Sprintf(`"b%d"`, i))
		// Back after its restart backoff (ids of this round: the wire
		// keeps every answer).
		back := false
		for j, deadline := 0, time.Now().Add(10*time.Second); !back && time.Now().Before(deadline); j++ {
			id := strconv.Itoa(10000*(i+1) + j)
			p.Send(echoCall(id, "back"))
			if back = p.Response(id).Result() != nil; !back {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !back {
			t.Fatalf("the backend was not restarted after crash %d", i)
		}
	}
	var fd, kids, zombies int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		fd = review36FDs(pid)
		kids, zombies = review36Children(pid)
		if fd <= baseFD && kids <= baseKids && zombies == 0 {
			break
		}
	}
	t.Logf("after %d crashes and restarts: fds %d -> %d, children %d -> %d (zombies %d)", k, baseFD, fd, baseKids, kids, zombies)
	if fd > baseFD || kids > baseKids || zombies > 0 {
		t.Errorf("after %d crashes and restarts: fds %d -> %d, children %d -> %d (zombies %d)", k, baseFD, fd, baseKids, kids, zombies)
	}
}

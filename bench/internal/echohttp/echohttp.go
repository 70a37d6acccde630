// Package echohttp starts testdata/echoserver over streamable HTTP for the
// benchmark tools that take prebuilt binaries (bench/coldstart, bench/idle).
package echohttp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Start runs `bin -http 127.0.0.1:0` and returns it with its endpoint URL,
// once the server has printed its "listening URL" line. Its stderr is
// drained until it exits; the caller stops it (the process ends with ctx).
func Start(ctx context.Context, bin string) (*exec.Cmd, string, error) {
	cmd := exec.CommandContext(ctx, bin, "-http", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting the echo server: %w", err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, u, nil
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, "", errors.New("the echo server printed no listen line")
}

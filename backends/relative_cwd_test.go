//go:build unix

package backends

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpbridge/mcpbridge/config"
)

// A relative command with a relative working directory (--cwd NAME=sub
// keeps it relative to the bridge's; so do the cwd entries of a --config
// file named by a relative path) was checked by lookPath as
// filepath.Join(Dir, command), which exists, and then handed to os/exec as
// that relative path with cmd.Dir set: os/exec resolves a relative Path
// against Dir once more (sub/sub/server.sh), and the start failed with "no
// such file or directory" (nineteenth review). A relative PATH entry is
// the backend's too.
func TestRelativeCommandInRelativeDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "server.sh"), []byte("#!/bin/sh\nexec cat\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	cfg := config.Backend{Name: "s", Kind: config.KindStdio, Command: "./server.sh", Dir: "sub"}
	s, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatalf("./server.sh in cwd sub (sub/server.sh exists): %v", err)
	}
	s.Close()

	// A relative PATH entry, "bin", is the backend's dir's.
	if err := os.Mkdir(filepath.Join(dir, "sub", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "bin", "tool"), []byte("#!/bin/sh\nexec cat\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg = config.Backend{Name: "s", Kind: config.KindStdio, Command: "tool", Dir: "sub", Env: map[string]string{"PATH": "bin"}}
	if s, err = Open(context.Background(), cfg, Options{}); err != nil {
		t.Fatalf("tool in PATH=bin, cwd sub (sub/bin/tool exists): %v", err)
	}
	s.Close()
}

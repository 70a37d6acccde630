package config

import (
	"os"
	"path/filepath"
	"testing"
)

// Gemini CLI expands $VAR as well as ${VAR} in its settings.json, leaving
// an unset one as written; mcpbridge passed "$GITHUB_TOKEN" on literally,
// and the server failed to authenticate with no word why.
func TestGeminiSettingsExpandBareVariables(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"TOKEN": "t0k", "HOST": "mcp.example", "EMPTY": ""}[k]
		return v, ok
	}
	body := `{"mcpServers":{
		"s":{"command":"srv","args":["--token","$TOKEN","pa$$word","$UNSET_ONE","${HOST}/x","$EMPTY."],"env":{"K":"Bearer $TOKEN"}},
		"h":{"httpUrl":"https://$HOST/mcp","headers":{"Authorization":"Bearer $TOKEN"}}}}`
	dir := filepath.Join(t.TempDir(), ".gemini")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "settings.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(path, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Backends) != 2 {
		t.Fatalf("backends: %+v (invalid: %v)", f.Backends, f.Invalid)
	}
	s, h := f.Backends[0], f.Backends[1]
	want := []string{"--token", "t0k", "pa$$word", "$UNSET_ONE", "mcp.example/x", "."}
	if len(s.Args) != len(want) {
		t.Fatalf("args %q, want %q", s.Args, want)
	}
	for i := range want {
		if s.Args[i] != want[i] {
			t.Errorf("args[%d] = %q, want %q", i, s.Args[i], want[i])
		}
	}
	if s.Env["K"] != "Bearer t0k" {
		t.Errorf("env K = %q", s.Env["K"])
	}
	if h.URL != "https://mcp.example/mcp" || h.Headers["Authorization"] != "Bearer t0k" {
		t.Errorf("url %q, headers %v", h.URL, h.Headers)
	}

	// The same entries elsewhere: an httpUrl entry is Gemini's wherever
	// its file is; a plain command entry in another host's file keeps its
	// '$' as written (Claude Desktop expands nothing, Claude Code ${VAR}).
	other := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(other, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err = LoadFile(other, env); err != nil || len(f.Backends) != 2 {
		t.Fatalf("%v %+v", err, f)
	}
	if got := f.Backends[0].Args[1]; got != "$TOKEN" {
		t.Errorf("in another host's file, args[1] = %q, want $TOKEN as written", got)
	}
	if got := f.Backends[1].Headers["Authorization"]; got != "Bearer t0k" {
		t.Errorf("an httpUrl entry in another file: Authorization = %q", got)
	}
}

func TestExpandBareEdges(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"A": "1", "A_B": "2", "X": "${A}"}[k]
		return v, ok
	}
	for in, want := range map[string]string{
		"$":       "$",
		"$$":      "$$",
		"$A":      "1",
		"$A_B":    "2",
		"$A-B":    "1-B",
		"$1A":     "$1A",
		"a$Ab":    "a$Ab", // Ab is unset
		"$X":      "${A}", // not expanded again
		"${A}$A":  "11",
		"${A:-z}": "1",
		"$ A":     "$ A",
		"end $":   "end $",
	} {
		got, err := ExpandBare(in, env)
		if err != nil || got != want {
			t.Errorf("ExpandBare(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ExpandBare("${NOPE}", env); err == nil {
		t.Error("an unset ${VAR} is an error, as in every file")
	}
}

package config

import (
	"slices"
	"testing"
)

// From the twenty-second review (a helper session's adversarial read of
// the day's diff): each test describes the bug it found, and failed before
// its fix.

// Gemini CLI's own filter (packages/core/src/tools/mcp-client.ts,
// isEnabled): excludeTools wins; then
//
//	!includeTools || includeTools.some(tool => tool === name || tool.startsWith(`${name}(`))
//
// so an includeTools entry may carry arguments ("run_shell(git)" enables
// the tool run_shell), and an empty includeTools enables no tool at all.
// The commit says Gemini CLI's file is reused "as it is", but unify turns
// each includeTools name into an exact glob added to Allow, and an empty
// Allow allows everything: a server its user cut down to no tools exposes
// every tool through mcpbridge, and one cut down to "run_shell(git)"
// exposes none.
func TestGeminiIncludeToolsAsGeminiReadsThem(t *testing.T) {
	for _, tc := range []struct {
		name, include string
		tool          string
		want          bool
	}{
		{"empty includeTools enables nothing", `[]`, "delete_everything", false},
		{"an entry with arguments enables its tool", `["run_shell(git)"]`, "run_shell", true},
		{"control: an exact name", `["read"]`, "read", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFile([]byte(`{"mcpServers":{"g":{"httpUrl":"https://g.example/mcp","includeTools":`+tc.include+`}}}`), "/", false, noEnv)
			if err != nil || len(f.Backends) != 1 {
				t.Fatalf("parse: %v %+v", err, f)
			}
			b := f.Backends[0]
			if got := b.Allows(tc.tool); got != tc.want {
				t.Errorf("includeTools %s: tool %q shown %v, Gemini CLI shows it: %v (allow %q)", tc.include, tc.tool, got, tc.want, b.Allow)
			}
		})
	}
}

// parseEntry: "A disabled entry gives a nil Backend and is not checked any
// further, since it may be half-written on purpose" (a disabled entry with
// both "command" and "url" is Disabled, not Invalid). The new check that
// only one of url, serverUrl and httpUrl is given runs in decodeEntry,
// before "disabled" is looked at: a disabled entry holding two of them
// (one host's spelling and another's, while switching) makes the entry
// Invalid, and --only or a file with nothing else to run fails on it.
func TestDisabledEntryWithTwoURLKeys(t *testing.T) {
	f, err := parseFile([]byte(`{"mcpServers":{
		"ok":{"command":"srv"},
		"both":{"disabled":true,"command":"x","url":"https://a.example/mcp"},
		"twourls":{"disabled":true,"url":"https://a.example/sse","serverUrl":"https://a.example/mcp"}}}`), "/", false, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.Disabled, "both") {
		t.Fatalf("control: disabled entry with command and url: %+v", f)
	}
	if !slices.Contains(f.Disabled, "twourls") || len(f.Invalid) != 0 {
		t.Errorf("disabled entry with url and serverUrl: Disabled %q, Invalid %v", f.Disabled, f.Invalid)
	}
}

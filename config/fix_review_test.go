package config

import "testing"

// From the twenty-third review (a helper session's adversarial read of
// the fixes of the nineteenth to twenty-second): each test describes the
// bug it found, and failed before its fix.

// Twenty-third review (an adversarial read of 7479289..bd16fcb).

// README: includeTools / excludeTools are "exact tool names, added to
// allow / deny, read as Gemini reads them: ... an empty includeTools
// shows no tool", and --allow NAME:GLOB is a tool filter like "allow".
// bd16fcb made an empty includeTools a separate switch (NoTools) that
// Allows checks before anything else, so nothing added to the allow
// list can show a tool any more: a Gemini CLI settings file reused with
// `--allow g:search` (the way to pick tools on the command line), or an
// entry with "allow": ["search"] beside "includeTools": [], shows no
// tool, and nothing says the allow was ignored. An empty list added to
// allow adds nothing; the allow globs given are the allow list.
func TestAllowBesideEmptyIncludeTools(t *testing.T) {
	t.Run("--allow flag", func(t *testing.T) {
		p := writeConfig(t, `{"mcpServers":{"g":{"httpUrl":"https://g.example/mcp","includeTools":[]}}}`)
		res, err := Resolve(Flags{ConfigFile: p, Allow: []string{"g:search"}}, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		b := res.Backends[0]
		if !b.Allows("search") {
			t.Errorf("--allow g:search on an entry with \"includeTools\": []: tool search hidden (Allow %q, NoTools %v)", b.Allow, b.NoTools)
		}
	})
	t.Run("allow key", func(t *testing.T) {
		f, err := parseFile([]byte(`{"mcpServers":{"g":{"httpUrl":"https://g.example/mcp","allow":["search"],"includeTools":[]}}}`), "/", false, noEnv)
		if err != nil || len(f.Backends) != 1 {
			t.Fatalf("parse: %v %+v", err, f)
		}
		b := f.Backends[0]
		if !b.Allows("search") {
			t.Errorf("\"allow\": [\"search\"] beside \"includeTools\": []: tool search hidden (Allow %q, NoTools %v)", b.Allow, b.NoTools)
		}
	})
}

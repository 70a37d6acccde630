package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeConfig writes body to a config file in a test directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) (string, bool) { return "", false }

// TestOnlyIgnoresOtherEntries: a host's own config is reusable as is
// (README): --only selects one entry, and the others, written for other
// tools (names Cursor accepts, VS Code variables), do not make the file
// unusable (fourth review: one of them failed the whole file).
func TestOnlyIgnoresOtherEntries(t *testing.T) {
	for name, body := range map[string]string{
		"name with space":  `{"mcpServers":{"good":{"command":"echo"},"Brave Search":{"command":"npx"}}}`,
		"name with dots":   `{"mcpServers":{"good":{"command":"echo"},"github.com/owner/repo":{"command":"npx"}}}`,
		"input variable":   `{"servers":{"good":{"type":"stdio","command":"echo"},"gh":{"type":"http","url":"https://api.githubcopilot.com/mcp/","headers":{"Authorization":"Bearer ${input:github_token}"}}}}`,
		"workspace folder": `{"servers":{"good":{"type":"stdio","command":"echo"},"fs":{"type":"stdio","command":"npx","args":["${workspaceFolder}"]}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			res, err := Resolve(Flags{ConfigFile: writeConfig(t, body), Only: []string{"good"}}, noEnv)
			if err != nil {
				t.Fatalf("--only good: %v", err)
			}
			if len(res.Backends) != 1 || res.Backends[0].Name != "good" {
				t.Fatalf("backends %+v", res.Backends)
			}
			if len(res.Warnings) != 0 {
				t.Errorf("warnings about entries --only left out: %q", res.Warnings)
			}
		})
	}
}

// TestUnusableEntryLeftOut: without --only, an entry that cannot be used is
// left out with a warning and the others run; --only naming it, or nothing
// else to run, fails with its own error; a qualified flag naming it does
// nothing.
func TestUnusableEntryLeftOut(t *testing.T) {
	p := writeConfig(t, `{"servers":{"good":{"type":"stdio","command":"echo"},"gh":{"type":"http","url":"https://x.example/mcp","headers":{"Authorization":"Bearer ${input:github_token}"}}}}`)
	res, err := Resolve(Flags{ConfigFile: p, Header: []string{"gh:X-K: v"}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Backends) != 1 || res.Backends[0].Name != "good" {
		t.Fatalf("backends %+v", res.Backends)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `server "gh": headers Authorization: ${input:github_token}: "input" variables are not supported; left out`) {
		t.Errorf("warnings %q", res.Warnings)
	}
	if _, err := Resolve(Flags{ConfigFile: p, Only: []string{"gh"}}, noEnv); err == nil || !strings.Contains(err.Error(), `--only: config `+p+`: server "gh": headers Authorization`) {
		t.Errorf("--only gh: %v", err)
	}
	only := writeConfig(t, `{"mcpServers":{"gh":{"url":"${NOPE}"}}}`)
	if _, err := Resolve(Flags{ConfigFile: only}, noEnv); err == nil || !strings.Contains(err.Error(), `server "gh": url: variable NOPE is not set`) {
		t.Errorf("nothing else to run: %v", err)
	}
}

// TestRenamedEntry: a name outside NamePattern gets its cleaned form, with
// a warning; --only and qualified flags accept either.
func TestRenamedEntry(t *testing.T) {
	p := writeConfig(t, `{"mcpServers":{"Brave Search":{"command":"npx"},"other":{"command":"x"}}}`)
	res, err := Resolve(Flags{ConfigFile: p, Only: []string{"Brave Search"}, Env: []string{"Brave-Search:K=V"}}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Backends) != 1 || res.Backends[0].Name != "Brave-Search" || res.Backends[0].Env["K"] != "V" {
		t.Fatalf("backends %+v", res.Backends)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `server "Brave Search" is called "Brave-Search" here`) {
		t.Errorf("warnings %q", res.Warnings)
	}
}

// TestFlagValuesExpanded: hosts run the bridge without a shell, so
// ${VAR} in a --header, --env or URL flag is the bridge's to expand (the
// README's host example put a token in a header that way and sent the
// placeholder: fourth review); --stdio commands are left to the backend.
func TestFlagValuesExpanded(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"REMOTE_TOKEN": "sekrit", "HOST": "mcp.example.com"}[k]
		return v, ok
	}
	res, err := Resolve(Flags{
		HTTP:   []string{"remote=https://${HOST}/mcp"},
		Stdio:  []string{"local=sh -c 'echo ${HOST}'"},
		Header: []string{"remote:Authorization: Bearer ${REMOTE_TOKEN}"},
		Env:    []string{"local:TOKEN=${REMOTE_TOKEN}"},
	}, env)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Backend{}
	for _, b := range res.Backends {
		byName[b.Name] = b
	}
	if got := byName["remote"].Headers["Authorization"]; got != "Bearer sekrit" {
		t.Errorf("Authorization = %q", got)
	}
	if got := byName["remote"].URL; got != "https://mcp.example.com/mcp" {
		t.Errorf("URL = %q", got)
	}
	if got := byName["local"].Env["TOKEN"]; got != "sekrit" {
		t.Errorf("env TOKEN = %q", got)
	}
	if got := strings.Join(byName["local"].Args, " "); got != "-c echo ${HOST}" {
		t.Errorf("--stdio args = %q, want them as given", got)
	}
	if _, err := Resolve(Flags{HTTP: []string{"r=https://h/mcp"}, Header: []string{"r:Authorization: Bearer ${UNSET_TOKEN}"}}, env); err == nil || !strings.Contains(err.Error(), "variable UNSET_TOKEN is not set") {
		t.Errorf("unset variable: %v", err)
	}
}

// TestOnlyNamesAnUnusableRenamedEntry: --only with the cleaned name of an
// entry that cannot be used gives that entry's error.
func TestOnlyNamesAnUnusableRenamedEntry(t *testing.T) {
	p := writeConfig(t, `{"mcpServers":{"ok":{"command":"x"},"Brave Search":{"url":"${NOPE}"}}}`)
	for _, name := range []string{"Brave Search", "Brave-Search"} {
		if _, err := Resolve(Flags{ConfigFile: p, Only: []string{name}}, noEnv); err == nil || !strings.Contains(err.Error(), "variable NOPE is not set") {
			t.Errorf("--only %q: %v", name, err)
		}
	}
}

// TestOtherHostsFiles: the settings files of Gemini CLI (httpUrl,
// includeTools, excludeTools, timeout in milliseconds, other top-level
// settings), Windsurf (serverUrl) and Cline (transportType, timeout in
// seconds, autoApprove) are reusable as they are. Before, the Gemini and
// Windsurf remote entries were left out ("needs a command or a url") and
// Cline's 60-second timeout became 60 ms.
// Gemini CLI's top-level "mcp": {"allowed": [...], "excluded": [...]}: a
// server not allowed, or excluded (which wins), is not started, and the
// file says why; they were ignored.
func TestGeminiServerLists(t *testing.T) {
	for name, tc := range map[string]struct {
		mcp      string
		started  []string
		disabled []string
	}{
		"allowed":         {`{"allowed": ["a", "c"]}`, []string{"a", "c"}, []string{"b"}},
		"excluded":        {`{"excluded": ["b"]}`, []string{"a", "c"}, []string{"b"}},
		"excluded wins":   {`{"allowed": ["a", "b"], "excluded": ["b"]}`, []string{"a"}, []string{"b", "c"}},
		"empty allowed":   {`{"allowed": []}`, nil, []string{"a", "b", "c"}},
		"other keys only": {`{"serverCommand": "x"}`, []string{"a", "b", "c"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			body := `{"mcp": ` + tc.mcp + `, "mcpServers": {"a": {"command": "a"}, "b": {"command": "b"}, "c": {"command": "c"}}}`
			f, err := parseFile([]byte(body), "/", false, func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			var started []string
			for _, b := range f.Backends {
				started = append(started, b.Name)
			}
			if !slices.Equal(started, tc.started) || !slices.Equal(f.Disabled, tc.disabled) {
				t.Errorf("started %q, not started %q; want %q and %q (notes %q)", started, f.Disabled, tc.started, tc.disabled, f.Ignored)
			}
		})
	}
	if _, err := parseFile([]byte(`{"mcp": {"allowed": "a"}, "mcpServers": {}}`), "/", false, nil); err == nil || !strings.Contains(err.Error(), "mcp.allowed") {
		t.Errorf("allowed not a list: %v", err)
	}
}

func TestOtherHostsFiles(t *testing.T) {
	gemini := `{
  "theme": "Dracula",
  "mcp": {"allowed": ["github", "git", "old"], "excluded": ["old"]},
  "mcpServers": {
    "git": {"command": "uvx", "args": ["mcp-server-git"], "timeout": 30000, "trust": false},
    "github": {"httpUrl": "https://api.example.com/mcp/", "headers": {"Authorization": "Bearer t0ken"},
               "includeTools": ["get_issue", "list_*"], "excludeTools": ["list_secrets"]},
    "old": {"command": "old-server"}
  }
}`
	windsurf := `{"mcpServers": {"remote": {"serverUrl": "https://w.example/mcp", "headers": {"Authorization": "Bearer ${env:W_TOKEN}"}}}}`
	cline := `{"mcpServers": {"legacy": {"url": "https://c.example/sse", "transportType": "sse", "disabled": false, "autoApprove": [], "timeout": 60}}}`
	env := func(k string) (string, bool) {
		if k == "W_TOKEN" {
			return "w-secret", true
		}
		return "", false
	}
	for name, tc := range map[string]struct {
		body  string
		check func(t *testing.T, bs []Backend)
	}{
		"gemini": {gemini, func(t *testing.T, bs []Backend) {
			if len(bs) != 2 || bs[0].Timeout == nil || *bs[0].Timeout != 30*time.Second {
				t.Fatalf("git: %+v", bs)
			}
			gh := bs[1]
			if gh.Kind != KindHTTP || gh.URL != "https://api.example.com/mcp/" || gh.Headers["Authorization"] != "Bearer t0ken" {
				t.Errorf("github: %+v", gh)
			}
			for tool, shown := range map[string]bool{"get_issue": true, "list_*": true, "list_repos": false, "list_secrets": false, "delete_repo": false} {
				if got := gh.Allows(tool); got != shown {
					t.Errorf("tool %q shown %v, want %v (allow %q, deny %q)", tool, got, shown, gh.Allow, gh.Deny)
				}
			}
		}},
		"windsurf": {windsurf, func(t *testing.T, bs []Backend) {
			if len(bs) != 1 || bs[0].Kind != KindURL || bs[0].URL != "https://w.example/mcp" || bs[0].Headers["Authorization"] != "Bearer w-secret" {
				t.Errorf("remote: %+v", bs)
			}
		}},
		"cline": {cline, func(t *testing.T, bs []Backend) {
			if len(bs) != 1 || bs[0].Kind != KindSSE || bs[0].Timeout == nil || *bs[0].Timeout != time.Minute {
				t.Errorf("legacy: %+v", bs)
			}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := Resolve(Flags{ConfigFile: writeConfig(t, tc.body)}, env)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, res.Backends)
		})
	}
}

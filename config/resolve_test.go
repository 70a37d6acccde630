package config

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestResolve(t *testing.T) {
	cursor := filepath.Join("testdata", "cursor.json")
	claude := filepath.Join("testdata", "claude_desktop.json")
	tests := []struct {
		name    string
		flags   Flags
		want    Result
		wantErr string
	}{
		{
			name:  "positional url",
			flags: Flags{Positional: []string{"https://mcp.example.com:8443/mcp"}},
			want:  Result{Backends: []Backend{{Name: "mcp-example-com", Kind: KindURL, URL: "https://mcp.example.com:8443/mcp"}}},
		},
		{
			name:  "positional url any case",
			flags: Flags{Positional: []string{"HTTP://Localhost:3000"}},
			want:  Result{Backends: []Backend{{Name: "Localhost", Kind: KindURL, URL: "HTTP://Localhost:3000"}}},
		},
		{
			name:  "positional command",
			flags: Flags{Positional: []string{"npx", "-y", "@scope/server-foo", "/tmp/dir with space"}},
			want: Result{Backends: []Backend{{
				Name: "server-foo", Kind: KindStdio, Command: "npx",
				Args: []string{"-y", "@scope/server-foo", "/tmp/dir with space"},
			}}},
		},
		{
			name:  "positional command without args",
			flags: Flags{Positional: []string{"/opt/weather.py"}},
			want:  Result{Backends: []Backend{{Name: "weather", Kind: KindStdio, Command: "/opt/weather.py"}}},
		},
		{
			name: "flag order then config order",
			flags: Flags{
				ConfigFile: cursor,
				SSE:        []string{"s=http://s.example.com/sse"},
				HTTP:       []string{"h1=https://h1.example.com/mcp", "h2=https://h2.example.com/mcp"},
				Stdio:      []string{`fs=npx -y "@scope/server fs" '/a b'`},
				Positional: []string{"https://pos.example.com"},
			},
			want: Result{Backends: []Backend{
				{Name: "fs", Kind: KindStdio, Command: "npx", Args: []string{"-y", "@scope/server fs", "/a b"}},
				{Name: "h1", Kind: KindHTTP, URL: "https://h1.example.com/mcp"},
				{Name: "h2", Kind: KindHTTP, URL: "https://h2.example.com/mcp"},
				{Name: "s", Kind: KindSSE, URL: "http://s.example.com/sse"},
				{Name: "pos-example-com", Kind: KindURL, URL: "https://pos.example.com"},
				{Name: "remote", Kind: KindURL, URL: "https://cursor.example.com/sse"},
				{Name: "local", Kind: KindStdio, Command: "node", Args: []string{"../server/index.js"}, Dir: "server"},
			}},
		},
		{
			name:  "stdio value keeps equals signs after the name",
			flags: Flags{Stdio: []string{"e=env A=1 B==2 srv"}},
			want:  Result{Backends: []Backend{{Name: "e", Kind: KindStdio, Command: "env", Args: []string{"A=1", "B==2", "srv"}}}},
		},
		{
			name: "qualified flags",
			flags: Flags{
				Stdio:      []string{"a=srv --x"},
				HTTP:       []string{"h=https://h.example.com/mcp"},
				Env:        []string{"a:K=v=w", "a:EMPTY=", "a:K=last"},
				Cwd:        []string{"a=../rel"},
				Header:     []string{"h:authorization: Bearer x", "h:X-Raw:no-space", "h:X-Two:  two"},
				Allow:      []string{"a:read_*", "a:list_*"},
				Deny:       []string{"a:read_secret", "h:*"},
				Timeout:    []string{"30s", "a:0", "1m"},
				MaxTimeout: []string{"h:1h", "0"},
			},
			want: Result{
				Backends: []Backend{
					{
						Name: "a", Kind: KindStdio, Command: "srv", Args: []string{"--x"},
						Env:     map[string]string{"K": "last", "EMPTY": ""},
						Dir:     "../rel",
						Allow:   []string{"read_*", "list_*"},
						Deny:    []string{"read_secret"},
						Timeout: dur(0),
					},
					{
						Name: "h", Kind: KindHTTP, URL: "https://h.example.com/mcp",
						Headers:    map[string]string{"Authorization": "Bearer x", "X-Raw": "no-space", "X-Two": " two"},
						Deny:       []string{"*"},
						MaxTimeout: dur(time.Hour),
					},
				},
				DefaultTimeout:    dur(time.Minute),
				DefaultMaxTimeout: dur(0),
			},
		},
		{
			name: "qualified flags adjust config backends",
			flags: Flags{
				ConfigFile: claude,
				Env:        []string{"zeta:MODE=dev"},
				Header:     []string{"alpha:X-Team: edge"},
				Allow:      []string{"zeta:write_*"},
				Timeout:    []string{"zeta:5s"},
				Cwd:        []string{"abs=/elsewhere"},
				Only:       []string{"zeta, alpha", "abs"},
			},
			want: Result{
				Backends: []Backend{
					{
						Name: "zeta", Kind: KindStdio, Command: "npx",
						Args:       []string{"-y", "@scope/server-zeta", "/home/u/notes"},
						Env:        map[string]string{"API_KEY": "k3y", "MODE": "dev"},
						Dir:        filepath.Join("testdata", "work"),
						Allow:      []string{"read_*", "list_?", "write_*"},
						Deny:       []string{"read_secret"},
						Timeout:    dur(5 * time.Second),
						MaxTimeout: dur(10 * time.Minute),
					},
					{
						Name: "alpha", Kind: KindURL, URL: "https://mcp.example.com/mcp",
						Headers: map[string]string{"Authorization": "Bearer t0k", "X-Team": "edge"},
						Timeout: dur(90 * time.Second),
					},
					{Name: "abs", Kind: KindStdio, Command: "/usr/bin/srv", Dir: "/elsewhere", Timeout: dur(0)},
				},
				Ignored: []string{
					`config testdata/claude_desktop.json: key "globalShortcut" ignored`,
					`config testdata/claude_desktop.json: server "zeta": key "autoApprove" ignored`,
					`config testdata/claude_desktop.json: server "off": key "bogus" ignored`,
					`config testdata/claude_desktop.json: server "off": disabled`,
					`config testdata/claude_desktop.json: server "legacy": key "command" ignored (not used by sse backends)`,
					`config testdata/claude_desktop.json: server "typed-stdio": key "url" ignored (not used by stdio backends)`,
				},
			},
		},
		{
			name:  "only keeps declared order and may skip qualified backends",
			flags: Flags{Stdio: []string{"a=x", "b=y", "c=z"}, Env: []string{"b:K=V"}, Only: []string{"c,a,", " "}},
			want: Result{Backends: []Backend{
				{Name: "a", Kind: KindStdio, Command: "x"},
				{Name: "c", Kind: KindStdio, Command: "z"},
			}},
		},
		{name: "nothing", flags: Flags{}, wantErr: "no backends: give --stdio, --http, --sse, a URL, a command, or --config"},
		{name: "config with nothing enabled", flags: Flags{ConfigFile: filepath.Join("testdata", "none_enabled.json")}, wantErr: "config testdata/none_enabled.json: no server to run"},
		{name: "config whose only entry is mcpbridge", flags: Flags{ConfigFile: filepath.Join("testdata", "nested.json")}, wantErr: `no server to run`},
		{name: "stdio without name", flags: Flags{Stdio: []string{"npx foo"}}, wantErr: `--stdio "npx foo": want NAME=COMMAND ARGS...`},
		{name: "stdio bad name", flags: Flags{Stdio: []string{"a b=srv"}}, wantErr: `--stdio "a b=srv": bad name "a b": names must match ^[A-Za-z0-9_-]{1,32}$ (for example "a-b")`},
		{name: "stdio empty name", flags: Flags{Stdio: []string{"=srv"}}, wantErr: `--stdio "=srv": bad name ""`},
		{name: "stdio assignment", flags: Flags{Stdio: []string{"gh=GH_TOKEN=ghp_x1 srv"}}, wantErr: `--stdio "gh=…": the command starts with GH_TOKEN=…, an assignment a shell would make, and mcpbridge runs no shell: give it as --env gh:GH_TOKEN=VALUE`},
		{name: "stdio empty command", flags: Flags{Stdio: []string{"a= \t"}}, wantErr: `--stdio "a= \t": empty command`},
		{name: "stdio unterminated quote", flags: Flags{Stdio: []string{`a=srv "x`}}, wantErr: `--stdio "a=srv \"x": unterminated double quote at byte 5`},
		{name: "stdio nested", flags: Flags{Stdio: []string{"a=/usr/bin/mcpbridge --stdio b=x"}}, wantErr: `--stdio "a=/usr/bin/mcpbridge --stdio b=x": refusing to start mcpbridge inside mcpbridge`},
		{name: "http without name", flags: Flags{HTTP: []string{"https://x"}}, wantErr: `--http "https://x": want NAME=URL`},
		{name: "http bad scheme", flags: Flags{HTTP: []string{"h=ws://x"}}, wantErr: `--http "h=ws://x": bad URL "ws://x": want an http:// or https:// URL`},
		{name: "sse no host", flags: Flags{SSE: []string{"s=http://"}}, wantErr: `--sse "s=http://": bad URL "http://": no host`},
		{name: "sse no equals", flags: Flags{SSE: []string{"s"}}, wantErr: `--sse "s": want NAME=URL`},
		{name: "positional url with extra args", flags: Flags{Positional: []string{"https://x", "y"}}, wantErr: `URL https://x: unexpected arguments after it: ["y"]`},
		{name: "positional url without host", flags: Flags{Positional: []string{"https:///p"}}, wantErr: `bad URL "https:///p": no host`},
		{name: "positional nested", flags: Flags{Positional: []string{"mcpbridge", "--config", "x"}}, wantErr: `command "mcpbridge": refusing to start mcpbridge inside mcpbridge`},
		{name: "positional empty command", flags: Flags{Positional: []string{""}}, wantErr: `command "": empty command`},
		{name: "duplicate flags", flags: Flags{Stdio: []string{"a=x"}, HTTP: []string{"a=http://a"}}, wantErr: `backend name "a" is used twice (--stdio and --http)`},
		{name: "duplicate with config", flags: Flags{Stdio: []string{"local=x"}, ConfigFile: cursor}, wantErr: `backend name "local" is used twice (--stdio and config testdata/cursor.json)`},
		{name: "duplicate positional", flags: Flags{Positional: []string{"/bin/local"}, ConfigFile: cursor}, wantErr: `backend name "local" is used twice (the command line arguments and config testdata/cursor.json); use --stdio NAME=COMMAND, --http or --sse to choose another name`},
		{name: "env unknown backend", flags: Flags{Stdio: []string{"a=x"}, Env: []string{"b:K=V"}}, wantErr: `--env "b:K=V": no backend named "b"`},
		{name: "env unqualified", flags: Flags{Stdio: []string{"a=x"}, Env: []string{"K=V"}}, wantErr: `--env "K=V": want NAME:KEY=VALUE`},
		{name: "env without value", flags: Flags{Stdio: []string{"a=x"}, Env: []string{"a:K"}}, wantErr: `--env "a:K": want NAME:KEY=VALUE: there is no = after NAME:`},
		{name: "env empty key", flags: Flags{Stdio: []string{"a=x"}, Env: []string{"a:=V"}}, wantErr: `--env "a:=V": want NAME:KEY=VALUE with a non-empty KEY`},
		{name: "env on remote", flags: Flags{HTTP: []string{"h=http://h"}, Env: []string{"h:K=V"}}, wantErr: `--env "h:K=V": backend "h" is not a stdio backend`},
		{name: "cwd on remote", flags: Flags{Positional: []string{"http://h"}, Cwd: []string{"h=/tmp"}}, wantErr: `--cwd "h=/tmp": backend "h" is not a stdio backend`},
		{name: "cwd empty", flags: Flags{Stdio: []string{"a=x"}, Cwd: []string{"a="}}, wantErr: `--cwd "a=": empty directory`},
		{name: "cwd without equals", flags: Flags{Stdio: []string{"a=x"}, Cwd: []string{"/tmp"}}, wantErr: `--cwd "/tmp": want NAME=DIR`},
		{name: "header on stdio", flags: Flags{Stdio: []string{"a=x"}, Header: []string{"a:K: v"}}, wantErr: `--header "a:K: v": backend "a" is a stdio backend, not a remote one`},
		{name: "header without key", flags: Flags{HTTP: []string{"h=http://h"}, Header: []string{"h:novalue"}}, wantErr: `--header "h:novalue": want 'NAME:Key: Value'`},
		{name: "header bad name", flags: Flags{HTTP: []string{"h=http://h"}, Header: []string{"h:Bad Key: v"}}, wantErr: `--header "h:Bad Key: v": bad header name "Bad Key"`},
		{name: "allow bad glob", flags: Flags{Stdio: []string{"a=x"}, Allow: []string{"a:[x"}}, wantErr: `--allow "a:[x": bad pattern "[x": syntax error in pattern`},
		{name: "deny empty glob", flags: Flags{Stdio: []string{"a=x"}, Deny: []string{"a:"}}, wantErr: `--deny "a:": empty pattern`},
		{name: "deny unqualified", flags: Flags{Stdio: []string{"a=x"}, Deny: []string{"*"}}, wantErr: `--deny "*": want NAME:GLOB`},
		{name: "timeout without unit", flags: Flags{Stdio: []string{"a=x"}, Timeout: []string{"30"}}, wantErr: `--timeout "30": bad duration "30": want a duration such as 30s or 2m, or 0 to disable`},
		{name: "timeout negative", flags: Flags{Stdio: []string{"a=x"}, Timeout: []string{"a:-1m"}}, wantErr: `--timeout "a:-1m": bad duration "-1m": negative`},
		{name: "timeout unknown backend", flags: Flags{Stdio: []string{"a=x"}, Timeout: []string{"b:1m"}}, wantErr: `--timeout "b:1m": no backend named "b"`},
		{name: "max timeout bad", flags: Flags{Stdio: []string{"a=x"}, MaxTimeout: []string{"a:soon"}}, wantErr: `--max-timeout "a:soon": bad duration "soon"`},
		{name: "only unknown", flags: Flags{Stdio: []string{"a=x"}, Only: []string{"a,b"}}, wantErr: `--only: no backend named "b"`},
		{name: "only disabled", flags: Flags{ConfigFile: claude, Only: []string{"off"}}, wantErr: `--only: backend "off" is disabled in config testdata/claude_desktop.json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.flags, testEnv)
			if !errMatches(err, tt.wantErr) {
				t.Fatalf("Resolve error = %v, want %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNoOAuth(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	if err := os.WriteFile(file, []byte(`{"mcpServers": {
		"off": {"url": "http://a/mcp", "oauth": false},
		"on":  {"url": "http://b/mcp", "oauth": true},
		"def": {"url": "http://c/mcp"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(Flags{ConfigFile: file, HTTP: []string{"flag=http://d/mcp"}, NoOAuth: []string{"flag"}}, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, b := range res.Backends {
		got[b.Name] = b.NoOAuth
	}
	want := map[string]bool{"flag": true, "off": true, "on": false, "def": false}
	if !maps.Equal(got, want) {
		t.Fatalf("NoOAuth = %v, want %v", got, want)
	}
	_, err = Resolve(Flags{Stdio: []string{"s=cat"}, NoOAuth: []string{"s"}}, func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), `--no-oauth "s": backend "s" is a stdio backend`) {
		t.Fatalf("stdio: %v", err)
	}
}

// TestOAuthSettings: "oauth" as an object in a config file and the
// --oauth-* flags set a backend's OAuth client, callback port and scopes;
// ${VAR} is expanded in the client id and secret; contradictions are
// refused with the backend named.
func TestOAuthSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.json")
	if err := os.WriteFile(file, []byte(`{"mcpServers": {
		"gh": {"url": "http://a/mcp", "oauth": {"clientId": "Iv1.abc", "clientSecret": "${GH_SECRET}", "callbackPort": 8765, "scopes": "repo read:org"}},
		"arr": {"url": "http://b/mcp", "oauth": {"scopes": ["x", "y"]}}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"GH_SECRET": "s3cret", "CID": "flag-client"}[k]
		return v, ok
	}
	res, err := Resolve(Flags{ConfigFile: file, HTTP: []string{"flag=http://d/mcp"},
		OAuthClient: []string{"flag:${CID}"}, OAuthCallbackPort: []string{"flag:9000"}, OAuthScopes: []string{"flag:a,b c"}}, env)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*OAuth{}
	for _, b := range res.Backends {
		got[b.Name] = b.OAuth
	}
	want := map[string]*OAuth{
		"flag": {ClientID: "flag-client", CallbackPort: 9000, Scopes: []string{"a", "b", "c"}},
		"gh":   {ClientID: "Iv1.abc", ClientSecret: "s3cret", CallbackPort: 8765, Scopes: []string{"repo", "read:org"}},
		"arr":  {Scopes: []string{"x", "y"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("OAuth settings (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		flags   Flags
		file    string
		wantErr string
	}{
		{Flags{HTTP: []string{"r=http://a/mcp"}, NoOAuth: []string{"r"}, OAuthClient: []string{"r:x"}}, "", `backend "r": OAuth settings given, but OAuth is turned off`},
		{Flags{HTTP: []string{"r=http://a/mcp"}, OAuthClientSecret: []string{"r:x"}}, "", `backend "r": a client secret without a client id`},
		{Flags{Stdio: []string{"s=cat"}, OAuthClient: []string{"s:x"}}, "", `backend "s" is a stdio backend`},
		{Flags{HTTP: []string{"r=http://a/mcp"}, OAuthCallbackPort: []string{"r:http"}}, "", `--oauth-callback-port "r:http": port "http"`},
		{Flags{}, `{"mcpServers": {"r": {"url": "http://a/mcp", "oauth": {"redirectUri": "x"}}}}`, `unknown field "redirectUri"`},
		{Flags{}, `{"mcpServers": {"r": {"url": "http://a/mcp", "oauth": {"callbackPort": 70000}}}}`, `callbackPort 70000`},
		{Flags{}, `{"mcpServers": {"r": {"url": "http://a/mcp", "oauth": "yes"}}}`, `must be true, false or an object`},
	} {
		f := tt.flags
		if tt.file != "" {
			p := filepath.Join(dir, "bad.json")
			if err := os.WriteFile(p, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			f.ConfigFile = p
		}
		_, err := Resolve(f, env)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%+v %s: error %v, want %q", tt.flags, tt.file, err, tt.wantErr)
		}
	}
}

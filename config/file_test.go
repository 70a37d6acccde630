package config

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func dur(d time.Duration) *time.Duration { return &d }

// testEnv is the environment the file tests expand against.
var testEnv = mapLookup(map[string]string{
	"HOME":         "/home/u",
	"API_KEY":      "k3y",
	"TOKEN":        "t0k",
	"GITHUB_TOKEN": "gh",
	"MODE":         "",
	"BRIDGE":       "/opt/bin/mcpbridge",
})

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    File
		wantErr string
	}{
		{
			name: "claude desktop",
			file: "claude_desktop.json",
			want: File{
				Backends: []Backend{
					{
						Name:       "zeta",
						Kind:       KindStdio,
						Command:    "npx",
						Args:       []string{"-y", "@scope/server-zeta", "/home/u/notes"},
						Env:        map[string]string{"API_KEY": "k3y", "MODE": "prod"},
						Dir:        filepath.Join("testdata", "work"),
						Allow:      []string{"read_*", "list_?"},
						Deny:       []string{"read_secret"},
						Timeout:    dur(2 * time.Minute),
						MaxTimeout: dur(10 * time.Minute),
					},
					{
						Name:    "alpha",
						Kind:    KindURL,
						URL:     "https://mcp.example.com/mcp",
						Headers: map[string]string{"Authorization": "Bearer t0k", "X-Team": "core"},
						Timeout: dur(90 * time.Second),
					},
					{Name: "abs", Kind: KindStdio, Command: "/usr/bin/srv", Dir: "/srv/data", Timeout: dur(0)},
					{Name: "legacy", Kind: KindSSE, URL: "http://localhost:9000/sse"},
					{Name: "streamy", Kind: KindHTTP, URL: "https://s.example.com/mcp"},
					{Name: "typed-stdio", Kind: KindStdio, Command: "python3", Args: []string{"server.py"}},
				},
				Disabled: []string{"off"},
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
			name: "vs code jsonc",
			file: "vscode_mcp.json",
			want: File{
				Backends: []Backend{
					{
						Name:    "github",
						Kind:    KindHTTP,
						URL:     "https://api.githubcopilot.com/mcp/",
						Headers: map[string]string{"Authorization": "Bearer gh"},
					},
					{
						Name:    "fs",
						Kind:    KindStdio,
						Command: "npx",
						Args:    []string{"-y", "@modelcontextprotocol/server-filesystem", ".", "http://not/a//comment"},
					},
					{Name: "old-sse", Kind: KindSSE, URL: "https://legacy.example.com/sse"},
					{Name: "streamable", Kind: KindHTTP, URL: "https://s.example.com/mcp"},
				},
				Ignored: []string{
					`config testdata/vscode_mcp.json: key "inputs" ignored (input variables are not supported; use ${env:VAR})`,
				},
				Warnings: []string{
					`config testdata/vscode_mcp.json: server "fs": envFile is not read; the server starts without its variables (put them in "env")`,
				},
			},
		},
		{
			name: "cursor with relative paths",
			file: "cursor.json",
			want: File{
				Backends: []Backend{
					{Name: "remote", Kind: KindURL, URL: "https://cursor.example.com/sse"},
					{Name: "local", Kind: KindStdio, Command: "node", Args: []string{"../server/index.js"}, Dir: "server"},
				},
			},
		},
		{
			name:    "unknown type",
			file:    "unknown_type.json",
			wantErr: `config testdata/unknown_type.json: server "weird": unknown type "websocket": want stdio, http, streamable-http or sse`,
		},
		{
			// A host's own config that lists mcpbridge: the entry is skipped.
			name: "nested bridge",
			file: "nested.json",
			want: File{
				Skipped: []string{"inner"},
				Ignored: []string{`config testdata/nested.json: server "inner": skipped: it runs mcpbridge itself`},
			},
		},
		{
			name:    "undefined variable",
			file:    "undefined_var.json",
			wantErr: `config testdata/undefined_var.json: server "api": headers Authorization: variable API_TOKEN is not set`,
		},
		{
			// Hosts accept any name; the bridge's is made of the same words.
			name: "bad name",
			file: "bad_name.json",
			want: File{
				Backends: []Backend{{Name: "my-server", Kind: KindStdio, Command: "srv"}},
				Renamed:  map[string]string{"my server": "my-server"},
			},
		},
		{
			name:    "syntax error",
			file:    "syntax_error.json",
			wantErr: `config testdata/syntax_error.json: line 3 column 28: invalid character ',' looking for beginning of object key string`,
		},
		{
			name:    "missing file",
			file:    "does_not_exist.json",
			wantErr: "config testdata/does_not_exist.json: no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadFile(filepath.Join("testdata", tt.file), testEnv)
			if err == nil && len(got.Invalid) > 0 {
				// An entry that cannot be used is left out, not fatal;
				// Resolve says why.
				err = fmt.Errorf("config testdata/%s: %w", tt.file, got.Invalid[0])
				got = File{}
			}
			if !errMatches(err, tt.wantErr) {
				t.Fatalf("LoadFile error = %v, want %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LoadFile mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseFile covers the shapes and per-key errors with inline JSON;
// relative cwd values resolve against /cfg.
func TestParseFile(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    File
		wantErr string
	}{
		{
			name: "empty server object",
			json: `{"mcpServers": {}}`,
			want: File{},
		},
		{
			name: "null values count as absent",
			json: `{"mcpServers": {"a": {"command": "srv", "args": null, "type": null, "env": null}}}`,
			want: File{Backends: []Backend{{Name: "a", Kind: KindStdio, Command: "srv"}}},
		},
		{
			name: "disabled entry is not checked",
			json: `{"mcpServers": {"bad name!": {"disabled": true, "type": "nope", "command": "mcpbridge"}}}`,
			want: File{Disabled: []string{"bad name!"}, Ignored: []string{`server "bad name!": disabled`}},
		},
		{
			name: "order kept",
			json: `{"servers": {"c": {"command": "c"}, "a": {"command": "a"}, "b": {"url": "http://b"}}}`,
			want: File{Backends: []Backend{
				{Name: "c", Kind: KindStdio, Command: "c"},
				{Name: "a", Kind: KindStdio, Command: "a"},
				{Name: "b", Kind: KindURL, URL: "http://b"},
			}},
		},
		{
			name: "relative and expanded cwd",
			json: `{"mcpServers": {"a": {"command": "srv", "cwd": "${HOME}/x"}, "b": {"command": "srv", "cwd": "./sub/../data"}}}`,
			want: File{Backends: []Backend{
				{Name: "a", Kind: KindStdio, Command: "srv", Dir: "/home/u/x"},
				{Name: "b", Kind: KindStdio, Command: "srv", Dir: "/cfg/data"},
			}},
		},
		{
			name: "type and transport agreeing",
			json: `{"mcpServers": {"a": {"type": "http", "transport": "streamable-http", "url": "https://a"}}}`,
			want: File{Backends: []Backend{{Name: "a", Kind: KindHTTP, URL: "https://a"}}},
		},
		{
			name: "fractional seconds",
			json: `{"mcpServers": {"a": {"command": "srv", "timeout": 0.5, "maxTimeout": "1h30m"}}}`,
			want: File{Backends: []Backend{{Name: "a", Kind: KindStdio, Command: "srv", Timeout: dur(500 * time.Millisecond), MaxTimeout: dur(90 * time.Minute)}}},
		},
		{
			// Cline and Roo Code write seconds (30 to 3600); read as
			// milliseconds, 60 cut every call after 60 ms.
			name: "bare numbers up to 3600 are seconds",
			json: `{"mcpServers": {"cline": {"command": "srv", "timeout": 60, "maxTimeout": 3600}, "zero": {"command": "srv", "timeout": 0}}}`,
			want: File{Backends: []Backend{
				{Name: "cline", Kind: KindStdio, Command: "srv", Timeout: dur(time.Minute), MaxTimeout: dur(time.Hour)},
				{Name: "zero", Kind: KindStdio, Command: "srv", Timeout: dur(0)},
			}},
		},
		{
			// Claude Code and Gemini CLI write milliseconds.
			name: "bare numbers above 3600 are milliseconds",
			json: `{"mcpServers": {"gemini": {"command": "srv", "timeout": 600000, "maxTimeout": 3601}}}`,
			want: File{Backends: []Backend{{Name: "gemini", Kind: KindStdio, Command: "srv", Timeout: dur(10 * time.Minute), MaxTimeout: dur(3601 * time.Millisecond)}}},
		},
		{
			// Windsurf's serverUrl (the transport found out as for url),
			// Gemini CLI's httpUrl (streamable HTTP) and its tool lists,
			// Cline's transportType.
			name: "other hosts' keys",
			json: `{"mcpServers": {
				"windsurf": {"serverUrl": "https://w/mcp", "headers": {"X-K": "v"}},
				"gemini": {"httpUrl": "https://g/mcp", "includeTools": ["read", "odd*name"], "excludeTools": ["write"]},
				"cline": {"url": "https://c/sse", "transportType": "sse"}
			}}`,
			want: File{Backends: []Backend{
				{Name: "windsurf", Kind: KindURL, URL: "https://w/mcp", Headers: map[string]string{"X-K": "v"}},
				{Name: "gemini", Kind: KindHTTP, URL: "https://g/mcp", Allow: []string{"read", `odd\*name`}, Deny: []string{"write"}},
				{Name: "cline", Kind: KindSSE, URL: "https://c/sse"},
			}},
		},
		{
			name: "byte order mark and block comment",
			json: "\xef\xbb\xbf{/* a */\"mcpServers\": {\"a\": {\"command\": \"srv /* kept */\"}}}",
			want: File{Backends: []Backend{{Name: "a", Kind: KindStdio, Command: "srv /* kept */"}}},
		},
		{name: "empty input", json: ``, wantErr: "line 1 column 1: unexpected end of JSON input"},
		{name: "only a comment", json: "// nothing\n", wantErr: "line 1 column 11: unexpected end of JSON input"},
		{name: "top level array", json: `[]`, wantErr: "the file must be a JSON object"},
		{name: "no servers", json: `{"foo": 1}`, wantErr: `no "mcpServers" or "servers" object`},
		{name: "both shapes", json: `{"mcpServers": {}, "servers": {}}`, wantErr: `both "mcpServers" and "servers" given; use one`},
		{name: "servers null", json: `{"mcpServers": null}`, wantErr: `"mcpServers" must be a JSON object`},
		{name: "servers array", json: `{"servers": []}`, wantErr: `"servers" must be a JSON object`},
		{name: "trailing data", json: `{"mcpServers": {}} {}`, wantErr: "line 1 column 20: invalid character '{' after top-level value"},
		{name: "unterminated comment", json: `{"mcpServers": {}} /* x`, wantErr: "line 1 column 20: invalid character '/'"},
		{name: "truncated", json: "{\"mcpServers\": {\n\"a\": {\"command\": \"x\"}", wantErr: "line 2 column 21: unexpected end of JSON input"},
		{name: "entry not object", json: `{"mcpServers": {"a": "srv"}}`, wantErr: `server "a": entry must be a JSON object`},
		{name: "declared twice", json: `{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}`, wantErr: `server "a": declared twice`},
		{name: "command not string", json: `{"mcpServers": {"a": {"command": ["x"]}}}`, wantErr: `server "a": command: must be a string`},
		{name: "args not strings", json: `{"mcpServers": {"a": {"command": "x", "args": [1]}}}`, wantErr: `server "a": args: must be an array of strings`},
		{name: "env not strings", json: `{"mcpServers": {"a": {"command": "x", "env": {"N": 1}}}}`, wantErr: `server "a": env: must be an object of strings`},
		{name: "headers not object", json: `{"mcpServers": {"a": {"url": "http://a", "headers": "x"}}}`, wantErr: `server "a": headers: must be an object of strings`},
		{name: "disabled not bool", json: `{"mcpServers": {"a": {"command": "x", "disabled": "yes"}}}`, wantErr: `server "a": disabled: must be true or false`},
		{name: "allow not array", json: `{"mcpServers": {"a": {"command": "x", "allow": "*"}}}`, wantErr: `server "a": allow: must be an array of strings`},
		{name: "bad glob", json: `{"mcpServers": {"a": {"command": "x", "deny": ["ok", "[a-"]}}}`, wantErr: `server "a": bad pattern "[a-": syntax error in pattern`},
		{name: "empty glob", json: `{"mcpServers": {"a": {"command": "x", "allow": [""]}}}`, wantErr: `server "a": empty pattern`},
		{name: "timeout without unit", json: `{"mcpServers": {"a": {"command": "x", "timeout": "30"}}}`, wantErr: `server "a": timeout: bad duration "30": want a duration such as 30s or 2m, or 0 to disable`},
		{name: "negative timeout string", json: `{"mcpServers": {"a": {"command": "x", "timeout": "-1s"}}}`, wantErr: `server "a": timeout: bad duration "-1s": negative`},
		{name: "negative timeout number", json: `{"mcpServers": {"a": {"command": "x", "maxTimeout": -5}}}`, wantErr: `server "a": maxTimeout: bad duration -5: negative`},
		{name: "huge timeout", json: `{"mcpServers": {"a": {"command": "x", "timeout": 1e300}}}`, wantErr: `server "a": timeout: bad duration 1e+300: too long`},
		{name: "timeout bool", json: `{"mcpServers": {"a": {"command": "x", "timeout": true}}}`, wantErr: `server "a": timeout: must be a duration string such as "2m" or a number (seconds up to 3600, milliseconds above)`},
		{name: "two urls", json: `{"mcpServers": {"a": {"url": "http://a", "httpUrl": "http://b"}}}`, wantErr: `server "a": both "url" and "httpUrl" given; give one`},
		{name: "httpUrl typed sse", json: `{"mcpServers": {"a": {"httpUrl": "http://a", "type": "sse"}}}`, wantErr: `server "a": type "sse" and "httpUrl" (a streamable-HTTP URL) disagree`},
		{name: "transportType unknown", json: `{"mcpServers": {"a": {"url": "http://a", "transportType": "ws"}}}`, wantErr: `server "a": unknown transportType "ws"`},
		{name: "unknown transport", json: `{"mcpServers": {"a": {"transport": "ws", "url": "http://a"}}}`, wantErr: `server "a": unknown transport "ws"`},
		{name: "type and transport disagree", json: `{"mcpServers": {"a": {"type": "sse", "transport": "http", "url": "http://a"}}}`, wantErr: `server "a": type "sse" and transport "http" disagree`},
		{name: "stdio without command", json: `{"mcpServers": {"a": {"type": "stdio", "url": "http://a"}}}`, wantErr: `server "a": type "stdio" needs a "command"`},
		{name: "http without url", json: `{"mcpServers": {"a": {"type": "streamableHttp", "command": "x"}}}`, wantErr: `server "a": type "http" needs a "url"`},
		{name: "command and url", json: `{"mcpServers": {"a": {"command": "x", "url": "http://a"}}}`, wantErr: `server "a": both "command" and "url" given; set "type" to choose`},
		{name: "neither command nor url", json: `{"mcpServers": {"a": {"args": ["x"]}}}`, wantErr: `server "a": needs a "command" or a "url"`},
		{name: "bad url scheme", json: `{"mcpServers": {"a": {"url": "ftp://a/x"}}}`, wantErr: `server "a": url: bad URL "ftp://a/x": want an http:// or https:// URL`},
		{name: "url without host", json: `{"mcpServers": {"a": {"type": "sse", "url": "https:///x"}}}`, wantErr: `server "a": url: bad URL "https:///x": no host`},
		{name: "url expansion", json: `{"mcpServers": {"a": {"url": "${NOPE}"}}}`, wantErr: `server "a": url: variable NOPE is not set`},
		{name: "command expansion", json: `{"mcpServers": {"a": {"command": "${NOPE}"}}}`, wantErr: `server "a": command: variable NOPE is not set`},
		{name: "command expands to empty", json: `{"mcpServers": {"a": {"command": "${MODE}"}}}`, wantErr: `server "a": empty command`},
		{name: "args expansion", json: `{"mcpServers": {"a": {"command": "x", "args": ["ok", "${input:tok}"]}}}`, wantErr: `server "a": args[1]: ${input:tok}: "input" variables are not supported`},
		{name: "env expansion", json: `{"mcpServers": {"a": {"command": "x", "env": {"K": "${NOPE"}}}}`, wantErr: `server "a": env K: unterminated "${NOPE": missing '}'`},
		{name: "env bad key", json: `{"mcpServers": {"a": {"command": "x", "env": {"A=B": "c"}}}}`, wantErr: `server "a": env: bad variable name "A=B"`},
		{name: "cwd expansion", json: `{"mcpServers": {"a": {"command": "x", "cwd": "${NOPE}/x"}}}`, wantErr: `server "a": cwd: variable NOPE is not set`},
		{name: "empty cwd", json: `{"mcpServers": {"a": {"command": "x", "cwd": ""}}}`, wantErr: `server "a": cwd: empty`},
		{name: "bad header name", json: `{"mcpServers": {"a": {"url": "http://a", "headers": {"X Y": "z"}}}}`, wantErr: `server "a": headers: bad header name "X Y"`},
		{name: "header line break", json: `{"mcpServers": {"a": {"url": "http://a", "headers": {"X": "a\r\nEvil: 1"}}}}`, wantErr: `server "a": headers: header X: value contains a line break or NUL`},
		{name: "header twice", json: `{"mcpServers": {"a": {"url": "http://a", "headers": {"x-k": "1", "X-K": "2"}}}}`, wantErr: `server "a": headers: X-K given twice`},
		{name: "nested bridge exe", json: `{"mcpServers": {"a": {"command": "C:\\bin\\MCPBridge.EXE"}}}`, want: File{Skipped: []string{"a"}, Ignored: []string{`server "a": skipped: it runs mcpbridge itself`}}},
		{name: "nested bridge via variable", json: `{"mcpServers": {"a": {"command": "${BRIDGE}"}}}`, want: File{Skipped: []string{"a"}, Ignored: []string{`server "a": skipped: it runs mcpbridge itself`}}},
		{name: "renamed name taken", json: `{"mcpServers": {"a-b": {"command": "x"}, "a b": {"command": "y"}}}`, wantErr: `server "a b": bad name: names must match ^[A-Za-z0-9_-]{1,32}$, and "a-b" is taken`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFile([]byte(tt.json), "/cfg", false, testEnv)
			if err == nil && len(got.Invalid) > 0 {
				// An entry that cannot be used is left out, not fatal.
				err = got.Invalid[0]
			}
			if !errMatches(err, tt.wantErr) {
				t.Fatalf("parseFile error = %v, want %q", err, tt.wantErr)
			}
			if tt.wantErr != "" {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseFile mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStripJSONC(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "plain json unchanged", in: `{"a": [1, 2]}`, want: `{"a": [1, 2]}`},
		{name: "line comment", in: "{\"a\": 1 // c\n}", want: "{\"a\": 1     \n}"},
		{name: "block comment keeps newlines", in: "{/* x\ny */}", want: "{    \n    }"},
		{name: "trailing commas", in: `{"a": [1, 2,], }`, want: `{"a": [1, 2 ]  }`},
		{name: "comma before comment then brace", in: "[1, // c\n]", want: "[1      \n]"},
		{name: "comment markers in strings", in: `{"a": "// x /* y */ ,}"}`, want: `{"a": "// x /* y */ ,}"}`},
		{name: "escaped quote in string", in: `["a\" // b"]`, want: `["a\" // b"]`},
		{name: "comma then value kept", in: `[1, 2]`, want: `[1, 2]`},
		{name: "bom", in: "\xef\xbb\xbf{}", want: "   {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, string(stripJSONC([]byte(tt.in)))); diff != "" {
				t.Errorf("stripJSONC(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

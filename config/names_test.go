package config

import (
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "valid unchanged", in: "server-foo_2", want: "server-foo_2"},
		{name: "valid edge dashes unchanged", in: "-x_", want: "-x_"},
		{name: "dots", in: "mcp.example.com", want: "mcp-example-com"},
		{name: "run becomes one dash", in: "a .:/ b", want: "a-b"},
		{name: "ends dropped", in: "  @scope/pkg!  ", want: "scope-pkg"},
		{name: "non-ascii", in: "café crème", want: "caf-cr-me"},
		{name: "empty", in: "", want: "backend"},
		{name: "nothing valid", in: "日本 語", want: "backend"},
		{name: "exactly 32", in: strings.Repeat("a", 32), want: strings.Repeat("a", 32)},
		{name: "truncated", in: strings.Repeat("ab", 20), want: strings.Repeat("ab", 16)},
		{name: "truncation trims separator", in: strings.Repeat("a", 31) + ".b", want: strings.Repeat("a", 31)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CleanName(tt.in)
			if got != tt.want {
				t.Errorf("CleanName(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !ValidName(got) {
				t.Errorf("CleanName(%q) = %q, which does not match %s", tt.in, got, NamePattern)
			}
		})
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"", "a", "mcp.example.com", "@x/y@1", "日本", strings.Repeat("-", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := CleanName(s)
		if !ValidName(got) {
			t.Fatalf("CleanName(%q) = %q, which does not match %s", s, got, NamePattern)
		}
		if ValidName(s) && got != s {
			t.Fatalf("CleanName(%q) = %q, want a valid name unchanged", s, got)
		}
		if again := CleanName(got); again != got {
			t.Fatalf("CleanName not idempotent: %q → %q → %q", s, got, again)
		}
	})
}

func TestNameFromURL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "host and port", in: "https://mcp.example.com:8443/x", want: "mcp-example-com"},
		{name: "localhost", in: "http://localhost:3000/mcp", want: "localhost"},
		{name: "userinfo dropped", in: "https://user:pw@api.example.org/", want: "api-example-org"},
		{name: "ipv4", in: "http://127.0.0.1:8080", want: "127-0-0-1"},
		{name: "ipv6", in: "http://[::1]:8080/", want: "1"},
		{name: "no host", in: "/just/a/path", want: "backend"},
		{name: "unparsable", in: "http://a b:x", want: "backend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NameFromURL(tt.in); got != tt.want {
				t.Errorf("NameFromURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNameFromCommand(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "bare", in: "server-foo", want: "server-foo"},
		{name: "path", in: "/usr/local/bin/server-foo", want: "server-foo"},
		{name: "windows exe", in: `C:\tools\Server.EXE`, want: "Server"},
		{name: "cmd", in: "npx.cmd", want: "npx"},
		{name: "python script", in: "./my_server.py", want: "my_server"},
		{name: "js", in: "build/index.js", want: "index"},
		{name: "unknown extension kept", in: "tool.v2", want: "tool-v2"},
		{name: "only one extension", in: "a.py.exe", want: "a-py"},
		{name: "extension alone kept", in: ".py", want: "py"},
		{name: "trailing slash", in: "dir/", want: "backend"},
		{name: "empty", in: "", want: "backend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NameFromCommand(tt.in); got != tt.want {
				t.Errorf("NameFromCommand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNameFromArgv(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{name: "empty", argv: nil, want: "backend"},
		{name: "plain command", argv: []string{"/opt/srv/bin/weather", "--port", "1"}, want: "weather"},
		{name: "npx scoped", argv: []string{"npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp"}, want: "server-filesystem"},
		{name: "npx versioned", argv: []string{"npx", "-y", "@scope/server-foo@1.2.3"}, want: "server-foo"},
		{name: "npx unscoped latest", argv: []string{"npx", "mcp-remote@latest", "https://x"}, want: "mcp-remote"},
		{name: "npx cmd on windows", argv: []string{`C:\nodejs\npx.cmd`, "-y", "server-foo"}, want: "server-foo"},
		{name: "npx without package", argv: []string{"npx", "-y"}, want: "npx"},
		{name: "uvx pinned", argv: []string{"uvx", "mcp-server-fetch==2025.1"}, want: "mcp-server-fetch"},
		{name: "uvx extras", argv: []string{"uvx", "pkg[cli]>=1"}, want: "pkg"},
		{name: "bunx", argv: []string{"bunx", "server-bun"}, want: "server-bun"},
		{name: "pnpm dlx", argv: []string{"pnpm", "dlx", "@a/server-p"}, want: "server-p"},
		{name: "pnpm other subcommand", argv: []string{"pnpm", "run", "serve"}, want: "pnpm"},
		{name: "yarn dlx", argv: []string{"yarn", "dlx", "server-y"}, want: "server-y"},
		{name: "bun x", argv: []string{"bun", "x", "server-b"}, want: "server-b"},
		{name: "pipx run", argv: []string{"pipx", "run", "server-pip"}, want: "server-pip"},
		{name: "git url package", argv: []string{"uvx", "git+https://github.com/o/mcp-thing"}, want: "mcp-thing"},
		{name: "package that cleans to nothing", argv: []string{"npx", "@"}, want: "npx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NameFromArgv(tt.argv); got != tt.want {
				t.Errorf("NameFromArgv(%q) = %q, want %q", tt.argv, got, tt.want)
			}
		})
	}
}

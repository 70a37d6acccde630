package config

import (
	"net/url"
	"strings"
)

// NamePattern is what a backend name must match. Names become tool-name
// prefixes and appear in flags such as --env NAME:KEY=VALUE, so they are kept
// short and free of separators (no ':', '=', '.', '/' or spaces).
const NamePattern = `^[A-Za-z0-9_-]{1,32}$`

// maxNameLen is the upper bound in NamePattern.
const maxNameLen = 32

// fallbackName is what the name helpers return when nothing usable is left.
const fallbackName = "backend"

// ValidName reports whether s matches NamePattern. (No regexp: compiling
// one at init would cost every start of the binary, supervisors included.)
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

// CleanName turns an arbitrary string into one matching NamePattern:
// every run of characters outside [A-Za-z0-9_-] becomes a single '-', except
// runs at either end, which are dropped; the result is cut to 32 bytes
// (dropping any '-' or '_' the cut leaves at the end). An empty result is
// "backend". A string that already matches NamePattern is returned unchanged.
func CleanName(s string) string {
	var b strings.Builder
	pendingDash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !nameByte(c) {
			pendingDash = b.Len() > 0
			continue
		}
		if pendingDash {
			b.WriteByte('-')
			pendingDash = false
		}
		b.WriteByte(c)
	}
	out := b.String()
	if len(out) > maxNameLen {
		out = strings.TrimRight(out[:maxNameLen], "-_")
	}
	if out == "" {
		return fallbackName
	}
	return out
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// NameFromURL names a backend after its URL's host, without port or
// userinfo, cleaned with CleanName: "https://mcp.example.com:8443/x" becomes
// "mcp-example-com". A URL without a host gives "backend".
func NameFromURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Hostname() == "" {
		return fallbackName
	}
	return CleanName(p.Hostname())
}

// scriptExts are the extensions NameFromCommand drops (compared
// case-insensitively): Windows executables and common script files.
var scriptExts = []string{
	".exe", ".cmd", ".bat", ".com", ".ps1",
	".sh", ".bash",
	".js", ".mjs", ".cjs", ".ts",
	".py", ".rb", ".pl",
}

// NameFromCommand names a backend after its command: the base name (after
// the last '/' or '\', so Windows paths in config files work too), minus one
// extension from a fixed list (.exe .cmd .bat .com .ps1 .sh .bash .js .mjs
// .cjs .ts .py .rb .pl, any case), cleaned with CleanName.
// "C:\tools\Server.EXE" becomes "Server".
func NameFromCommand(argv0 string) string {
	return CleanName(commandBase(argv0))
}

// commandBase is argv0's base name without a known extension.
func commandBase(argv0 string) string {
	base := argv0[strings.LastIndexAny(argv0, `/\`)+1:]
	lower := strings.ToLower(base)
	for _, ext := range scriptExts {
		if strings.HasSuffix(lower, ext) && len(base) > len(ext) {
			return base[:len(base)-len(ext)]
		}
	}
	return base
}

// packageRunners maps the base name of a command that downloads and runs a
// package to the subcommand it needs for that ("" when none).
var packageRunners = map[string]string{
	"npx":  "",
	"pnpx": "",
	"bunx": "",
	"uvx":  "",
	"pnpm": "dlx",
	"yarn": "dlx",
	"bun":  "x",
	"pipx": "run",
}

// NameFromArgv names a stdio backend after its argv. When argv runs a
// package through a package runner (npx, pnpx, bunx, uvx, "pnpm dlx",
// "yarn dlx", "bun x", "pipx run"), the name is that of the package: the
// first following argument not starting with '-', without npm scope,
// version ("@1.2", "==1.2", ">=1.2") or extras ("[cli]"), and cleaned, so
// "npx -y @scope/server-foo@latest" is "server-foo". Runner flags that take
// a separate value (uvx --from X) defeat this simple rule; name such
// backends explicitly. Otherwise the name is NameFromCommand(argv[0]).
func NameFromArgv(argv []string) string {
	if len(argv) == 0 {
		return fallbackName
	}
	if pkg, ok := runnerPackage(argv); ok {
		if name := packageName(pkg); name != "" {
			return CleanName(name)
		}
	}
	return NameFromCommand(argv[0])
}

// runnerPackage returns the package argument of a package-runner argv.
func runnerPackage(argv []string) (string, bool) {
	sub, ok := packageRunners[strings.ToLower(commandBase(argv[0]))]
	if !ok {
		return "", false
	}
	rest := argv[1:]
	if sub != "" {
		if len(rest) == 0 || rest[0] != sub {
			return "", false
		}
		rest = rest[1:]
	}
	for _, a := range rest {
		if !strings.HasPrefix(a, "-") {
			return a, true
		}
	}
	return "", false
}

// packageName strips scope, version and extras from an npm or PyPI package
// specifier: "@scope/pkg@1.0" → "pkg", "pkg[cli]==1.0" → "pkg".
func packageName(spec string) string {
	s := strings.TrimPrefix(spec, "@")
	if i := strings.IndexAny(s, "@=<>!~[; "); i >= 0 {
		s = s[:i]
	}
	return s[strings.LastIndexAny(s, `/\`)+1:]
}

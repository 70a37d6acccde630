package config

import (
	"fmt"
	"strings"
)

// Expand replaces ${...} references in s using lookup:
//
//   - ${VAR} is VAR's value, which may be empty; an unset VAR is an error
//     naming it;
//   - ${VAR:-default} is default when VAR is unset or empty;
//   - ${env:VAR} (VS Code style) is the same as ${VAR}, and ${env:VAR:-default}
//     the same as ${VAR:-default}.
//
// VAR must be a POSIX name ([A-Za-z_][A-Za-z0-9_]*). The default is literal
// text up to the first '}': it cannot contain '}' or another ${...}. Other
// VS Code prefixes (${input:...}, ${config:...}) are errors, as is an
// unterminated "${". Only the ${...} form is expanded: $VAR, $$ and a lone $
// are left as they are. Expanded values are not expanded again. A nil
// lookup has no variables set.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	return expand(s, lookup, false)
}

// ExpandBare is Expand for Gemini CLI's settings files, which expand $VAR
// without braces too: a set VAR's value, an unset one left as written (as
// Gemini CLI leaves it, so that a '$' in a password is kept). ${...}
// works as in Expand.
func ExpandBare(s string, lookup func(string) (string, bool)) (string, error) {
	return expand(s, lookup, true)
}

func expand(s string, lookup func(string) (string, bool), bare bool) (string, error) {
	mark := "${"
	if bare {
		mark = "$"
	}
	if !strings.Contains(s, mark) {
		return s, nil
	}
	var b strings.Builder
	for {
		start := strings.Index(s, mark)
		if start < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:start])
		rest := s[start+1:]
		if !strings.HasPrefix(rest, "{") {
			// bare: $VAR, or a '$' that is kept.
			n := 0
			for n < len(rest) && validVarName(rest[:n+1]) {
				n++
			}
			if v, ok := lookupSet(lookup, rest[:n]); n > 0 && ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[start : start+1+n])
			}
			s = rest[n:]
			continue
		}
		rest = rest[1:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated %q: missing '}'", s[start:])
		}
		v, err := expandRef(rest[:end], lookup)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		s = rest[end+1:]
	}
}

// lookupSet is lookup(name), with a nil lookup having no variables set.
func lookupSet(lookup func(string) (string, bool), name string) (string, bool) {
	if lookup == nil || name == "" {
		return "", false
	}
	return lookup(name)
}

// expandRef evaluates the inside of one ${...}.
func expandRef(ref string, lookup func(string) (string, bool)) (string, error) {
	name, def, hasDef := strings.Cut(ref, ":-")
	name = strings.TrimPrefix(name, "env:")
	if !validVarName(name) {
		if prefix, _, ok := strings.Cut(name, ":"); ok {
			return "", fmt.Errorf("${%s}: %q variables are not supported", ref, prefix)
		}
		return "", fmt.Errorf("${%s}: bad variable name %q", ref, name)
	}
	if hasDef && strings.Contains(def, "${") {
		return "", fmt.Errorf("${%s}: a default cannot contain ${...}", ref)
	}
	var v string
	ok := false
	if lookup != nil {
		v, ok = lookup(name)
	}
	switch {
	case hasDef && v == "":
		return def, nil
	case !ok && vscodeVars[name]:
		return "", fmt.Errorf("${%s} is VS Code's own variable, which mcpbridge does not know (only environment variables are expanded): write the value itself", name)
	case !ok:
		return "", fmt.Errorf("variable %s is not set (use ${%s:-default} to give a default)", name, name)
	}
	return v, nil
}

// vscodeVars are VS Code's predefined variables its mcp.json may use.
var vscodeVars = map[string]bool{
	"workspaceFolder": true, "workspaceFolderBasename": true, "userHome": true, "cwd": true,
	"pathSeparator": true, "file": true, "fileDirname": true, "relativeFile": true,
}

// validVarName reports whether s is a POSIX shell variable name.
func validVarName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

package config

import "testing"

// mapLookup makes a lookup function from a map.
func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestExpand(t *testing.T) {
	env := mapLookup(map[string]string{
		"HOME":  "/home/u",
		"TOKEN": "s3cret",
		"EMPTY": "",
		"DOLLY": "${HOME}",
	})
	tests := []struct {
		name    string
		in      string
		lookup  func(string) (string, bool)
		want    string
		wantErr string
	}{
		{name: "no references", in: "plain $HOME text", lookup: env, want: "plain $HOME text"},
		{name: "braced", in: "${HOME}/x", lookup: env, want: "/home/u/x"},
		{name: "several", in: "${HOME}:${TOKEN}:${HOME}", lookup: env, want: "/home/u:s3cret:/home/u"},
		{name: "adjacent", in: "${HOME}${TOKEN}", lookup: env, want: "/home/us3cret"},
		{name: "empty value", in: "[${EMPTY}]", lookup: env, want: "[]"},
		{name: "default when unset", in: "${NOPE:-fallback}", lookup: env, want: "fallback"},
		{name: "default when empty", in: "${EMPTY:-fallback}", lookup: env, want: "fallback"},
		{name: "default unused when set", in: "${TOKEN:-fallback}", lookup: env, want: "s3cret"},
		{name: "empty default", in: "[${NOPE:-}]", lookup: env, want: "[]"},
		{name: "default with colon and dollar", in: "${NOPE:-a:b$c}", lookup: env, want: "a:b$c"},
		{name: "env prefix", in: "Bearer ${env:TOKEN}", lookup: env, want: "Bearer s3cret"},
		{name: "env prefix with default", in: "${env:NOPE:-d}", lookup: env, want: "d"},
		{name: "lone dollar", in: "cost $5 $", lookup: env, want: "cost $5 $"},
		{name: "double dollar", in: "$${HOME}", lookup: env, want: "$/home/u"},
		{name: "dollar brace at end", in: "a$", lookup: env, want: "a$"},
		{name: "value not re-expanded", in: "${DOLLY}", lookup: env, want: "${HOME}"},
		{name: "nil lookup without references", in: "x", lookup: nil, want: "x"},
		{name: "nil lookup with default", in: "${X:-d}", lookup: nil, want: "d"},
		{name: "nil lookup unset", in: "${X}", lookup: nil, wantErr: "variable X is not set"},
		{name: "VS Code variable", in: "${workspaceFolder}/src", lookup: env, wantErr: "${workspaceFolder} is VS Code's own variable, which mcpbridge does not know (only environment variables are expanded): write the value itself"},
		{name: "unset", in: "a ${NOPE} b", lookup: env, wantErr: "variable NOPE is not set (use ${NOPE:-default} to give a default)"},
		{name: "unset env prefix", in: "${env:NOPE}", lookup: env, wantErr: "variable NOPE is not set"},
		{name: "unterminated", in: "a ${HOME", lookup: env, wantErr: `unterminated "${HOME": missing '}'`},
		{name: "empty name", in: "${}", lookup: env, wantErr: `${}: bad variable name ""`},
		{name: "bad name", in: "${A-B}", lookup: env, wantErr: `${A-B}: bad variable name "A-B"`},
		{name: "leading digit", in: "${1X}", lookup: env, wantErr: "bad variable name"},
		{name: "input variable", in: "${input:api-key}", lookup: env, wantErr: `${input:api-key}: "input" variables are not supported`},
		{name: "nested default", in: "${A:-${B}}", lookup: env, wantErr: "a default cannot contain ${...}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand(tt.in, tt.lookup)
			if !errMatches(err, tt.wantErr) {
				t.Fatalf("Expand(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "only blanks", in: " \t\n\r ", want: nil},
		{name: "one word", in: "npx", want: []string{"npx"}},
		{name: "blanks separate", in: "  npx\t-y \n server  ", want: []string{"npx", "-y", "server"}},
		{name: "single quotes are literal", in: `'a b' '$HOME \" \\'`, want: []string{"a b", `$HOME \" \\`}},
		{name: "single quotes keep backslash newline", in: "'a\\\nb'", want: []string{"a\\\nb"}},
		{name: "double quotes group", in: `"a b" c`, want: []string{"a b", "c"}},
		{name: "double quote escapes", in: `"\$ \` + "`" + ` \" \\"`, want: []string{"$ ` \" \\"}},
		{name: "double quote keeps other backslashes", in: `"C:\dir\n\t"`, want: []string{`C:\dir\n\t`}},
		{name: "double quote line continuation", in: "\"a\\\nb\"", want: []string{"ab"}},
		{name: "double quote escaped backslash before quote", in: `"a\\" b`, want: []string{`a\`, "b"}},
		{name: "single quote inside double", in: `"it's"`, want: []string{"it's"}},
		{name: "double quote inside single", in: `'say "hi"'`, want: []string{`say "hi"`}},
		{name: "backslash escapes blank", in: `a\ b c`, want: []string{"a b", "c"}},
		{name: "backslash escapes quote", in: `\'a\"`, want: []string{`'a"`}},
		{name: "backslash escapes backslash", in: `C:\\dir`, want: []string{`C:\dir`}},
		{name: "backslash eats plain char", in: `C:\dir`, want: []string{`C:dir`}},
		{name: "backslash newline joins", in: "a\\\nb c", want: []string{"ab", "c"}},
		{name: "backslash newline between words", in: "a \\\n b", want: []string{"a", "b"}},
		{name: "trailing backslash kept", in: `a\`, want: []string{`a\`}},
		{name: "lone backslash", in: `\`, want: []string{`\`}},
		{name: "adjacent quotes join", in: `a'b'"c"d`, want: []string{"abcd"}},
		{name: "empty double quotes", in: `a "" b`, want: []string{"a", "", "b"}},
		{name: "empty single quotes", in: `''`, want: []string{""}},
		{name: "empty quotes joined to word", in: `a''`, want: []string{"a"}},
		{name: "no expansion", in: `$HOME ${X} $(id) ~ *.go #c`, want: []string{"$HOME", "${X}", "$(id)", "~", "*.go", "#c"}},
		{name: "no operators", in: `a|b;c&&d>e`, want: []string{"a|b;c&&d>e"}},
		{name: "utf8", in: `café "naïve ü"`, want: []string{"café", "naïve ü"}},
		{name: "backslash before utf8", in: `\é`, want: []string{"é"}},
		{name: "npx with scoped package", in: `npx -y @scope/server-foo --root "/tmp/my dir"`, want: []string{"npx", "-y", "@scope/server-foo", "--root", "/tmp/my dir"}},
		{name: "unterminated single", in: `a 'b c`, wantErr: "unterminated single quote at byte 3"},
		{name: "unterminated double", in: `a "b c`, wantErr: "unterminated double quote at byte 3"},
		{name: "double ends in escaped quote", in: `"abc\"`, wantErr: "unterminated double quote at byte 1"},
		{name: "double ends in backslash", in: `"abc\`, wantErr: "unterminated double quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitWords(tt.in)
			if !errMatches(err, tt.wantErr) {
				t.Fatalf("SplitWords(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SplitWords(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// errMatches reports whether err contains want, or is nil when want is "".
func errMatches(err error, want string) bool {
	if want == "" || err == nil {
		return (want == "") == (err == nil)
	}
	return strings.Contains(err.Error(), want)
}

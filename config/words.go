package config

import (
	"fmt"
	"strings"
)

// SplitWords splits a command line into words the way a POSIX shell does,
// minus every kind of expansion:
//
//   - blanks (space, tab, newline, and carriage return) separate words;
//   - inside single quotes every character is literal;
//   - inside double quotes a backslash escapes only $ ` " \ and newline,
//     and is otherwise kept;
//   - outside quotes a backslash makes the next character literal, and a
//     trailing backslash is kept, as sh does;
//   - backslash-newline, outside single quotes, is removed as a line
//     continuation;
//   - quotes join adjacent text into one word, and a pair of
//     empty quotes is an empty word.
//
// $, `, ~, *, ?, #, |, ;, &, < and > are ordinary characters: nothing is
// expanded, globbed, commented out or redirected. An unterminated quote is
// an error. A string of blanks gives no words.
func SplitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false // distinguishes an empty quoted word from no word
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case '\\':
			if i+1 == len(s) {
				w.WriteByte(c)
				inWord = true
				continue
			}
			i++
			if s[i] == '\n' {
				continue
			}
			w.WriteByte(s[i])
			inWord = true
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote at byte %d", i+1)
			}
			w.WriteString(s[i+1 : i+1+end])
			i += 1 + end
			inWord = true
		case '"':
			end, err := doubleQuoted(&w, s, i)
			if err != nil {
				return nil, err
			}
			i = end
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// doubleQuoted writes to w the contents of the double-quoted string opening
// at s[open] and returns the index of its closing quote.
func doubleQuoted(w *strings.Builder, s string, open int) (int, error) {
	for i := open + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i, nil
		case c == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0:
			i++
			if s[i] != '\n' {
				w.WriteByte(s[i])
			}
		default:
			w.WriteByte(c)
		}
	}
	return 0, fmt.Errorf("unterminated double quote at byte %d", open+1)
}

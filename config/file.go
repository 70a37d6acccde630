package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File is what LoadFile found in a config file.
type File struct {
	// Backends are the enabled entries, in the order the file declares them.
	Backends []Backend
	// Disabled names the entries skipped for "disabled": true, in order.
	Disabled []string
	// Skipped names the entries that run mcpbridge itself, in order.
	Skipped []string
	// Ignored are human-readable notes on what was skipped (unknown keys,
	// disabled entries, keys that do not apply to the entry's kind), for the
	// caller to log at debug level.
	Ignored []string
	// Warnings are notes on what was left out that changes how a server
	// runs (VS Code's envFile: the server starts without those
	// variables), for the caller to log at warn level.
	Warnings []string
	// Invalid are the entries that could not be used, in order, with why:
	// a host's config may hold entries written for other tools (VS Code
	// input variables, say), so one of them does not make the file unusable.
	Invalid []EntryError
	// Renamed maps each entry name that does not match NamePattern to the
	// name it was given (CleanName): hosts accept "Brave Search".
	Renamed map[string]string
}

// An EntryError is why one entry of a config file cannot be used.
type EntryError struct {
	Name string
	Err  error
}

func (e EntryError) Error() string { return fmt.Sprintf("server %q: %v", e.Name, e.Err) }

// LoadFile reads an MCP client config file, in either of two shapes:
//
//   - Claude Desktop, Claude Code and Cursor: {"mcpServers": {NAME: ENTRY, ...}}
//   - VS Code mcp.json: {"servers": {NAME: ENTRY, ...}, "inputs": [...]}
//
// Comments (// and /* */), trailing commas and a UTF-8 byte order mark are
// allowed, as VS Code writes JSONC. A file with both "mcpServers" and
// "servers", or neither, is an error; other top-level keys, including
// "inputs" (input variables are not supported), are ignored and reported.
//
// Entries keep the order the file declares them in. Each name must match
// NamePattern. ENTRY keys:
//
//	command, args, env, cwd   stdio backends; a relative cwd is resolved
//	                          against the config file's directory
//	url, headers              remote backends; header names are canonicalized
//	serverUrl, httpUrl        the url as Windsurf (serverUrl) and Gemini CLI
//	                          (httpUrl, which is streamable HTTP) write it;
//	                          one of url, serverUrl and httpUrl
//	oauth                     remote backends; false turns off the OAuth flow
//	                          a 401 would start; an object sets it up:
//	                          clientId, clientSecret (a client registered
//	                          beforehand), callbackPort, scopes (an array or
//	                          a space-separated string)
//	type, transport or        stdio, http, streamable-http, streamableHttp
//	transportType             or sse (any case; all given must agree);
//	                          without them an entry with a url is KindURL,
//	                          one with an httpUrl KindHTTP and one with a
//	                          command KindStdio
//	disabled                  true skips the entry
//	allow, deny               arrays of path.Match globs on tool names
//	includeTools,             Gemini CLI's arrays of exact tool names, added
//	excludeTools              to allow and deny
//	timeout, maxTimeout       a Go duration string ("90s", "2m", "0" to
//	                          disable) or a bare number: up to 3600 a number
//	                          of seconds (Cline and Roo Code write seconds,
//	                          at most an hour), above it of milliseconds
//	                          (Claude Code and Gemini CLI write milliseconds,
//	                          and a timeout of a few milliseconds is never
//	                          meant); see jsonDuration
//
// Other keys, and keys that do not apply to the entry's kind (url under a
// stdio type, command under http), are ignored and reported. A null value
// counts as absent. ${VAR}, ${VAR:-default} and ${env:VAR} are expanded
// (see Expand) in command, args, env values, cwd, url and header values.
// An entry whose command is mcpbridge itself is skipped and reported in
// Skipped and Ignored (see NestedEnv), so a host's own config can be reused.
//
// Errors name the file and entry and are fit to show a user as they are.
func LoadFile(path string, lookup func(string) (string, bool)) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The path is already in the message; keep only the reason.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return File{}, fmt.Errorf("config %s: %w", path, err)
	}
	f, err := parseFile(data, filepath.Dir(path), geminiPath(path), lookup)
	if err != nil {
		return File{}, fmt.Errorf("config %s: %w", path, err)
	}
	for i, s := range f.Ignored {
		f.Ignored[i] = fmt.Sprintf("config %s: %s", path, s)
	}
	for i, s := range f.Warnings {
		f.Warnings[i] = fmt.Sprintf("config %s: %s", path, s)
	}
	return f, nil
}

// geminiPath reports whether path is where Gemini CLI keeps its settings
// (.gemini/settings.json in a home or project, gemini-cli/settings.json
// system-wide): a file whose $VAR it expands as well as ${VAR}.
func geminiPath(path string) bool {
	dir := filepath.Base(filepath.Dir(path))
	return filepath.Base(path) == "settings.json" && (dir == ".gemini" || strings.EqualFold(dir, "gemini-cli") || dir == "GeminiCli")
}

// rawEntry is one server entry, not yet interpreted.
type rawEntry struct {
	name string
	body json.RawMessage
}

// parseFile interprets a config file's bytes; dir is the directory relative
// cwd values are resolved against.
func parseFile(data []byte, dir string, gemini bool, lookup func(string) (string, bool)) (File, error) {
	data = stripJSONC(data)
	// Check the syntax of the whole file first: the decoder's streaming
	// errors give offsets relative to the value being read, not the file.
	if err := json.Unmarshal(data, new(json.RawMessage)); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := lineCol(data, syn.Offset)
			return File{}, fmt.Errorf("line %d column %d: %w", line, col, err)
		}
		return File{}, err
	}
	entries, ignored, lists, err := decodeServers(data)
	if err != nil {
		return File{}, err
	}
	f := File{Ignored: ignored}
	taken := map[string]bool{}
	for _, re := range entries {
		taken[re.name] = true
	}
	for _, re := range entries {
		if why, skip := lists.skips(re.name); skip {
			// As Gemini CLI does: the entry is not started.
			f.Disabled = append(f.Disabled, re.name)
			f.Ignored = append(f.Ignored, fmt.Sprintf("server %q: %s", re.name, why))
			continue
		}
		b, notes, err := parseEntry(re, dir, gemini || lists != nil, lookup)
		if errors.Is(err, errNested) {
			// A host's own config lists mcpbridge itself; reusing that file
			// must work, so the entry is skipped rather than fatal.
			f.Skipped = append(f.Skipped, re.name)
			f.Ignored = append(f.Ignored, fmt.Sprintf("server %q: skipped: it runs mcpbridge itself", re.name))
			continue
		}
		if err != nil {
			f.Invalid = append(f.Invalid, EntryError{re.name, err})
			continue
		}
		if b != nil && !ValidName(b.Name) {
			clean := CleanName(b.Name)
			if taken[clean] {
				f.Invalid = append(f.Invalid, EntryError{re.name, fmt.Errorf("bad name: names must match %s, and %q is taken", NamePattern, clean)})
				continue
			}
			taken[clean] = true
			if f.Renamed == nil {
				f.Renamed = map[string]string{}
			}
			f.Renamed[re.name] = clean
			b.Name = clean
		}
		for _, n := range notes {
			if n == `key "envFile" ignored` {
				f.Warnings = append(f.Warnings, fmt.Sprintf("server %q: envFile is not read; the server starts without its variables (put them in \"env\")", re.name))
				continue
			}
			f.Ignored = append(f.Ignored, fmt.Sprintf("server %q: %s", re.name, n))
		}
		if b == nil {
			f.Disabled = append(f.Disabled, re.name)
			continue
		}
		f.Backends = append(f.Backends, *b)
	}
	return f, nil
}

// parseEntry interprets one entry. A disabled entry gives a nil Backend and
// is not checked any further, since it may be half-written on purpose.
// The notes say what was ignored.
func parseEntry(re rawEntry, dir string, gemini bool, lookup func(string) (string, bool)) (*Backend, []string, error) {
	e, notes, err := decodeEntry(re.body)
	if err != nil {
		return nil, nil, err
	}
	e.gemini = gemini
	if e.Disabled {
		return nil, append(notes, "disabled"), nil
	}
	b, more, err := buildBackend(e, dir, lookup)
	if err != nil {
		return nil, nil, err
	}
	b.Name = re.name
	return &b, append(notes, more...), nil
}

// decodeServers finds the server object in a syntactically valid config
// file and returns its entries in declared order, which a Go map would lose,
// with notes on the top-level keys it ignored.
func decodeServers(data []byte) ([]rawEntry, []string, *serverLists, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := expectDelim(dec, '{', "the file"); err != nil {
		return nil, nil, nil, err
	}
	var entries []rawEntry
	var ignored []string
	var lists *serverLists
	found := ""
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return nil, nil, nil, err
		}
		if key == "mcp" {
			// Gemini CLI's server allow and deny lists.
			var m map[string]json.RawMessage
			if err := dec.Decode(&m); err != nil {
				return nil, nil, nil, fmt.Errorf(`"mcp": %w`, err)
			}
			lists = &serverLists{}
			for k, v := range m {
				var err error
				switch k {
				case "allowed":
					err = unmarshalAs(v, &lists.allowed, "a list of server names")
				case "excluded":
					err = unmarshalAs(v, &lists.excluded, "a list of server names")
				default:
					ignored = append(ignored, fmt.Sprintf("key %q ignored", "mcp."+k))
				}
				if err != nil {
					return nil, nil, nil, fmt.Errorf(`"mcp.%s": %w`, k, err)
				}
			}
			continue
		}
		if key != "mcpServers" && key != "servers" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, nil, nil, err
			}
			note := fmt.Sprintf("key %q ignored", key)
			if key == "inputs" {
				note += " (input variables are not supported; use ${env:VAR})"
			}
			ignored = append(ignored, note)
			continue
		}
		if found != "" {
			return nil, nil, nil, fmt.Errorf("both %q and %q given; use one", found, key)
		}
		found = key
		if entries, err = decodeEntries(dec, key); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := expectDelim(dec, '}', "the file"); err != nil {
		return nil, nil, nil, err
	}
	if found == "" {
		return nil, nil, nil, errors.New(`no "mcpServers" or "servers" object`)
	}
	return entries, ignored, lists, nil
}

// serverLists are Gemini CLI's top-level "mcp": {"allowed", "excluded"}:
// server names to start only, and never; an excluded name wins.
type serverLists struct {
	allowed, excluded []string
}

// skips reports why the entry called name is not started, if it is not.
func (l *serverLists) skips(name string) (string, bool) {
	switch {
	case l == nil:
		return "", false
	case slices.Contains(l.excluded, name):
		return "listed in mcp.excluded", true
	case l.allowed != nil && !slices.Contains(l.allowed, name):
		return "not listed in mcp.allowed", true
	}
	return "", false
}

// decodeEntries reads the object of server entries dec is positioned at.
func decodeEntries(dec *json.Decoder, key string) ([]rawEntry, error) {
	if err := expectDelim(dec, '{', fmt.Sprintf("%q", key)); err != nil {
		return nil, err
	}
	var entries []rawEntry
	seen := map[string]bool{}
	for dec.More() {
		name, err := objectKey(dec)
		if err != nil {
			return nil, err
		}
		var body json.RawMessage
		if err := dec.Decode(&body); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, fmt.Errorf("server %q: declared twice", name)
		}
		seen[name] = true
		entries = append(entries, rawEntry{name, body})
	}
	return entries, expectDelim(dec, '}', fmt.Sprintf("%q", key))
}

// expectDelim reads one token and checks it is delim; what names the value
// for the error.
func expectDelim(dec *json.Decoder, delim json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != delim {
		if delim == '{' {
			return fmt.Errorf("%s must be a JSON object", what)
		}
		return fmt.Errorf("%s: unexpected %v", what, tok)
	}
	return nil
}

// objectKey reads an object key; within an object the decoder only returns
// strings for keys, so the assertion cannot fail for valid JSON.
func objectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("unexpected %v", tok)
	}
	return key, nil
}

// entryKeys are the entry keys LoadFile understands.
var entryKeys = map[string]bool{
	"command": true, "args": true, "env": true, "cwd": true,
	"url": true, "headers": true, "type": true, "transport": true,
	"disabled": true, "allow": true, "deny": true,
	"timeout": true, "maxTimeout": true, "oauth": true,
	// Other hosts' spellings (see LoadFile).
	"serverUrl": true, "httpUrl": true, "transportType": true,
	"includeTools": true, "excludeTools": true,
}

// entry is a server entry decoded into Go types, before interpretation.
type entry struct {
	Command    string
	Args       []string
	Env        map[string]string
	Cwd        string
	URL        string
	ServerURL  string // Windsurf's url
	HTTPURL    string // Gemini CLI's streamable-HTTP url
	Headers    map[string]string
	Type       string
	Transport  string
	TransType  string // Cline's transportType
	Disabled   bool
	Allow      []string
	Deny       []string
	Include    []string // Gemini CLI's includeTools: exact names
	Exclude    []string // Gemini CLI's excludeTools: exact names
	NoTools    bool     // includeTools given empty
	Timeout    *time.Duration
	MaxTimeout *time.Duration
	OAuth      bool
	OAuthSet   *oauthEntry // "oauth" given as an object

	has map[string]bool // keys present with a non-null value
	// gemini: the entry is Gemini CLI's (its file is, or it uses keys only
	// Gemini CLI has), so $VAR expands as well as ${VAR} (ExpandBare).
	gemini bool
}

// expand is Expand, or ExpandBare for an entry of Gemini CLI's.
func (e *entry) expand(s string, lookup func(string) (string, bool)) (string, error) {
	if e.gemini || e.has["httpUrl"] || e.has["includeTools"] || e.has["excludeTools"] {
		return ExpandBare(s, lookup)
	}
	return Expand(s, lookup)
}

// decodeEntry decodes one entry body, reporting unknown keys as notes.
func decodeEntry(body json.RawMessage) (entry, []string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return entry{}, nil, errors.New("entry must be a JSON object")
	}
	e := entry{has: map[string]bool{}}
	var notes []string
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[k]
		if !entryKeys[k] {
			notes = append(notes, fmt.Sprintf("key %q ignored", k))
			continue
		}
		if string(raw) == "null" {
			continue
		}
		e.has[k] = true
		if err := e.decodeField(k, raw); err != nil {
			return entry{}, nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	return e, notes, nil
}

// unify folds other hosts' spellings into what buildBackend reads:
// serverUrl and httpUrl into URL (httpUrl also counts as type http; see
// typedKind), includeTools and excludeTools into Allow and Deny, read as
// Gemini CLI reads them: an included "tool(...)" enables tool, and an
// empty includeTools enables none.
func (e *entry) unify() error {
	var given []string
	for _, u := range []struct{ key, val string }{{"url", e.URL}, {"serverUrl", e.ServerURL}, {"httpUrl", e.HTTPURL}} {
		if e.has[u.key] {
			given = append(given, u.key)
			e.URL = u.val
		}
	}
	if len(given) > 1 {
		return fmt.Errorf("both %q and %q given; give one", given[0], given[1])
	}
	if e.has["includeTools"] && len(e.Include) == 0 {
		e.NoTools = true
	}
	for _, name := range e.Include {
		if i := strings.IndexByte(name, '('); i > 0 {
			name = name[:i]
		}
		e.Allow = append(e.Allow, exactGlob(name))
	}
	for _, name := range e.Exclude {
		e.Deny = append(e.Deny, exactGlob(name))
	}
	return nil
}

// exactGlob is the path.Match pattern that matches name alone.
func exactGlob(name string) string {
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// decodeField decodes the value of known key k into e.
func (e *entry) decodeField(k string, raw json.RawMessage) error {
	var err error
	switch k {
	case "command":
		err = unmarshalAs(raw, &e.Command, "a string")
	case "args":
		err = unmarshalAs(raw, &e.Args, "an array of strings")
	case "env":
		err = unmarshalAs(raw, &e.Env, "an object of strings")
	case "cwd":
		err = unmarshalAs(raw, &e.Cwd, "a string")
	case "url":
		err = unmarshalAs(raw, &e.URL, "a string")
	case "serverUrl":
		err = unmarshalAs(raw, &e.ServerURL, "a string")
	case "httpUrl":
		err = unmarshalAs(raw, &e.HTTPURL, "a string")
	case "transportType":
		err = unmarshalAs(raw, &e.TransType, "a string")
	case "includeTools":
		err = unmarshalAs(raw, &e.Include, "an array of strings")
	case "excludeTools":
		err = unmarshalAs(raw, &e.Exclude, "an array of strings")
	case "headers":
		err = unmarshalAs(raw, &e.Headers, "an object of strings")
	case "type":
		err = unmarshalAs(raw, &e.Type, "a string")
	case "transport":
		err = unmarshalAs(raw, &e.Transport, "a string")
	case "disabled":
		err = unmarshalAs(raw, &e.Disabled, "true or false")
	case "allow":
		err = unmarshalAs(raw, &e.Allow, "an array of strings")
	case "deny":
		err = unmarshalAs(raw, &e.Deny, "an array of strings")
	case "timeout":
		e.Timeout, err = jsonDuration(raw)
	case "maxTimeout":
		e.MaxTimeout, err = jsonDuration(raw)
	case "oauth":
		err = e.decodeOAuth(raw)
	}
	return err
}

// An oauthEntry is "oauth" given as an object.
type oauthEntry struct {
	ClientID     string          `json:"clientId"`
	ClientSecret string          `json:"clientSecret"`
	CallbackPort int             `json:"callbackPort"`
	Scopes       json.RawMessage `json:"scopes"`
	scopes       []string
}

// decodeOAuth decodes "oauth": true, false, or an object (which means
// true).
func (e *entry) decodeOAuth(raw json.RawMessage) error {
	const want = "true, false or an object with clientId, clientSecret, callbackPort, scopes"
	if b := bytes.TrimSpace(raw); len(b) == 0 || b[0] != '{' {
		return unmarshalAs(raw, &e.OAuth, want)
	}
	var o oauthEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return fmt.Errorf("must be %s (%v)", want, err)
	}
	if o.CallbackPort < 0 || o.CallbackPort > 65535 {
		return fmt.Errorf("callbackPort %d: want a port number (1-65535)", o.CallbackPort)
	}
	if len(o.Scopes) > 0 && string(o.Scopes) != "null" {
		var one string
		if json.Unmarshal(o.Scopes, &one) == nil {
			o.scopes = strings.Fields(one)
		} else if err := unmarshalAs(o.Scopes, &o.scopes, "an array of strings or a space-separated string"); err != nil {
			return fmt.Errorf("scopes %w", err)
		}
	}
	e.OAuth, e.OAuthSet = true, &o
	return nil
}

// unmarshalAs decodes raw into v, replacing encoding/json's Go-typed error
// with what the value should have been.
func unmarshalAs(raw json.RawMessage, v any, want string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("must be %s", want)
	}
	return nil
}

// jsonDuration decodes a timeout: a Go duration string, or a bare number.
// JSON has no duration type, and the hosts whose files are reused as they
// are disagree on the unit of a number: Claude Code and Gemini CLI write
// milliseconds (Claude Code ignores values under 1000), Cline and Roo Code
// seconds (30 to 3600). A number up to secondsUpTo is taken as seconds:
// read as milliseconds it would cut every call within 3.6 s, while a
// millisecond value taken as seconds at worst waits longer (up to
// --max-timeout). Above it, milliseconds.
func jsonDuration(raw json.RawMessage) (*time.Duration, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		d, err := parseDuration(s)
		return &d, err
	}
	var n float64
	if json.Unmarshal(raw, &n) != nil {
		return nil, errors.New(`must be a duration string such as "2m" or a number (seconds up to 3600, milliseconds above)`)
	}
	if n >= 0 && n <= secondsUpTo {
		n *= 1000
	}
	d, err := millis(n)
	return &d, err
}

// secondsUpTo is the largest bare-number timeout taken as seconds.
const secondsUpTo = 3600

// kindOf maps a type or transport value to a Kind.
func kindOf(t string) (Kind, bool) {
	switch strings.ToLower(t) {
	case "stdio":
		return KindStdio, true
	case "http", "streamable-http", "streamablehttp":
		return KindHTTP, true
	case "sse":
		return KindSSE, true
	}
	return "", false
}

// buildBackend turns an enabled entry into a Backend without a name,
// returning notes on keys that do not apply to its kind.
func buildBackend(e entry, dir string, lookup func(string) (string, bool)) (Backend, []string, error) {
	if err := e.unify(); err != nil {
		return Backend{}, nil, err
	}
	kind, err := entryKind(e)
	if err != nil {
		return Backend{}, nil, err
	}
	for _, globs := range [][]string{e.Allow, e.Deny} {
		for _, g := range globs {
			if err := checkGlob(g); err != nil {
				return Backend{}, nil, err
			}
		}
	}
	b := Backend{Kind: kind, Allow: e.Allow, Deny: e.Deny, NoTools: e.NoTools, Timeout: e.Timeout, MaxTimeout: e.MaxTimeout}
	if kind == KindStdio {
		err = expandStdio(&b, e, dir, lookup)
	} else {
		err = expandRemote(&b, e, lookup)
	}
	if err != nil {
		return Backend{}, nil, err
	}
	return b, inapplicableKeys(e, kind), nil
}

// entryKind decides an entry's Kind from its type, or else from whether it
// has a url or a command.
func entryKind(e entry) (Kind, error) {
	if e.has["type"] || e.has["transport"] || e.has["transportType"] || e.has["httpUrl"] {
		kind, err := typedKind(e)
		if err != nil {
			return "", err
		}
		if kind == KindStdio && e.Command == "" {
			return "", errors.New(`type "stdio" needs a "command"`)
		}
		if kind != KindStdio && e.URL == "" {
			return "", fmt.Errorf("type %q needs a \"url\"", kind)
		}
		return kind, nil
	}
	switch {
	case e.Command != "" && e.URL != "":
		return "", errors.New(`both "command" and "url" given; set "type" to choose`)
	case e.URL != "":
		return KindURL, nil
	case e.Command != "":
		return KindStdio, nil
	}
	return "", errors.New(`needs a "command" or a "url"`)
}

// typedKind interprets "type", "transport" and "transportType" (and an
// "httpUrl", which is type http), which may be given together if they
// agree.
func typedKind(e entry) (Kind, error) {
	var kinds []Kind
	var said []string
	for _, kv := range [][2]string{{"type", e.Type}, {"transport", e.Transport}, {"transportType", e.TransType}, {"httpUrl", "http"}} {
		if !e.has[kv[0]] {
			continue
		}
		kind, ok := kindOf(kv[1])
		if !ok {
			return "", fmt.Errorf("unknown %s %q: want stdio, http, streamable-http or sse", kv[0], kv[1])
		}
		this := fmt.Sprintf("%s %q", kv[0], kv[1])
		if kv[0] == "httpUrl" {
			this = `"httpUrl" (a streamable-HTTP URL)`
		}
		if len(kinds) > 0 && kind != kinds[0] {
			return "", fmt.Errorf("%s and %s disagree", said[0], this)
		}
		kinds = append(kinds, kind)
		said = append(said, this)
	}
	return kinds[0], nil
}

// inapplicableKeys lists the keys present in e that kind does not use.
func inapplicableKeys(e entry, kind Kind) []string {
	unused := []string{"url", "serverUrl", "headers", "oauth"}
	if kind != KindStdio {
		unused = []string{"command", "args", "env", "cwd"}
	}
	var notes []string
	for _, k := range unused {
		if e.has[k] {
			notes = append(notes, fmt.Sprintf("key %q ignored (not used by %s backends)", k, kind))
		}
	}
	return notes
}

// expandStdio fills b's stdio fields from e, expanding variables.
func expandStdio(b *Backend, e entry, dir string, lookup func(string) (string, bool)) error {
	var err error
	if b.Command, err = e.expand(e.Command, lookup); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if err := checkCommand(b.Command); err != nil {
		return err
	}
	if len(e.Env) > 0 {
		b.Env = make(map[string]string, len(e.Env))
	}
	for _, k := range slices.Sorted(maps.Keys(e.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env: bad variable name %q", k)
		}
		if b.Env[k], err = e.expand(e.Env[k], lookup); err != nil {
			return fmt.Errorf("env %s: %w", k, err)
		}
	}
	// Arguments see the entry's own env over the bridge's, as the server
	// does: mcp-remote's documented entry puts "Authorization:${AUTH}" in
	// args and AUTH in env, and expands it itself from that env.
	argLookup := func(name string) (string, bool) {
		if v, ok := b.Env[name]; ok {
			return v, true
		}
		return lookup(name)
	}
	for i, a := range e.Args {
		v, err := e.expand(a, argLookup)
		if err != nil {
			return fmt.Errorf("args[%d]: %w", i, err)
		}
		b.Args = append(b.Args, v)
	}
	if e.has["cwd"] {
		cwd, err := e.expand(e.Cwd, lookup)
		if err != nil {
			return fmt.Errorf("cwd: %w", err)
		}
		if cwd == "" {
			return errors.New("cwd: empty")
		}
		if !filepath.IsAbs(cwd) {
			cwd = filepath.Join(dir, cwd)
		}
		b.Dir = cwd
	}
	return nil
}

// expandRemote fills b's URL and headers from e, expanding variables.
func expandRemote(b *Backend, e entry, lookup func(string) (string, bool)) error {
	var err error
	if b.URL, err = e.expand(e.URL, lookup); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if err := checkURL(b.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	b.NoOAuth = e.has["oauth"] && !e.OAuth
	if o := e.OAuthSet; o != nil {
		b.OAuth = &OAuth{CallbackPort: o.CallbackPort, Scopes: o.scopes}
		if b.OAuth.ClientID, err = e.expand(o.ClientID, lookup); err != nil {
			return fmt.Errorf("oauth clientId: %w", err)
		}
		if b.OAuth.ClientSecret, err = e.expand(o.ClientSecret, lookup); err != nil {
			return fmt.Errorf("oauth clientSecret: %w", err)
		}
		if err := b.OAuth.check(); err != nil {
			return fmt.Errorf("oauth: %w", err)
		}
	}
	if len(e.Headers) > 0 {
		b.Headers = make(map[string]string, len(e.Headers))
	}
	for _, k := range slices.Sorted(maps.Keys(e.Headers)) {
		v, err := e.expand(e.Headers[k], lookup)
		if err != nil {
			return fmt.Errorf("headers %s: %w", k, err)
		}
		if _, dup := b.Headers[http.CanonicalHeaderKey(k)]; dup {
			return fmt.Errorf("headers: %s given twice", http.CanonicalHeaderKey(k))
		}
		if err := addHeader(b.Headers, k, v); err != nil {
			return fmt.Errorf("headers: %w", err)
		}
	}
	return nil
}

// stripJSONC blanks out what JSONC allows and JSON does not: // and /* */
// comments, commas before a closing '}' or ']', and a leading byte order
// mark. It replaces them with spaces (keeping newlines), so offsets in
// decoding errors still point into the original file. An unterminated /*
// is left alone for the decoder to report.
func stripJSONC(data []byte) []byte {
	out := bytes.Clone(data)
	if bytes.HasPrefix(out, []byte("\xef\xbb\xbf")) {
		copy(out, "   ")
	}
	inString := false
	comma := -1 // a comma followed so far only by blanks and comments
	for i := 0; i < len(out); i++ {
		c := out[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			comma = -1
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for ; i < len(out) && out[i] != '\n'; i++ {
				out[i] = ' '
			}
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			end := bytes.Index(out[i+2:], []byte("*/"))
			if end < 0 {
				return out
			}
			end += i + 4
			for ; i < end; i++ {
				if out[i] != '\n' {
					out[i] = ' '
				}
			}
			i--
		case c == ',':
			comma = i
		case c == '}' || c == ']':
			if comma >= 0 {
				out[comma] = ' '
			}
			comma = -1
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			comma = -1
		}
	}
	return out
}

// lineCol gives the 1-based line and column (in bytes) of the character a
// json.SyntaxError's Offset points just past. An error at the end of the
// input gives the position of the last character.
func lineCol(data []byte, offset int64) (int, int) {
	pos := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:pos]
	line := bytes.Count(before, []byte("\n")) + 1
	col := pos - bytes.LastIndexByte(before, '\n')
	return line, col
}

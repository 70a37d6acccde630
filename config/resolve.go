package config

import (
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Flags are mcpbridge's backend-related command-line flags, as given.
type Flags struct {
	// Stdio holds --stdio 'NAME=COMMAND ARGS...' values; the command is split
	// with SplitWords.
	Stdio []string
	// HTTP and SSE hold --http NAME=URL and --sse NAME=URL values.
	HTTP, SSE []string
	// Positional holds the positional arguments: one http:// or https:// URL,
	// or the argv of one stdio backend.
	Positional []string
	// Env holds --env NAME:KEY=VALUE values.
	Env []string
	// Cwd holds --cwd NAME=DIR values.
	Cwd []string
	// Header holds --header 'NAME:Key: Value' values.
	Header []string
	// Allow and Deny hold --allow NAME:GLOB and --deny NAME:GLOB values.
	Allow, Deny []string
	// NoOAuth holds --no-oauth NAME values: remote backends whose 401s do
	// not start the OAuth flow.
	NoOAuth []string
	// OAuthClient, OAuthClientSecret, OAuthCallbackPort and OAuthScopes hold
	// --oauth-client NAME:ID, --oauth-client-secret NAME:SECRET,
	// --oauth-callback-port NAME:PORT and --oauth-scopes NAME:SCOPES values.
	OAuthClient, OAuthClientSecret, OAuthCallbackPort, OAuthScopes []string
	// Timeout and MaxTimeout hold --timeout and --max-timeout values: "2m"
	// sets the default for all backends, "NAME:2m" one backend's; "0"
	// disables.
	Timeout, MaxTimeout []string
	// ConfigFile is the --config file, or "".
	ConfigFile string
	// Only holds --only values, each a name or a comma-separated list.
	Only []string
}

// Result is the backend list Resolve assembled.
type Result struct {
	// Backends in order: --stdio, --http, --sse, the positional backend,
	// then the config file's in declared order.
	Backends []Backend
	// DefaultTimeout and DefaultMaxTimeout are the unqualified --timeout and
	// --max-timeout; nil means not given on the command line.
	DefaultTimeout, DefaultMaxTimeout *time.Duration
	// Ignored are notes for the caller to log at debug level.
	Ignored []string
	// Warnings are notes for the caller to log at warn level: config
	// entries left out because they cannot be used, and entries renamed.
	Warnings []string
}

// errNoBackends is Resolve's error when nothing names a backend.
var errNoBackends = errors.New("no backends: give --stdio, --http, --sse, a URL, a command, or --config")

// source is a backend with where it was declared, for error messages.
type source struct {
	b    Backend
	from string
}

// Resolve assembles the backend list from flags and the --config file.
// lookup serves ${...} expansion in the config file, and in the values of
// --header and --env and the URLs of --http and --sse: hosts start the
// bridge without a shell, so a token in the host's env for mcpbridge
// reaches a header only that way (mcp-remote does the same). --stdio and
// positional commands are used as given: the backend's own shell, if any,
// expands them.
//
// A config entry that cannot be used (a VS Code input variable, a
// variable that is not set, a bad command) is left out with a warning, so
// a host's whole config can be reused; --only naming it, or nothing else
// to run, makes its error fatal. An entry name outside NamePattern is
// renamed with CleanName, with a warning.
//
// Backend names must be unique across flags and file. The qualified flags
// (--env, --cwd, --header, --allow, --deny, and --timeout and --max-timeout
// with NAME:) apply after the file is read, so they can adjust its backends
// too: --env and --header add or replace single keys, --cwd replaces the
// directory, --allow and --deny append, and when a flag is repeated for the
// same setting the last wins. --only is applied last, so qualified flags
// may name backends it filters out.
//
// Errors are meant to be shown to the user as they are.
func Resolve(f Flags, lookup func(string) (string, bool)) (Result, error) {
	var res Result
	f, changed, err := expandFlags(f, lookup)
	if err != nil {
		return Result{}, err
	}
	srcs, err := flagBackends(f, changed)
	if err != nil {
		return Result{}, err
	}
	var file File
	if f.ConfigFile != "" {
		if file, err = LoadFile(f.ConfigFile, lookup); err != nil {
			return Result{}, err
		}
		for _, b := range file.Backends {
			srcs = append(srcs, source{b, "config " + f.ConfigFile})
		}
		res.Ignored = file.Ignored
		res.Warnings = append(res.Warnings, file.Warnings...)
	}
	if len(srcs) == 0 {
		switch {
		case len(file.Invalid) > 0:
			return Result{}, fmt.Errorf("config %s: %w", f.ConfigFile, file.Invalid[0])
		case f.ConfigFile != "":
			return Result{}, fmt.Errorf("config %s: no server to run (every entry is disabled or runs mcpbridge itself)", f.ConfigFile)
		}
		return Result{}, errNoBackends
	}
	if err := checkUnique(srcs); err != nil {
		return Result{}, err
	}
	bs := make([]Backend, len(srcs))
	for i, s := range srcs {
		bs[i] = s.b
	}
	q := qualifier{backends: bs, file: f.ConfigFile, entries: file, expanded: changed}
	if res.DefaultTimeout, err = q.timeouts("--timeout", f.Timeout, func(b *Backend) **time.Duration { return &b.Timeout }); err != nil {
		return Result{}, err
	}
	if res.DefaultMaxTimeout, err = q.timeouts("--max-timeout", f.MaxTimeout, func(b *Backend) **time.Duration { return &b.MaxTimeout }); err != nil {
		return Result{}, err
	}
	for _, apply := range []func() error{
		func() error { return q.each("--cwd", "=", "NAME=DIR", f.Cwd, setCwd) },
		func() error { return q.each("--env", ":", "NAME:KEY=VALUE", f.Env, setEnv) },
		func() error { return q.each("--header", ":", "'NAME:Key: Value'", f.Header, setHeader) },
		func() error { return q.each("--allow", ":", "NAME:GLOB", f.Allow, addAllow) },
		func() error { return q.each("--deny", ":", "NAME:GLOB", f.Deny, addDeny) },
		func() error { return q.names("--no-oauth", f.NoOAuth, setNoOAuth) },
		func() error { return q.each("--oauth-client", ":", "NAME:CLIENT_ID", f.OAuthClient, setOAuthClient) },
		func() error {
			return q.each("--oauth-client-secret", ":", "NAME:SECRET", f.OAuthClientSecret, setOAuthClientSecret)
		},
		func() error {
			return q.each("--oauth-callback-port", ":", "NAME:PORT", f.OAuthCallbackPort, setOAuthCallbackPort)
		},
		func() error { return q.each("--oauth-scopes", ":", "'NAME:SCOPE …'", f.OAuthScopes, setOAuthScopes) },
	} {
		if err := apply(); err != nil {
			return Result{}, err
		}
	}
	for _, b := range q.backends {
		if b.OAuth == nil {
			continue
		}
		if b.NoOAuth {
			return Result{}, fmt.Errorf("backend %q: OAuth settings given, but OAuth is turned off for it (--no-oauth or \"oauth\": false)", b.Name)
		}
		if err := b.OAuth.check(); err != nil {
			return Result{}, fmt.Errorf("backend %q: %w", b.Name, err)
		}
	}
	if res.Backends, err = q.only(f.Only); err != nil {
		return Result{}, err
	}
	// What was left out of the file: worth a warning unless --only chose
	// other entries anyway.
	kept := map[string]bool{}
	for _, b := range res.Backends {
		kept[b.Name] = true
	}
	for _, e := range file.Invalid {
		msg := fmt.Sprintf("config %s: %v; left out", f.ConfigFile, e)
		if len(f.Only) > 0 {
			res.Ignored = append(res.Ignored, msg)
		} else {
			res.Warnings = append(res.Warnings, msg)
		}
	}
	if len(f.Only) == 0 {
		for _, name := range file.Skipped {
			res.Warnings = append(res.Warnings, fmt.Sprintf("config %s: server %q runs mcpbridge itself and is left out (list the servers behind it in this bridge instead)", f.ConfigFile, name))
		}
	}
	for _, orig := range slices.Sorted(maps.Keys(file.Renamed)) {
		if name := file.Renamed[orig]; kept[name] {
			res.Warnings = append(res.Warnings, fmt.Sprintf("config %s: server %q is called %q here (names must match %s)", f.ConfigFile, orig, name, NamePattern))
		}
	}
	return res, nil
}

// expanded holds the flag values expandFlags changed.
type expanded map[string]bool

// shown is how an error quotes flag value v: one that ${...} was expanded
// into is shown by its NAME (before sep) alone, since the rest may be a
// secret the user kept off the command line (--help advises ${VAR} for
// them); one typed as it is, as typed.
func (x expanded) shown(v, sep string) string {
	if !x[v] {
		return strconv.Quote(v)
	}
	if name, _, ok := strings.Cut(v, sep); ok {
		return strconv.Quote(name + sep + "…")
	}
	return "(its value, expanded, not shown)"
}

// hide removes from err, about flag value v, what ${...} was expanded into
// there (all of v past sep): errors deeper down quote what they were
// given ("bad URL %q").
func (x expanded) hide(v, sep string, err error) error {
	if !x[v] {
		return err
	}
	_, rest, ok := strings.Cut(v, sep)
	if !ok {
		rest = v
	}
	msg := err.Error()
	if rest != "" {
		q := strconv.Quote(rest)
		msg = strings.ReplaceAll(strings.ReplaceAll(msg, q[1:len(q)-1], "…"), rest, "…")
	}
	return errors.New(msg)
}

// expandFlags expands ${...} in the flag values Resolve documents, and
// says which it changed.
func expandFlags(f Flags, lookup func(string) (string, bool)) (Flags, expanded, error) {
	changed := expanded{}
	for _, fl := range []struct {
		name   string
		values *[]string
	}{{"--header", &f.Header}, {"--env", &f.Env}, {"--http", &f.HTTP}, {"--sse", &f.SSE},
		{"--oauth-client", &f.OAuthClient}, {"--oauth-client-secret", &f.OAuthClientSecret}} {
		if len(*fl.values) == 0 {
			continue
		}
		out := make([]string, len(*fl.values))
		for i, v := range *fl.values {
			x, err := Expand(v, lookup)
			if err != nil {
				return Flags{}, nil, fmt.Errorf("%s %q: %w", fl.name, v, err)
			}
			if x != v {
				changed[x] = true
			}
			out[i] = x
		}
		*fl.values = out
	}
	if f.ConfigFile != "" {
		// A host starts the bridge without a shell: "~/servers.json" and
		// "${HOME}/servers.json" in its entry are as the user typed them.
		p, err := Expand(f.ConfigFile, lookup)
		if err != nil {
			return Flags{}, nil, fmt.Errorf("--config %q: %w", f.ConfigFile, err)
		}
		if rest, ok := strings.CutPrefix(p, "~/"); ok || p == "~" {
			if home, ok := lookup("HOME"); ok && home != "" {
				p = filepath.Join(home, rest)
			} else if home, ok := lookup("USERPROFILE"); ok && home != "" {
				p = filepath.Join(home, rest)
			}
		}
		f.ConfigFile = p
	}
	if len(f.Positional) == 1 && isHTTPURL(f.Positional[0]) {
		u, err := Expand(f.Positional[0], lookup)
		if err != nil {
			return Flags{}, nil, fmt.Errorf("%q: %w", f.Positional[0], err)
		}
		f.Positional = []string{u}
	}
	return f, changed, nil
}

// flagBackends builds the backends declared by flags, in Result order.
func flagBackends(f Flags, changed expanded) ([]source, error) {
	var srcs []source
	for _, v := range f.Stdio {
		b, err := stdioFlag(v)
		var ae *assignmentError
		if errors.As(err, &ae) {
			return nil, ae // shown without the value, which may be a token
		}
		if err != nil {
			return nil, fmt.Errorf("--stdio %q: %w", v, err)
		}
		srcs = append(srcs, source{b, "--stdio"})
	}
	for _, fl := range []struct {
		name   string
		kind   Kind
		values []string
	}{{"--http", KindHTTP, f.HTTP}, {"--sse", KindSSE, f.SSE}} {
		for _, v := range fl.values {
			b, err := urlFlag(fl.kind, v)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", fl.name, changed.shown(v, "="), changed.hide(v, "=", err))
			}
			srcs = append(srcs, source{b, fl.name})
		}
	}
	if len(f.Positional) > 0 {
		b, err := positional(f.Positional)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, source{b, "the command line arguments"})
	}
	return srcs, nil
}

// namedValue splits "NAME=REST" and checks NAME.
func namedValue(v, want string) (string, string, error) {
	name, rest, ok := strings.Cut(v, "=")
	if !ok {
		return "", "", fmt.Errorf("want %s", want)
	}
	if err := checkName(name); err != nil {
		return "", "", err
	}
	return name, rest, nil
}

// stdioFlag parses a --stdio NAME=COMMAND ARGS... value.
func stdioFlag(v string) (Backend, error) {
	name, cmd, err := namedValue(v, "NAME=COMMAND ARGS...")
	if err != nil {
		return Backend{}, err
	}
	argv, err := SplitWords(cmd)
	if err != nil {
		return Backend{}, err
	}
	if len(argv) == 0 {
		return Backend{}, errors.New("empty command")
	}
	if key, _, ok := strings.Cut(argv[0], "="); ok && isEnvName(key) {
		return Backend{}, &assignmentError{name: name, key: key}
	}
	if isEnvName(name) && strings.Contains(name, "_") && strings.ToUpper(name) == name && !strings.ContainsRune(argv[0], '/') {
		// "GITHUB_TOKEN=ghp_… npx …", a shell command line pasted whole:
		// a backend GITHUB_TOKEN running the command "ghp_…". Only when no
		// such command exists, so that a backend named MY_SERVER runs.
		if _, err := exec.LookPath(argv[0]); err != nil {
			return Backend{}, &assignmentError{key: name}
		}
	}
	if err := checkCommand(argv[0]); err != nil {
		return Backend{}, err
	}
	return Backend{Name: name, Kind: KindStdio, Command: argv[0], Args: append([]string(nil), argv[1:]...)}, nil
}

// isEnvName reports whether s is a shell variable name.
func isEnvName(s string) bool {
	for i, c := range s {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// An assignmentError is a --stdio command that starts with KEY=VALUE, as
// a shell command line may: mcpbridge runs no shell. With no name, the
// value was taken as NAME=COMMAND: KEY as the name.
type assignmentError struct{ name, key string }

func (e *assignmentError) Error() string {
	if e.name == "" {
		return fmt.Sprintf("--stdio %q: looks like the assignment %s=… of a shell command line (what follows = is no command in PATH), and mcpbridge runs no shell: give --stdio 'NAME=COMMAND ARGS' and --env NAME:%s=VALUE", e.key+"=…", e.key, e.key)
	}
	return fmt.Sprintf("--stdio %q: the command starts with %s=…, an assignment a shell would make, and mcpbridge runs no shell: give it as --env %s:%s=VALUE", e.name+"=…", e.key, e.name, e.key)
}

// urlFlag parses a --http or --sse NAME=URL value.
func urlFlag(kind Kind, v string) (Backend, error) {
	name, u, err := namedValue(v, "NAME=URL")
	if err != nil {
		return Backend{}, err
	}
	if err := checkURL(u); err != nil {
		return Backend{}, err
	}
	return Backend{Name: name, Kind: kind, URL: u}, nil
}

// positional builds the backend named by positional arguments: a lone
// http(s) URL, or else the argv of a stdio command.
func positional(args []string) (Backend, error) {
	if isHTTPURL(args[0]) {
		if len(args) > 1 {
			return Backend{}, fmt.Errorf("URL %s: unexpected arguments after it: %q", args[0], args[1:])
		}
		if err := checkURL(args[0]); err != nil {
			return Backend{}, err
		}
		return Backend{Name: NameFromURL(args[0]), Kind: KindURL, URL: args[0]}, nil
	}
	if err := checkCommand(args[0]); err != nil {
		return Backend{}, fmt.Errorf("command %q: %w", args[0], err)
	}
	return Backend{
		Name:    NameFromArgv(args),
		Kind:    KindStdio,
		Command: args[0],
		Args:    append([]string(nil), args[1:]...),
	}, nil
}

// checkUnique rejects two backends with the same name.
func checkUnique(srcs []source) error {
	first := map[string]string{}
	for _, s := range srcs {
		from, dup := first[s.b.Name]
		if !dup {
			first[s.b.Name] = s.from
			continue
		}
		err := fmt.Errorf("backend name %q is used twice (%s and %s)", s.b.Name, from, s.from)
		if from == "the command line arguments" {
			err = fmt.Errorf("%w; use --stdio NAME=COMMAND, --http or --sse to choose another name", err)
		}
		return err
	}
	return nil
}

// qualifier applies NAME-qualified flags to the backends.
type qualifier struct {
	backends []Backend
	file     string
	entries  File // the config file's, for what is not in backends
	expanded expanded
}

// A leftOutError is find's error for a config entry that was left out
// (invalid, or running mcpbridge): a qualified flag naming it does
// nothing, --only naming it fails with it.
type leftOutError struct{ msg string }

func (e *leftOutError) Error() string { return e.msg }

func leftOut(format string, args ...any) error {
	return &leftOutError{fmt.Sprintf(format, args...)}
}

func isLeftOut(err error) bool {
	var lo *leftOutError
	return errors.As(err, &lo)
}

// find returns the backend called name (a config entry's name as written,
// or as renamed).
func (q qualifier) find(name string) (*Backend, error) {
	if clean, ok := q.entries.Renamed[name]; ok {
		name = clean
	}
	for i := range q.backends {
		if q.backends[i].Name == name {
			return &q.backends[i], nil
		}
	}
	for _, e := range q.entries.Invalid {
		if e.Name == name || CleanName(e.Name) == name {
			return nil, leftOut("config %s: %v", q.file, e)
		}
	}
	if slices.Contains(q.entries.Disabled, name) {
		// A qualified flag (a filter, an env value, a timeout) for it does
		// not apply while it is off: hosts toggle servers with "disabled",
		// and the bridge's own entry in the host keeps its flags. --only
		// naming it is still an error (the user asked to run it).
		return nil, leftOut("backend %q is disabled in config %s", name, q.file)
	}
	if slices.Contains(q.entries.Skipped, name) {
		return nil, leftOut("backend %q in config %s is skipped: it runs mcpbridge itself", name, q.file)
	}
	names := make([]string, len(q.backends))
	for i, b := range q.backends {
		names[i] = strconv.Quote(b.Name)
	}
	return nil, fmt.Errorf("no backend named %q (the backends are named %s)", name, strings.Join(names, ", "))
}

// each applies set to the REST of every NAME<sep>REST value of flag; usage
// shows the expected form.
func (q qualifier) each(flag, sep, usage string, values []string, set func(*Backend, string) error) error {
	for _, v := range values {
		name, rest, ok := strings.Cut(v, sep)
		if !ok {
			return fmt.Errorf("%s %s: want %s", flag, q.expanded.shown(v, sep), usage)
		}
		b, err := q.find(name)
		if isLeftOut(err) {
			continue // for an entry that does not run
		}
		if err == nil {
			err = set(b, rest)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", flag, q.expanded.shown(v, sep), q.expanded.hide(v, sep, err))
		}
	}
	return nil
}

// names applies a flag whose values are bare backend names.
func (q qualifier) names(flag string, values []string, set func(*Backend) error) error {
	for _, name := range values {
		b, err := q.find(name)
		if isLeftOut(err) {
			continue // for an entry that does not run
		}
		if err == nil {
			err = set(b)
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", flag, name, err)
		}
	}
	return nil
}

// timeouts applies --timeout or --max-timeout values: a bare duration is
// returned as the default, NAME:DURATION is stored through field.
func (q qualifier) timeouts(flag string, values []string, field func(*Backend) **time.Duration) (*time.Duration, error) {
	var def *time.Duration
	for _, v := range values {
		name, dur, qualified := strings.Cut(v, ":")
		if !qualified {
			dur = v
		}
		d, err := parseDuration(dur)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, v, err)
		}
		if !qualified {
			def = &d
			continue
		}
		b, err := q.find(name)
		if isLeftOut(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, v, err)
		}
		*field(b) = &d
	}
	return def, nil
}

// only keeps the backends named in --only values, in declared order; no
// values keep them all.
func (q qualifier) only(values []string) ([]Backend, error) {
	keep := map[string]bool{}
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			b, err := q.find(name)
			if err != nil {
				return nil, fmt.Errorf("--only: %w", err)
			}
			keep[b.Name] = true
		}
	}
	if len(keep) == 0 {
		return q.backends, nil
	}
	var bs []Backend
	for _, b := range q.backends {
		if keep[b.Name] {
			bs = append(bs, b)
		}
	}
	return bs, nil
}

// requireStdio rejects a stdio-only setting on a remote backend.
func requireStdio(b *Backend) error {
	if b.Kind != KindStdio {
		return fmt.Errorf("backend %q is not a stdio backend", b.Name)
	}
	return nil
}

// setCwd applies a --cwd DIR; a relative DIR stays relative to the bridge's
// own working directory.
func setCwd(b *Backend, dir string) error {
	if err := requireStdio(b); err != nil {
		return err
	}
	if dir == "" {
		return errors.New("empty directory")
	}
	b.Dir = dir
	return nil
}

// setEnv applies a --env KEY=VALUE.
func setEnv(b *Backend, kv string) error {
	if err := requireStdio(b); err != nil {
		return err
	}
	key, value, ok := strings.Cut(kv, "=")
	if !ok {
		// Not quoted: it may be a secret ${VAR} was expanded into.
		return errors.New("want NAME:KEY=VALUE: there is no = after NAME:")
	}
	if key == "" || strings.ContainsRune(key, 0) {
		return errors.New("want NAME:KEY=VALUE with a non-empty KEY")
	}
	if b.Env == nil {
		b.Env = map[string]string{}
	}
	b.Env[key] = value
	return nil
}

// setHeader applies a --header "Key: Value"; one space after the colon is
// dropped, as in HTTP.
func setHeader(b *Backend, kv string) error {
	if b.Kind == KindStdio {
		return fmt.Errorf("backend %q is a stdio backend, not a remote one", b.Name)
	}
	key, value, ok := strings.Cut(kv, ":")
	if !ok {
		return errors.New("want 'NAME:Key: Value'")
	}
	if b.Headers == nil {
		b.Headers = map[string]string{}
	}
	return addHeader(b.Headers, key, strings.TrimPrefix(value, " "))
}

// setNoOAuth applies --no-oauth.
func setNoOAuth(b *Backend) error {
	if b.Kind == KindStdio {
		return fmt.Errorf("backend %q is a stdio backend, not a remote one", b.Name)
	}
	b.NoOAuth = true
	return nil
}

// oauthOf returns b's OAuth settings, made if need be; only remote
// backends have them.
func oauthOf(b *Backend) (*OAuth, error) {
	if b.Kind == KindStdio {
		return nil, fmt.Errorf("backend %q is a stdio backend, not a remote one", b.Name)
	}
	if b.OAuth == nil {
		b.OAuth = &OAuth{}
	}
	return b.OAuth, nil
}

// setOAuthClient applies --oauth-client.
func setOAuthClient(b *Backend, id string) error {
	o, err := oauthOf(b)
	if err == nil && id == "" {
		err = errors.New("empty client id")
	}
	if err == nil {
		o.ClientID = id
	}
	return err
}

// setOAuthClientSecret applies --oauth-client-secret.
func setOAuthClientSecret(b *Backend, secret string) error {
	o, err := oauthOf(b)
	if err == nil {
		o.ClientSecret = secret
	}
	return err
}

// setOAuthCallbackPort applies --oauth-callback-port.
func setOAuthCallbackPort(b *Backend, port string) error {
	o, err := oauthOf(b)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want a port number (1-65535)", port)
	}
	o.CallbackPort = n
	return nil
}

// setOAuthScopes applies --oauth-scopes: scopes separated by spaces or
// commas.
func setOAuthScopes(b *Backend, scopes string) error {
	o, err := oauthOf(b)
	if err != nil {
		return err
	}
	o.Scopes = strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' })
	if len(o.Scopes) == 0 {
		return errors.New("no scopes")
	}
	return nil
}

// addAllow applies an --allow GLOB.
func addAllow(b *Backend, glob string) error {
	if err := checkGlob(glob); err != nil {
		return err
	}
	b.Allow = append(b.Allow, glob)
	return nil
}

// addDeny applies a --deny GLOB.
func addDeny(b *Backend, glob string) error {
	if err := checkGlob(glob); err != nil {
		return err
	}
	b.Deny = append(b.Deny, glob)
	return nil
}

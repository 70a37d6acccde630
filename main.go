// Command mcpbridge is one stdio MCP server in front of many: it spawns or
// dials its backends (stdio commands, streamable-HTTP and SSE URLs), keeps
// one initialized session per backend, and relays JSON-RPC both ways.
//
// This file is the command line and nothing else: flags and --config →
// bridge.Config → bridge.Run on stdin/stdout. stdout is the protocol
// channel: help, usage errors and logs all go to stderr.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mcpbridge/mcpbridge/backends"
	"github.com/mcpbridge/mcpbridge/bridge"
	"github.com/mcpbridge/mcpbridge/config"
	_ "github.com/mcpbridge/mcpbridge/internal/procstart" // first: prefault, GOMAXPROCS=1
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// maxDepth refuses bridges nested deeper than this (a config that starts
// mcpbridge which starts mcpbridge ...).
const maxDepth = 3

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case backends.GuardArg:
			// Re-executed as the guard of the stdio backends' process
			// groups (Linux).
			os.Exit(backends.Guard())
		case backends.SuperviseArg:
			// Re-executed as a stdio backend's process-group leader
			// (other Unix systems).
			os.Exit(backends.Supervise(os.Args[2:]))
		}
	}
	in, out, restore := pollableStdio()
	code := run(os.Args, in, out, os.Stderr)
	restore()
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	os.Exit(code)
}

// usageError rewords the flag package's "invalid value "30" for flag
// -init-timeout: parse error" as the bridge's own flag errors read: the
// flag as the user typed it, and what it wants.
func usageError(err error) error {
	var value, name string
	msg := err.Error()
	if _, e := fmt.Sscanf(msg, "flag provided but not defined: -%s", &name); e == nil {
		return fmt.Errorf("unknown flag --%s (see --help)", strings.TrimPrefix(name, "-"))
	}
	if _, e := fmt.Sscanf(msg, "invalid value %q for flag -%s", &value, &name); e != nil {
		return err
	}
	name = strings.TrimSuffix(name, ":")
	want := "see --help"
	switch name {
	case "init-timeout":
		want = "want a duration such as 30s or 2m"
	case "max-message":
		want = "want a number of bytes such as 67108864"
	}
	return fmt.Errorf("--%s %q: %s", name, value, want)
}

// exitError carries an exit status through urfave/cli.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.code != 0 {
			fmt.Fprintf(stderr, "mcpbridge: %v\n", ee.err)
		}
		return ee.code
	}
	// urfave/cli's own errors: bad flags and the like.
	fmt.Fprintf(stderr, "mcpbridge: %v\n", err)
	return 2
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "mcpbridge",
		Usage:     "one stdio MCP server in front of many (stdio, streamable HTTP, SSE)",
		Version:   version,
		UsageText: usageText,
		// Help, version and usage errors must never reach stdout, the
		// protocol channel (cli v2 writes them to Writer, stdout by default).
		Writer:    stderr,
		ErrWriter: stderr,
		// Commas inside commands and headers must survive.
		DisableSliceFlagSeparator: true,
		HideHelpCommand:           true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &exitError{2, usageError(err)}
		},
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "stdio", Usage: "stdio backend `'NAME=COMMAND ARGS...'` (split like a POSIX shell, run without one); repeatable"},
			&cli.StringSliceFlag{Name: "http", Usage: "streamable-HTTP backend `NAME=URL`; repeatable"},
			&cli.StringSliceFlag{Name: "sse", Usage: "legacy HTTP+SSE backend `NAME=URL`; repeatable"},
			&cli.StringSliceFlag{Name: "config", Usage: "backends from an mcpServers (Claude, Cursor) or servers (VS Code) JSON `FILE` (once)"},
			&cli.StringSliceFlag{Name: "only", Usage: "use only these backends `NAME,...`"},
			&cli.StringSliceFlag{Name: "env", Usage: "environment variable for a stdio backend `NAME:KEY=VALUE`; repeatable"},
			&cli.StringSliceFlag{Name: "cwd", Usage: "working directory of a stdio backend `NAME=DIR`"},
			&cli.StringSliceFlag{Name: "header", Usage: "HTTP header for a remote backend `'NAME:Key: Value'`; repeatable"},
			&cli.StringSliceFlag{Name: "no-oauth", Usage: "do not start the OAuth flow when remote backend `NAME` answers 401; repeatable"},
			&cli.StringSliceFlag{Name: "oauth-client", Usage: "OAuth client registered beforehand for remote backend `NAME:CLIENT_ID` (servers without dynamic registration)"},
			&cli.StringSliceFlag{Name: "oauth-client-secret", Usage: "its secret, `NAME:SECRET` (use ${VAR}: arguments are visible to other users)"},
			&cli.StringSliceFlag{Name: "oauth-callback-port", Usage: "loopback port of the OAuth redirect URI http://127.0.0.1:PORT/callback, `NAME:PORT`"},
			&cli.StringSliceFlag{Name: "oauth-scopes", Usage: "OAuth scopes to ask for instead of the server's, `'NAME:SCOPE ...'`"},
			&cli.StringSliceFlag{Name: "allow", Usage: "only offer a backend's tools matching `NAME:GLOB`; repeatable"},
			&cli.StringSliceFlag{Name: "deny", Usage: "hide and refuse a backend's tools matching `NAME:GLOB` (deny wins); repeatable"},
			&cli.StringSliceFlag{Name: "timeout", Usage: "idle timeout of a request, reset by progress: `DURATION` or NAME:DURATION; 0 disables (default 5m)"},
			&cli.StringSliceFlag{Name: "max-timeout", Usage: "absolute cap of a request: `DURATION` or NAME:DURATION; 0 disables (default 1h)"},
			&cli.DurationFlag{Name: "init-timeout", Value: 60 * time.Second, Usage: "how long the backends' initialize may take"},
			&cli.StringFlag{Name: "separator", Value: "_", Usage: "joins backend and tool names when prefixing"},
			&cli.BoolFlag{Name: "prefix", Usage: "prefix tool and prompt names even with one backend"},
			&cli.IntFlag{Name: "max-message", Value: 64 << 20, Usage: "largest message accepted, in bytes"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn, error or disabled"},
			&cli.StringFlag{Name: "log-file", Usage: "write logs to `FILE` instead of stderr"},
		},
		Action: func(c *cli.Context) error { return action(c, stdin, stdout, stderr) },
	}
}

const usageText = `mcpbridge [FLAGS] --stdio 'NAME=COMMAND ARGS...'   spawn a stdio backend (repeatable)
   mcpbridge [FLAGS] --http NAME=URL                  streamable-HTTP backend (repeatable)
   mcpbridge [FLAGS] --sse NAME=URL                   legacy HTTP+SSE backend (repeatable)
   mcpbridge [FLAGS] URL                              one remote backend (streamable HTTP, falling back to SSE)
   mcpbridge [FLAGS] [--] COMMAND ARGS...             one stdio backend, its argv as is
   mcpbridge [FLAGS] --config FILE                    backends from a JSON config file`

// checkFlags rejects flag values that would fail later or silently mean
// something else, before anything is spawned.
func checkFlags(c *cli.Context) error {
	if d := c.Duration("init-timeout"); d <= 0 {
		return fmt.Errorf("--init-timeout %v: want a positive duration such as 30s", d)
	}
	if n := c.Int("max-message"); n < minMaxMessage {
		return fmt.Errorf("--max-message %d: want at least %d bytes", n, minMaxMessage)
	}
	sep := c.String("separator")
	if sep == "" || strings.Trim(sep, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
		return fmt.Errorf("--separator %q: want letters, digits, _ or - (what tool names hosts accept may hold)", sep)
	}
	return nil
}

// minMaxMessage is the smallest --max-message: an initialize answer with
// instructions must fit.
const minMaxMessage = 4096

func action(c *cli.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	if depth, _ := strconv.Atoi(os.Getenv(config.NestedEnv)); depth >= maxDepth {
		return &exitError{2, fmt.Errorf("refusing to run nested %d deep (%s=%d): a config starts mcpbridge inside mcpbridge", depth, config.NestedEnv, depth)}
	}
	if err := checkFlags(c); err != nil {
		return &exitError{2, err}
	}
	// One --config: urfave/cli would let a second one replace the first
	// unseen (servers of two files go in one file).
	configFile := ""
	switch files := c.StringSlice("config"); len(files) {
	case 0:
	case 1:
		configFile = files[0]
	default:
		return &exitError{2, fmt.Errorf("--config given %d times (%s); give one file", len(files), strings.Join(files, ", "))}
	}
	res, err := config.Resolve(config.Flags{
		Stdio:      c.StringSlice("stdio"),
		HTTP:       c.StringSlice("http"),
		SSE:        c.StringSlice("sse"),
		Positional: c.Args().Slice(),
		Env:        c.StringSlice("env"),
		Cwd:        c.StringSlice("cwd"),
		Header:     c.StringSlice("header"),
		Allow:      c.StringSlice("allow"),
		Deny:       c.StringSlice("deny"),
		NoOAuth:    c.StringSlice("no-oauth"),

		OAuthClient:       c.StringSlice("oauth-client"),
		OAuthClientSecret: c.StringSlice("oauth-client-secret"),
		OAuthCallbackPort: c.StringSlice("oauth-callback-port"),
		OAuthScopes:       c.StringSlice("oauth-scopes"),
		Timeout:           c.StringSlice("timeout"),
		MaxTimeout:        c.StringSlice("max-timeout"),
		ConfigFile:        configFile,
		Only:              c.StringSlice("only"),
	}, os.LookupEnv)
	if err != nil {
		return &exitError{2, err}
	}
	// The levels --help names, and only those (zerolog also takes
	// "trace", "fatal", "panic" and numbers).
	level, err := zerolog.ParseLevel(c.String("log-level"))
	if err != nil || !slices.Contains([]string{"debug", "info", "warn", "error", "disabled"}, c.String("log-level")) {
		return &exitError{2, fmt.Errorf("--log-level %q: want debug, info, warn, error or disabled", c.String("log-level"))}
	}
	var logOut io.Writer = stderr
	if p := c.String("log-file"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return &exitError{2, fmt.Errorf("--log-file: %w", err)}
		}
		defer f.Close()
		logOut = f
	}
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" // milliseconds: lifecycle steps are short
	rep := newReplacer(secrets(res.Backends))
	logger := zerolog.New(newRedactor(logOut, rep)).Level(level).With().Timestamp().Logger()
	for _, note := range stdioNotes {
		logger.Debug().Msg("host " + note)
	}
	for _, note := range res.Ignored {
		logger.Debug().Msg(note)
	}
	for _, w := range res.Warnings {
		logger.Warn().Msg(w)
	}

	cfg := bridge.Config{
		Backends:    res.Backends,
		Logger:      logger,
		InitTimeout: c.Duration("init-timeout"),
		Timeout:     flagDuration(res.DefaultTimeout),
		MaxTimeout:  flagDuration(res.DefaultMaxTimeout),
		Separator:   c.String("separator"),
		Prefix:      c.Bool("prefix"),
		MaxLine:     c.Int("max-message"),
		Version:     version,
	}
	if rep != nil {
		// Not only the log: what the bridge tells the host (a backend's
		// last stderr line in its exit reason, a server's error body).
		cfg.Redact = rep.Replace
	}
	if self, err := os.Executable(); err == nil && runtime.GOOS != "windows" {
		cfg.Supervisor = self
	}
	if prefix := os.Getenv("MCPBRIDGE_CPUPROFILE"); prefix != "" {
		// A development aid for issue #6: profile this process to
		// PREFIX.PID (several bridges may run at once under a benchmark).
		if f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid())); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
	}
	// SIGINT or SIGTERM stops the bridge cleanly (every request in flight
	// answered, backends closed). SIGTERM is how hosts stop a server (the
	// MCP stdio shutdown's second step): exit status 0. SIGINT is Ctrl-C
	// in a terminal or a script, which must not read success: 130, as a
	// shell reports it.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var stoppedBy atomic.Value // os.Signal
	go func() {
		select {
		case sig := <-sigs:
			stoppedBy.Store(sig)
			stop()
		case <-ctx.Done():
		}
	}()
	// A log reader that went away (mcpbridge 2>&1 >answers | head) must
	// not kill the bridge: Go ends a program whose write to fd 1 or 2 hits
	// a broken pipe unless SIGPIPE is handled. Writes then fail with
	// EPIPE: to stderr, logs are lost; to the host, the bridge stops.
	// Handled (the signals dropped), not ignored: an ignored signal stays
	// ignored across exec, and the backends' own pipelines (cmd | head)
	// rely on SIGPIPE.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	growStdio()
	logger.Info().Int("backends", len(cfg.Backends)).Str("version", version).Msg("mcpbridge starting")
	if err := bridge.Run(ctx, cfg, stdin, stdout); err != nil {
		logger.Error().Err(err).Msg("mcpbridge stopped")
		return &exitError{1, err}
	}
	if sig, ok := stoppedBy.Load().(os.Signal); ok && sig == os.Interrupt {
		logger.Info().Str("signal", sig.String()).Msg("mcpbridge stopped")
		return &exitError{130, fmt.Errorf("stopped by %v", sig)}
	}
	logger.Info().Msg("mcpbridge stopped")
	return nil
}

// flagDuration maps the config package's "nil: default, 0: disabled" onto
// bridge.Config's "0: default, negative: disabled".
func flagDuration(d *time.Duration) time.Duration {
	switch {
	case d == nil:
		return 0
	case *d == 0:
		return -1
	}
	return *d
}

// secrets are the configured values that must never appear in a log line:
// env values and header values (bearer tokens included).
func secrets(bs []config.Backend) []string {
	var out []string
	for _, b := range bs {
		for k, v := range b.Env {
			if secretName(k) {
				out = append(out, v)
			}
		}
		if b.OAuth != nil && b.OAuth.ClientSecret != "" {
			out = append(out, b.OAuth.ClientSecret)
		}
		for _, v := range b.Headers {
			out = append(out, v)
			if _, tok, ok := strings.Cut(v, " "); ok {
				out = append(out, tok) // "Bearer abc": abc alone too
			}
		}
	}
	return out
}

// secretName reports whether an environment variable's name says it holds
// a secret (GITHUB_TOKEN, OPENAI_API_KEY, DB_PASSWORD, DATABASE_URL with
// its credentials, ...). Other values (PORT=3000, LOG_LEVEL=info, a PATH)
// are not redacted: replaced in every log line, they broke its JSON and
// hid the log level (fourth review).
func secretName(k string) bool {
	k = strings.ToUpper(k)
	for _, w := range []string{"TOKEN", "KEY", "SECRET", "PASS", "AUTH", "CRED", "PRIVATE", "SESSION", "COOKIE", "DSN", "URL", "URI", "CONN", "SIGNATURE", "SALT"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	// GITHUB_PAT, but not PATH.
	return slices.Contains(strings.Split(k, "_"), "PAT")
}

//go:build linux

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/frame"
)

// Thirty-third review: mcpbridge used from a shell, as a user would. Each
// test failed on 4b07074, before its fix; the comments describe what the
// user did, what README or --help led them to expect, and what happened
// then.

// r33Config writes a config file whose one or more entries run this test
// binary as a stdio test server, and returns its path.
func r33Config(t *testing.T, servers map[string]any) string {
	t.Helper()
	data, err := json.MarshalIndent(map[string]any{"mcpServers": servers}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// r33Run runs the bridge to completion with stdin as its input and
// returns its exit status, stdout and stderr.
func r33Run(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bridgeBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("mcpbridge %v did not exit within 60 s", args)
	}
	return -1, "", ""
}

const r33Session = initLine + "\n" +
	`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" +
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}` + "\n"

// mcp-remote's README gives Claude Desktop users this shape to pass a
// bearer token to a remote server (the header value with spaces lives in
// the entry's env, and mcp-remote expands ${AUTH_HEADER} itself):
//
//	"args": ["mcp-remote", "https://remote.mcp.server/sse",
//	         "--header", "Authorization:${AUTH_HEADER}"],
//	"env": {"AUTH_HEADER": "Bearer <auth-token>"}
//
// Claude Desktop passes the args as written. README promises "--config
// reads the files hosts already have ... So that a host's own config file
// can be reused as is". mcpbridge instead expands ${AUTH_HEADER} from its
// own environment only (config/file.go:698, expandStdio), ignoring the
// entry's env that defines it: the entry is left out ("variable
// AUTH_HEADER is not set (use ${AUTH_HEADER:-default} ...)": the variable
// is set, two lines below) and with nothing else to run the bridge exits 2.
// When the bridge's environment happens to hold another AUTH_HEADER, that
// one is silently sent instead.
func TestArgsSeeTheEntrysOwnEnv(t *testing.T) {
	self, _ := os.Executable()
	cfg := r33Config(t, map[string]any{
		"remote-example": map[string]any{
			"command": self,
			"args":    []string{"mcp-remote", "https://remote.mcp.server/sse", "--header", "Authorization:${AUTH_HEADER}"},
			"env":     map[string]string{"AUTH_HEADER": "Bearer abc-123-token", serverEnv: "remote"},
		},
	})
	if _, ok := os.LookupEnv("AUTH_HEADER"); ok {
		t.Skip("AUTH_HEADER is set in the test's environment")
	}
	code, out, stderr := r33Run(t, nil, r33Session, "--config", cfg)
	if code != 0 || !strings.Contains(out, `"text":"hi"`) {
		t.Errorf("mcp-remote's documented Claude Desktop entry (its ${AUTH_HEADER} defined in the entry's own env) does not run: exit %d, stdout %q, stderr:\n%s", code, out, tail(stderr, 1500))
	}
}

// A config whose args take a secret from the environment, as Claude Code
// and Cursor users write it ("args": ["--api-key", "${GITHUB_TOKEN}"]):
// README: "the values of env variables whose names say they hold a
// secret (*TOKEN*, *KEY*, ...) ... are replaced by [REDACTED] in every
// line". GITHUB_TOKEN's value, expanded into the args, is logged in clear
// at the default level in "backend started"'s command field
// (backends/stdio.go:316 logs the argv; main.go:secrets() collects only the
// backend's env and headers). The same for the mcp-remote style
// "--header", "Authorization: Bearer sk-…" written straight into args
// (the most common way Claude Desktop users reach a remote server).
func TestArgsNotLoggedAtTheDefaultLevel(t *testing.T) {
	self, _ := os.Executable()
	const tok = "ghp_r33SecretToken0123456789"
	const bearer = "sk-live-r33bearer987654321"
	cfg := r33Config(t, map[string]any{
		"gh": map[string]any{
			"command": self,
			"args":    []string{"--api-key", "${GITHUB_TOKEN}"},
			"env":     map[string]string{serverEnv: "gh"},
		},
		"remote": map[string]any{
			"command": self,
			"args":    []string{"mcp-remote", "https://example.com/mcp", "--header", "Authorization: Bearer " + bearer},
			"env":     map[string]string{serverEnv: "remote"},
		},
	})
	_, _, stderr := r33Run(t, []string{"GITHUB_TOKEN=" + tok}, r33Session, "--config", cfg)
	for _, s := range []string{tok, bearer} {
		if strings.Contains(stderr, s) {
			for _, line := range strings.Split(stderr, "\n") {
				if strings.Contains(line, s) {
					t.Errorf("secret %q logged at the default level:\n%s", s, line)
					break
				}
			}
		}
	}
}

// A user presses Ctrl-C (or a host sends SIGTERM) while a call runs.
// README: "SIGTERM with calls in flight: every one of them is answered
// -32603 before the bridge exits". It is, but the answer says `backend
// "sig": connection to the backend was lost`, which reads as the
// backend having crashed; the bridge was stopping on a signal and knew it
// (bridge/link.go:269: failInFlight's reason, with the cause
// context.Canceled dropped).
func TestSignalAnswerSaysTheBridgeStopped(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		p := startBridge(t, serverEnvFor("sig"), "--log-level", "debug", "--stdio", stdioBackend("sig"))
		handshake(t, p)
		p.Send(lcCall("1", "block"))
		p.awaitLog(t, `"method":"tools/call"`)
		time.Sleep(200 * time.Millisecond)
		p.cmd.Process.Signal(sig)
		p.waitExit(t, 8*time.Second)
		r := lcWithin(p, "1", 2*time.Second)
		if r == nil {
			t.Errorf("%v: the in-flight call was not answered", sig)
			continue
		}
		if strings.Contains(string(r.Raw()), "connection to the backend was lost") {
			t.Errorf("%v: the call cut short by the bridge's own shutdown is answered as if the backend had died: %s", sig, r.Raw())
		}
	}
}

// A backend still starting (a first npx download) when the user presses
// Ctrl-C or the host sends SIGTERM: README promises every in-flight
// request an answer at SIGTERM, and a script waiting for its initialize
// answer gets none: the bridge logs `"backend could not be initialized"`
// at error level with "context canceled" and exits 0 without answering
// id 0 (bridge/initialize.go:93 returns on r.life.Done() without a reply;
// the error line comes from initialize.go:76).
func TestSignalDuringInitializeAnswersIt(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "slow.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := startBridge(t, nil, "--stdio", "slow="+script)
	p.Send(initLine)
	p.awaitLog(t, "backend started")
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitExit(t, 8*time.Second)
	if r := lcWithin(p, "0", 2*time.Second); r == nil {
		t.Errorf("the host's initialize, in flight at SIGTERM, was never answered")
	}
}

// README ("Faults survived"): "a host that never sends it ... is taken as
// initialized 1 s after its initialize was answered with a request
// waiting, or at stdin EOF (the backends are then told the host is
// initialized; a warning is logged)". At stdin EOF nothing is logged at
// warn level (bridge/bridge.go:254 sends the notification silently; only
// the 1 s timer of initialize.go:187 warns), so a script that forgot
// notifications/initialized is never told.
func TestNoInitializedAtEOFWarns(t *testing.T) {
	in := initLine + "\n" + echoCall("1", "hi") + "\n"
	code, out, stderr := r33Run(t, serverEnvFor("w"), in, "--log-level", "warn", "--stdio", stdioBackend("w"))
	if code != 0 || !strings.Contains(out, `"id":1`) {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if !strings.Contains(stderr, "initialized") {
		t.Errorf("no warning that notifications/initialized was never sent; stderr at warn level: %q", stderr)
	}
}

// The error a user sees when the only backend's command is wrong names
// the backend twice in a row: `no backend could be initialized: backend
// "cmd": backend "cmd": command /nonexistent/cmd: stat ...` (in stderr,
// in the exit message and in the host's -32603 message): the backend's
// error already names it (backends/stdio.go) and bridge/initialize.go:108
// prefixes `backend %q: ` again.
func TestStartErrorNamesTheBackendOnce(t *testing.T) {
	code, out, stderr := r33Run(t, nil, initLine+"\n", "--", "/nonexistent/r33cmd")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for what, s := range map[string]string{"stdout": out, "stderr": stderr} {
		for _, stutter := range []string{`backend "r33cmd": backend "r33cmd"`, `backend \"r33cmd\": backend \"r33cmd\"`} {
			if strings.Contains(s, stutter) {
				t.Errorf("%s repeats the backend's name: %s", what, firstLineWith(s, stutter))
			}
		}
	}
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

var _ = frame.Parse

// A streamable-HTTP URL that answers JSON that is not JSON-RPC (a REST
// endpoint given by mistake). README (Logging): "zerolog JSON lines to
// stderr"; the warning that quotes what the server sent puts it in a
// field named "message" (backends/httpclient.go:1068 and :1084,
// Str("message", ...)), the key zerolog uses for the log message itself:
// the line has "message" twice. jq, Python's json and most log shippers
// keep the last one, so the server's answer, the one useful part, is
// lost; stricter parsers reject the line. (The stdio backend's version of
// this warning names its field "line".)
func TestLogLinesHaveNoDuplicateKeys(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","service":"r33-rest-api"}`)
	}))
	defer ts.Close()
	_, _, stderr := r33Run(t, nil, initLine+"\n", "--http", "rest="+ts.URL+"/api")
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if k := r33DuplicateKey(line); k != "" {
			t.Errorf("log line with key %q twice:\n%s", k, line)
		}
	}
}

// r33DuplicateKey returns a top-level key that appears twice in the JSON
// object line, "" if none.
func r33DuplicateKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := tok.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
	}
	return ""
}

// A user keeps an eye on the log while the answers go to a file, and
// stops reading it once they saw what they wanted:
//
//	mcpbridge -- ./echoserver < session.jsonl 2>&1 >answers.jsonl | grep -m1 'backend initialized'
//	mcpbridge ... 2>&1 >answers.jsonl | head -n 3
//
// (or a host that closes the stderr pipe it does not care about). The
// next log line kills the bridge with SIGPIPE (exit 141 in the shell):
// no answer at all reaches answers.jsonl. README: "logs go to stderr";
// nothing says a log reader that goes away takes the protocol channel
// with it. The Go runtime kills a program on a broken pipe on fd 1 or 2
// unless SIGPIPE is handled (os/signal docs); main.go handles SIGINT and
// SIGTERM only (main.go:238), so logging, best effort everywhere else,
// is fatal here.
func TestClosedStderrDoesNotKillTheBridge(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the log reader is gone
	cmd := exec.Command(bridgeBin, "--stdio", stdioBackend("e"))
	cmd.Env = append(os.Environ(), serverEnvFor("e")...)
	cmd.Stdin = strings.NewReader(r33Session + `{"jsonrpc":"2.0","id":2,"method":"ping"}` + "\n")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("no exit within 30 s")
	}
	if !strings.Contains(out.String(), `"text":"hi"`) || !strings.Contains(out.String(), `"id":2`) {
		t.Errorf("with its stderr reader gone the bridge answered %d of 3 requests (%v): %q", strings.Count(out.String(), `"jsonrpc"`), err, out.String())
	}
}

// A user pipes requests built with jq, whose output is pretty-printed
// unless -c is given (jq -n '{jsonrpc:"2.0", ...}' | mcpbridge ...). MCP
// stdio is one message per line, so every line is refused; the -32700
// errors ("parse error: invalid JSON at byte 1: expected object key", one
// per line of each message, ~25 for a three-message session) and the
// matching warnings never say that messages must each be on one line
// (jq -c): nothing tells the user what to change. README's "Errors the
// bridge makes" only says "-32700: a line that is not JSON".
func TestPrettyPrintedInputSaysOneMessagePerLine(t *testing.T) {
	var pretty strings.Builder
	for _, m := range strings.Split(strings.TrimSpace(r33Session), "\n") {
		var v any
		if err := json.Unmarshal([]byte(m), &v); err != nil {
			t.Fatal(err)
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		pretty.Write(b)
		pretty.WriteByte('\n')
	}
	_, out, stderr := r33Run(t, serverEnvFor("p"), pretty.String(), "--stdio", stdioBackend("p"))
	lower := strings.ToLower(out + stderr)
	if !strings.Contains(lower, "one line") && !strings.Contains(lower, "per line") && !strings.Contains(lower, "newline") && !strings.Contains(lower, "jq -c") {
		t.Errorf("%d parse errors, none saying that each message must be on one line; the first: %s", strings.Count(out, "-32700"), firstLineWith(out, "-32700"))
	}
}

// README's two-backend example (testdata/mcpservers/two-echo.json): the
// user calls "echo", as they did with one backend, and gets
// `unknown tool: "echo"` though left_echo and right_echo exist: with
// several backends names are prefixed (README), and the error could say
// so, but it names no candidate and no rule (bridge/aggregate.go:565).
func TestUnknownToolNamesThePrefixedOnes(t *testing.T) {
	env := serverEnvFor("x")
	in := r33Session
	_, out, _ := r33Run(t, env, in, "--stdio", stdioBackend("left"), "--stdio", stdioBackend("right"))
	r := firstLineWith(out, `"id":1,`)
	if !strings.Contains(r, "-32602") {
		t.Fatalf("answer to echo: %s", r)
	}
	if !strings.Contains(r, "left_echo") {
		t.Errorf("calling an unprefixed name among several backends: %s (no hint that it is left_echo / right_echo now)", r)
	}
}

// A user reuses their Claude Desktop config with --config, as README
// invites ("--config reads the files hosts already have"). It holds the
// README's own "In a host" entry, mcpbridge fronting other servers
// ("command": "mcpbridge", "args": ["--stdio", "files=…", "--http",
// "remote=…"]), beside other entries. That entry is dropped, and with it
// every server it fronted, and at the default log level nothing says so:
// README says it "is skipped (with a log line)", and the line is at debug
// level (main.go:209 logs res.Ignored with Debug, while an entry left out
// for an unset variable gets a warning). The entry's chain is not even
// recursive here (its args do not name this file; MCPBRIDGE_DEPTH already
// refuses chains three deep).
func TestSkippedBridgeEntryIsWarned(t *testing.T) {
	self, _ := os.Executable()
	cfg := r33Config(t, map[string]any{
		"tools": map[string]any{
			"command": bridgeBin,
			"args":    []string{"--stdio", "files=" + self},
			"env":     map[string]string{serverEnv: "files"},
		},
		"other": map[string]any{
			"command": self,
			"env":     map[string]string{serverEnv: "other"},
		},
	})
	_, out, stderr := r33Run(t, nil, r33Session, "--config", cfg)
	if !strings.Contains(out, `"text":"hi"`) {
		t.Fatalf("stdout: %s", out)
	}
	if !strings.Contains(stderr, `tools`) {
		t.Errorf("the entry \"tools\" (and the servers behind it) was left out without a word at the default log level:\n%s", stderr)
	}
}

// Ctrl-C in a shell loop over session files:
//
//	for f in sessions/*.jsonl; do mcpbridge -- ./server < "$f" > "$f.out"; done
//
// The interrupted bridge answers its in-flight calls -32603 and exits 0,
// as after a clean session. bash (and other shells) stop a loop on Ctrl-C
// only when the child died of SIGINT or says so (exit 130, 128+SIGINT):
// a child that exits 0 is taken to have handled the key, so the loop goes
// on with the next file, and `mcpbridge … || echo failed` sees success for
// a run whose calls were cut. main.go:247 returns nil (exit 0) whenever
// bridge.Run ends on the signal context.
func TestInterruptExitsNonZero(t *testing.T) {
	p := startBridge(t, serverEnvFor("int"), "--log-level", "debug", "--stdio", stdioBackend("int"))
	handshake(t, p)
	p.Send(lcCall("1", "block"))
	p.awaitLog(t, `"method":"tools/call"`)
	time.Sleep(200 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGINT)
	code := p.waitExit(t, 8*time.Second)
	if code == 0 {
		t.Errorf("interrupted with a call in flight (answered: %v), the bridge exits 0 as after a clean session", lcWithin(p, "1", time.Second) != nil)
	}
}

// VS Code's mcp.json, which README lists among the files --config reads
// ("servers (VS Code mcp.json, JSONC)"), gives a stdio server its secrets
// with "envFile": "${workspaceFolder}/.env" (VS Code documents envFile
// beside env). mcpbridge ignores the key (README: "Other keys are ignored
// with a debug log line") and starts the server without those variables:
// it then fails on its own (missing API key, 401 from its upstream) and at
// the default level nothing points at the cause. A key that changes the
// server's environment is not cosmetic like "description" or "trust".
func TestVSCodeEnvFileIgnoredIsWarned(t *testing.T) {
	self, _ := os.Executable()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("R33_API_KEY=from-env-file-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"servers": map[string]any{
		"envf": map[string]any{"type": "stdio", "command": self, "envFile": filepath.Join(dir, ".env"),
			"env": map[string]string{serverEnv: "envf"}},
	}})
	cfg := filepath.Join(dir, "mcp.json")
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	in := initLine + "\n" + `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" +
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"env","arguments":{"name":"R33_API_KEY"}}}` + "\n"
	_, out, stderr := r33Run(t, nil, in, "--config", cfg)
	if !strings.Contains(out, "from-env-file-123") && !strings.Contains(stderr, "envFile") {
		t.Errorf("the server ran without the variables of its envFile, and the default log does not mention envFile:\nstdout: %s\nstderr: %s", out, stderr)
	}
}

// Two backends, one of which could not start (a remote server down, a
// mistyped URL). The host (or a script) calls a tool of it by its
// prefixed name, as listed yesterday or as the user knows it:
// remote_search. README, "Errors the bridge makes": -32603 "a backend
// failed: data.backend names it and data.reason says why (not started,
// connection lost, …)". The answer is -32602 `unknown tool:
// "remote_search"`, which sends the user looking for a typo in the tool
// name while the cause (connection refused) is only in the log.
// (bridge/aggregate.go:384 keeps the names of a backend that went down
// after listing; one that never came up never listed, and its NAME_
// prefix is not consulted.)
func TestToolOfABackendThatIsDownNamesIt(t *testing.T) {
	in := r33Session + `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remote_search","arguments":{}}}` + "\n"
	_, out, _ := r33Run(t, serverEnvFor("a"), in, "--http", "remote=http://127.0.0.1:1/mcp", "--stdio", stdioBackend("a"))
	r := firstLineWith(out, `"id":2,`)
	if !strings.Contains(r, `"backend":"remote"`) {
		t.Errorf("a call to a tool of the backend that failed to start: %s (no word of backend \"remote\" or why it is down)", r)
	}
}

// A password with a backslash or a quote and an '&', '<' or '>' (both
// common in generated passwords), given to a stdio backend as
// DB_PASSWORD / SECRET_TOKEN, which the backend prints on stderr (as
// careless servers do). README: the values of env variables whose names
// say they hold a secret "are replaced by [REDACTED] in every line". The
// redactor looks for the raw value and for its json.Marshal form
// (redact.go:33), which escapes &, < and > as \u0026, \u003c, \u003e;
// zerolog escapes only '"', '\' and control characters. A value with
// one of each is written by zerolog in a third form, matched by neither:
// the password is logged in clear (`abc&def\\ghi`).
func TestSecretWithAmpersandAndBackslashRedacted(t *testing.T) {
	for _, secret := range []string{`abc&def\ghi`, `pa"ss&word1`, "tab\tsecret<1>"} {
		p := startBridge(t, append(serverEnvFor("leak"), "E2E_NOISE=1"), "--env", "leak:SECRET_TOKEN="+secret, "--stdio", stdioBackend("leak"))
		handshake(t, p)
		p.awaitLog(t, "token is")
		line := firstLineWith(p.stderr.String(), "token is")
		if !strings.Contains(line, "[REDACTED]") {
			t.Errorf("SECRET_TOKEN=%q, printed by the backend on stderr, is logged as: %s", secret, line)
		}
	}
}

// --help: "--oauth-client-secret NAME:SECRET  its secret, NAME:SECRET (use
// ${VAR}: arguments are visible to other users)"; README: "Tokens, codes
// and client secrets are never logged", "The secret is redacted from
// logs". A user follows the advice, writes '${VAR}', and makes a typo in
// NAME (or puts --header on a stdio backend): the usage error on stderr
// (which hosts keep in their server log files) quotes the value after
// expansion, the secret in clear. config/resolve.go:195 expandFlags
// expands every flag first; the later errors (resolve.go:397, 407, 441)
// quote the expanded value.
func TestUsageErrorHidesAnExpandedSecret(t *testing.T) {
	const secret = "r33-oauth-secret-value-42"
	env := []string{"R33_SECRET=" + secret}
	self, _ := os.Executable()
	for _, args := range [][]string{
		{"--oauth-client-secret", "typo:${R33_SECRET}", "--http", "remote=http://127.0.0.1:1/mcp"},
		{"--header", "typo:Authorization: Bearer ${R33_SECRET}", "--http", "remote=http://127.0.0.1:1/mcp"},
		{"--header", "s:Authorization: Bearer ${R33_SECRET}", "--stdio", "s=" + self},
		{"--env", "typo:API_TOKEN=${R33_SECRET}", "--stdio", "s=" + self},
	} {
		code, _, stderr := r33Run(t, env, "", args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if strings.Contains(stderr, secret) {
			t.Errorf("%q: the usage error prints the expanded secret the user hid behind ${R33_SECRET}:\n%s", args, strings.TrimSpace(stderr))
		}
	}
}

// The host entry is `mcpbridge --config servers.json --deny
// github:delete_*` (README: "--allow NAME:GLOB / --deny NAME:GLOB tool
// filters"). The user switches github off for a while the way every host
// does, "disabled": true (Cline's and Cursor's toggles write exactly
// that). The bridge then refuses to start at all (exit 2, `--deny
// "github:delete_*": backend "github" is disabled in config …`): every
// other server is gone too, until the flag is removed from the host's
// entry. An entry left out for an unset variable is tolerated in the same
// place (README: "fatal only when --only names it or nothing else is left
// to run"); config/resolve.go:380 makes a disabled one fatal for every
// qualified flag "because the user may have meant to enable it", which
// for a filter or a timeout they did not.
func TestFlagForADisabledServerDoesNotStopTheOthers(t *testing.T) {
	self, _ := os.Executable()
	cfg := r33Config(t, map[string]any{
		"github": map[string]any{"command": self, "env": map[string]string{serverEnv: "github"}, "disabled": true},
		"other":  map[string]any{"command": self, "env": map[string]string{serverEnv: "other"}},
	})
	code, out, stderr := r33Run(t, nil, r33Session, "--config", cfg, "--deny", "github:delete_*")
	if code != 0 || !strings.Contains(out, `"text":"hi"`) {
		t.Errorf("one server disabled in the config, the bridge runs none: exit %d, %s", code, strings.TrimSpace(stderr))
	}
}

// The one-backend forms name the backend for the user: a URL after its
// host (https://mcp.example.com/mcp → mcp-example-com), a command after
// its base name or package (README). The per-backend flags need that
// name, and a user who guesses wrong (or leaves NAME out, as in
// --header 'Authorization: Bearer …', the most common mistake) is told
// `no backend named "Authorization"` without the name to use, which the
// bridge knows (config/resolve.go:388). And a --env without "=VALUE"
// ('x:FOO', as docker -e FOO passes a variable through) is told "want
// NAME:KEY=VALUE with a non-empty KEY" though its KEY is not empty
// (config/resolve.go:516).
func TestFlagErrorsSayTheBackendNames(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--header", "Authorization: Bearer abc", "https://mcp.example.com/mcp"}, "mcp-example-com"},
		{[]string{"--env", "srv:FOO=1", "--", "/bin/true"}, `"true"`},
		{[]string{"--timeout", "echoserver:10s", "--", "npx", "-y", "@scope/server-foo"}, "server-foo"},
	} {
		code, _, stderr := r33Run(t, nil, "", c.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%q: %s(the backend is called %s; the error does not say so)", c.args, stderr, c.want)
		}
	}
	_, _, stderr := r33Run(t, nil, "", "--env", "x:FOO", "--stdio", "x=/bin/true")
	if strings.Contains(stderr, "non-empty KEY") {
		t.Errorf("--env x:FOO (KEY FOO, no =VALUE): %s", stderr)
	}
}

// Claude Desktop / Cursor "args": ["--config", "~/.config/mcpbridge/servers.json"]
// (the path of README's own Claude Code example) or
// ["--config", "${HOME}/.config/mcpbridge/servers.json"]. README: "Hosts
// start the bridge without a shell, so ${VAR} … in the values of
// --header, --env, --oauth-client, --oauth-client-secret and in URLs is
// expanded": the same reason holds for the one flag every host entry
// has, --config (and --log-file), yet neither ~ nor ${HOME} is expanded
// there, and the error, `config ~/….json: no such file or directory`,
// does not say that the path was taken literally: the file is right
// there when the user looks.
func TestConfigPathFromAHostIsExpanded(t *testing.T) {
	home := t.TempDir()
	self, _ := os.Executable()
	data, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{
		"e": map[string]any{"command": self, "env": map[string]string{serverEnv: "e"}},
	}})
	if err := os.WriteFile(filepath.Join(home, "servers.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"~/servers.json", "${HOME}/servers.json"} {
		code, out, stderr := r33Run(t, []string{"HOME=" + home}, r33Session, "--config", path)
		if code == 0 && strings.Contains(out, `"text":"hi"`) {
			continue
		}
		if !strings.Contains(stderr, "expand") && !strings.Contains(stderr, "absolute") && !strings.Contains(stderr, "literal") {
			t.Errorf("--config %s (the file exists at %s): exit %d, %s", path, filepath.Join(home, "servers.json"), code, strings.TrimSpace(stderr))
		}
	}
}

// A user with servers in two hosts' files (Claude Desktop's and Cursor's)
// gives both: --config a.json --config b.json. --help marks --stdio,
// --http, --env … "repeatable" and not --config, but nothing refuses the
// second: urfave/cli keeps the last value of a StringFlag (main.go:107),
// so every server of the first file is silently missing: no error, no
// warning, exit 0.
func TestSecondConfigIsRefused(t *testing.T) {
	self, _ := os.Executable()
	a := r33Config(t, map[string]any{"first": map[string]any{"command": self, "env": map[string]string{serverEnv: "first"}}})
	b := r33Config(t, map[string]any{"second": map[string]any{"command": self, "env": map[string]string{serverEnv: "second"}}})
	in := initLine + "\n" + `{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n" + `{"jsonrpc":"2.0","id":1,"method":"tools/list"}` + "\n"
	code, out, stderr := r33Run(t, nil, in, "--config", a, "--config", b)
	if code == 2 {
		return // refused: fine
	}
	if !strings.Contains(out, "first_echo") {
		t.Errorf("--config %s --config %s: exit %d, the first file's server is gone without a word; tools: %s\nstderr: %s", filepath.Base(a), filepath.Base(b), code, firstLineWith(out, `"id":1`), stderr)
	}
}

// --help: "--stdio 'NAME=COMMAND ARGS...' (split like a POSIX shell, run
// without one)". A shell user writes what works in a shell, an
// environment assignment before the command:
//
//	--stdio 'gh=GITHUB_TOKEN=ghp_… npx -y @modelcontextprotocol/server-github'
//
// The bridge takes "GITHUB_TOKEN=ghp_…" as the command, and answers the
// host's initialize (and exits 1) with `command "GITHUB_TOKEN=ghp_…" not
// found in PATH="…"`: the token in clear in the error and the log, and no
// hint that --env gh:GITHUB_TOKEN=… is the way. This is caught only at
// the first initialize, not as a usage error (exit 2) before anything runs.
func TestStdioAssignmentPrefixPointsToEnv(t *testing.T) {
	const tok = "ghp_r33AssignToken12345"
	self, _ := os.Executable()
	code, out, stderr := r33Run(t, nil, initLine+"\n", "--stdio", "gh=GITHUB_TOKEN="+tok+" "+self)
	if strings.Contains(out+stderr, tok) {
		t.Errorf("the token of the assignment is printed: %s", firstLineWith(stderr, tok))
	}
	if !strings.Contains(stderr, "--env") {
		t.Errorf("exit %d; no hint to use --env: %s", code, strings.TrimSpace(tail(stderr, 400)))
	}
}

// The commonest first-run failure: the server's command is missing an
// argument, prints why on stderr and exits 1 (npx servers without their
// required directory or key do exactly this). What the user sees in the
// host (the initialize error) and on the command line (the exit message)
// is `session closed: process exited: exit status 1`; the sentence that
// says what to fix ("error: missing required argument --root") is only
// in the info-level log as "backend stderr", and is lost with
// --log-level warn or a host that does not show logs.
func TestBackendExitReasonQuotesItsLastStderrLine(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "server.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'Usage: server --root DIR' >&2\necho 'error: missing required argument --root' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := r33Run(t, nil, initLine+"\n", "--log-level", "warn", "--stdio", "files="+script)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "missing required argument") {
		t.Errorf("the host's initialize error: %s(without the backend's own last words)", out)
	}
	if !strings.Contains(stderr, "missing required argument") {
		t.Errorf("stderr at --log-level warn: %s(without the backend's own last words)", stderr)
	}
}

// --help: "--init-timeout value  how long the backends' initialize may
// take (default: 1m0s)"; --timeout 30 says "want a duration such as 30s
// or 2m", but --init-timeout 30 (the most natural thing to type, and
// README's config "timeout" takes bare seconds) says only `invalid value
// "30" for flag -init-timeout: parse error`: no unit hint, and a
// single-dash flag name the user did not type. The same for
// --max-message 64MiB. (urfave/cli's DurationFlag/IntFlag parse errors,
// main.go:121 and main.go:124, pass through run() unchanged.)
func TestFlagValueErrorsSayWhatToDo(t *testing.T) {
	for _, args := range [][]string{
		{"--init-timeout", "30", "--", "true"},
		{"--max-message", "64MiB", "--", "true"},
	} {
		code, _, stderr := r33Run(t, nil, "", args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if strings.Contains(stderr, "parse error") || strings.Contains(stderr, " -"+strings.TrimPrefix(args[0], "--")) {
			t.Errorf("%q: %s(want what --timeout says: the flag as typed and an example such as 30s)", args, stderr)
		}
	}
}

// Hosted MCP services put the API key in the URL (Zapier's
// https://actions.zapier.com/mcp/<key>/sse, ?api_key=… query strings),
// and the user gives that URL to mcpbridge. The bridge never writes the
// URL in its own log lines, but when the server answers an error whose
// body echoes the path (Express's default 404 "Cannot POST /mcp/<key>/sse",
// the usual answer to a wrong path or transport), that body's first 200
// bytes are quoted in the log and in the host's -32603 with the key in
// clear. README redacts the request's Authorization value from quoted
// bodies ("so an OAuth access token a server echoes reaches neither the
// log nor the host") and treats *URL* environment values as secrets, but
// the backend's own URL (its path and query) is not removed from them.
func TestURLKeyEchoedInAnErrorBodyIsRedacted(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<!DOCTYPE html><html><head><title>Error</title></head><body><pre>Cannot "+r.Method+" "+r.URL.RequestURI()+"</pre></body></html>")
	}))
	defer ts.Close()
	const key = "sk-ak-r33PathKey0123456789"
	_, out, stderr := r33Run(t, nil, initLine+"\n", ts.URL+"/mcp/"+key+"/sse")
	if strings.Contains(out, key) {
		t.Errorf("the API key in the backend's URL reaches the host: %s", firstLineWith(out, key))
	}
	if strings.Contains(stderr, key) {
		t.Errorf("the API key in the backend's URL is logged: %s", firstLineWith(stderr, key))
	}
}

// --help lists the log levels debug, info, warn, error and disabled;
// zerolog's parser also took "fatal", "panic", "trace" and numbers, which
// a user would read as a typo accepted (noted by the 33rd review).
func TestLogLevelTakesOnlyTheDocumentedOnes(t *testing.T) {
	for _, level := range []string{"fatal", "panic", "trace", "5", "-1", ""} {
		code, _, stderr := r33Run(t, nil, "", "--log-level", level, "--", "true")
		if code != 2 || !strings.Contains(stderr, "want debug, info, warn, error or disabled") {
			t.Errorf("--log-level %q: exit %d, %s", level, code, strings.TrimSpace(stderr))
		}
	}
}

package backends

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/oauthtest"
	"github.com/rs/zerolog"
)

// The OAuth tests run the whole flow on loopback: an authorization server
// written here (metadata, RFC 7591 registration, an /authorize that
// approves at once, /token with PKCE S256 and refresh), a go-sdk MCP server
// behind go-sdk's RequireBearerToken and protected-resource metadata, and
// a "browser" that is this test binary run as MCPBRIDGE_BROWSER: it GETs
// the authorization URL following redirects, so the bridge's loopback
// callback is really hit.

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == fakeBrowserArg {
		os.Exit(oauthtest.FakeBrowser(os.Args[2]))
	}
	// No test may touch the user's real OAuth directory.
	dir, err := os.MkdirTemp("", "mcpbridge-oauth-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(OAuthDirEnv, dir)
	os.Setenv(BrowserEnv, fmt.Sprintf("'%s' %s", os.Args[0], fakeBrowserArg))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const fakeBrowserArg = "fake-browser"

// authorizedSession is a streamable session to a protected server, with
// its own OAuth directory, through its first flow and initialize; it
// returns the server's URL too.
func authorizedSession(t *testing.T) (*oauthtest.AS, *driver, string) {
	t.Helper()
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	return as, d, u
}

// serveProtected serves newMCPServer behind the bearer check of as, at
// /mcp (streamable) or /sse (legacy), recording every request.
func serveProtected(t *testing.T, as *oauthtest.AS, sse bool) (string, *recorder) {
	var rc *recorder
	u := oauthtest.ServeProtected(t, as, newMCPServer(), sse, func(h http.Handler) http.Handler {
		rc = &recorder{next: h}
		return rc
	})
	return u, rc
}

// openOAuth opens a session to url with logs at debug level into logs.
func openOAuth(t *testing.T, kind config.Kind, u string, logs *syncBuffer) Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.DebugLevel)
	s, err := Open(ctx, config.Backend{Name: "b1", Kind: kind, URL: u}, Options{Logger: log})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// initializeN sends n initialize requests at once (ids 1..n), as the first
// requests of a session, and checks that each is answered with a result.
func initializeN(t *testing.T, d *driver, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		d.send(strings.Replace(initRequest, `"id":1`, fmt.Sprintf(`"id":%d`, i), 1))
	}
	for i := 1; i <= n; i++ {
		if f := d.await(fmt.Sprint(i)); protocolVersion(f) != testProtocol {
			t.Fatalf("initialize %d answered %.300s", i, f.Raw())
		}
	}
	d.send(initialized)
}

// callN makes n echo calls at once and checks every answer.
func callN(t *testing.T, d *driver, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		d.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi %d"}}}`, i, i))
	}
	for i := first; i < first+n; i++ {
		if got := resultText(t, d.await(fmt.Sprint(i))); got != fmt.Sprint("hi ", i) {
			t.Fatalf("call %d = %q", i, got)
		}
	}
}

// checkNoSecrets fails if a code or token reached the log.
func checkNoSecrets(t *testing.T, as *oauthtest.AS, logs *syncBuffer) {
	t.Helper()
	out := logs.String()
	for _, s := range as.Secrets() {
		if strings.Contains(out, s) {
			t.Fatalf("the log holds a code or token: %s", s)
		}
	}
	if !strings.Contains(out, "open this URL") {
		t.Fatalf("the authorization URL was not logged:\n%s", out)
	}
}

func TestOAuthOneFlowForConcurrentRefusals(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(OAuthDirEnv, dir)
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	logs := &syncBuffer{}
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, logs))
	initializeN(t, d, 5)
	callN(t, d, 10, 5)
	if as.Registers.Load() != 1 || as.Authorizes.Load() != 1 || as.CodeGrants.Load() != 1 {
		t.Fatalf("want one registration and one flow: %s", as.Counts())
	}
	checkNoSecrets(t, as, logs)
	checkStoreFile(t, dir, u)
}

// checkStoreFile checks the one stored file: private, for u, with a token.
func checkStoreFile(t *testing.T, dir, u string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("stored files: %v", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	var rec oauthRecord
	b, _ := os.ReadFile(files[0])
	if err := json.Unmarshal(b, &rec); err != nil || rec.Server != u || rec.Token == nil || rec.Token.RefreshToken == "" || !rec.Client.valid() {
		t.Fatalf("stored record: %s (%v)", b, err)
	}
}

func TestOAuthStoreDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "oauth")
	t.Setenv(OAuthDirEnv, dir)
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", di, err)
	}
	checkStoreFile(t, dir, u)
}

func TestOAuthRestartUsesStoredGrant(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	s1 := openOAuth(t, config.KindHTTP, u, &syncBuffer{})
	d := newDriver(t, s1)
	initializeN(t, d, 1)
	callN(t, d, 10, 1)
	s1.Close()

	d = newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	callN(t, d, 10, 3)
	if as.Registers.Load() != 1 || as.Authorizes.Load() != 1 {
		t.Fatalf("the restart ran a flow: %s", as.Counts())
	}
}

func TestOAuthExpiredTokenIsRefreshed(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	// oauth2 counts a token as expired 10 s early: this one is good for
	// about one second.
	as := oauthtest.NewAS(t, 11*time.Second)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	time.Sleep(1500 * time.Millisecond)
	callN(t, d, 10, 3)
	if as.Authorizes.Load() != 1 || as.RefreshGrants.Load() < 1 {
		t.Fatalf("want a refresh and no second flow: %s", as.Counts())
	}
	// A restart refreshes the stored (expired) token too.
	time.Sleep(1500 * time.Millisecond)
	refreshed := as.RefreshGrants.Load()
	d = newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	if as.Authorizes.Load() != 1 || as.RefreshGrants.Load() <= refreshed {
		t.Fatalf("restart: want a refresh and no flow: %s", as.Counts())
	}
}

func TestOAuthRefusedTokenRunsTheFlowAgain(t *testing.T) {
	as, d, u := authorizedSession(t)
	as.RevokeAll()
	callN(t, d, 10, 5)
	if as.Authorizes.Load() != 2 || as.Registers.Load() != 1 {
		t.Fatalf("want one more flow with the same registration: %s", as.Counts())
	}
	// And from the store at the next start: the stored token is refused.
	as.RevokeAll()
	d = newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 2)
	if as.Authorizes.Load() != 3 || as.Registers.Load() != 1 {
		t.Fatalf("restart with a refused token: %s", as.Counts())
	}
}

// TestOAuthRefusedAccessTokenIsRefreshed: a server that refuses an access
// token before it expires (revoked, clocks apart) gets a refreshed one,
// not a trip to the browser, while the refresh token works (seventh
// review).
func TestOAuthRefusedAccessTokenIsRefreshed(t *testing.T) {
	as, d, _ := authorizedSession(t)
	as.RevokeAccess()
	callN(t, d, 10, 5)
	if as.Authorizes.Load() != 1 || as.RefreshGrants.Load() != 1 {
		t.Fatalf("want one refresh and no second flow: %s", as.Counts())
	}
}

// TestOAuthRefreshedTokenRefusedGoesToTheBrowser: when the token a forced
// refresh gave is refused too, the same request waits for the browser
// flow and succeeds (eighth review: it failed, and only the next request
// went to the browser).
func TestOAuthRefreshedTokenRefusedGoesToTheBrowser(t *testing.T) {
	as, d, _ := authorizedSession(t)
	callN(t, d, 5, 1)
	as.RefuseRefreshed.Store(true)
	as.RevokeAccess()
	callN(t, d, 10, 1)
	if as.Authorizes.Load() != 2 || as.RefreshGrants.Load() != 1 {
		t.Fatalf("want a refresh, then one browser flow: %s", as.Counts())
	}
}

// TestOAuthSecondEarlyRefusalIsRefreshedToo: a token refused early, once
// more after a forced refresh worked, is refreshed again, not sent to the
// browser (eighth review).
func TestOAuthSecondEarlyRefusalIsRefreshedToo(t *testing.T) {
	as, d, _ := authorizedSession(t)
	as.RevokeAccess()
	callN(t, d, 10, 2)
	callN(t, d, 20, 2)
	as.RevokeAccess()
	callN(t, d, 30, 2)
	if as.Authorizes.Load() != 1 || as.RefreshGrants.Load() != 2 {
		t.Fatalf("want two refreshes and no second browser flow: %s", as.Counts())
	}
}

func TestOAuthFlowTimesOut(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	old := flowTimeout
	flowTimeout = time.Second
	t.Cleanup(func() { flowTimeout = old })
	as := oauthtest.NewAS(t, time.Hour)
	as.Hold.Store(true)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	start := time.Now()
	d.send(initRequest)
	msg, code := errorOf(t, d.await("1"))
	if code != frame.CodeInternalError || !strings.Contains(msg, "OAuth authorization with "+as.URL()+" failed") || !strings.Contains(msg, "browser") {
		t.Fatalf("error %d %q", code, msg)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the failure took %v", el)
	}
	as.Hold.Store(false)
	d.send(strings.Replace(initRequest, `"id":1`, `"id":2`, 1))
	if f := d.await("2"); protocolVersion(f) != testProtocol {
		t.Fatalf("second initialize: %.300s", f.Raw())
	}
	if as.Authorizes.Load() != 2 {
		t.Fatalf("counts: %s", as.Counts())
	}
}

func TestOAuthNotWithAnAuthorizationHeader(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	for _, tc := range []struct {
		name string
		cfg  config.Backend
		want string
	}{
		{"header", config.Backend{Headers: map[string]string{"Authorization": "Bearer wrong-token"}}, "refused the configured credentials"},
		{"no-oauth", config.Backend{NoOAuth: true}, "lack of credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Name, cfg.Kind, cfg.URL = "b1", config.KindHTTP, u
			s, err := Open(t.Context(), cfg, Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			d := newDriver(t, s)
			d.send(initRequest)
			msg, _ := errorOf(t, d.await("1"))
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "--header 'b1:Authorization") {
				t.Fatalf("error %q", msg)
			}
		})
	}
	if n := as.Registers.Load() + as.Authorizes.Load(); n != 0 {
		t.Fatalf("OAuth ran: %s", as.Counts())
	}
}

func TestOAuthSSE(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	u, rc := serveProtected(t, as, true)
	d := newDriver(t, openOAuth(t, config.KindSSE, u, &syncBuffer{}))
	d.initialize()
	callN(t, d, 10, 5)
	if as.Authorizes.Load() != 1 || as.Registers.Load() != 1 {
		t.Fatalf("counts: %s", as.Counts())
	}
	for _, r := range rc.requests() {
		if r.header.Get("Authorization") == "" && r.method == http.MethodPost {
			t.Fatalf("a POST without a token: %+v", r)
		}
	}
}

func TestCallbackIgnoresAStrayRequest(t *testing.T) {
	results := make(chan callbackResult, 1)
	srv := httptest.NewServer(callbackHandler("s1", results))
	t.Cleanup(srv.Close)
	for _, q := range []string{"state=other&code=c0", "state=s1&code=c1"} {
		resp, err := http.Get(srv.URL + callbackPath + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	select {
	case r := <-results:
		if r.err != nil || r.res.Code != "c1" {
			t.Fatalf("result %+v %v", r.res, r.err)
		}
	default:
		t.Fatal("no result")
	}
}

// TestOAuthSecondBridgeTakesTheStoredGrant: two bridges for one server
// (two hosts, or two windows of one) share the OAuth directory. One
// started before the other authorized, refused for want of a token, takes
// the token stored since instead of sending the user to the browser a
// second time.
func TestOAuthSecondBridgeTakesTheStoredGrant(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	early := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	other := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, other, 1)
	initializeN(t, early, 2)
	callN(t, early, 10, 3)
	callN(t, other, 10, 3)
	if as.Authorizes.Load() != 1 || as.Registers.Load() != 1 {
		t.Fatalf("want one flow for both bridges: %s", as.Counts())
	}
}

// TestOAuthRotatedRefreshTokenTakenFromTheStore: two bridges hold the
// same stored grant; the server refuses their access tokens and rotates
// refresh tokens (each can be used once). The first refreshes; the
// second, refused, takes the first's new token from the store, where a
// refresh of its own would be refused (spent) and send the user to the
// browser.
func TestOAuthRotatedRefreshTokenTakenFromTheStore(t *testing.T) {
	as, first, u := authorizedSession(t)
	second := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, second, 1)
	as.RevokeAccess()
	callN(t, first, 10, 2)
	callN(t, second, 10, 2)
	if as.Authorizes.Load() != 1 || as.RefreshGrants.Load() != 1 {
		t.Fatalf("want one refresh and no second flow: %s", as.Counts())
	}
}

// TestOAuthConcurrentBridgesOneFlow: two bridges for one server refused
// at the same moment, neither with a token: the store's lock lets one run
// the browser flow while the other waits, then takes its token.
func TestOAuthConcurrentBridgesOneFlow(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	a := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	b := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	a.send(initRequest)
	b.send(initRequest)
	for _, d := range []*driver{a, b} {
		if f := d.await("1"); protocolVersion(f) != testProtocol {
			t.Fatalf("initialize answered %.300s", f.Raw())
		}
		d.send(initialized)
		callN(t, d, 10, 2)
	}
	if as.Authorizes.Load() != 1 || as.Registers.Load() != 1 {
		t.Fatalf("want one flow for both bridges: %s", as.Counts())
	}
}

// TestOAuthPreregisteredClient: a server whose authorization server offers
// no dynamic registration is used with a client made beforehand in its
// console ("oauth": {"clientId", "callbackPort", "scopes"}): the flow uses
// that client, the redirect on its port and the configured scopes; the
// next start uses the stored token; a changed client id is not given the
// stored token of the old one.
func TestOAuthPreregisteredClient(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	as.NoRegistration.Store(true)
	port := freePort(t)
	as.Preregister("console-client", fmt.Sprintf("http://127.0.0.1:%d/callback", port))
	u, _ := serveProtected(t, as, false)
	set := &config.OAuth{ClientID: "console-client", CallbackPort: port, Scopes: []string{"mcp", "files:read"}}
	open := func() *driver {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindHTTP, URL: u, OAuth: set}, Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return newDriver(t, s)
	}
	d := open()
	initializeN(t, d, 1)
	callN(t, d, 10, 2)
	if as.Registers.Load() != 0 || as.Authorizes.Load() != 1 {
		t.Fatalf("want one flow with the preregistered client: %s", as.Counts())
	}
	if sc := as.Scopes(); len(sc) != 1 || !strings.Contains(sc[0], "files:read") || !strings.Contains(sc[0], "offline_access") {
		t.Fatalf("scopes asked for: %q", sc)
	}
	d = open()
	initializeN(t, d, 1)
	if as.Authorizes.Load() != 1 {
		t.Fatalf("the restart ran a flow: %s", as.Counts())
	}
	// Another client configured: the stored token (of console-client) is
	// not used, and the flow fails at the authorization server, which
	// does not know that client.
	set = &config.OAuth{ClientID: "other-client", CallbackPort: port}
	flowTimeout = 2 * time.Second
	t.Cleanup(func() { flowTimeout = 5 * time.Minute })
	d = open()
	d.send(initRequest)
	if msg, _ := errorOf(t, d.await("1")); !strings.Contains(msg, "OAuth authorization") {
		t.Fatalf("initialize with an unknown client: %q", msg)
	}
	if as.Authorizes.Load() != 2 {
		t.Fatalf("want a flow for the other client: %s", as.Counts())
	}
}

// freePort is a loopback port free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

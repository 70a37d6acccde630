package backends

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
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
		os.Exit(fakeBrowser(os.Args[2]))
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

// fakeBrowser follows the authorization URL to its end, as a browser
// whose user approves would.
func fakeBrowser(u string) int {
	c := &http.Client{Timeout: testWait}
	resp, err := c.Get(u)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake browser:", err)
		return 1
	}
	resp.Body.Close()
	return 0
}

// testAS is the authorization server.
type testAS struct {
	srv *httptest.Server
	ttl time.Duration // lifetime of access tokens

	hold atomic.Bool // /authorize shows a page and never redirects

	registers, authorizes, codeGrants, refreshGrants atomic.Int32

	mu      sync.Mutex
	clients map[string][]string  // client id → redirect URIs
	codes   map[string]codeGrant // code → what it was issued for
	access  map[string]time.Time // access token → expiry
	refresh map[string]string    // refresh token → client id
	issued  []string             // every token and code, for the log check
	seen    map[string]bool      // redirect URIs seen at /authorize
}

type codeGrant struct{ client, redirect, challenge string }

func newTestAS(t *testing.T, ttl time.Duration) *testAS {
	as := &testAS{ttl: ttl, clients: map[string][]string{}, codes: map[string]codeGrant{},
		access: map[string]time.Time{}, refresh: map[string]string{}, seen: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", as.metadata)
	mux.HandleFunc("POST /register", as.register)
	mux.HandleFunc("GET /authorize", as.authorize)
	mux.HandleFunc("POST /token", as.token)
	as.srv = httptest.NewServer(mux)
	t.Cleanup(as.srv.Close)
	return as
}

func (as *testAS) metadata(w http.ResponseWriter, _ *http.Request) {
	u := as.srv.URL
	writeJSON(w, http.StatusOK, &oauthex.AuthServerMeta{
		Issuer:                                     u,
		AuthorizationEndpoint:                      u + "/authorize",
		TokenEndpoint:                              u + "/token",
		RegistrationEndpoint:                       u + "/register",
		ResponseTypesSupported:                     []string{"code"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          []string{"none"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		ScopesSupported:                            []string{"mcp", "offline_access"},
		AuthorizationResponseIssParameterSupported: true,
	})
}

func (as *testAS) register(w http.ResponseWriter, r *http.Request) {
	as.registers.Add(1)
	var m oauthex.ClientRegistrationMetadata
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil || len(m.RedirectURIs) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata"})
		return
	}
	id := "client-" + rand.Text()
	as.mu.Lock()
	as.clients[id] = m.RedirectURIs
	as.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"client_id": id, "redirect_uris": m.RedirectURIs, "token_endpoint_auth_method": "none",
		"grant_types": m.GrantTypes, "response_types": m.ResponseTypes,
	})
}

func (as *testAS) authorize(w http.ResponseWriter, r *http.Request) {
	as.authorizes.Add(1)
	q := r.URL.Query()
	as.mu.Lock()
	uris, ok := as.clients[q.Get("client_id")]
	as.seen[q.Get("redirect_uri")] = true
	as.mu.Unlock()
	switch {
	case !ok || !containsStr(uris, q.Get("redirect_uri")):
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "":
		http.Error(w, "PKCE S256, state and response_type=code are required", http.StatusBadRequest)
		return
	case as.hold.Load():
		fmt.Fprint(w, "<p>waiting for a user who never comes</p>")
		return
	}
	code := "code-" + rand.Text()
	as.mu.Lock()
	as.codes[code] = codeGrant{q.Get("client_id"), q.Get("redirect_uri"), q.Get("code_challenge")}
	as.issued = append(as.issued, code)
	as.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	v := url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {as.srv.URL}}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (as *testAS) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	f := r.PostForm
	if id, _, ok := r.BasicAuth(); ok { // client_secret_basic with an empty secret
		f.Set("client_id", id)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	var client string
	switch f.Get("grant_type") {
	case "authorization_code":
		g, ok := as.codes[f.Get("code")]
		delete(as.codes, f.Get("code"))
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if !ok || g.client != f.Get("client_id") || g.redirect != f.Get("redirect_uri") ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		as.codeGrants.Add(1)
		client = g.client
	case "refresh_token":
		c, ok := as.refresh[f.Get("refresh_token")]
		delete(as.refresh, f.Get("refresh_token"))
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		as.refreshGrants.Add(1)
		client = c
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	access, refresh := "at-"+rand.Text(), "rt-"+rand.Text()
	as.access[access] = time.Now().Add(as.ttl)
	as.refresh[refresh] = client
	as.issued = append(as.issued, access, refresh)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
		"expires_in": int(as.ttl / time.Second), "scope": "mcp",
	})
}

// verify is the MCP server's token check.
func (as *testAS) verify(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	as.mu.Lock()
	exp, ok := as.access[token]
	as.mu.Unlock()
	if !ok || time.Now().After(exp) {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{Scopes: []string{"mcp"}, Expiration: exp}, nil
}

// revokeAll forgets every token: the server refuses what the bridge holds.
func (as *testAS) revokeAll() {
	as.mu.Lock()
	clear(as.access)
	clear(as.refresh)
	as.mu.Unlock()
}

// revokeAccess forgets the access tokens alone: the refresh tokens still
// work.
func (as *testAS) revokeAccess() {
	as.mu.Lock()
	clear(as.access)
	as.mu.Unlock()
}

// secrets is every code and token issued so far.
func (as *testAS) secrets() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.issued...)
}

func (as *testAS) counts() string {
	return fmt.Sprintf("register=%d authorize=%d code=%d refresh=%d",
		as.registers.Load(), as.authorizes.Load(), as.codeGrants.Load(), as.refreshGrants.Load())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// serveProtected serves newMCPServer at /mcp (streamable) or /sse (legacy)
// behind go-sdk's bearer check, with protected-resource metadata naming as.
// It returns the MCP endpoint's URL.
func serveProtected(t *testing.T, as *testAS, sse bool) (string, *recorder) {
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	path := "/mcp"
	var h http.Handler
	if sse {
		path = "/sse"
		srv := newMCPServer()
		h = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	} else {
		srv := newMCPServer()
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	}
	prm := "/.well-known/oauth-protected-resource" + path
	mux.Handle(prm, auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:             ts.URL + path,
		AuthorizationServers: []string{as.srv.URL},
		ScopesSupported:      []string{"mcp"},
	}))
	rc := &recorder{next: auth.RequireBearerToken(as.verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: ts.URL + prm})(h)}
	mux.Handle(path, rc)
	return ts.URL + path, rc
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
func checkNoSecrets(t *testing.T, as *testAS, logs *syncBuffer) {
	t.Helper()
	out := logs.String()
	for _, s := range as.secrets() {
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
	as := newTestAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	logs := &syncBuffer{}
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, logs))
	initializeN(t, d, 5)
	callN(t, d, 10, 5)
	if as.registers.Load() != 1 || as.authorizes.Load() != 1 || as.codeGrants.Load() != 1 {
		t.Fatalf("want one registration and one flow: %s", as.counts())
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
	as := newTestAS(t, time.Hour)
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
	as := newTestAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	s1 := openOAuth(t, config.KindHTTP, u, &syncBuffer{})
	d := newDriver(t, s1)
	initializeN(t, d, 1)
	callN(t, d, 10, 1)
	s1.Close()

	d = newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	callN(t, d, 10, 3)
	if as.registers.Load() != 1 || as.authorizes.Load() != 1 {
		t.Fatalf("the restart ran a flow: %s", as.counts())
	}
}

func TestOAuthExpiredTokenIsRefreshed(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	// oauth2 counts a token as expired 10 s early: this one is good for
	// about one second.
	as := newTestAS(t, 11*time.Second)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	time.Sleep(1500 * time.Millisecond)
	callN(t, d, 10, 3)
	if as.authorizes.Load() != 1 || as.refreshGrants.Load() < 1 {
		t.Fatalf("want a refresh and no second flow: %s", as.counts())
	}
	// A restart refreshes the stored (expired) token too.
	time.Sleep(1500 * time.Millisecond)
	refreshed := as.refreshGrants.Load()
	d = newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	if as.authorizes.Load() != 1 || as.refreshGrants.Load() <= refreshed {
		t.Fatalf("restart: want a refresh and no flow: %s", as.counts())
	}
}

func TestOAuthRefusedTokenRunsTheFlowAgain(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := newTestAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	as.revokeAll()
	callN(t, d, 10, 5)
	if as.authorizes.Load() != 2 || as.registers.Load() != 1 {
		t.Fatalf("want one more flow with the same registration: %s", as.counts())
	}
	// And from the store at the next start: the stored token is refused.
	as.revokeAll()
	d = newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 2)
	if as.authorizes.Load() != 3 || as.registers.Load() != 1 {
		t.Fatalf("restart with a refused token: %s", as.counts())
	}
}

// TestOAuthRefusedAccessTokenIsRefreshed: a server that refuses an access
// token before it expires (revoked, clocks apart) gets a refreshed one,
// not a trip to the browser, while the refresh token works (seventh
// review).
func TestOAuthRefusedAccessTokenIsRefreshed(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := newTestAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	as.revokeAccess()
	callN(t, d, 10, 5)
	if as.authorizes.Load() != 1 || as.refreshGrants.Load() != 1 {
		t.Fatalf("want one refresh and no second flow: %s", as.counts())
	}
}

func TestOAuthFlowTimesOut(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	old := flowTimeout
	flowTimeout = time.Second
	t.Cleanup(func() { flowTimeout = old })
	as := newTestAS(t, time.Hour)
	as.hold.Store(true)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	start := time.Now()
	d.send(initRequest)
	msg, code := errorOf(t, d.await("1"))
	if code != frame.CodeInternalError || !strings.Contains(msg, "OAuth authorization with "+as.srv.URL+" failed") || !strings.Contains(msg, "browser") {
		t.Fatalf("error %d %q", code, msg)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the failure took %v", el)
	}
	as.hold.Store(false)
	d.send(strings.Replace(initRequest, `"id":1`, `"id":2`, 1))
	if f := d.await("2"); protocolVersion(f) != testProtocol {
		t.Fatalf("second initialize: %.300s", f.Raw())
	}
	if as.authorizes.Load() != 2 {
		t.Fatalf("counts: %s", as.counts())
	}
}

func TestOAuthNotWithAnAuthorizationHeader(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := newTestAS(t, time.Hour)
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
	if n := as.registers.Load() + as.authorizes.Load(); n != 0 {
		t.Fatalf("OAuth ran: %s", as.counts())
	}
}

func TestOAuthSSE(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := newTestAS(t, time.Hour)
	u, rc := serveProtected(t, as, true)
	d := newDriver(t, openOAuth(t, config.KindSSE, u, &syncBuffer{}))
	d.initialize()
	callN(t, d, 10, 5)
	if as.authorizes.Load() != 1 || as.registers.Load() != 1 {
		t.Fatalf("counts: %s", as.counts())
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

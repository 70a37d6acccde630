// Package oauthtest is an OAuth 2.1 authorization server for tests, on
// loopback: metadata, RFC 7591 registration, an /authorize that approves
// at once (or holds, with Hold), /token with PKCE S256 and refresh, and
// short-lived access tokens; ServeProtected puts a go-sdk MCP server
// behind go-sdk's bearer check with protected-resource metadata naming it,
// and FakeBrowser is a user who approves.
package oauthtest

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// AS is the authorization server.
type AS struct {
	srv *httptest.Server
	ttl time.Duration // lifetime of access tokens

	Hold atomic.Bool // /authorize shows a page and never redirects
	// RefuseRefreshed makes the tokens of refresh grants invalid at the
	// resource server (a server that revoked the whole grant).
	RefuseRefreshed atomic.Bool

	Registers, Authorizes, CodeGrants, RefreshGrants atomic.Int32
	// NoRegistration leaves dynamic client registration out: clients must
	// be registered beforehand (Preregister).
	NoRegistration atomic.Bool

	mu      sync.Mutex
	clients map[string][]string  // client id → redirect URIs
	codes   map[string]codeGrant // code → what it was issued for
	access  map[string]time.Time // access token → expiry
	refresh map[string]string    // refresh token → client id
	issued  []string             // every token and code, for the log check
	seen    map[string]bool      // redirect URIs seen at /authorize
	scopes  []string             // the scope parameter of each /authorize
}

// Preregister registers a client as one made in a provider's console:
// id, no secret, the redirect URIs given.
func (as *AS) Preregister(id string, redirects ...string) {
	as.mu.Lock()
	as.clients[id] = redirects
	as.mu.Unlock()
}

// Scopes lists the scope parameter of each authorization request so far.
func (as *AS) Scopes() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.scopes...)
}

type codeGrant struct{ client, redirect, challenge string }

// URL is the authorization server's issuer URL.
func (as *AS) URL() string { return as.srv.URL }

// NewAS starts an authorization server whose access tokens live ttl; it
// stops with the test.
func NewAS(t testing.TB, ttl time.Duration) *AS {
	as := &AS{ttl: ttl, clients: map[string][]string{}, codes: map[string]codeGrant{},
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

func (as *AS) metadata(w http.ResponseWriter, _ *http.Request) {
	u := as.srv.URL
	reg := u + "/register"
	if as.NoRegistration.Load() {
		reg = ""
	}
	writeJSON(w, http.StatusOK, &oauthex.AuthServerMeta{
		Issuer:                                     u,
		AuthorizationEndpoint:                      u + "/authorize",
		TokenEndpoint:                              u + "/token",
		RegistrationEndpoint:                       reg,
		ResponseTypesSupported:                     []string{"code"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          []string{"none"},
		CodeChallengeMethodsSupported:              []string{"S256"},
		ScopesSupported:                            []string{"mcp", "offline_access"},
		AuthorizationResponseIssParameterSupported: true,
	})
}

func (as *AS) register(w http.ResponseWriter, r *http.Request) {
	as.Registers.Add(1)
	if as.NoRegistration.Load() {
		http.NotFound(w, r)
		return
	}
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

func (as *AS) authorize(w http.ResponseWriter, r *http.Request) {
	as.Authorizes.Add(1)
	q := r.URL.Query()
	as.mu.Lock()
	uris, ok := as.clients[q.Get("client_id")]
	as.seen[q.Get("redirect_uri")] = true
	as.scopes = append(as.scopes, q.Get("scope"))
	as.mu.Unlock()
	switch {
	case !ok || !containsStr(uris, q.Get("redirect_uri")):
		http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
		return
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "":
		http.Error(w, "PKCE S256, state and response_type=code are required", http.StatusBadRequest)
		return
	case as.Hold.Load():
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

func (as *AS) token(w http.ResponseWriter, r *http.Request) {
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
		as.CodeGrants.Add(1)
		client = g.client
	case "refresh_token":
		c, ok := as.refresh[f.Get("refresh_token")]
		delete(as.refresh, f.Get("refresh_token"))
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		as.RefreshGrants.Add(1)
		client = c
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	access, refresh := "at-"+rand.Text(), "rt-"+rand.Text()
	if !(f.Get("grant_type") == "refresh_token" && as.RefuseRefreshed.Load()) {
		as.access[access] = time.Now().Add(as.ttl)
	}
	as.refresh[refresh] = client
	as.issued = append(as.issued, access, refresh)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
		"expires_in": int(as.ttl / time.Second), "scope": "mcp",
	})
}

// Verify is the MCP server's token check.
func (as *AS) Verify(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	as.mu.Lock()
	exp, ok := as.access[token]
	as.mu.Unlock()
	if !ok || time.Now().After(exp) {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{Scopes: []string{"mcp"}, Expiration: exp}, nil
}

// RevokeAll forgets every token: the server refuses what the bridge holds.
func (as *AS) RevokeAll() {
	as.mu.Lock()
	clear(as.access)
	clear(as.refresh)
	as.mu.Unlock()
}

// RevokeAccess forgets the access tokens alone: the refresh tokens still
// work.
func (as *AS) RevokeAccess() {
	as.mu.Lock()
	clear(as.access)
	as.mu.Unlock()
}

// Secrets is every code and token issued so far.
func (as *AS) Secrets() []string {
	as.mu.Lock()
	defer as.mu.Unlock()
	return append([]string(nil), as.issued...)
}

// Counts says how often each endpoint and grant was used, for failures.
func (as *AS) Counts() string {
	return fmt.Sprintf("register=%d authorize=%d code=%d refresh=%d",
		as.Registers.Load(), as.Authorizes.Load(), as.CodeGrants.Load(), as.RefreshGrants.Load())
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

// FakeBrowser follows the authorization URL to its end, as a browser
// whose user approves would.
func FakeBrowser(u string) int {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake browser:", err)
		return 1
	}
	resp.Body.Close()
	return 0
}

// ServeProtected serves srv at /mcp (streamable) or /sse (legacy)
// behind go-sdk's bearer check, with protected-resource metadata naming as;
// wrap, if not nil, wraps the protected handler (to record requests). It
// returns the MCP endpoint's URL.
func ServeProtected(t testing.TB, as *AS, srv *mcp.Server, sse bool, wrap func(http.Handler) http.Handler) string {
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	path := "/mcp"
	var h http.Handler
	if sse {
		path = "/sse"
		h = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	} else {
		h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	}
	prm := "/.well-known/oauth-protected-resource" + path
	mux.Handle(prm, auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:             ts.URL + path,
		AuthorizationServers: []string{as.srv.URL},
		ScopesSupported:      []string{"mcp"},
	}))
	protected := auth.RequireBearerToken(as.Verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: ts.URL + prm})(h)
	if wrap != nil {
		protected = wrap(protected)
	}
	mux.Handle(path, protected)
	return ts.URL + path
}

// ForgetClients forgets every registered client (an authorization server
// that expired its dynamic registrations, or lost them in a restart).
func (as *AS) ForgetClients() {
	as.mu.Lock()
	clear(as.clients)
	as.mu.Unlock()
}

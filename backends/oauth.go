package backends

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
)

// OAuth for remote backends: go-sdk's auth.AuthorizationCodeHandler does
// the protocol (metadata discovery, dynamic client registration, PKCE, the
// code exchange); this file decides when it runs, serializes it per
// backend, and keeps its token source; oauth_callback.go brings the code
// back from the browser and oauth_store.go keeps registration and token
// across runs.
// flowTimeout bounds one authorization flow, the user's time in the
// browser included (a variable for tests).
var flowTimeout = 5 * time.Minute

const (
	// oauthRequestTimeout bounds each request to the authorization server.
	// Refreshes run on the request path (in TokenSource.Token), so one
	// that hangs must not hold every request of the backend for long.
	oauthRequestTimeout = 30 * time.Second
)

// An oauthClient holds the OAuth authorization of one remote backend: the
// access token every request carries, and the one flow at a time that
// renews it when the server refuses a request.
//
// Ownership: cur is read by every request; mu guards flight; a flow runs
// in a goroutine of the session (spawn), one at a time, and owns the
// fields below "flow state" while it runs (they are set up before any flow
// and touched by nothing else).
type oauthClient struct {
	name   string          // the backend's
	server *url.URL        // the configured URL: the protected resource and the storage key
	log    zerolog.Logger  //
	hc     *http.Client    // to the authorization server
	store  oauthStore      //
	ctx    context.Context // the session's: a flow ends with it
	spawn  func(func()) bool
	set    config.OAuth // what the configuration fixes: client, callback port, scopes

	cur atomic.Pointer[grant] // never nil

	mu     sync.Mutex
	flight *flight // the flow under way, if any

	// flow state
	handler  *auth.AuthorizationCodeHandler // built for reg; nil until needed
	reg      *oauthRegistration             // the client registration in use; nil: register anew
	newReg   *oauthRegistration             // what the last token came with (NewTokenSource)
	lastRef  *storingRefresher              // the refresher of the last token source made
	callback net.Listener                   // the running flow's redirect listener
	authURL  string                         // the authorization server's origin, once known
}

// A grant is what requests are sent with. A new one is published at the
// end of each flow, so a request refused with an older one knows that a
// flow ran since it was sent, and does not start another.
type grant struct {
	ts    oauth2.TokenSource // nil before the first token
	epoch uint64             // flows ended before this grant
	err   error              // why the flow that published it failed
	// refresher refreshes ts's tokens (nil: no refresh token); forced is
	// the access token a refresh forced by a refusal gave: a request
	// refused with that very token goes to the browser.
	refresher *storingRefresher
	forced    string
}

// A flight is one flow under way; refused requests wait for it.
type flight struct {
	done chan struct{}
	err  error // set before done is closed
}

// An authError is a failed authorization: the request it was for fails
// with its text as the reason.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

// newOAuthClient returns the backend's OAuth state, or nil when OAuth is
// off for it: turned off in the config, or an Authorization header is
// configured (the user manages credentials). A stored registration and
// token are loaded here, so a restart needs no browser.
func newOAuthClient(cfg config.Backend, c *httpCore) *oauthClient {
	if cfg.NoOAuth {
		return nil
	}
	for k := range cfg.Headers {
		if strings.EqualFold(k, "Authorization") {
			return nil
		}
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil // parseBackendURL reports it
	}
	o := &oauthClient{
		name:   cfg.Name,
		server: u,
		log:    c.log,
		hc:     newOAuthHTTPClient(),
		store:  newOAuthStore(cfg.URL, c.log),
		ctx:    c.ctx,
		spawn:  c.spawn,
	}
	if cfg.OAuth != nil {
		o.set = *cfg.OAuth
	}
	o.cur.Store(&grant{})
	o.load()
	return o
}

// newOAuthHTTPClient is the client of the authorization server requests.
// Its transport is a plain clone of the default one, so go-sdk's discovery
// applies its checks against redirects into private networks.
func newOAuthHTTPClient() *http.Client {
	return &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		Timeout:   oauthRequestTimeout,
	}
}

// load takes up the stored registration and token, if any: the handler
// then uses the registration as a preregistered client, and its token
// source starts from the stored token, refreshing it when it expires.
func (o *oauthClient) load() {
	rec := o.store.load()
	if rec == nil || !o.fits(rec) {
		return
	}
	if g := o.adopt(rec); g != nil {
		o.cur.Store(g)
		o.log.Debug().Msg("OAuth: using the stored token")
	}
}

// fits reports whether stored record rec was made the way the
// configuration asks (its client, its callback port); one that was not
// (the configuration changed since) is not used.
func (o *oauthClient) fits(rec *oauthRecord) bool {
	if o.set.ClientID != "" && rec.Client.ClientID != o.set.ClientID {
		o.log.Info().Msg("OAuth: the stored authorization is for another client than the configured one; not using it")
		return false
	}
	if o.set.CallbackPort != 0 && rec.Client.callbackAddr() != callbackAddr(o.set.CallbackPort) {
		o.log.Info().Msg("OAuth: the stored authorization was made with another callback port than the configured one; not using it")
		return false
	}
	return true
}

// adopt takes up a stored record: its registration becomes the one flows
// use, and its token, if any, makes the grant returned (nil without one).
// At load, or in the flow's goroutine.
func (o *oauthClient) adopt(rec *oauthRecord) *grant {
	reg := rec.Client
	if o.set.ClientID != "" {
		// The configured secret, not the stored one: the user may have
		// rotated it.
		reg.ClientSecret = o.set.ClientSecret
	}
	var ts oauth2.TokenSource
	if rec.Token != nil {
		ts = o.tokenSource(o.refreshContext(), reg.config(), rec.Token)
	}
	h, err := o.newHandler(&reg, reg.RedirectURI, ts)
	if err != nil {
		o.log.Warn().Str("error", err.Error()).Msg("OAuth: ignoring the stored client registration")
		return nil
	}
	o.reg, o.handler = &reg, h
	o.authURL = origin(reg.AuthURL)
	if ts == nil {
		return nil
	}
	o.store.took(rec.Token.AccessToken)
	ts, _ = h.TokenSource(o.ctx)
	return &grant{ts: ts, refresher: o.lastRef}
}

// takeStored answers a refusal with the token stored since the refused
// request was sent, by another bridge for the same server (two hosts, or
// two windows of one, each run one): no refresh, no browser. It reports
// whether it published one. A refresh here instead would spend the
// refresh token the other bridge holds too, which servers that rotate
// them then refuse to that bridge.
func (o *oauthClient) takeStored(f *flight, resp *http.Response) bool {
	rec := o.store.load()
	if rec == nil || rec.Token == nil || rec.Token.AccessToken == "" || !o.fits(rec) {
		return false
	}
	if o.store.ownToken(rec.Token.AccessToken) ||
		resp.Request != nil && resp.Request.Header.Get("Authorization") == "Bearer "+rec.Token.AccessToken {
		return false // no news: the token this bridge holds, or the one refused
	}
	g := o.adopt(rec)
	if g == nil {
		return false
	}
	o.log.Info().Msg("OAuth: the server refused the request; using the token stored since (by another mcpbridge)")
	o.publish(f, g)
	return true
}

// refreshContext is what token sources refresh with: it outlives any one
// request, ends with the session (Close must not wait for a refresh that
// hangs), and carries the authorization server client.
func (o *oauthClient) refreshContext() context.Context {
	return context.WithValue(o.ctx, oauth2.HTTPClient, o.hc)
}

// authorize adds the current access token to req (refreshing it if it
// expired) and returns the ticket that renew needs if req is refused.
// Without a token, or when refreshing fails, req goes without one: the
// server's refusal then starts a new authorization.
func (o *oauthClient) authorize(req *http.Request) (ticket uint64) {
	g := o.cur.Load()
	if g.ts == nil {
		return g.epoch
	}
	tok, err := g.ts.Token()
	if err != nil {
		o.log.Warn().Str("error", tokenErrorText(err)).Msg("OAuth: refreshing the access token failed; the server will ask for a new authorization")
		return g.epoch
	}
	tok.SetAuthHeader(req)
	return g.epoch
}

// accepted is called when the server took a request sent with ticket: a
// token a forced refresh gave has proved good, so a later refusal of it is
// an early expiry again (refreshed), not a refresh that did not help.
func (o *oauthClient) accepted(ticket uint64) {
	g := o.cur.Load()
	if g.forced == "" || g.epoch != ticket {
		return
	}
	o.mu.Lock()
	if o.cur.Load() == g {
		ok := *g
		ok.forced = ""
		o.cur.Store(&ok)
	}
	o.mu.Unlock()
}

// renew is called after the server refused a request sent with ticket. If
// a flow ended since, its outcome stands for this request too; if one is
// under way, it waits for it; otherwise it starts one. It returns nil once
// the request may be sent again with the new token. The wait ends with
// ctx; the flow itself with the session or flowTimeout.
func (o *oauthClient) renew(ctx context.Context, ticket uint64, resp *http.Response) error {
	o.mu.Lock()
	g := o.cur.Load()
	if g.epoch != ticket {
		o.mu.Unlock()
		return g.err
	}
	f := o.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		if !o.spawn(func() { o.run(f, resp) }) {
			o.mu.Unlock()
			return ErrClosed
		}
		o.flight = f
	}
	o.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return &authError{fmt.Sprintf("OAuth authorization with %s did not finish: %v", o.server.Redacted(), ctx.Err())}
	}
}

// run is one flow, in its own goroutine: it publishes the outcome as a new
// grant and releases the requests waiting for it.
func (o *oauthClient) run(f *flight, resp *http.Response) {
	ctx, cancel := context.WithTimeout(o.ctx, flowTimeout)
	defer cancel()
	unlock := o.store.lock(ctx)
	stored := o.takeStored(f, resp)
	unlock()
	if stored || o.refreshInstead(f, resp) { // a refresh takes the lock itself
		return
	}
	// The browser flow under the lock: another bridge refused at the
	// same time waits for it, then takes its token (takeStored).
	unlock = o.store.lock(ctx)
	defer unlock()
	if o.takeStored(f, resp) {
		return
	}
	o.lastRef = nil
	ts, err := o.flow(ctx, resp)
	if err != nil {
		err = &authError{fmt.Sprintf("OAuth authorization with %s failed: %s (after HTTP %s; to pass a token instead use --header '%s:Authorization: Bearer …', to turn OAuth off --no-oauth %s)",
			o.authServer(), flowErrorText(err), resp.Status, o.name, o.name)}
		if o.ctx.Err() == nil {
			o.log.Warn().Str("error", err.Error()).Msg("OAuth: authorization failed; the next refused request tries again")
		}
	} else {
		o.log.Info().Str("authorizationServer", o.authServer()).Msg("OAuth: authorized")
	}
	g := &grant{ts: ts, err: err, refresher: o.lastRef}
	if err != nil {
		old := o.cur.Load()
		g.ts, g.refresher = old.ts, old.refresher
	}
	o.publish(f, g)
}

// publish makes g the grant requests are sent with, after the one before,
// and releases the requests waiting for flight f.
func (o *oauthClient) publish(f *flight, g *grant) {
	o.mu.Lock()
	g.epoch = o.cur.Load().epoch + 1
	o.cur.Store(g)
	o.flight = nil
	f.err = g.err
	close(f.done)
	o.mu.Unlock()
}

// refreshInstead answers a 401 to a token that has a refresh token with a
// refresh, not the browser: the server may have revoked or expired the
// access token early (or the clocks differ). It reports whether that
// worked and was published. The token such a refresh gave, refused before
// any request went through with it, goes to the browser; refused later,
// it is refreshed again.
func (o *oauthClient) refreshInstead(f *flight, resp *http.Response) bool {
	old := o.cur.Load()
	if resp.StatusCode != http.StatusUnauthorized || old.refresher == nil {
		return false
	}
	if old.forced != "" && resp.Request != nil && resp.Request.Header.Get("Authorization") == "Bearer "+old.forced {
		return false // the token a forced refresh gave is refused too
	}
	tok, err := old.refresher.Token()
	if err != nil {
		o.log.Info().Str("error", tokenErrorText(err)).Msg("OAuth: refreshing the refused access token failed; authorizing anew")
		return false
	}
	o.log.Info().Msg("OAuth: the server refused the access token; refreshed it")
	o.publish(f, &grant{ts: oauth2.ReuseTokenSource(tok, old.refresher), refresher: old.refresher, forced: tok.AccessToken})
	return true
}

// flow runs the authorization-code flow for the refusal resp and returns
// the new token source.
func (o *oauthClient) flow(ctx context.Context, resp *http.Response) (oauth2.TokenSource, error) {
	ln, err := o.listen()
	if err != nil {
		return nil, err
	}
	o.callback = ln
	defer ln.Close()
	// Authorize reads the request's URL alone: the resource to ask for is
	// the configured URL, whatever path (an SSE endpoint) was refused.
	req := &http.Request{Method: http.MethodGet, URL: o.server, Header: http.Header{}}
	o.newReg = nil
	if err := o.handler.Authorize(ctx, req, resp); err != nil {
		if o.reg != nil && o.ctx.Err() == nil {
			// The stored registration may be what failed: a client the
			// server forgot, for which it must not redirect back (RFC 6749
			// 4.1.2.1), so the flow can only time out. The next flow
			// registers anew (cheap), and so does the next start.
			o.reg, o.handler = nil, nil
			o.store.forgetClient()
		}
		return nil, err
	}
	ts, _ := o.handler.TokenSource(ctx)
	if ts == nil {
		return nil, errors.New("the authorization server gave no token")
	}
	if o.reg == nil && o.newReg != nil {
		// Registered just now: later flows reuse the registration, as
		// the next run does from the store.
		h, err := o.newHandler(o.newReg, o.newReg.RedirectURI, ts)
		if err == nil {
			o.reg, o.handler = o.newReg, h
		}
	}
	return ts, nil
}

// listen opens the loopback listener the browser is sent back to, and
// makes sure the handler expects it: the port the registration in use was
// made with, or, when it is taken or there is no registration, a free one
// with a handler that registers anew (the redirect URI is part of the
// registration).
func (o *oauthClient) listen() (net.Listener, error) {
	if o.reg != nil {
		ln, err := net.Listen("tcp", o.reg.callbackAddr())
		if err == nil {
			if o.handler == nil {
				if o.handler, err = o.newHandler(o.reg, o.reg.RedirectURI, nil); err != nil {
					ln.Close()
					return nil, err
				}
			}
			return ln, nil
		}
		if o.set.CallbackPort != 0 {
			// The configured port is the registered redirect URI's:
			// another would not be let through.
			return nil, fmt.Errorf("listening for the browser's redirect on %s (the client's redirect URI): %w", o.reg.callbackAddr(), err)
		}
		if o.set.ClientID != "" {
			o.log.Warn().Str("error", err.Error()).Msg("OAuth: the callback port used last time is taken; using another")
		} else {
			o.log.Warn().Str("error", err.Error()).Msg("OAuth: the callback port of the stored client registration is taken; registering anew")
		}
		o.reg, o.handler = nil, nil
	}
	ln, err := net.Listen("tcp", callbackAddr(o.set.CallbackPort))
	if err != nil {
		return nil, fmt.Errorf("listening for the browser's redirect: %w", err)
	}
	var reg *oauthRegistration // nil: register dynamically
	if o.set.ClientID != "" {
		reg = &oauthRegistration{ClientID: o.set.ClientID, ClientSecret: o.set.ClientSecret, RedirectURI: callbackURL(ln)}
	}
	h, err := o.newHandler(reg, callbackURL(ln), nil)
	if err != nil {
		ln.Close()
		return nil, err
	}
	o.handler = h
	return ln, nil
}

// newHandler builds go-sdk's handler: for reg as a preregistered client,
// or with dynamic client registration when reg is nil. ts, if not nil, is
// the token source it starts with.
func (o *oauthClient) newHandler(reg *oauthRegistration, redirect string, ts oauth2.TokenSource) (*auth.AuthorizationCodeHandler, error) {
	cfg := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL:              redirect,
		AuthorizationCodeFetcher: o.fetchCode,
		RequestRefreshToken:      true,
		Client:                   o.hc,
		NewTokenSource:           o.newTokenSource,
		InitialTokenSource:       ts,
	}
	if scopes := o.set.Scopes; len(scopes) > 0 {
		cfg.ScopeFilter = func([]string) []string { return slices.Clone(scopes) }
	}
	if reg != nil {
		cfg.PreregisteredClient = &oauthex.ClientCredentials{ClientID: reg.ClientID}
		if reg.ClientSecret != "" {
			cfg.PreregisteredClient.ClientSecretAuth = &oauthex.ClientSecretAuth{ClientSecret: reg.ClientSecret}
		}
	} else {
		cfg.DynamicClientRegistrationConfig = &auth.DynamicClientRegistrationConfig{
			Metadata: &oauthex.ClientRegistrationMetadata{
				RedirectURIs: []string{redirect},
				// A public client: PKCE protects the code, and a secret
				// on the user's disk would protect nothing more.
				TokenEndpointAuthMethod: "none",
				GrantTypes:              []string{"authorization_code", "refresh_token"},
				ResponseTypes:           []string{"code"},
				ClientName:              "mcpbridge",
			},
		}
	}
	h, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		return nil, fmt.Errorf("setting up the OAuth client: %w", err)
	}
	return h, nil
}

// newTokenSource is the handler's NewTokenSource: called with each token
// a code exchange brings, it stores registration and token, and returns a
// source that stores every refreshed token too.
func (o *oauthClient) newTokenSource(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
	reg := registrationOf(cfg)
	o.newReg = &reg // in the flow's goroutine: Authorize calls this
	o.authURL = origin(cfg.Endpoint.AuthURL)
	o.store.save(reg, tok)
	return o.tokenSource(o.refreshContext(), cfg, tok), nil
}

// tokenSource returns tok until it expires, then refreshed tokens, each
// stored as it comes.
func (o *oauthClient) tokenSource(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) oauth2.TokenSource {
	reg := registrationOf(cfg)
	var ref *storingRefresher
	if tok.RefreshToken != "" {
		ref = &storingRefresher{ctx: ctx, cfg: cfg, refresh: tok.RefreshToken, store: o.store}
		ref.save = func(t *oauth2.Token) {
			// Only the grant in use is stored: a request still holding an
			// older one (from before a flow) must not put it back.
			if o.cur.Load().refresher == ref {
				o.store.save(reg, t)
			}
		}
	}
	o.lastRef = ref // in the flow's goroutine, or at load before any
	if ref == nil {
		return oauth2.StaticTokenSource(tok)
	}
	return oauth2.ReuseTokenSource(tok, ref)
}

// A storingRefresher refreshes with oauth2's own refresher and stores
// each new token. It is called by its ReuseTokenSource when the token
// expired, and by refreshInstead when the server refused it early: mu
// keeps the two apart.
type storingRefresher struct {
	ctx     context.Context
	cfg     *oauth2.Config
	save    func(*oauth2.Token)
	store   oauthStore
	mu      sync.Mutex
	refresh string
}

func (r *storingRefresher) Token() (*oauth2.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Under the lock shared with other bridges for this server: one that
	// refreshed since stored a token to take instead (its refresh spent
	// the refresh token held here, if the server rotates them).
	lctx, cancel := context.WithTimeout(r.ctx, oauthRequestTimeout)
	unlock := r.store.lock(lctx)
	cancel()
	defer unlock()
	if rec := r.store.load(); rec != nil && rec.Token != nil && rec.Client.ClientID == r.cfg.ClientID &&
		rec.Token.RefreshToken != "" && rec.Token.RefreshToken != r.refresh && rec.Token.Valid() {
		r.refresh = rec.Token.RefreshToken
		r.store.took(rec.Token.AccessToken)
		return rec.Token, nil
	}
	// A token with only a refresh token is expired: its source refreshes
	// at once (and keeps the refresh token if the server sends none).
	t, err := r.cfg.TokenSource(r.ctx, &oauth2.Token{RefreshToken: r.refresh}).Token()
	if err != nil {
		return nil, err
	}
	r.refresh = t.RefreshToken
	r.save(t)
	return t, nil
}

// authServer names the authorization server in messages: its origin once
// known, else the backend's.
func (o *oauthClient) authServer() string {
	if o.authURL != "" {
		return o.authURL
	}
	return origin(o.server.String())
}

// oauthRefusal reports whether resp is a refusal the authorization flow
// may fix: 401, or 403 with an insufficient_scope challenge (step-up; a
// plain 403 is the server's final word).
func oauthRefusal(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return true
	case http.StatusForbidden:
		cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
		if err != nil {
			return false
		}
		for _, c := range cs {
			if c.Scheme == "bearer" && c.Params["error"] == "insufficient_scope" {
				return true
			}
		}
	}
	return false
}

// origin is scheme://host of u, or u itself if it does not parse.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return u
	}
	return p.Scheme + "://" + p.Host
}

// flowErrorText describes a failed flow. An error from the token endpoint
// is reduced to its status and OAuth error code: its body is the server's
// and could echo what was sent.
func flowErrorText(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return tokenErrorText(err)
	}
	return err.Error()
}

// tokenErrorText describes a failed token request without its body.
func tokenErrorText(err error) string {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err.Error()
	}
	s := "the token endpoint refused the request"
	if re.Response != nil {
		s += " (HTTP " + re.Response.Status + ")"
	}
	if re.ErrorCode != "" {
		s += ": " + re.ErrorCode
		if re.ErrorDescription != "" {
			s += ": " + snippet([]byte(re.ErrorDescription), 200)
		}
	}
	return s
}

package backends

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
)

// OAuthDirEnv names the directory of the stored OAuth registrations and
// tokens, instead of <user config dir>/mcpbridge/oauth.
const OAuthDirEnv = "MCPBRIDGE_OAUTH_DIR"

// An oauthRecord is one stored file: per server URL, the client
// registration and the last token.
type oauthRecord struct {
	Server string            `json:"server"`
	Client oauthRegistration `json:"client"`
	Token  *oauth2.Token     `json:"token,omitempty"`
}

// An oauthRegistration is the client the bridge is registered as with the
// server's authorization server, and where that server's endpoints are
// (a refresh at the next start needs them without discovery).
type oauthRegistration struct {
	ClientID     string           `json:"client_id"`
	ClientSecret string           `json:"client_secret,omitempty"`
	RedirectURI  string           `json:"redirect_uri"`
	AuthURL      string           `json:"authorization_endpoint"`
	TokenURL     string           `json:"token_endpoint"`
	AuthStyle    oauth2.AuthStyle `json:"auth_style"`
	Scopes       []string         `json:"scopes,omitempty"`
}

// registrationOf is the registration cfg was built from.
func registrationOf(cfg *oauth2.Config) oauthRegistration {
	return oauthRegistration{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		RedirectURI:  cfg.RedirectURL,
		AuthURL:      cfg.Endpoint.AuthURL,
		TokenURL:     cfg.Endpoint.TokenURL,
		AuthStyle:    cfg.Endpoint.AuthStyle,
		Scopes:       cfg.Scopes,
	}
}

// config is the oauth2 configuration that refreshes tokens of r.
func (r *oauthRegistration) config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     r.ClientID,
		ClientSecret: r.ClientSecret,
		RedirectURL:  r.RedirectURI,
		Endpoint:     oauth2.Endpoint{AuthURL: r.AuthURL, TokenURL: r.TokenURL, AuthStyle: r.AuthStyle},
		Scopes:       r.Scopes,
	}
}

// callbackAddr is the loopback address r's redirect URI points at.
func (r *oauthRegistration) callbackAddr() string {
	u, err := url.Parse(r.RedirectURI)
	if err != nil {
		return "127.0.0.1:0"
	}
	return u.Host
}

// valid reports whether r can be used without registering anew.
func (r *oauthRegistration) valid() bool {
	u, err := url.Parse(r.RedirectURI)
	if err != nil || r.ClientID == "" || r.TokenURL == "" {
		return false
	}
	host, _, err := net.SplitHostPort(u.Host)
	return err == nil && host == "127.0.0.1" && u.Path == callbackPath
}

// An oauthStore is the file of one server URL. Without a directory (no
// user config directory) nothing is stored: each run authorizes anew.
type oauthStore struct {
	server string
	path   string // "" when nothing can be stored
	log    zerolog.Logger
	mu     *sync.Mutex // one writer at a time: flows and refreshes both save
	st     *storeState
}

// storeState is what one backend's store shares between its copies.
type storeState struct {
	// held: this backend holds the lock shared with other processes; its
	// own flow and refreshes then go on without waiting for it (a flow
	// holds it while go-sdk refreshes a short-lived new token).
	held atomic.Bool
	// own is the access token this bridge last stored or took from the
	// file: a record holding it is no news from another bridge.
	own atomic.Pointer[string]
}

// ownToken reports whether tok is the one this bridge last stored or took.
func (s oauthStore) ownToken(tok string) bool {
	p := s.st.own.Load()
	return p != nil && *p == tok
}

// took records that this bridge now uses tok, read from the file.
func (s oauthStore) took(tok string) { s.st.own.Store(&tok) }

// newOAuthStore returns the store of server's registration and token.
func newOAuthStore(server string, log zerolog.Logger) oauthStore {
	s := oauthStore{server: server, log: log, mu: new(sync.Mutex), st: new(storeState)}
	dir, err := oauthDir()
	if err != nil {
		log.Warn().Str("error", err.Error()).Msg("OAuth: tokens will not be stored")
		return s
	}
	s.path = filepath.Join(dir, oauthFileName(server))
	return s
}

// oauthDir is where the files go: $MCPBRIDGE_OAUTH_DIR, else
// <user config dir>/mcpbridge/oauth.
func oauthDir() (string, error) {
	if d := os.Getenv(OAuthDirEnv); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "mcpbridge", "oauth"), nil
}

// oauthFileName names a server's file after its host, for a person
// looking for it, and a hash of the whole URL, for uniqueness.
func oauthFileName(server string) string {
	sum := sha256.Sum256([]byte(server))
	host := "server"
	if u, err := url.Parse(server); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	host = strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, host)
	return host + "-" + hex.EncodeToString(sum[:8]) + ".json"
}

// load reads the stored record, or nil when there is none usable (a bad
// file is logged and ignored: the flow writes a new one).
func (s oauthStore) load() *oauthRecord {
	if s.path == "" {
		return nil
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var rec oauthRecord
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err == nil && (rec.Server != s.server || !rec.Client.valid()) {
		err = errors.New("not a registration for this server")
	}
	if err != nil {
		s.log.Warn().Str("file", s.path).Str("error", err.Error()).Msg("OAuth: ignoring the stored registration")
		return nil
	}
	return &rec
}

// save replaces the stored record with reg and tok. A failure is logged:
// the token still serves this run.
func (s oauthStore) save(reg oauthRegistration, tok *oauth2.Token) {
	if s.path == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.took(tok.AccessToken)
	if err := s.write(oauthRecord{Server: s.server, Client: reg, Token: tok}); err != nil {
		s.log.Warn().Str("error", err.Error()).Msg("OAuth: storing the token failed; the next start asks for authorization again")
	}
}

// forgetClient removes the stored record: its client registration failed
// a flow, and the next start must register anew rather than send the user
// to a client the server forgot.
func (s oauthStore) forgetClient() {
	if s.path == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn().Str("error", err.Error()).Msg("OAuth: removing the stored registration failed")
	}
}

// write replaces the file atomically (temporary file, then rename), so a
// crash or a concurrent reader never sees half a file. The directory is
// private to the user (0700) and the file 0600 (os.CreateTemp's mode).
func (s oauthStore) write(rec oauthRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing in %s: %w", dir, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", s.path, err)
	}
	return nil
}

// lockPoll is how often a bridge waiting for another's lock looks again.
const lockPoll = 50 * time.Millisecond

// lock takes the store's lock, shared with every mcpbridge process (a
// file beside the record), waiting while another holds it (a flow or a
// refresh for the same server) until ctx ends. Bridges for one server
// (two hosts, or two windows of one) then run one browser flow between
// them and never refresh with the same refresh token at once (servers
// that rotate refresh tokens refuse the second). The lock is advisory;
// when it cannot be had (no directory, no file locks on this system, ctx
// ended) the caller goes on without it, as it did before there was one.
// The returned unlock is never nil.
func (s oauthStore) lock(ctx context.Context) (unlock func()) {
	none := func() {}
	if s.path == "" || s.st.held.Load() {
		return none
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return none
	}
	f, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		s.log.Debug().Str("error", err.Error()).Msg("OAuth: no lock file; going on without")
		return none
	}
	for {
		busy, err := tryLock(f)
		switch {
		case err != nil:
			f.Close()
			if !errors.Is(err, errors.ErrUnsupported) {
				s.log.Debug().Str("error", err.Error()).Msg("OAuth: locking failed; going on without")
			}
			return none
		case !busy:
			s.st.held.Store(true)
			return func() {
				s.st.held.Store(false)
				f.Close() // closing the file releases the lock
			}
		}
		// Held by this backend itself (its flow: go on beside it), or
		// waited long enough.
		if s.st.held.Load() || !sleepCtx(ctx, lockPoll) {
			f.Close()
			return none
		}
	}
}

package backends

import (
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/internal/oauthtest"
)

// TestOAuthExpiredTokenDeadRefreshGoesToTheBrowser: the stored access
// token expired and the authorization server revoked the grant (refresh
// token refused too). A call must go to the browser and succeed, as it did
// before takeStored: the refresh fails, the request goes without a token,
// the 401 must run the flow. takeStored adopted the stored (expired, same)
// token again instead, since the refused request carried no Authorization
// (twelfth review: a regression of this session's lock work, fixed).
func TestOAuthExpiredTokenDeadRefreshGoesToTheBrowser(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, 11*time.Second) // good for about a second (oauth2's 10 s margin)
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	initializeN(t, d, 1)
	time.Sleep(1500 * time.Millisecond)
	as.RevokeAll()
	d.send(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`)
	f := d.await("10")
	if f.IsError() || as.Authorizes.Load() != 2 {
		t.Fatalf("want a second browser flow and the answer: %s; got %.300s", as.Counts(), f.Raw())
	}
}

// TestOAuthRestartExpiredTokenDeadRefresh: the same at a start: the
// stored record holds an expired token whose refresh token the server no
// longer takes (a grant that lapsed while the bridge was not running).
func TestOAuthRestartExpiredTokenDeadRefresh(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, 11*time.Second)
	u, _ := serveProtected(t, as, false)
	s1 := openOAuth(t, config.KindHTTP, u, &syncBuffer{})
	initializeN(t, newDriver(t, s1), 1)
	s1.Close()
	time.Sleep(1500 * time.Millisecond)
	as.RevokeAll()
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	d.send(initRequest)
	f := d.await("1")
	if protocolVersion(f) != testProtocol || as.Authorizes.Load() != 2 {
		t.Fatalf("want a browser flow and the initialize answered: %s; got %.300s", as.Counts(), f.Raw())
	}
}

// TestOAuthFlowDoesNotWaitForItsOwnLock: the browser flow holds the
// store's lock (run), and go-sdk's Authorize asks the new token source for
// its token at the end (updateGrantedScopes). A token that expires within
// oauth2's 10 s margin is refreshed there, by storingRefresher.Token, which
// took the same lock again on a second descriptor: it waited
// oauthRequestTimeout (30 s) for the flow that waited for it (twelfth
// review, fixed: the backend's own lock does not block it).
func TestOAuthFlowDoesNotWaitForItsOwnLock(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, 8*time.Second) // expired at once for oauth2
	u, _ := serveProtected(t, as, false)
	d := newDriver(t, openOAuth(t, config.KindHTTP, u, &syncBuffer{}))
	d.timeout = time.Minute // see how long it takes
	start := time.Now()
	d.send(initRequest)
	f := d.await("1")
	if protocolVersion(f) != testProtocol {
		t.Fatalf("initialize: %.300s", f.Raw())
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("the first flow took %v (%s)", el, as.Counts())
	}
}

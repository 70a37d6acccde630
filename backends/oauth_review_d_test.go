package backends

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/internal/oauthtest"
	"golang.org/x/oauth2"
)

// A client registered beforehand, configured WITHOUT a callback port
// (README: "Without a port a free one is taken"). The stored record holds
// the port an earlier flow used; when that port was taken, listen()
// treated it as a configured port and failed the flow instead of taking a
// free one, and every later flow failed the same way (thirteenth review).
func TestOAuthPreregisteredClientNoPortStoredPortTaken(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	flowTimeout = 3 * time.Second
	t.Cleanup(func() { flowTimeout = 5 * time.Minute })
	as := oauthtest.NewAS(t, time.Hour)
	as.NoRegistration.Store(true)
	port := freePort(t)
	as.Preregister("console-client", fmt.Sprintf("http://127.0.0.1:%d/callback", port))
	u, _ := serveProtected(t, as, false)
	open := func(set *config.OAuth) *driver {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		s, err := Open(ctx, config.Backend{Name: "b1", Kind: config.KindHTTP, URL: u, OAuth: set}, Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return newDriver(t, s)
	}
	// An earlier run: its flow's redirect was on `port`, now in the store.
	d := open(&config.OAuth{ClientID: "console-client", CallbackPort: port})
	initializeN(t, d, 1)
	// The port is taken by some other program now; the grant has lapsed.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	as.RevokeAll()
	before := as.Authorizes.Load()
	d = open(&config.OAuth{ClientID: "console-client"}) // no callbackPort: any free one
	d.send(initRequest)
	f := d.await("1")
	if msg, _ := errorOf(t, f); f.IsError() && strings.Contains(msg, "listening for the browser's redirect") {
		t.Fatalf("no callback port is configured, yet the flow failed on the stored port being taken (authorizes %d→%d): %s", before, as.Authorizes.Load(), msg)
	}
}

// The configured client secret of a client registered beforehand was not
// used while the store held a record of that client id made with another
// secret (the user rotated a leaked secret in the config): adopt() took
// the stored registration, secret included, for refreshes and for the next
// browser flow (thirteenth review; the configured secret now wins).
func TestOAuthConfiguredSecretIsUsed(t *testing.T) {
	t.Setenv(OAuthDirEnv, t.TempDir())
	u := "http://127.0.0.1:1/mcp"
	log := testLogger(t)
	st := newOAuthStore(u, log)
	st.save(oauthRegistration{ClientID: "console-client", ClientSecret: "old-secret",
		RedirectURI: "http://127.0.0.1:8765/callback", AuthURL: "http://127.0.0.1:1/authorize", TokenURL: "http://127.0.0.1:1/token"},
		&oauth2.Token{AccessToken: "at-old", RefreshToken: "rt-old", Expiry: time.Now().Add(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &httpCore{log: log, ctx: ctx}
	o := newOAuthClient(config.Backend{Name: "b1", Kind: config.KindHTTP, URL: u,
		OAuth: &config.OAuth{ClientID: "console-client", ClientSecret: "new-secret", CallbackPort: 8765}}, c)
	if o.reg != nil && o.reg.ClientSecret != "new-secret" {
		t.Fatalf("the registration in use has client secret %q; the configuration says %q", o.reg.ClientSecret, "new-secret")
	}
}

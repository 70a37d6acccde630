package backends

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/mcpbridge/mcpbridge/frame"
	"github.com/mcpbridge/mcpbridge/internal/oauthtest"
)

// TestOAuthForgottenClientIsRegisteredAnew: the authorization server
// forgot the bridge's (stored) client registration. Its /authorize cannot
// redirect back for an unknown client (RFC 6749 4.1.2.1: MUST NOT
// redirect), so the first flow can only time out; but the next one must
// register anew rather than send the user to the same dead client again.
func TestOAuthForgottenClientIsRegisteredAnew(t *testing.T) {
	old := flowTimeout
	flowTimeout = time.Second
	t.Cleanup(func() { flowTimeout = old })
	as, d, _ := authorizedSession(t)
	as.ForgetClients()
	as.RevokeAll()
	// The first flow after that times out (the standalone stream's 401 or
	// this call's starts it); this call fails with it, or, if that flow
	// had already ended, its own flow registers anew and it succeeds.
	d.send(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a"}}}`)
	if f := d.await("10"); f.IsError() {
		if _, code := errorOf(t, f); code != frame.CodeInternalError {
			t.Fatalf("first call after the client was forgotten: %s", f.Raw())
		}
	}
	// The next refused request tries again: it must not reuse the client
	// the server no longer knows.
	d.send(`{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"echo","arguments":{"text":"b"}}}`)
	f := d.await("11")
	if f.IsError() {
		t.Fatalf("second call: %.400s (%s)", f.Raw(), as.Counts())
	}
	if got := resultText(t, f); !strings.Contains(got, "b") {
		t.Fatalf("second call = %q", got)
	}
	if as.Registers.Load() != 2 {
		t.Errorf("want one new registration: %s", as.Counts())
	}
	t.Logf("%s", as.Counts())
}

// Same across a restart of the bridge: the stored registration is dead.
func TestOAuthForgottenClientAcrossRestart(t *testing.T) {
	old := flowTimeout
	flowTimeout = time.Second
	t.Cleanup(func() { flowTimeout = old })
	t.Setenv(OAuthDirEnv, t.TempDir())
	as := oauthtest.NewAS(t, time.Hour)
	u, _ := serveProtected(t, as, false)
	s1 := openOAuth(t, config.KindHTTP, u, &syncBuffer{})
	initializeN(t, newDriver(t, s1), 1)
	s1.Close()
	as.ForgetClients()
	as.RevokeAll()
	for run := 1; run <= 3; run++ {
		s := openOAuth(t, config.KindHTTP, u, &syncBuffer{})
		d := newDriver(t, s)
		d.send(initRequest)
		f := d.await("1")
		s.Close()
		t.Logf("run %d: error=%v %s", run, f.IsError(), as.Counts())
		if !f.IsError() {
			return
		}
	}
	t.Fatalf("three starts, never authorized: every one sent the user to the forgotten client (%s)", as.Counts())
}

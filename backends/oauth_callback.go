package backends

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/rs/zerolog"
)

// BrowserEnv names the command that opens the authorization URL instead
// of the system's opener (xdg-open, open, rundll32); the URL is its last
// argument. Its words are split like --stdio's.
const BrowserEnv = "MCPBRIDGE_BROWSER"

// callbackPath is the path of the redirect URI on the loopback listener.
const callbackPath = "/callback"

// callbackURL is the redirect URI served on ln.
// callbackAddr is where the redirect listener listens for a configured
// port (0: any free one).
func callbackAddr(port int) string {
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func callbackURL(ln net.Listener) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", ln.Addr().(*net.TCPAddr).Port, callbackPath)
}

// A callbackResult is what the browser brought back.
type callbackResult struct {
	res *auth.AuthorizationResult
	err error
}

// fetchCode is the handler's AuthorizationCodeFetcher, run in the flow's
// goroutine: it serves the redirect URI on the flow's listener, sends the
// user to the authorization URL, and waits for the browser to come back,
// within ctx (the flow's bound). The handler checks state and issuer
// again; the state check here only keeps a stray request to the port from
// ending the flow.
func (o *oauthClient) fetchCode(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
	au, err := url.Parse(args.URL)
	if err != nil {
		return nil, fmt.Errorf("bad authorization URL: %w", err)
	}
	o.authURL = origin(args.URL)
	results := make(chan callbackResult, 1)
	srv := &http.Server{
		Handler:           callbackHandler(au.Query().Get("state"), results),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan struct{})
	go func() { // owned here: Close ends it and it is waited for
		defer close(served)
		_ = srv.Serve(o.callback)
	}()
	defer func() {
		srv.Close()
		<-served
	}()
	// The URL carries no secret (PKCE sends only the challenge), and a
	// user whose browser did not open needs it.
	o.log.Warn().Str("url", args.URL).Msg("OAuth: the server asks for authorization; open this URL in a browser if none opened")
	openBrowser(args.URL, o.log)
	select {
	case r := <-results:
		return r.res, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer from the browser within the time allowed: %w", ctx.Err())
	}
}

// callbackHandler answers the browser's redirect for the request with
// the given state and passes the first such answer on.
func callbackHandler(state string, results chan<- callbackResult) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(callbackPath, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("state") != state {
			writePage(w, http.StatusBadRequest, "This is not the authorization mcpbridge is waiting for.")
			return
		}
		var res callbackResult
		switch {
		case q.Get("error") != "":
			res.err = fmt.Errorf("the authorization server answered %s", q.Get("error"))
			if d := q.Get("error_description"); d != "" {
				res.err = fmt.Errorf("%w: %s", res.err, snippet([]byte(d), 200))
			}
		case q.Get("code") == "":
			res.err = errors.New("the browser came back without a code")
		default:
			res.res = &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}
		}
		select {
		case results <- res:
		default: // a second visit: the first one counts
		}
		if res.err != nil {
			writePage(w, http.StatusOK, "Authorization failed: "+res.err.Error()+". You can close this window.")
			return
		}
		writePage(w, http.StatusOK, "mcpbridge is authorized. You can close this window.")
	})
	return mux
}

// writePage answers the browser with a small HTML page saying msg.
func writePage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><meta charset=\"utf-8\"><title>mcpbridge</title></head><body><p>%s</p></body></html>\n", html.EscapeString(msg))
}

// openBrowser starts the user's browser on u and does not wait for it.
// Its output goes nowhere: the bridge's stdout is the host's JSON-RPC
// channel. A failure is only logged, as the URL is in the log.
func openBrowser(u string, log zerolog.Logger) {
	argv, err := browserCommand(u)
	if err == nil {
		cmd := exec.Command(argv[0], argv[1:]...)
		// Stdin, Stdout and Stderr nil: the null device.
		if err = cmd.Start(); err == nil {
			// Reaped by its own goroutine, which ends with the opener;
			// an opener that stays (a browser started in the
			// foreground) is the user's, not the session's, to end.
			go func() { _ = cmd.Wait() }()
			return
		}
	}
	log.Warn().Str("error", err.Error()).Msg("OAuth: could not open a browser")
}

// browserCommand is the argv that opens u: $MCPBRIDGE_BROWSER's, or the
// system's opener.
func browserCommand(u string) ([]string, error) {
	if s := os.Getenv(BrowserEnv); s != "" {
		words, err := config.SplitWords(s)
		if err != nil || len(words) == 0 {
			return nil, fmt.Errorf("%s: %v", BrowserEnv, err)
		}
		return append(words, u), nil
	}
	switch runtime.GOOS {
	case "darwin":
		return []string{"open", u}, nil
	case "windows":
		return []string{"rundll32", "url.dll,FileProtocolHandler", u}, nil
	default:
		return []string{"xdg-open", u}, nil
	}
}

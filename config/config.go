// Package config turns mcpbridge's command line and mcpServers JSON files into
// a validated list of backend descriptions. It is pure: it reads files and the
// environment it is given, and never starts or dials anything.
package config

import (
	"errors"
	"fmt"
	"path"
	"time"
)

// Kind is how a backend is reached.
type Kind string

const (
	// KindStdio is a local command spoken to over its stdin/stdout.
	KindStdio Kind = "stdio"
	// KindHTTP is a streamable-HTTP endpoint.
	KindHTTP Kind = "http"
	// KindSSE is a legacy HTTP+SSE endpoint (2024-11-05 transport).
	KindSSE Kind = "sse"
	// KindURL is a remote endpoint of unknown kind: streamable HTTP first,
	// falling back to SSE when the server refuses the streamable POST
	// (400/404/405; never on 401).
	KindURL Kind = "url"
)

// OAuth is how a remote backend's OAuth flow runs, where the defaults do
// not serve: servers whose authorization server does not offer dynamic
// client registration need a client registered beforehand (an OAuth app
// made in the provider's console), whose redirect URI fixes the port.
type OAuth struct {
	// ClientID and ClientSecret are the registered client's; the secret
	// may be empty (a public client). Empty ClientID: dynamic registration.
	ClientID, ClientSecret string
	// CallbackPort is the loopback port of the redirect URI
	// http://127.0.0.1:PORT/callback; 0 picks a free one (with dynamic
	// registration, or an authorization server that lets loopback
	// redirects use any port, as RFC 8252 asks).
	CallbackPort int
	// Scopes, if not empty, are requested instead of those the server
	// names (offline_access is still added when offered).
	Scopes []string
}

// Backend describes one upstream MCP server.
type Backend struct {
	// Name is unique among backends and matches NamePattern.
	Name string
	Kind Kind

	// Stdio backends.
	Command string            // argv[0], not yet looked up in PATH
	Args    []string          // argv[1:]
	Env     map[string]string // overrides on top of the bridge's own environment
	Dir     string            // working directory; empty means the bridge's

	// HTTP and SSE backends.
	URL     string
	Headers map[string]string // canonical header name → value
	// NoOAuth turns off the OAuth authorization-code flow that a 401 would
	// otherwise start (config "oauth": false, flag --no-oauth NAME). A
	// configured Authorization header turns it off as well.
	NoOAuth bool
	// OAuth adjusts the OAuth flow (config "oauth": {...}, flags
	// --oauth-client, --oauth-client-secret, --oauth-callback-port,
	// --oauth-scopes); nil: dynamic registration, a random callback
	// port, the scopes the server asks for.
	OAuth *OAuth

	// Tool filters, path.Match globs on the backend's original tool names.
	// Deny wins over Allow; an empty Allow allows everything.
	Allow []string
	Deny  []string
	// NoTools hides every tool that Allow does not name (Gemini CLI's
	// "includeTools": [], beside no allow key or flag).
	NoTools bool

	// Timeout is the idle timeout of a request to this backend, reset by
	// each progress notification for it. Nil means the bridge default;
	// zero disables it.
	Timeout *time.Duration
	// MaxTimeout is the absolute cap of a request. Nil means the bridge
	// default; zero disables it.
	MaxTimeout *time.Duration
}

// check reports settings that cannot work together.
func (o *OAuth) check() error {
	if o.ClientSecret != "" && o.ClientID == "" {
		return errors.New("a client secret without a client id")
	}
	if o.CallbackPort < 0 || o.CallbackPort > 65535 {
		return fmt.Errorf("callback port %d: want a port number (1-65535)", o.CallbackPort)
	}
	return nil
}

// Allows reports whether b's tool filters let the backend's tool named
// tool through: Deny wins over Allow; an empty Allow allows everything.
func (b Backend) Allows(tool string) bool {
	if b.NoTools && len(b.Allow) == 0 {
		return false // an empty includeTools, and nothing else allowed
	}
	for _, g := range b.Deny {
		if ok, _ := path.Match(g, tool); ok {
			return false
		}
	}
	if len(b.Allow) == 0 {
		return true
	}
	for _, g := range b.Allow {
		if ok, _ := path.Match(g, tool); ok {
			return true
		}
	}
	return false
}

// Filtered reports whether b has tool filters.
func (b Backend) Filtered() bool { return len(b.Allow) > 0 || len(b.Deny) > 0 || b.NoTools }

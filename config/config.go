// Package config turns mcpbridge's command line and mcpServers JSON files into
// a validated list of backend descriptions. It is pure: it reads files and the
// environment it is given, and never starts or dials anything.
package config

import "time"

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

	// Tool filters, path.Match globs on the backend's original tool names.
	// Deny wins over Allow; an empty Allow allows everything.
	Allow []string
	Deny  []string

	// Timeout is the idle timeout of a request to this backend, reset by
	// each progress notification for it. Nil means the bridge default;
	// zero disables it.
	Timeout *time.Duration
	// MaxTimeout is the absolute cap of a request. Nil means the bridge
	// default; zero disables it.
	MaxTimeout *time.Duration
}

// Package interop holds mcpbridge's interoperability tests: the official MCP
// TypeScript SDK client (interop/node/client.mjs) drives the built bridge,
// which fronts the reference server-everything over stdio, streamable HTTP
// and legacy SSE. See interop_test.go; the tests need node and npm.
package interop

//go:build linux

package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInteropLimits runs client.mjs's limit scenarios through the bridge for
// each backend transport, as the TypeScript SDK sees them (from a
// seventeenth review): oversized answers, requests and upcall answers,
// written id last as the SDK writes them, end what waits for them at once;
// the idle --timeout holds while the host answers an upcall; the initialize
// result passes through; an answer stream cut by a proxy is resumed in its
// session (against a server with the SDK's own event store:
// resume-server.mjs).
func TestInteropLimits(t *testing.T) {
	nodeDir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	requireNode(t)
	npmCI(t, nodeDir)
	serverJS := filepath.Join(nodeDir, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	nodeBin, _ := exec.LookPath("node")
	bridge := os.Getenv("INTEROP_BRIDGE")
	if bridge == "" {
		bridge = buildBridge(t)
	}
	big := "INTEROP_BIG=" + strings.Repeat("y", 100*1024)
	httpBase := startServer(t, nodeBin, serverJS, "streamableHttp")
	sseBase := startServer(t, nodeBin, serverJS, "sse")
	httpBig := startServer(t, nodeBin, serverJS, "streamableHttp", big)
	sseBig := startServer(t, nodeBin, serverJS, "sse", big)
	transports := []struct{ name, url, bigURL string }{
		{"stdio", "", ""},
		{"streamableHttp", httpBase + "/mcp", httpBig + "/mcp"},
		{"sse", sseBase + "/sse", sseBig + "/sse"},
	}
	// resumption against a server with the SDK's own (per-stream) event
	// store, through the bridge and directly (the TS SDK client itself).
	resumeBase := startServer(t, nodeBin, filepath.Join(nodeDir, "resume-server.mjs"), "streamableHttp")
	for _, mode := range []string{"bridge", "direct"} {
		for _, srv := range []struct{ name, url string }{{"everything", httpBase + "/mcp"}, {"sdkstore", resumeBase + "/mcp"}} {
			t.Run("resume/"+mode+"/"+srv.name, func(t *testing.T) {
				if srv.name == "everything" && os.Getenv("INTEROP_EVERYTHING_RESUME") == "" {
					// server-everything's own InMemoryEventStore returns the last
					// event id, not the stream id, from replayEventsAfter: after a
					// resumption the SDK maps the new stream under that id and every
					// later event of the call (its answer) is lost. The TS SDK client
					// directly fails the same way (direct/everything).
					t.Skip("server-everything 2026.8.31's event store cannot resume (set INTEROP_EVERYTHING_RESUME=1 to see it)")
				}
				runScript(t, nodeDir, "client.mjs", "resume", map[string]any{
					"serverJs": serverJS, "node": nodeBin, "bridge": bridge,
					"bridgeFlags": []string{"--log-level", "debug"}, "mode": mode,
					"transport": "streamableHttp", "url": srv.url,
				})
			})
		}
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			for _, sc := range []string{"oversize_answer", "oversize_upcall", "held_timeout", "init_passthrough"} {
				t.Run(sc, func(t *testing.T) {
					cfg := map[string]any{
						"serverJs": serverJS, "node": nodeBin, "bridge": bridge,
						"bridgeFlags": []string{"--log-level", "debug"}, "mode": "bridge",
						"transport": tr.name, "url": tr.url, "bigUrl": tr.bigURL,
					}
					runScript(t, nodeDir, "client.mjs", sc, cfg)
				})
			}
		})
	}
}

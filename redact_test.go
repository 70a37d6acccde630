package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpbridge/mcpbridge/config"
	"github.com/rs/zerolog"
)

// TestRedactionKeepsLogsUsable: configured secrets never reach the log,
// and ordinary values real configs carry (LOG_LEVEL=info, PORT=3000)
// leave every line valid JSON with its level (fourth review: the log read
// {"level":"[REDACTED]"} and {"pid":1[REDACTED]}).
func TestRedactionKeepsLogsUsable(t *testing.T) {
	bs := []config.Backend{
		{Name: "s", Kind: config.KindStdio, Command: "x", Env: map[string]string{"LOG_LEVEL": "info", "PORT": "3000", "GITHUB_TOKEN": "ghp_abcdef123", "X": "true", "PATH": "/usr/local/bin:/usr/bin", "GITHUB_PAT": "pat-123456"}},
		{Name: "h", Kind: config.KindHTTP, URL: "https://h", Headers: map[string]string{"Authorization": "Bearer tok-xyz-789"}},
	}
	var buf bytes.Buffer
	log := zerolog.New(newRedactor(&buf, newReplacer(secrets(bs))))
	log.Info().Int("pid", 13000).Str("port", "3000").Str("path", "/usr/local/bin:/usr/bin").Str("stderr", "token=ghp_abcdef123 auth=tok-xyz-789 pat=pat-123456").Msg("backend started")
	line := strings.TrimSpace(buf.String())
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("log line is not JSON any more: %v\n%s", err, line)
	}
	if m["level"] != "info" || m["pid"] != float64(13000) || m["port"] != "3000" || m["path"] != "/usr/local/bin:/usr/bin" {
		t.Errorf("ordinary values changed: %s", line)
	}
	if strings.Contains(line, "ghp_abcdef123") || strings.Contains(line, "tok-xyz-789") || m["stderr"] != "token=[REDACTED] auth=[REDACTED] pat=[REDACTED]" {
		t.Errorf("a secret reached the log: %s", line)
	}
}

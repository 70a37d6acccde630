// Command floor is the least a stdio-to-streamable-HTTP bridge written in
// Go on net/http can do: it POSTs each line of stdin to the URL and prints
// the answers, one at a time, with the standard library alone: no flags,
// no logging, no configuration, no signal handling, no standalone stream,
// no concurrency, no checks. It is not a bridge anyone should use. It
// exists to measure the floor of mcpbridge's cold start on a machine
// (PERFORMANCE.md, "Fifth session"). It imports internal/procstart, as
// mcpbridge does, so that the two start alike, and is built static, as
// scripts/build.sh builds mcpbridge (a dynamically linked build starts
// about 3 ms slower here):
//
//	CGO_ENABLED=0 go build -trimpath -o /tmp/floor ./bench/coldstart/floor
//	go run ./bench/coldstart -echo /tmp/echoserver -n 100 /tmp/mcpbridge /tmp/floor
//
// It takes mcpbridge's arguments as bench/coldstart passes them and uses
// the URL of the last one that holds "=http".
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	_ "github.com/mcpbridge/mcpbridge/internal/procstart" // first, as in mcpbridge
)

func main() {
	url := ""
	for _, a := range os.Args[1:] {
		if i := strings.Index(a, "=http"); i >= 0 {
			url = a[i+1:]
		}
	}
	if url == "" {
		fmt.Fprintln(os.Stderr, "floor: no NAME=URL argument")
		os.Exit(2)
	}
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	session := ""
	for {
		line, readErr := in.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var err error
			if session, err = post(url, session, line, out); err != nil {
				fmt.Fprintln(os.Stderr, "floor:", err)
				os.Exit(1)
			}
			if err := out.Flush(); err != nil {
				os.Exit(1)
			}
		}
		if readErr != nil {
			return
		}
	}
}

// post sends one message and copies the JSON-RPC messages of the answer,
// JSON or an event stream, to out, one per line.
func post(url, session string, msg []byte, out *bufio.Writer) (string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(msg))
	if err != nil {
		return session, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return session, err
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		session = id
	}
	if resp.StatusCode/100 != 2 {
		return session, fmt.Errorf("HTTP %s", resp.Status)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			if data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:")); ok {
				out.Write(bytes.TrimSpace(data))
				out.WriteByte('\n')
			}
		}
		return session, sc.Err()
	}
	body, err := io.ReadAll(resp.Body)
	if len(bytes.TrimSpace(body)) > 0 {
		out.Write(bytes.TrimSpace(body))
		out.WriteByte('\n')
	}
	return session, err
}

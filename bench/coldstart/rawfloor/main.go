// Command rawfloor is bench/coldstart/floor without net/http: the same
// relay, speaking HTTP/1.1 by hand on one connection (TLS for https URLs,
// so that it links what a bridge able to reach remote servers must). It
// handles only what the echo server sends (Content-Length or chunked
// bodies, one JSON answer or an event stream that ends with its answer);
// it is a measurement, not an HTTP client. See PERFORMANCE.md, "Fifth
// session":
//
//	CGO_ENABLED=0 go build -trimpath -o /tmp/rawfloor ./bench/coldstart/rawfloor
//	go run ./bench/coldstart -echo /tmp/echoserver -n 100 /tmp/mcpbridge /tmp/floor /tmp/rawfloor
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	_ "github.com/mcpbridge/mcpbridge/internal/procstart"
)

func main() {
	url := ""
	for _, a := range os.Args[1:] {
		if i := strings.Index(a, "=http"); i >= 0 {
			url = a[i+1:]
		}
	}
	secure := strings.HasPrefix(url, "https://")
	rest, ok := strings.CutPrefix(url, map[bool]string{false: "http://", true: "https://"}[secure])
	if !ok {
		fmt.Fprintln(os.Stderr, "rawfloor: no NAME=URL argument")
		os.Exit(2)
	}
	host, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(strings.Trim(host, "[]"), map[bool]string{false: "80", true: "443"}[secure])
	}
	var c net.Conn
	var err error
	if secure {
		c, err = tls.Dial("tcp", addr, &tls.Config{NextProtos: []string{"http/1.1"}})
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawfloor:", err)
		os.Exit(1)
	}
	cr := bufio.NewReaderSize(c, 64<<10)
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	session := ""
	var req bytes.Buffer
	for {
		line, readErr := in.ReadBytes('\n')
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			req.Reset()
			fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %d\r\n", path, host, len(line))
			if session != "" {
				fmt.Fprintf(&req, "Mcp-Session-Id: %s\r\nMcp-Protocol-Version: 2025-11-25\r\n", session)
			}
			req.WriteString("\r\n")
			req.Write(line)
			if _, err := c.Write(req.Bytes()); err != nil {
				os.Exit(1)
			}
			if session, err = answer(cr, session, out); err != nil {
				fmt.Fprintln(os.Stderr, "rawfloor:", err)
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

func answer(r *bufio.Reader, session string, out *bufio.Writer) (string, error) {
	status, err := r.ReadString('\n')
	if err != nil {
		return session, err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 2") {
		return session, fmt.Errorf("status %q", status)
	}
	length, chunked, sse := -1, false, false
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return session, err
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "content-length":
			length, _ = strconv.Atoi(v)
		case "transfer-encoding":
			chunked = strings.EqualFold(v, "chunked")
		case "content-type":
			sse = strings.HasPrefix(v, "text/event-stream")
		case "mcp-session-id":
			session = v
		}
	}
	var body []byte
	switch {
	case chunked:
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return session, err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(l), 16, 64)
			if err != nil {
				return session, err
			}
			chunk := make([]byte, n+2)
			if _, err := io.ReadFull(r, chunk); err != nil {
				return session, err
			}
			if n == 0 {
				break
			}
			body = append(body, chunk[:n]...)
		}
	case length >= 0:
		body = make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return session, err
		}
	}
	if sse {
		for _, l := range bytes.Split(body, []byte("\n")) {
			if d, ok := bytes.CutPrefix(l, []byte("data:")); ok {
				out.Write(bytes.TrimSpace(d))
				out.WriteByte('\n')
			}
		}
	} else if b := bytes.TrimSpace(body); len(b) > 0 {
		out.Write(b)
		out.WriteByte('\n')
	}
	return session, nil
}

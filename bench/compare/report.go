//go:build linux

package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// report writes the Markdown tables: medians over rounds of each value, and
// medians over rounds of each per-round difference or ratio against the
// baseline.
func report(w io.Writer, cfg *config, results []*result, machine, command string, notes []string) {
	// byRound[round][target]
	byRound := map[int]map[string]*result{}
	for _, r := range results {
		if byRound[r.Round] == nil {
			byRound[r.Round] = map[string]*result{}
		}
		byRound[r.Round][r.Target] = r
	}
	// collect gathers f(target's result, baseline's result) over the rounds
	// that have both (base is nil when the baseline is not needed).
	collect := func(target string, needBase bool, f func(r, base *result) (float64, bool)) []float64 {
		var xs []float64
		for round := range cfg.rounds {
			r, base := byRound[round][target], byRound[round][baseline]
			if !needBase {
				base = nil
			}
			if r == nil || (needBase && base == nil) {
				continue
			}
			if x, ok := f(r, base); ok {
				xs = append(xs, x)
			}
		}
		return xs
	}

	fmt.Fprintf(w, "Machine: %s  \nCommand: `%s`  \n", machine, command)
	fmt.Fprintf(w, "Medians of %d round(s); Δ and ratios are against %s within each round, then the median. "+
		"CPU and memory are the proxy process's (mcpbridge or mcp-remote; `-` for direct targets). "+
		"RSS is VmRSS after the payload's sequential calls (for 13 B: after %d calls), peak is VmHWM after its %d-in-flight calls. "+
		"Sessions and HTTP requests are counted by the echo server (for stdio backends: sessions over the whole run) "+
		"and checked for the direct and bridge targets (one session, one HTTP request per call); mcp-remote's are only reported.\n\n",
		cfg.rounds, baseline, 110+cfg.calls, inFlight)
	for _, n := range notes {
		fmt.Fprintf(w, "Note: %s\n\n", n)
	}

	fmt.Fprintln(w, "| target | payload | calls | p50 | p99 | Δp50 | Δp99 | calls/s (16 in flight) | ratio | CPU s/1000 calls | RSS | peak RSS | cold start | startup sessions / HTTP reqs | HTTP reqs per call |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, t := range cfg.targets {
		isBase := t.name == baseline
		startup := startupCounts(collect(t.name, false, func(r, _ *result) (float64, bool) { return float64(r.Sessions), true }),
			collect(t.name, false, func(r, _ *result) (float64, bool) { return float64(r.Requests), r.Requests >= 0 }))
		cold := fmtDur(median(collect(t.name, false, func(r, _ *result) (float64, bool) { return float64(r.ColdStart), true })))
		for i, pl := range cfg.payloads {
			get := func(f func(p payloadResult) float64) func(r, base *result) (float64, bool) {
				return func(r, base *result) (float64, bool) {
					if i >= len(r.Payloads) || (base != nil && i >= len(base.Payloads)) {
						return 0, false
					}
					x := f(r.Payloads[i])
					if base == nil {
						return x, !math.IsNaN(x) && x >= 0
					}
					return x - f(base.Payloads[i]), true
				}
			}
			p50 := func(p payloadResult) float64 { return float64(p.P50) }
			p99 := func(p payloadResult) float64 { return float64(p.P99) }
			own := func(f func(p payloadResult) float64) float64 { return median(collect(t.name, false, get(f))) }
			delta := func(f func(p payloadResult) float64) string {
				if isBase {
					return "(base)"
				}
				return fmtDelta(median(collect(t.name, true, get(f))))
			}
			ratio := "(base)"
			if !isBase {
				ratio = fmtRatio(median(collect(t.name, true, func(r, base *result) (float64, bool) {
					if i >= len(r.Payloads) || i >= len(base.Payloads) || base.Payloads[i].PerSec == 0 {
						return 0, false
					}
					return r.Payloads[i].PerSec / base.Payloads[i].PerSec, true
				})))
			}
			reqs := "-"
			if t.http {
				perCall := own(func(p payloadResult) float64 { return float64(p.Requests) / float64(2*p.Calls) })
				reqs = fmt.Sprintf("%.2f", perCall)
				if s := own(func(p payloadResult) float64 { return float64(p.NewSessions) }); s > 0 {
					reqs += fmt.Sprintf(" (+%.0f sessions)", s)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				t.name, pl.Name, pl.Calls,
				fmtDur(own(p50)), fmtDur(own(p99)), delta(p50), delta(p99),
				fmtNum(own(func(p payloadResult) float64 { return p.PerSec }), "%.0f"), ratio,
				fmtNum(own(func(p payloadResult) float64 { return p.CPUPer1000 }), "%.3f"),
				fmtKiB(own(func(p payloadResult) float64 { return float64(p.RSSKiB) })),
				fmtKiB(own(func(p payloadResult) float64 { return float64(p.PeakKiB) })),
				cold, startup, reqs)
		}
	}

	fmt.Fprintf(w, "\n| target | cold start | Δ cold start | 100 sequential 13 B calls | Δ 100 calls |\n|---|--:|--:|--:|--:|\n")
	for _, t := range cfg.targets {
		cold := func(r *result) float64 { return float64(r.ColdStart) }
		seq := func(r *result) float64 { return float64(r.Seq100) }
		cell := func(f func(*result) float64) (own, delta string) {
			own = fmtDur(median(collect(t.name, false, func(r, _ *result) (float64, bool) { return f(r), true })))
			delta = "(base)"
			if t.name != baseline {
				delta = fmtDelta(median(collect(t.name, true, func(r, b *result) (float64, bool) { return f(r) - f(b), true })))
			}
			return own, delta
		}
		c, dc := cell(cold)
		s, ds := cell(seq)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.name, c, dc, s, ds)
	}

	var problems []string
	for _, r := range results {
		for _, p := range r.Problems {
			problems = append(problems, fmt.Sprintf("round %d, %s: %s", r.Round+1, r.Target, p))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "\nCounts that are off:\n\n- %s\n", strings.Join(problems, "\n- "))
	}
}

func startupCounts(sessions, requests []float64) string {
	if len(sessions) == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.0f", median(sessions))
	if len(requests) == 0 {
		return s + " / -"
	}
	return s + " / " + fmt.Sprintf("%.0f", median(requests))
}

// median of xs; NaN when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtDur(ns float64) string {
	if math.IsNaN(ns) {
		return "-"
	}
	d := time.Duration(ns)
	switch a := max(d, -d); {
	case a < time.Millisecond:
		return fmt.Sprintf("%.0f µs", ns/1e3)
	case a < time.Second:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	default:
		return fmt.Sprintf("%.2f s", ns/1e9)
	}
}

func fmtDelta(ns float64) string {
	if math.IsNaN(ns) {
		return "-"
	}
	if ns >= 0 {
		return "+" + fmtDur(ns)
	}
	return "−" + fmtDur(-ns)
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.2f×", x)
}

func fmtNum(x float64, format string) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf(format, x)
}

func fmtKiB(kib float64) string {
	if math.IsNaN(kib) {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", kib/1024)
}

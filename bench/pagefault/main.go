// Command pagefault measures what a first touch of fresh memory costs on
// this machine: it writes one byte per 4 KiB page of new 64 KiB, 1 MiB and
// 16 MiB slices. On the benchmark VM it is 13–17 µs a page, which is why
// mcpbridge avoids fresh buffers for large messages (PERFORMANCE.md).
//
//	go run ./bench/pagefault
package main

import (
	"fmt"
	"time"
)

func main() {
	for _, n := range []int{64 << 10, 1 << 20, 16 << 20} {
		start := time.Now()
		b := make([]byte, n)
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
		d := time.Since(start)
		fmt.Printf("%6d KiB: %8v, %.1f µs a page\n", n>>10, d, float64(d.Microseconds())/float64(n/4096))
	}
}

package procstart

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"testing"
)

func TestOneP(t *testing.T) {
	if f := flag.Lookup("test.cpu"); f != nil && f.Value.String() != "" {
		t.Skip("go test -cpu sets GOMAXPROCS itself")
	}
	want := 1
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Skipf("GOMAXPROCS=%q in the environment", v)
		}
		want = n
	}
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Errorf("GOMAXPROCS = %d after init, want %d", got, want)
	}
}

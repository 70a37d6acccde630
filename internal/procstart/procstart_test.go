package procstart

import (
	"os"
	"runtime"
	"strconv"
	"testing"
)

func TestOneP(t *testing.T) {
	want := 1
	if v, set := os.LookupEnv("GOMAXPROCS"); set {
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

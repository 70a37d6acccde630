package procstart

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/mcpbridge/mcpbridge/backends"
)

func TestEachMapping(t *testing.T) {
	maps := "00400000-00829000 r-xp 00000000 fe:00 123  /opt/my tools/mcpbridge\n" +
		"00829000-00c99000 r--p 00429000 fe:00 123  /opt/my tools/mcpbridge\n" +
		"00c99000-00cf9000 rw-p 00899000 fe:00 123  /opt/my tools/mcpbridge\n" +
		"00cf9000-02d3b000 rw-p 00000000 00:00 0 \n" +
		"c000000000-c000400000 rw-p 00000000 00:00 0\n" +
		"d000000000-d000400000 rw-p 00000000 00:00 0                          [anon: Go: heap]\n" +
		"zz-1 r--p 0 0 0 /bad\n" +
		"7ffc1000-7ffc2000 rw-p 00000000 00:00 0                          [stack]\n" +
		"7fff0000-7fff1000 r-xp 00000000 00:00 0   /cut sho"
	type m struct {
		lo, hi   uintptr
		writable bool
		name     string
	}
	var got []m
	eachMapping([]byte(maps), func(lo, hi uintptr, w bool, name []byte) { got = append(got, m{lo, hi, w, string(name)}) })
	want := []m{
		{0x400000, 0x829000, false, "/opt/my tools/mcpbridge"},
		{0x829000, 0xc99000, false, "/opt/my tools/mcpbridge"},
		{0xc99000, 0xcf9000, true, "/opt/my tools/mcpbridge"},
		{0xcf9000, 0x2d3b000, true, ""},
		{0xc000000000, 0xc000400000, true, ""},
		{0xd000000000, 0xd000400000, true, "[anon: Go: heap]"},
		{0x7ffc1000, 0x7ffc2000, true, "[stack]"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("eachMapping:\n got %+v\nwant %+v", got, want)
	}

	pg := uintptr(os.Getpagesize())
	if lo, hi := heapRange([]byte(maps), 0xc000000010); lo != 0xc000000000 || hi != 0xc000000000+heapPrefault {
		t.Errorf("heapRange at the start of a 4 MiB mapping = %#x-%#x", lo, hi)
	}
	if lo, hi := heapRange([]byte(maps), 0xc0003ff010); lo != 0xc0003ff010&^(pg-1) || hi != 0xc000400000 {
		t.Errorf("heapRange near the end of a mapping = %#x-%#x, want it cut at the mapping's end", lo, hi)
	}
	if lo, hi := heapRange([]byte(maps), 0xd000001000); lo != 0xd000001000 || hi != 0xd000001000+heapPrefault {
		t.Errorf("heapRange in a mapping named %s = %#x-%#x", heapName, lo, hi)
	}
	if lo, hi := heapRange([]byte(maps), 0x7ffc1010); lo != hi {
		t.Errorf("heapRange in [stack] = %#x-%#x, want none", lo, hi)
	}
}

// TestExecutablePrefaulted: init populated every read-only mapping of this
// test binary, as /proc/self/smaps lists them, and they are resident.
func TestExecutablePrefaulted(t *testing.T) {
	needPopulate(t)
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Skip(err)
	}
	var want uintptr
	for _, m := range smaps(t) {
		if m.name != exe || strings.Contains(m.perms, "w") {
			continue
		}
		want += uintptr(m.size) << 10
		if m.rss < m.size {
			t.Errorf("%s %s: %d KiB of %d KiB resident after init", m.rng, m.perms, m.rss, m.size)
		}
	}
	if want == 0 {
		t.Fatalf("no read-only mapping of %s in /proc/self/smaps", exe)
	}
	if exeBytes != want {
		t.Errorf("init populated %d bytes of the executable, want its %d read-only bytes", exeBytes, want)
	}
}

// TestHeapPrefaulted: the heap range populated at init was present, page
// by page (/proc/self/pagemap, read by TestMain before any test ran, so
// that the scavenger has had no time to return pages), though the program
// had not used most of it.
func TestHeapPrefaulted(t *testing.T) {
	needPopulate(t)
	if heapHi <= heapLo {
		t.Fatalf("no heap populated at init (%#x-%#x)", heapLo, heapHi)
	}
	if heapPresentErr != nil {
		t.Skip(heapPresentErr)
	}
	if n := int((heapHi - heapLo) / uintptr(os.Getpagesize())); heapPresent < n {
		t.Errorf("%d of the %d heap pages populated at init were present after it", heapPresent, n)
	}
}

var (
	heapPresent    int
	heapPresentErr error
)

func TestMain(m *testing.M) {
	heapPresent, heapPresentErr = pagesPresent(heapLo, heapHi)
	if os.Getenv(reportEnv) != "" {
		// A child of TestHelperNotPrefaulted: say what init did.
		fmt.Printf("exe=%d heap=%d\n", exeBytes, heapHi-heapLo)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pagesPresent counts the pages of lo-hi that are in memory.
func pagesPresent(lo, hi uintptr) (int, error) {
	if hi <= lo {
		return 0, nil
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	pg := uintptr(os.Getpagesize())
	n := int((hi - lo) / pg)
	entries := make([]byte, 8*n)
	if _, err := f.ReadAt(entries, int64(lo/pg*8)); err != nil {
		return 0, err
	}
	present := 0
	for i := range n {
		if binary.LittleEndian.Uint64(entries[8*i:])&(1<<63) != 0 {
			present++
		}
	}
	return present, nil
}

const reportEnv = "PROCSTART_TEST_REPORT"

// TestHelperNotPrefaulted: this test binary re-executed with a helper's
// first argument (as the bridge starts its guard) prefaults nothing;
// without it, it does.
func TestHelperNotPrefaulted(t *testing.T) {
	needPopulate(t)
	for _, tc := range []struct {
		arg  string
		want bool
	}{{backends.GuardArg, false}, {backends.SuperviseArg, false}, {"-test.run=^$", true}} {
		cmd := exec.Command(os.Args[0], tc.arg)
		cmd.Env = append(os.Environ(), reportEnv+"=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tc.arg, err)
		}
		var exe, heap int
		if _, err := fmt.Sscanf(string(out), "exe=%d heap=%d", &exe, &heap); err != nil {
			t.Fatalf("%s: %q: %v", tc.arg, out, err)
		}
		if got := exe > 0 && heap > 0; got != tc.want {
			t.Errorf("first argument %s: prefaulted %d bytes of the executable and %d of heap; want prefault %v", tc.arg, exe, heap, tc.want)
		}
	}
}

// needPopulate skips a test on kernels older than 5.14, which refuse
// MADV_POPULATE_READ (prefault then does nothing, by design).
func needPopulate(t *testing.T) {
	t.Helper()
	b := make([]byte, os.Getpagesize())
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(unsafe.SliceData(b)))&^uintptr(len(b)-1), uintptr(len(b)), madvPopulateRead); errno == syscall.EINVAL {
		t.Skip("this kernel has no MADV_POPULATE_READ")
	}
}

type smapsEntry struct {
	rng, perms, name string
	size, rss        int // KiB
}

func smaps(t *testing.T) []smapsEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	var out []smapsEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			e := smapsEntry{rng: f[0], perms: f[1]}
			if len(f) >= 6 {
				e.name = strings.Join(f[5:], " ")
			}
			out = append(out, e)
		case len(f) == 3 && f[2] == "kB" && len(out) > 0:
			v, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "Size:":
				out[len(out)-1].size = v
			case "Rss:":
				out[len(out)-1].rss = v
			}
		}
	}
	return out
}

package procstart

import (
	"syscall"
	"unsafe"
)

// madvise advice values of Linux 5.14: populate the page tables of a range
// as reads (or writes) would, in one call.
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
)

// heapPrefault is how much heap prefault maps ahead: a cold start
// (spawn to the first tools/list answer) touched about 1.9 MiB of heap.
// Less is mapped when the runtime's first heap chunk ends sooner (Go 1.26
// starts the heap at a random page of a 4 MiB chunk; the next chunk is
// not mapped yet).
const heapPrefault = 2 << 20

// heapName is what /proc/self/maps calls the Go heap on kernels that name
// anonymous mappings (CONFIG_ANON_VMA_NAME; Go 1.25 names its own). On
// others the heap has no name.
const heapName = "[anon: Go: heap]"

// What prefault did, for the tests: exeBytes of the executable populated
// without error; heapProbe, an object it allocated; heapLo to heapHi, the
// heap range it populated.
var (
	exeBytes       uintptr
	heapProbe      *[16]byte
	heapLo, heapHi uintptr
)

// prefault maps, in one madvise call each, what a start is about to touch
// page by page: every read-only mapping of the executable (code, read-only
// data) and up to the next 2 MiB of heap.
//
// Why: on the virtual machines that run many MCP hosts a page fault costs
// 10 to 20 µs, and a cold start (issue #6) took about 500 of them: code
// run for the first time, and heap pages written for the first time. The
// executable's pages come from the page cache, shared with every process
// running the binary, and the kernel's fault-around had mapped most of
// them by the end of a start anyway. Go's page allocator hands out the
// lowest free addresses first, so the heap a start goes on to use lies
// just above a fresh object. Resident memory at start grows by about
// 2.3 MiB, mostly pages the heap soon uses anyway. Before Linux 5.14
// madvise fails and nothing changes.
func prefault() {
	fd, err := syscall.Open("/proc/self/maps", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	// A Go process has a few dozen mappings at start; the executable's
	// and the heap's come within the first lines (the lowest addresses)
	// and a longer list is cut here. The kernel hands the list out about
	// a page per read.
	buf := make([]byte, 16<<10)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		if m <= 0 || err != nil {
			break
		}
		n += m
	}
	syscall.Close(fd)
	buf = buf[:n]

	f := prefault
	pc := **(**uintptr)(unsafe.Pointer(&f)) // a func value points at its code pointer
	var exe []byte
	eachMapping(buf, func(lo, hi uintptr, _ bool, name []byte) {
		if lo <= pc && pc < hi && len(name) > 0 && name[0] == '/' {
			exe = name
		}
	})
	if exe != nil {
		eachMapping(buf, func(lo, hi uintptr, writable bool, name []byte) {
			if !writable && string(name) == string(exe) {
				if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvPopulateRead); errno == 0 {
					exeBytes += hi - lo
				}
			}
		})
	}

	heapProbe = new([16]byte)
	heapLo, heapHi = heapRange(buf, uintptr(unsafe.Pointer(heapProbe)))
	if heapLo < heapHi {
		syscall.Syscall(syscall.SYS_MADVISE, heapLo, heapHi-heapLo, madvPopulateWrite)
	}
}

// heapRange is the range prefault populates for a heap object at p: from
// p's page up to heapPrefault further, within p's mapping when that is
// writable heap (anonymous, or named heapName). It is empty otherwise.
func heapRange(maps []byte, p uintptr) (lo, hi uintptr) {
	page := p &^ (uintptr(syscall.Getpagesize()) - 1)
	eachMapping(maps, func(mlo, mhi uintptr, writable bool, name []byte) {
		if writable && (len(name) == 0 || string(name) == heapName) && mlo <= page && page < mhi {
			lo, hi = page, min(mhi, page+heapPrefault)
		}
	})
	return lo, hi
}

// helper reports whether this process is mcpbridge re-executed as one of
// its helpers: its first argument, from /proc/self/cmdline, starts with
// helperPrefix (os.Args is not set yet).
func helper() bool {
	fd, err := syscall.Open("/proc/self/cmdline", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	var buf [512]byte
	n, _ := syscall.Read(fd, buf[:])
	syscall.Close(fd)
	if n <= 0 {
		return false
	}
	_, args, _ := cut(buf[:n], 0) // argv[0], then NUL-separated arguments
	return len(args) >= len(helperPrefix) && string(args[:len(helperPrefix)]) == helperPrefix
}

// eachMapping calls fn for each complete line of /proc/self/maps ("lo-hi
// perms offset dev inode name"); name is empty for anonymous memory.
func eachMapping(b []byte, fn func(lo, hi uintptr, writable bool, name []byte)) {
	for {
		line, rest, ok := cut(b, '\n')
		if !ok {
			return // the last line was cut short, or there is none
		}
		b = rest
		rng, line, _ := cut(line, ' ')
		perms, line, _ := cut(line, ' ')
		lo, hi, ok := parseRange(rng)
		if !ok || len(perms) < 2 {
			continue
		}
		for range 3 { // offset, dev, inode
			_, line, _ = cut(line, ' ')
		}
		for len(line) > 0 && line[0] == ' ' {
			line = line[1:]
		}
		fn(lo, hi, perms[1] == 'w', line)
	}
}

func parseRange(s []byte) (lo, hi uintptr, ok bool) {
	l, h, found := cut(s, '-')
	if !found {
		return 0, 0, false
	}
	lo, ok1 := parseHex(l)
	hi, ok2 := parseHex(h)
	return lo, hi, ok1 && ok2 && lo < hi
}

// cut is bytes.Cut for one byte: this package imports nothing that must
// be initialized before it (bytes would bring unicode).
func cut(s []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range s {
		if c == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, nil, false
}

func parseHex(s []byte) (uintptr, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var v uintptr
	for _, c := range s {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | uintptr(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | uintptr(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

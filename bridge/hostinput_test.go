package bridge

import (
	"strings"
	"testing"
)

// README ("Faults survived"): "host sends requests before its
// notifications/initialized: ... other requests wait and are routed once it
// arrives (or at stdin EOF)". A script that pipes initialize + a call and
// no notifications/initialized must get the call's result, not an error.
func TestHeldRequestRoutedAtEOF(t *testing.T) {
	for _, several := range []bool{false, true} {
		servers, call := oneOrTwo(several, "routed")
		h := bridgedWire(t, Config{}, servers...)
		h.Send(initLine)
		h.Response("0")
		h.Send(call)
		h.W.Close()
		if r := h.Response("1"); r.IsError() || !strings.Contains(string(r.Result()), "routed") {
			t.Errorf("several=%v: held call at EOF: %s", several, r.Raw())
		}
	}
}

// A host whose first line starts with a UTF-8 byte order mark (Windows
// PowerShell pipes with UTF-8 $OutputEncoding add one) must still get its
// initialize answered; the config file loader already skips a BOM.
func TestBOMBeforeInitialize(t *testing.T) {
	h := bridgedWire(t, Config{}, namedServer{"a", testServer("a")})
	h.Send("\ufeff" + initLine)
	if r := h.Response("0"); r.IsError() {
		t.Fatalf("initialize after a BOM: %s", r.Raw())
	}
}

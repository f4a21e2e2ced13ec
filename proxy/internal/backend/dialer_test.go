package backend

import (
	"testing"
	"time"
)

// A route whose shards need no password (PROXY RESHARD ... AUTH "") dials
// them without AUTH, whatever the proxy's flags say.
func TestDialerEmptyAuth(t *testing.T) {
	if d := NewDialer(time.Second, "", "", nil); d.auth != nil {
		t.Errorf("no password: AUTH sent %q; want none", d.auth)
	}
}

// ROLE's reply is taken for a primary's only when its first element says
// master, in RESP2 and RESP3.
func TestIsPrimary(t *testing.T) {
	for reply, want := range map[string]bool{
		"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n":                                         true,
		"*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:1\r\n": false,
		"*5\r\n$6\r\nmaster\r\n":                                                     true,
		"-ERR unknown command\r\n":                                                   false,
		"$6\r\nmaster\r\n":                                                           false,
		"":                                                                           false,
	} {
		if got := isPrimary([]byte(reply)); got != want {
			t.Errorf("isPrimary(%q) = %v, want %v", reply, got, want)
		}
	}
}

// A hold past its deadline is none: Held says so, and the next Hold
// pauses again; Release ends a hold at once.
func TestHoldExpires(t *testing.T) {
	p := &Pool{}
	p.Hold(20 * time.Millisecond)
	if !p.Held() {
		t.Fatal("not held right after Hold")
	}
	time.Sleep(40 * time.Millisecond)
	if p.Held() {
		t.Fatal("still held past the hold's deadline")
	}
	p.Hold(time.Minute)
	if !p.Held() {
		t.Fatal("a Hold after an expired one does not hold")
	}
	h := p.hold.Load()
	done := make(chan struct{})
	go func() { h.Wait(); close(done) }()
	p.Release()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Release did not end the wait")
	}
	if p.Held() {
		t.Fatal("held after Release")
	}
}

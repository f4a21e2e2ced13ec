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

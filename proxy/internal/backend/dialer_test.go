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

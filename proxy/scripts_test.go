package proxy

import (
	"bytes"
	"strings"
	"testing"
)

// TestScriptCache checks what the proxy's script cache promises: a shard
// without a known script gets it once, upper-case shas find it, a
// reconnected shard gets it again, the oldest bodies go past the bound,
// and forget and flush leave nothing.
func TestScriptCache(t *testing.T) {
	var sc scriptCache
	body := []byte("return 1")
	sha := scriptSHA(body)
	if !sc.seen(body, "a") || sc.seen(body, "a") {
		t.Fatal("seen: a body is new once")
	}
	tests := []struct {
		sha, addr string
		want      []byte
	}{
		{sha, "a", nil},                     // where its EVAL ran
		{sha, "b", body},                    // elsewhere, once
		{strings.ToUpper(sha), "b", nil},    // then never again, however spelt
		{strings.ToUpper(sha), "c", body},   // upper case finds it
		{strings.Repeat("0", 40), "d", nil}, // unknown
	}
	for _, tt := range tests {
		if got := sc.toLoad([]byte(tt.sha), tt.addr); !bytes.Equal(got, tt.want) {
			t.Errorf("toLoad(%s, %s) = %q, want %q", tt.sha, tt.addr, got, tt.want)
		}
	}
	sc.shardConnected("b")
	if got := sc.toLoad([]byte(sha), "b"); !bytes.Equal(got, body) {
		t.Errorf("toLoad on a reconnected shard = %q, want the body", got)
	}

	big := func(c byte) []byte { return bytes.Repeat([]byte{c}, maxScriptBytes/2-1) }
	sc.seen(big('x'))
	sc.seen(big('y'))
	if sc.known([]byte(sha)) || !sc.known([]byte(scriptSHA(big('x')))) || !sc.known([]byte(scriptSHA(big('y')))) {
		t.Error("past the bound, the oldest body is not the one forgotten")
	}
	if sc.seen(bytes.Repeat([]byte{'z'}, maxScriptBytes+1), "a") {
		t.Error("a body over the bound was kept")
	}
	sc.forget(big('x'))
	if sc.known([]byte(scriptSHA(big('x')))) || sc.bytes != len(big('y')) || len(sc.order) != 1 {
		t.Errorf("after forget: bytes %d, order %d", sc.bytes, len(sc.order))
	}
	sc.flush()
	if sc.known([]byte(scriptSHA(big('y')))) || sc.toLoad([]byte(scriptSHA(big('y'))), "q") != nil {
		t.Error("a script is known after flush")
	}
}

package snapshot

import (
	"fmt"
	"testing"
)

func TestPrefixTopExact(t *testing.T) {
	p := newPrefixTop()
	for i := range 100 {
		p.add([]byte(fmt.Sprintf("user:%d", i)), 10)
		p.add([]byte(fmt.Sprintf("session:%d:x", i)), 3)
	}
	p.add([]byte("plain"), 7)
	p.add([]byte(":odd"), 7)
	got := p.top(5)
	want := []PrefixReport{{Prefix: "user:", Keys: 100, Bytes: 1000}, {Prefix: "session:", Keys: 100, Bytes: 300}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("top = %+v, want %+v", got, want)
	}
	if p.none != 14 {
		t.Errorf("bytes without a prefix = %d, want 14", p.none)
	}
}

// With fewer counters than prefixes, one holding more than 1/max of the
// bytes is kept, its count never under the truth and over it by at most
// OverBytes.
func TestPrefixTopBounded(t *testing.T) {
	p := newPrefixTop()
	p.max = 8
	var heavy int64
	for i := range 10000 {
		p.add([]byte(fmt.Sprintf("p%d:k", i)), 1) // 10000 distinct light prefixes
		if i%4 == 0 {
			p.add([]byte("hot:k"), 5)
			heavy += 5
		}
	}
	if len(p.h) != 8 {
		t.Fatalf("%d counters, want 8", len(p.h))
	}
	top := p.top(1)[0]
	if top.Prefix != "hot:" || top.Bytes < heavy || top.Bytes-top.OverBytes > heavy {
		t.Fatalf("top = %+v, want hot: with %d bytes", top, heavy)
	}
}

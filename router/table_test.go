package router

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func mustTable(t testing.TB, epoch uint64, shards []Shard) *Table {
	t.Helper()
	tab, err := NewTable(epoch, shards)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tab
}

func threeShards() []Shard {
	return []Shard{
		{Addr: "127.0.0.1:7001", Ranges: []Range{{0, 5460}}},
		{Addr: "127.0.0.1:7002", Ranges: []Range{{5461, 10922}}},
		{Addr: "127.0.0.1:7003", Ranges: []Range{{10923, 16383}}},
	}
}

func TestNewTableErrors(t *testing.T) {
	tests := []struct {
		name   string
		shards []Shard
		want   string
	}{
		{"none", nil, "router: no shards"},
		{"no address", []Shard{{Ranges: []Range{{0, 16383}}}}, "router: shard 0 has no address"},
		{"duplicate", []Shard{
			{Addr: "a:1", Ranges: []Range{{0, 100}}},
			{Addr: "a:1", Ranges: []Range{{101, 16383}}},
		}, "router: shard a:1 is listed twice"},
		{"no slots", []Shard{
			{Addr: "a:1", Ranges: []Range{{0, 16383}}},
			{Addr: "b:1"},
		}, "router: shard b:1 owns no slots"},
		{"reversed range", []Shard{{Addr: "a:1", Ranges: []Range{{10, 5}}}}, "router: shard a:1: bad slot range 10-5"},
		{"range past end", []Shard{{Addr: "a:1", Ranges: []Range{{0, 16384}}}}, "router: shard a:1: bad slot range 0-16384"},
		{"gap", []Shard{
			{Addr: "a:1", Ranges: []Range{{0, 5460}}},
			{Addr: "b:1", Ranges: []Range{{5462, 16383}}},
		}, "router: slot 5461 is not owned by any shard"},
		{"missing end", []Shard{{Addr: "a:1", Ranges: []Range{{0, 16382}}}}, "router: slot 16383 is not owned by any shard"},
		{"overlap", []Shard{
			{Addr: "a:1", Ranges: []Range{{0, 5461}}},
			{Addr: "b:1", Ranges: []Range{{5461, 16383}}},
		}, "router: slot 5461 is owned twice (by a:1 and b:1)"},
		{"self overlap", []Shard{{Addr: "a:1", Ranges: []Range{{0, 16383}, {7, 7}}}}, "router: slot 7 is listed twice for shard a:1"},
		// The lowest bad slot is named, whatever order the shards come in.
		{"lowest first", []Shard{
			{Addr: "a:1", Ranges: []Range{{9000, 9000}, {0, 8999}}},
			{Addr: "b:1", Ranges: []Range{{9000, 16383}, {100, 100}}},
		}, "router: slot 100 is owned twice (by a:1 and b:1)"},
		{"missing before doubled", []Shard{
			{Addr: "a:1", Ranges: []Range{{1, 16383}}},
			{Addr: "b:1", Ranges: []Range{{16383, 16383}}},
		}, "router: slot 0 is not owned by any shard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTable(1, tt.shards)
			if err == nil {
				t.Fatalf("NewTable succeeded, want error %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error = %q, want %q", got, tt.want)
			}
			if !errors.Is(err, ErrBadTopology) {
				t.Errorf("error %q does not wrap ErrBadTopology", err)
			}
		})
	}
}

func TestNewTableTooManyShards(t *testing.T) {
	shards := make([]Shard, NumSlots+1)
	_, err := NewTable(1, shards)
	if err == nil || !strings.Contains(err.Error(), "too many shards") {
		t.Errorf("NewTable(%d shards) error = %v, want too many shards", len(shards), err)
	}
}

func TestNewTableManyOverlappingRanges(t *testing.T) {
	// 100000 copies of the full range: checked in one pass over the slots,
	// not once per range.
	rs := make([]Range, 100000)
	for i := range rs {
		rs[i] = Range{0, NumSlots - 1}
	}
	_, err := NewTable(1, []Shard{{Addr: "a:1", Ranges: rs}})
	if want := "router: slot 0 is listed twice for shard a:1"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestTableLookup(t *testing.T) {
	tab := mustTable(t, 7, threeShards())
	if got, want := tab.Epoch(), uint64(7); got != want {
		t.Errorf("Epoch() = %d, want %d", got, want)
	}
	if got, want := tab.NumShards(), 3; got != want {
		t.Errorf("NumShards() = %d, want %d", got, want)
	}
	for _, tt := range []struct {
		slot uint16
		want int
	}{{0, 0}, {5460, 0}, {5461, 1}, {10922, 1}, {10923, 2}, {16383, 2}} {
		if got := tab.ShardOfSlot(tt.slot); got != tt.want {
			t.Errorf("ShardOfSlot(%d) = %d, want %d", tt.slot, got, tt.want)
		}
	}
	for _, key := range []string{"foo", "bar", "{user1000}.following", ""} {
		if got, want := tab.ShardOf([]byte(key)), tab.ShardOfSlot(Slot([]byte(key))); got != want {
			t.Errorf("ShardOf(%q) = %d, want %d", key, got, want)
		}
	}
	if got, want := tab.Addr(1), "127.0.0.1:7002"; got != want {
		t.Errorf("Addr(1) = %q, want %q", got, want)
	}
	addrs := tab.Addrs()
	addrs[0] = "changed"
	if tab.Addr(0) == "changed" {
		t.Error("Addrs() returned the table's own slice")
	}
}

func TestTableDoesNotAliasInput(t *testing.T) {
	shards := threeShards()
	tab := mustTable(t, 1, shards)
	shards[0].Addr = "changed:1"
	shards[0].Ranges[0] = Range{0, 0}
	if got := tab.Addr(0); got != "127.0.0.1:7001" {
		t.Errorf("Addr(0) = %q after the input changed", got)
	}
	if got := tab.ShardOfSlot(100); got != 0 {
		t.Errorf("ShardOfSlot(100) = %d after the input changed", got)
	}
}

func TestTableShardsMergesRanges(t *testing.T) {
	tests := []struct {
		name string
		in   []Shard
		want []Shard
	}{
		{
			name: "adjacent and unordered ranges merge",
			in: []Shard{
				{Addr: "a:1", Ranges: []Range{{100, 199}, {0, 49}, {50, 99}, {10000, 16383}}},
				{Addr: "b:1", Ranges: []Range{{200, 200}, {201, 9999}}},
			},
			want: []Shard{
				{Addr: "a:1", Ranges: []Range{{0, 199}, {10000, 16383}}},
				{Addr: "b:1", Ranges: []Range{{200, 9999}}},
			},
		},
		{
			name: "interleaved single slots stay apart",
			in: []Shard{
				{Addr: "a:1", Ranges: []Range{{0, 0}, {2, 2}, {4, 16383}}},
				{Addr: "b:1", Ranges: []Range{{1, 1}, {3, 3}}},
			},
			want: []Shard{
				{Addr: "a:1", Ranges: []Range{{0, 0}, {2, 2}, {4, 16383}}},
				{Addr: "b:1", Ranges: []Range{{1, 1}, {3, 3}}},
			},
		},
		{
			name: "one shard",
			in:   []Shard{{Addr: "a:1", Ranges: []Range{{8192, 16383}, {0, 8191}}}},
			want: []Shard{{Addr: "a:1", Ranges: []Range{{0, 16383}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustTable(t, 1, tt.in).Shards()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Shards() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHolder(t *testing.T) {
	t1 := mustTable(t, 1, threeShards())
	t2 := mustTable(t, 2, []Shard{{Addr: "a:1", Ranges: []Range{{0, 16383}}}})
	h := NewHolder(t1)
	if got := h.Load(); got != t1 {
		t.Fatalf("Load() = %p, want %p", got, t1)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				if e := h.Load().Epoch(); e != 1 && e != 2 {
					t.Errorf("Load().Epoch() = %d", e)
					return
				}
			}
		}()
	}
	h.Store(t2)
	wg.Wait()
	if got := h.Load(); got != t2 {
		t.Errorf("Load() after Store = %p, want %p", got, t2)
	}
}

func TestShardOfAllocs(t *testing.T) {
	h := NewHolder(mustTable(t, 1, threeShards()))
	key := []byte("{user1000}.following")
	if n := testing.AllocsPerRun(100, func() { _ = h.Load().ShardOf(key) }); n != 0 {
		t.Errorf("Holder.Load().ShardOf allocates %v times per call, want 0", n)
	}
}

func BenchmarkTableShardOf(b *testing.B) {
	h := NewHolder(mustTable(b, 1, threeShards()))
	key := []byte("{user1000}.following")
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Load().ShardOf(key)
	}
}

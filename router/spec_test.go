package router

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []Shard
	}{
		{
			name: "ranges",
			spec: "127.0.0.1:7001=0-5000/8000-9000,127.0.0.1:7002=5001-7999/9001-16383",
			want: []Shard{
				{Addr: "127.0.0.1:7001", Ranges: []Range{{0, 5000}, {8000, 9000}}},
				{Addr: "127.0.0.1:7002", Ranges: []Range{{5001, 7999}, {9001, 16383}}},
			},
		},
		{
			name: "no ranges splits like redis-cli",
			spec: "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
			want: []Shard{
				{Addr: "127.0.0.1:7001", Ranges: []Range{{0, 5460}}},
				{Addr: "127.0.0.1:7002", Ranges: []Range{{5461, 10922}}},
				{Addr: "127.0.0.1:7003", Ranges: []Range{{10923, 16383}}},
			},
		},
		{
			name: "sentinel masters",
			spec: "sentinel:cache-a=0-8191,sentinel:cache_b.2=8192-16383",
			want: []Shard{
				{Addr: "sentinel:cache-a", Ranges: []Range{{0, 8191}}},
				{Addr: "sentinel:cache_b.2", Ranges: []Range{{8192, 16383}}},
			},
		},
		{
			name: "replicas",
			spec: "a:1+a:2+a:3=0-8191, b:1 + b:2=8192-16383",
			want: []Shard{
				{Addr: "a:1", Replicas: []string{"a:2", "a:3"}, Ranges: []Range{{0, 8191}}},
				{Addr: "b:1", Replicas: []string{"b:2"}, Ranges: []Range{{8192, 16383}}},
			},
		},
		{
			name: "one shard",
			spec: "redis:6379",
			want: []Shard{{Addr: "redis:6379", Ranges: []Range{{0, 16383}}}},
		},
		{
			name: "ranges sorted and merged, single slots",
			spec: "a:1=100/0-99/16383, b:2=101-16382",
			want: []Shard{
				{Addr: "a:1", Ranges: []Range{{0, 100}, {16383, 16383}}},
				{Addr: "b:2", Ranges: []Range{{101, 16382}}},
			},
		},
		{
			name: "spaces around entries and ranges",
			spec: " a:1 = 0 - 8191 / 8192-9000 ,\tb:2=9001-16383 ",
			want: []Shard{
				{Addr: "a:1", Ranges: []Range{{0, 9000}}},
				{Addr: "b:2", Ranges: []Range{{9001, 16383}}},
			},
		},
		{
			name: "addresses are canonical",
			spec: "[::1]:7001,[0:0::0:2]:07002,[::ffff:10.0.0.1]:7003,Redis-A.Internal:7004,10.0.0.2:7005,[fe80::1%eth0]:7006",
			want: []Shard{
				{Addr: "[::1]:7001", Ranges: []Range{{0, 2730}}},
				{Addr: "[::2]:7002", Ranges: []Range{{2731, 5460}}},
				{Addr: "10.0.0.1:7003", Ranges: []Range{{5461, 8191}}},
				{Addr: "redis-a.internal:7004", Ranges: []Range{{8192, 10922}}},
				{Addr: "10.0.0.2:7005", Ranges: []Range{{10923, 13652}}},
				{Addr: "[fe80::1%eth0]:7006", Ranges: []Range{{13653, 16383}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSpec(tt.spec)
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tt.spec, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseSpec(%q)\n got %v\nwant %v", tt.spec, got, tt.want)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		{"", "router: empty topology spec"},
		{"  ", "router: empty topology spec"},
		{"a:1,,b:2", "router: topology entry 2 is empty"},
		{"a:1,", "router: topology entry 2 is empty"},
		{"127.0.0.1", `router: topology entry "127.0.0.1": address "127.0.0.1" is not HOST:PORT (write IPv6 as [::1]:6379)`},
		{"::1:7001", `router: topology entry "::1:7001": address "::1:7001" is not HOST:PORT (write IPv6 as [::1]:6379)`},
		{"a:1,127.0.0.1:0", `router: topology entry "127.0.0.1:0": port 0 is out of range 1-65535`},
		{"127.0.0.1:65536", `router: topology entry "127.0.0.1:65536": port 65536 is out of range 1-65535`},
		{"127.0.0.1:123456", `router: topology entry "127.0.0.1:123456": port "123456" is not a number in 1-65535`},
		{"127.0.0.1:http", `router: topology entry "127.0.0.1:http": port "http" is not a number in 1-65535`},
		{"127.0.0.1:+7", `router: topology entry "127.0.0.1:+7": port "" is not a number in 1-65535`},
		{"sentinel:", `router: topology entry "sentinel:": "" is not a Sentinel master name (letters, digits and ._-)`},
		{"sentinel:a b", `router: topology entry "sentinel:a b": "a b" is not a Sentinel master name (letters, digits and ._-)`},
		{"sentinel:a+b:1", `router: topology entry "sentinel:a+b:1": a sentinel: shard's replicas are the ones Sentinel knows; list none`},
		{"sentinel:a,sentinel:a", `router: topology entry "sentinel:a": address sentinel:a is already listed in entry "sentinel:a"`},
		{"a:1+a:1", `router: topology entry "a:1+a:1": address a:1 is already listed in entry "a:1+a:1"`},
		{"a:1+b:2,b:2", `router: topology entry "b:2": address b:2 is already listed in entry "a:1+b:2"`},
		{"a:1+", `router: topology entry "a:1+": address "" is not HOST:PORT (write IPv6 as [::1]:6379)`},
		{"127.0.0.1:", `router: topology entry "127.0.0.1:": port "" is not a number in 1-65535`},
		{":7001", `router: topology entry ":7001": address ":7001" has no host`},
		{"[127.0.0.1]:7001", `router: topology entry "[127.0.0.1]:7001": "[127.0.0.1]" is not an IPv6 address`},
		{"[redis]:7001", `router: topology entry "[redis]:7001": "[redis]" is not an IPv6 address`},
		{"10.0.0.256:7001", `router: topology entry "10.0.0.256:7001": "10.0.0.256" is not an IPv4 address or host name`},
		{"bad!host:7001", `router: topology entry "bad!host:7001": "bad!host" is not an IPv4 address or host name`},
		{"-bad:7001", `router: topology entry "-bad:7001": "-bad" is not an IPv4 address or host name`},
		{"a..b:7001", `router: topology entry "a..b:7001": "a..b" is not an IPv4 address or host name`},
		{"a:1,A:01", `router: topology entry "A:01": address a:1 is already listed in entry "a:1"`},
		{"[::1]:7001,[0::1]:7001", `router: topology entry "[0::1]:7001": address [::1]:7001 is already listed in entry "[::1]:7001"`},
		{"a:1=0-8191,b:1", `router: topology entry "a:1=0-8191" has slot ranges but entry "b:1" has none: give ranges for every shard or for none`},
		{"b:1,a:1=0-8191", `router: topology entry "a:1=0-8191" has slot ranges but entry "b:1" has none: give ranges for every shard or for none`},
		{"a:1=", `router: topology entry "a:1=": no slot ranges after '='`},
		{"a:1=0-16384", `router: topology entry "a:1=0-16384": slot 16384 in "0-16384" is out of range 0-16383`},
		{"a:1=5-3", `router: topology entry "a:1=5-3": slot range "5-3" ends before it starts`},
		{"a:1=x", `router: topology entry "a:1=x": bad slot range "x" (want A-B or A with slots 0-16383)`},
		{"a:1=-5", `router: topology entry "a:1=-5": bad slot range "-5" (want A-B or A with slots 0-16383)`},
		{"a:1=0-5-6", `router: topology entry "a:1=0-5-6": bad slot range "0-5-6" (want A-B or A with slots 0-16383)`},
		{"a:1=0-100//200", `router: topology entry "a:1=0-100//200": bad slot range "" (want A-B or A with slots 0-16383)`},
		{"a:1=0-16383=5", `router: topology entry "a:1=0-16383=5": bad slot range "0-16383=5" (want A-B or A with slots 0-16383)`},
		{"127.0.0.1:7001=0-5460,127.0.0.1:7002=5462-16383", "router: slot 5461 is not owned by any shard"},
		{"127.0.0.1:7001=0-5461,127.0.0.1:7002=5461-16383", "router: slot 5461 is owned twice (by 127.0.0.1:7001 and 127.0.0.1:7002)"},
		{"a:1=0-16383/7", "router: slot 7 is listed twice for shard a:1"},
	}
	for _, tt := range tests {
		_, err := ParseSpec(tt.spec)
		if err == nil {
			t.Errorf("ParseSpec(%q) succeeded, want error %q", tt.spec, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("ParseSpec(%q) error\n got %s\nwant %s", tt.spec, got, tt.want)
		}
		if !errors.Is(err, ErrBadTopology) {
			t.Errorf("ParseSpec(%q) error %q does not wrap ErrBadTopology", tt.spec, err)
		}
	}
}

func TestParseShardArgs(t *testing.T) {
	got, err := ParseShardArgs([]string{"127.0.0.1:7001=0-8191", " 127.0.0.1:7002=8192-16383"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Shard{
		{Addr: "127.0.0.1:7001", Ranges: []Range{{0, 8191}}},
		{Addr: "127.0.0.1:7002", Ranges: []Range{{8192, 16383}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseShardArgs = %v, want %v", got, want)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "router: no shards given"},
		{[]string{"a:1", ""}, "router: topology entry 2 is empty"},
		// A comma is not a separator here: the whole argument is one entry.
		{[]string{"a:1,b:2"}, `router: topology entry "a:1,b:2": give one shard per argument, without commas`},
		{[]string{"a:1=0-8191,b:2=8192-16383"}, `router: topology entry "a:1=0-8191,b:2=8192-16383": give one shard per argument, without commas`},
	} {
		_, err := ParseShardArgs(tt.args)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseShardArgs(%q) error = %v, want %s", tt.args, err, tt.want)
		}
	}
}

func TestFormatSpec(t *testing.T) {
	tests := []struct {
		name   string
		shards []Shard
		want   string
	}{
		{"empty", nil, ""},
		{"no ranges", []Shard{{Addr: "a:1"}, {Addr: "b:2"}}, "a:1,b:2"},
		{"ranges", []Shard{
			{Addr: "127.0.0.1:7001", Ranges: []Range{{8000, 9000}, {0, 5000}}},
			{Addr: "127.0.0.1:7002", Ranges: []Range{{5001, 7999}, {9001, 16383}}},
		}, "127.0.0.1:7001=0-5000/8000-9000,127.0.0.1:7002=5001-7999/9001-16383"},
		{"single slots and merging", []Shard{
			{Addr: "[::1]:1", Ranges: []Range{{5, 5}, {0, 4}, {7, 7}, {16383, 16383}}},
		}, "[::1]:1=0-5/7/16383"},
	}
	for _, tt := range tests {
		if got := FormatSpec(tt.shards); got != tt.want {
			t.Errorf("%s: FormatSpec = %q, want %q", tt.name, got, tt.want)
		}
	}
	// FormatSpec must not reorder its argument.
	in := []Shard{{Addr: "a:1", Ranges: []Range{{10, 16383}, {0, 9}}}}
	FormatSpec(in)
	if in[0].Ranges[0] != (Range{10, 16383}) {
		t.Errorf("FormatSpec changed its input: %v", in)
	}
}

func TestSpecRoundTrip(t *testing.T) {
	for _, spec := range []string{
		"127.0.0.1:7001=0-5000/8000-9000,127.0.0.1:7002=5001-7999/9001-16383",
		"a:1,b:2,c:3,d:4,e:5",
		"[::1]:7001=0/2/4-16383,[::1]:7002=1/3",
		"host.example:6379",
		"a:1+a:2=0-100,b:1+b:2+b:3=101-16383",
	} {
		shards, err := ParseSpec(spec)
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", spec, err)
		}
		text := FormatSpec(shards)
		again, err := ParseSpec(text)
		if err != nil {
			t.Fatalf("ParseSpec(FormatSpec(%q) = %q): %v", spec, text, err)
		}
		if !reflect.DeepEqual(again, shards) {
			t.Errorf("round trip of %q via %q\n got %v\nwant %v", spec, text, again, shards)
		}
		if got := FormatSpec(mustTable(t, 1, shards).Shards()); got != text {
			t.Errorf("FormatSpec(table of %q) = %q, want %q", spec, got, text)
		}
	}
}

func TestEvenRangesKnown(t *testing.T) {
	tests := []struct {
		n    int
		want []Range
	}{
		{1, []Range{{0, 16383}}},
		{2, []Range{{0, 8191}, {8192, 16383}}},
		{3, []Range{{0, 5460}, {5461, 10922}, {10923, 16383}}},
		{5, []Range{{0, 3276}, {3277, 6553}, {6554, 9829}, {9830, 13106}, {13107, 16383}}},
	}
	for _, tt := range tests {
		if got := evenRanges(tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("evenRanges(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

// TestEvenRangesGolden compares with what redis-cli 7.0 printed for 3 to 64
// masters (see split_integration_test.go for how the file was made).
func TestEvenRangesGolden(t *testing.T) {
	golden := readSplitGolden(t)
	for n := 3; n <= 64; n++ {
		want, ok := golden[n]
		if !ok {
			t.Fatalf("%s has no line for %d shards", splitGolden, n)
		}
		if got := evenRanges(n); !equalLasts(got, want) {
			t.Errorf("evenRanges(%d) = %v, redis-cli ends shards at %v", n, got, want)
		}
	}
}

func TestEvenRangesProperties(t *testing.T) {
	ns := []int{1000, 4096, 10000, 16383, NumSlots}
	for n := 1; n <= 64; n++ {
		ns = append(ns, n)
	}
	for _, n := range ns {
		rs := evenRanges(n)
		next := 0
		lo, hi := NumSlots/n, (NumSlots+n-1)/n
		for i, r := range rs {
			size := int(r.To) - int(r.From) + 1
			if int(r.From) != next || r.To < r.From {
				t.Fatalf("n=%d: shard %d has %v after slot %d", n, i, r, next-1)
			}
			// Rounding the cursor can give a shard one slot more or less
			// than an exact split.
			if size < lo-1 || size > hi+1 {
				t.Errorf("n=%d: shard %d has %d slots, want %d-%d", n, i, size, lo-1, hi+1)
			}
			next = int(r.To) + 1
		}
		if next != NumSlots {
			t.Errorf("n=%d: ranges end at %d", n, next-1)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:7001=0-5000/8000-9000,127.0.0.1:7002=5001-7999/9001-16383",
		"127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
		"[::1]:7001=0/2/4-16383,[::ffff:1.2.3.4]:7002=1/3",
		"a:1=0-16383",
		"Host.Example:06379",
		"a:1=,b:2",
		"[fe80::1%eth0]:1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		shards, err := ParseSpec(spec)
		if err != nil {
			if !errors.Is(err, ErrBadTopology) {
				t.Fatalf("ParseSpec(%q) error %q does not wrap ErrBadTopology", spec, err)
			}
			return
		}
		text := FormatSpec(shards)
		again, err := ParseSpec(text)
		if err != nil {
			t.Fatalf("ParseSpec(%q) accepted, but its FormatSpec %q is rejected: %v", spec, text, err)
		}
		if !reflect.DeepEqual(again, shards) {
			t.Fatalf("ParseSpec(%q) = %v, but after FormatSpec %q it is %v", spec, shards, text, again)
		}
		if strings.ContainsAny(text, " \t") {
			t.Fatalf("canonical spec %q has spaces", text)
		}
		if _, err := NewTable(1, shards); err != nil {
			t.Fatalf("ParseSpec(%q) accepted shards that NewTable rejects: %v", spec, err)
		}
	})
}

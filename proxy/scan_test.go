package proxy

import (
	"math/big"
	"strings"
	"testing"
)

func TestParseScanCursor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"", 0, true}, // strtoul("") is 0 with nothing left over
		{"17", 17, true},
		{"007", 7, true},
		{"+5", 5, true},
		{"-0", 0, true},
		{"-1", 1<<64 - 1, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false},
		{"-18446744073709551616", 0, false},
		{"+", 0, false},
		{"-", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"0x1", 0, false},
		{"1.0", 0, false},
		{"abc", 0, false},
		{"+-1", 0, false},
	} {
		got, ok := parseScanCursor([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseScanCursor(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseScanCursor checks the parser against strtoul's rules computed
// with big integers.
func FuzzParseScanCursor(f *testing.F) {
	for _, s := range []string{"0", "", "-1", "+7", "18446744073709551615", "18446744073709551616", " 1", "1a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseScanCursor([]byte(s))
		digits := strings.TrimLeft(s, "+-")
		wantOK := len(s)-len(digits) <= 1 && (s == "" || digits != "") && strings.Trim(digits, "0123456789") == ""
		var want uint64
		if wantOK && digits != "" {
			n, _ := new(big.Int).SetString(digits, 10)
			if n.BitLen() > 64 {
				wantOK = false
			} else {
				want = n.Uint64()
				if s[0] == '-' {
					want = -want
				}
			}
		}
		if ok != wantOK || (ok && got != want) {
			t.Errorf("parseScanCursor(%q) = %d, %v; want %d, %v", s, got, ok, want, wantOK)
		}
	})
}

func TestNextScanCursor(t *testing.T) {
	for _, tc := range []struct {
		shard, nshards int
		shardCursor    uint64
		want           uint64
		ok             bool
	}{
		{0, 3, 0, 1, true},
		{1, 3, 0, 2, true},
		{2, 3, 0, 0, true},
		{0, 1, 0, 0, true},
		{0, 3, 1, 1 << scanShardBits, true},
		{2, 3, 5, 5<<scanShardBits | 2, true},
		{16383, 16384, scanMaxShardCursor, scanMaxShardCursor<<scanShardBits | 16383, true},
		{1, 3, scanMaxShardCursor + 1, 0, false},
	} {
		got, ok := nextScanCursor(tc.shard, tc.nshards, tc.shardCursor)
		if got != tc.want || ok != tc.ok {
			t.Errorf("nextScanCursor(%d, %d, %d) = %d, %v; want %d, %v", tc.shard, tc.nshards, tc.shardCursor, got, ok, tc.want, tc.ok)
		}
		if ok && got >= 1<<63 {
			t.Errorf("nextScanCursor(%d, %d, %d) = %d, not below 2^63", tc.shard, tc.nshards, tc.shardCursor, got)
		}
		// A cursor that continues a shard decodes to that shard and cursor.
		if ok && tc.shardCursor != 0 && (got&scanShardMask != uint64(tc.shard) || got>>scanShardBits != tc.shardCursor) {
			t.Errorf("cursor %d does not decode to shard %d, cursor %d", got, tc.shard, tc.shardCursor)
		}
	}
}

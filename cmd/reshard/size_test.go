package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "512": 512, "1k": 1000, "1kb": 1024, "1KB": 1024, "32mb": 32 << 20, "32m": 32e6,
		"1g": 1e9, "1gb": 1 << 30, " 8mb ": 8 << 20, "100b": 100,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "mb", "-1", "+1", "1.5mb", "1tb", "1 mb x", "9223372036854775807kb"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{0: "0", 512: "512", 1024: "1kb", 32 << 20: "32mb", 1 << 30: "1gb", 1e9: "1000000000", 1536 << 10: "1536kb"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %s, want %s", n, got, want)
		}
		if back, err := parseSize(formatSize(n)); err != nil || back != n {
			t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, back, err)
		}
	}
}

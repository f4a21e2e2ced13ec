package resp

import (
	"regexp"
	"strconv"
	"testing"
)

func TestParseInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"-1", -1, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false}, // overflow
		{"-9223372036854775807", -(1<<63 - 1), true},
		{"9999999999999999999", 0, false}, // overflow that a naive loop wraps
		{"", 0, false}, {"-", 0, false}, {"+1", 0, false}, {" 1", 0, false},
		{"1x", 0, false}, {"12345678901234567890", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseInt([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseInt(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// strictForm is what RESP writes: an optional '-' and 1 to 19 digits.
var strictForm = regexp.MustCompile(`^-?[0-9]{1,19}$`)

// FuzzParseInt checks ParseInt against strconv: whatever it accepts strconv
// reads the same; in the strict form it accepts exactly what strconv does
// (refusing only overflow); outside it, it accepts nothing.
func FuzzParseInt(f *testing.F) {
	for _, s := range []string{"0", "-5", "9223372036854775807", "9999999999999999999", "+1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseInt([]byte(s))
		want, err := strconv.ParseInt(s, 10, 64)
		switch {
		case ok && (err != nil || got != want):
			t.Fatalf("ParseInt(%q) = %d, strconv says %d, %v", s, got, want, err)
		case strictForm.MatchString(s) && ok != (err == nil):
			t.Fatalf("ParseInt(%q) ok=%v, strconv err=%v", s, ok, err)
		case !strictForm.MatchString(s) && ok:
			t.Fatalf("ParseInt(%q) accepted a non-RESP number", s)
		}
	})
}

package resp

import (
	"slices"
	"testing"
)

func TestAuthArgs(t *testing.T) {
	for _, tc := range []struct {
		user, pass string
		want       []string
	}{
		{"", "", nil},
		{"alice", "", nil}, // a user without a password sends nothing
		{"", "pw", []string{"AUTH", "pw"}},
		{"alice", "pw", []string{"AUTH", "alice", "pw"}},
	} {
		if got := AuthArgs(tc.user, tc.pass); !slices.Equal(got, tc.want) {
			t.Errorf("AuthArgs(%q, %q) = %q, want %q", tc.user, tc.pass, got, tc.want)
		}
	}
}

package proxy

import "testing"

// Which patterns can match a keyspace notification's channel, and so are
// subscribed on every shard.
func TestGlobMayMatchPrefix(t *testing.T) {
	for _, tc := range []struct {
		pat  string
		want bool
	}{
		{"*", true},
		{"__key*__:*", true},
		{"__keyspace@0__:*", true},
		{"__keyevent@*", true},
		{"__keyspace@0__:foo", true},
		{"__key?pace@*", true},
		{"__key[sx]pace@*", true},
		{"__key[^s]pace@*", false},
		{"__key[a-z]vent@*", true},
		{"__key[z-a]vent@*", true},
		{"__key[", true}, // unterminated: in doubt, yes
		{"\\_\\_key*", true},
		{"__k", false}, // "__k" itself only
		{"news", false},
		{"n*", false},
		{"_*", true},
		{"__keyspace", false},
		{"__keyx*", false},
		{"?", false},
		{"__keyspace@0__:?*", true},
	} {
		got := globMayMatchPrefix([]byte(tc.pat), keyspacePrefix) || globMayMatchPrefix([]byte(tc.pat), keyeventPrefix)
		if got != tc.want {
			t.Errorf("globMayMatchPrefix(%q) = %v, want %v", tc.pat, got, tc.want)
		}
	}
}

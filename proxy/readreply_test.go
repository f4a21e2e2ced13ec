package proxy_test

import (
	"bufio"
	"strings"
	"testing"
)

// The integration tests' reply reader must tell every RESP3 type apart, or
// a proxy that answers with the wrong one would compare equal.
func TestReadReply(t *testing.T) {
	for _, tc := range []struct{ wire, want string }{
		{"+OK\r\n", "+OK"},
		{"-ERR x\r\n", "-ERR x"},
		{":-3\r\n", ":-3"},
		{"$3\r\na\r\n\r\n", `"a\r\n"`},
		{"$-1\r\n", "(nil)"},
		{"*-1\r\n", "(nil array)"},
		{"*2\r\n$1\r\na\r\n*0\r\n", `["a", []]`},
		{"_\r\n", "_"},
		{"#t\r\n", "#t"},
		{"#f\r\n", "#f"},
		{",1.5\r\n", ",1.5"},
		{",-inf\r\n", ",-inf"},
		{"(123456789012345678901234567890\r\n", "(123456789012345678901234567890"},
		{"=7\r\ntxt:a\r\n\r\n", `="txt:a\r\n"`},
		{"!5\r\nERR x\r\n", `!"ERR x"`},
		{"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n", `%{"a": :1, "b": _}`},
		{"~2\r\n$1\r\na\r\n,2\r\n", `~["a", ,2]`},
		{">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n", `>["message", "ch", "m"]`},
		{"|1\r\n$3\r\nttl\r\n:5\r\n$1\r\nv\r\n", `|{"ttl": :5} "v"`},
		{"*1\r\n%1\r\n+k\r\n~1\r\n#t\r\n", `[%{+k: ~[#t]}]`},
	} {
		v, err := readReply(bufio.NewReader(strings.NewReader(tc.wire)))
		if got := render(v); err != nil || got != tc.want {
			t.Errorf("readReply(%q) = %s, %v; want %s", tc.wire, got, err, tc.want)
		}
	}
	for _, wire := range []string{
		"$?\r\n;1\r\na\r\n;0\r\n", // streamed, which Redis never sends
		"*?\r\n:1\r\n.\r\n",
		"_x\r\n",
		"#x\r\n",
		",one\r\n",
		"(1.5\r\n",
		"=2\r\nab\r\n", // no format
		"%-1\r\n",
		"$1\r\nab\r\n",
		"?\r\n",
	} {
		if v, err := readReply(bufio.NewReader(strings.NewReader(wire))); err == nil {
			t.Errorf("readReply(%q) = %s, want an error", wire, render(v))
		}
	}
}

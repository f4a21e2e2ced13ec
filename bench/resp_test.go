package bench

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"set", appendSet(nil, []byte("k:1"), []byte("abc")), "*3\r\n$3\r\nSET\r\n$3\r\nk:1\r\n$3\r\nabc\r\n"},
		{"set-empty-value", appendSet(nil, []byte("k"), nil), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"},
		{"get", appendGet(nil, []byte("key")), "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"},
		{"auth", appendAuth(nil, "p\r\nw"), "*2\r\n$4\r\nAUTH\r\n$4\r\np\r\nw\r\n"},
		{"appends", appendGet([]byte("x"), []byte("")), "x*2\r\n$3\r\nGET\r\n$0\r\n\r\n"},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

type reply struct {
	isErr bool
	text  string
}

func readAll(in string) ([]reply, error) {
	rr := replyReader{r: bufio.NewReaderSize(strings.NewReader(in), 48)}
	var out []reply
	for {
		isErr, text, err := rr.next()
		if err != nil {
			return out, err
		}
		out = append(out, reply{isErr, string(text)})
	}
}

func TestReplyReader(t *testing.T) {
	tests := []struct {
		in      string
		want    []reply
		wantErr error // after the replies; io.EOF for a clean end
	}{
		{"+OK\r\n", []reply{{false, ""}}, io.EOF},
		{"+\r\n:0\r\n:-12\r\n", []reply{{}, {}, {}}, io.EOF},
		{"-ERR wrong\r\n-NOAUTH Authentication required.\r\n", []reply{{true, "ERR wrong"}, {true, "NOAUTH Authentication required."}}, io.EOF},
		{"$-1\r\n$0\r\n\r\n$5\r\nhe\r\no\r\n", []reply{{}, {}, {}}, io.EOF},
		// A bulk longer than the reader's buffer is skipped, not held.
		{"$70\r\n" + strings.Repeat("v", 70) + "\r\n+OK\r\n", []reply{{}, {}}, io.EOF},
		// An error inside an array (EXEC) is not a failed command.
		{"*3\r\n+OK\r\n-ERR x\r\n*2\r\n$1\r\na\r\n:1\r\n*-1\r\n*0\r\n", []reply{{}, {}, {}}, io.EOF},
		{"+OK\r\n$3\r\nab\r\n", []reply{{}}, io.ErrUnexpectedEOF},
		{"$3\r\nabcde\r\n", nil, errProtocol},
		{"$-2\r\n", nil, errProtocol},
		{":12a\r\n", nil, errProtocol},
		{"%1\r\n", nil, errProtocol}, // RESP3 is never negotiated
		{"+OK\n", nil, errProtocol},
		{"\r\n", nil, errProtocol},
		{"+" + strings.Repeat("x", 70) + "\r\n", nil, errProtocol}, // longer than the buffer
		{strings.Repeat("*1\r\n", maxReplyDepth+1) + ":1\r\n", nil, errProtocol},
		{strings.Repeat("*1\r\n", maxReplyDepth) + ":1\r\n", []reply{{}}, io.EOF},
		{"+OK\r", nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		got, err := readAll(tt.in)
		if len(got) != len(tt.want) {
			t.Errorf("%q: got %d replies %v, want %d %v", tt.in, len(got), got, len(tt.want), tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%q: reply %d = %+v, want %+v", tt.in, i, got[i], tt.want[i])
			}
		}
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%q: error %v, want %v", tt.in, err, tt.wantErr)
		}
	}
}

// FuzzReplyReader checks that no input makes the reader panic or loop, and
// that what it accepts as whole replies is consumed exactly.
func FuzzReplyReader(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*2\r\n$1\r\na\r\n*1\r\n:2\r\n", "*-1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		rr := replyReader{r: bufio.NewReaderSize(r, 16)}
		for range len(in) + 1 {
			if _, _, err := rr.next(); err != nil {
				return
			}
		}
		t.Fatalf("%q: more replies than bytes", in)
	})
}

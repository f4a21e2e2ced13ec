package bench

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/resp"
)

// The framing itself is tested and fuzzed in internal/resp; these tests
// are for what the load makes of a reply.

type result struct {
	isErr bool
	text  string
}

func readResults(in string) ([]result, error) {
	w := &worker{br: bufio.NewReaderSize(strings.NewReader(in), 48)}
	var out []result
	for {
		isErr, text, err := w.readResult()
		if err != nil {
			return out, err
		}
		out = append(out, result{isErr, string(text)})
	}
}

func TestReadResult(t *testing.T) {
	tests := []struct {
		in      string
		want    []result
		wantErr error // after the replies; io.EOF for a clean end
	}{
		{"+OK\r\n:1\r\n$-1\r\n", []result{{}, {}, {}}, io.EOF},
		{"-ERR wrong\r\n-NOAUTH Authentication required.\r\n-\r\n", []result{{true, "ERR wrong"}, {true, "NOAUTH Authentication required."}, {true, ""}}, io.EOF},
		// A bulk longer than the reader's buffer is skipped, not held.
		{"$70\r\n" + strings.Repeat("v", 70) + "\r\n+OK\r\n", []result{{}, {}}, io.EOF},
		// An error inside an array (EXEC) is not a failed command.
		{"*3\r\n+OK\r\n-ERR x\r\n*2\r\n$1\r\na\r\n:1\r\n-ERR after\r\n", []result{{}, {true, "ERR after"}}, io.EOF},
		{"+OK\r\n$3\r\nab\r\n", []result{{}}, io.ErrUnexpectedEOF},
		{"-ERR cut", nil, io.ErrUnexpectedEOF},
		{"$3\r\nabcde\r\n", nil, resp.ErrProtocol},
		{"-" + strings.Repeat("x", 70) + "\r\n", nil, resp.ErrProtocol}, // longer than the buffer
	}
	for _, tt := range tests {
		got, err := readResults(tt.in)
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

func TestAdminReply(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"+OK\r\n", "OK", ""},
		{":42\r\n", "42", ""},
		{"$5\r\nhe\r\no\r\n", "he\r\no", ""},
		{"$-1\r\n", "", ""},
		{"*2\r\n+a\r\n-ERR inside\r\n", "", ""}, // an array is skipped
		{"-ERR no such job\r\n", "", "ERR no such job"},
		{"?\r\n", "", "protocol error"},
		{"$2000000\r\n", "", "protocol error"}, // over maxAdminReply
	}
	for _, tt := range tests {
		a := &adminConn{br: bufio.NewReader(strings.NewReader(tt.in))}
		got, err := a.reply()
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("reply(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("reply(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}

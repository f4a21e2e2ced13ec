package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// bufSize is the readers' buffer in the tests: small, so that lines and
// payloads cross buffer refills.
const bufSize = 48

// skipAll reads replies from in with SkipReply until an error, and returns
// their error texts and that error.
func skipAll(in string) ([]string, error) {
	br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
	var texts []string
	for {
		text, err := SkipReply(br)
		if err != nil {
			return texts, err
		}
		texts = append(texts, text)
	}
}

// readAll does the same with ReadReply and returns the replies.
func readAll(in string, maxLen int) ([]string, error) {
	br := bufio.NewReaderSize(strings.NewReader(in), bufSize)
	var replies []string
	var buf []byte
	for {
		var err error
		buf, err = ReadReply(br, buf[:0], maxLen)
		if err != nil {
			return replies, err
		}
		replies = append(replies, string(buf))
	}
}

func TestReplyReaders(t *testing.T) {
	nested := func(depth int) string { return strings.Repeat("*1\r\n", depth) + ":1\r\n" }
	tests := []struct {
		name    string
		in      string
		want    []string // the error text of each reply SkipReply returns
		wantErr error    // after the replies; io.EOF for a clean end
	}{
		{"status", "+OK\r\n", []string{""}, io.EOF},
		{"empty status and integers", "+\r\n:0\r\n:-12\r\n", []string{"", "", ""}, io.EOF},
		{"errors", "-ERR wrong\r\n-NOAUTH Authentication required.\r\n", []string{"ERR wrong", "NOAUTH Authentication required."}, io.EOF},
		{"bulk strings", "$-1\r\n$0\r\n\r\n$5\r\nhe\r\no\r\n", []string{"", "", ""}, io.EOF},
		{"bulk longer than the buffer", "$70\r\n" + strings.Repeat("v", 70) + "\r\n+OK\r\n", []string{"", ""}, io.EOF},
		{"error in an array", "*3\r\n+OK\r\n-ERR x\r\n*2\r\n$1\r\na\r\n:1\r\n*-1\r\n*0\r\n", []string{"ERR x", "", ""}, io.EOF},
		{"first of two errors", "*3\r\n+OK\r\n-WRONGTYPE x\r\n-ERR y\r\n", []string{"WRONGTYPE x"}, io.EOF},
		{"nested error", "*2\r\n*1\r\n-ERR nested\r\n+OK\r\n", []string{"ERR nested"}, io.EOF},
		{"deepest accepted", nested(MaxDepth), []string{""}, io.EOF},
		{"resp3 map", "%2\r\n+a\r\n:1\r\n$1\r\nb\r\n_\r\n", []string{""}, io.EOF},
		{"resp3 set and push", "~2\r\n#t\r\n,1.5\r\n>2\r\n+message\r\n(12345678901234567890\r\n", []string{"", ""}, io.EOF},
		{"resp3 verbatim", "=8\r\ntxt:abcd\r\n", []string{""}, io.EOF},
		{"resp3 blob error", "!9\r\nERR blobx\r\n*1\r\n!3\r\nERR\r\n", []string{"ERR blobx", "ERR"}, io.EOF},
		{"resp3 attribute", "|1\r\n+key\r\n+val\r\n:5\r\n+OK\r\n", []string{"", ""}, io.EOF},
		{"attribute inside an array", "*2\r\n|1\r\n+k\r\n+v\r\n-ERR a\r\n+OK\r\n", []string{"ERR a"}, io.EOF},
		{"ends inside a reply", "+OK\r\n$3\r\nab\r\n", []string{""}, io.ErrUnexpectedEOF},
		{"ends inside a line", "+OK\r", nil, io.ErrUnexpectedEOF},
		{"ends inside an array", "*2\r\n+OK\r\n", nil, io.ErrUnexpectedEOF},
		{"ends inside an attribute's reply", "|1\r\n+k\r\n+v\r\n", nil, io.ErrUnexpectedEOF},
		{"bulk too long", "$3\r\nabcde\r\n", nil, ErrProtocol},
		{"negative bulk", "$-2\r\n", nil, ErrProtocol},
		{"bad bulk length", "$x\r\n", nil, ErrProtocol},
		{"bad integer", ":12a\r\n", nil, ErrProtocol},
		{"bad array length", "*1x\r\n", nil, ErrProtocol},
		{"unknown type", "?x\r\n", nil, ErrProtocol},
		{"bare lf", "+OK\n", nil, ErrProtocol},
		{"empty line", "\r\n", nil, ErrProtocol},
		{"line longer than the buffer", "+" + strings.Repeat("x", bufSize+10) + "\r\n", nil, ErrProtocol},
		{"too deep", nested(MaxDepth + 1), nil, ErrProtocol},
		{"attributes too deep", strings.Repeat("|1\r\n", MaxDepth+1), nil, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := skipAll(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SkipReply: got %q, want %q", got, tt.want)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("SkipReply: error %v, want %v", err, tt.wantErr)
			}

			replies, err := readAll(tt.in, 1<<10)
			if len(replies) != len(tt.want) {
				t.Errorf("ReadReply: got %d replies %q, want %d", len(replies), replies, len(tt.want))
			}
			if joined := strings.Join(replies, ""); !strings.HasPrefix(tt.in, joined) || tt.wantErr == io.EOF && joined != tt.in {
				t.Errorf("ReadReply: replies %q are not the input %q", replies, tt.in)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ReadReply: error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestReadReplyMaxLen(t *testing.T) {
	tests := []struct {
		in     string
		maxLen int
		ok     bool
	}{
		{"$5\r\nhello\r\n", 11, true},
		{"$5\r\nhello\r\n", 10, false},
		{"$999999999999\r\n", 1 << 20, false}, // refused before any payload is read
		{"*2\r\n+a\r\n+b\r\n", 12, true},
		{"*2\r\n+a\r\n+b\r\n", 11, false},
		{"+OK\r\n", 4, false},
		{"+OK\r\n", 0, false},
	}
	for _, tt := range tests {
		br := bufio.NewReader(strings.NewReader(tt.in))
		got, err := ReadReply(br, nil, tt.maxLen)
		switch {
		case tt.ok && (err != nil || string(got) != tt.in):
			t.Errorf("ReadReply(%q, max %d) = %q, %v; want the whole reply", tt.in, tt.maxLen, got, err)
		case !tt.ok && !errors.Is(err, ErrProtocol):
			t.Errorf("ReadReply(%q, max %d): error %v, want a protocol error", tt.in, tt.maxLen, err)
		}
	}
}

func TestReadReplyAppends(t *testing.T) {
	br := bufio.NewReader(strings.NewReader(":1\r\n"))
	got, err := ReadReply(br, []byte("before"), 4)
	if err != nil || string(got) != "before:1\r\n" {
		t.Errorf("got %q, %v; want the reply after what dst held", got, err)
	}
}

func TestPayload(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"+OK\r\n", "OK", true},
		{"+\r\n", "", true},
		{"-ERR x\r\n", "ERR x", true},
		{":-12\r\n", "-12", true},
		{"$5\r\nhe\r\no\r\n", "he\r\no", true},
		{"$0\r\n\r\n", "", true},
		{"=8\r\ntxt:abcd\r\n", "txt:abcd", true},
		{"!3\r\nERR\r\n", "ERR", true},
		{"$-1\r\n", "", false},
		{"*1\r\n+OK\r\n", "", false},
		{"%0\r\n", "", false},
		{"", "", false},
		{"+OK", "", false},
		{"$9\r\nabc\r\n", "", false},
	}
	for _, tt := range tests {
		got, ok := Payload([]byte(tt.in))
		if string(got) != tt.want || ok != tt.ok {
			t.Errorf("Payload(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzReadReply checks the two readers against each other and against the
// input: neither panics or loops; they accept the same replies and fail at
// the same one; what ReadReply returns is exactly the bytes it consumed,
// and reads back as the same single reply; SkipReply's text of a reply
// that is itself an error is that error's payload.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n",
		"*2\r\n$1\r\na\r\n*1\r\n:2\r\n", "*3\r\n+OK\r\n-WRONGTYPE x\r\n:1\r\n",
		"%1\r\n+a\r\n_\r\n", "|1\r\n+k\r\n+v\r\n!3\r\nERR\r\n", ">1\r\n=5\r\ntxt:a\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		skip := bufio.NewReaderSize(bytes.NewReader(in), 16)
		read := bufio.NewReaderSize(bytes.NewReader(in), 16)
		consumed := 0
		for range len(in) + 1 {
			text, skipErr := SkipReply(skip)
			reply, readErr := ReadReply(read, nil, len(in))
			if (skipErr == nil) != (readErr == nil) {
				t.Fatalf("%q at %d: SkipReply error %v, ReadReply error %v", in, consumed, skipErr, readErr)
			}
			if readErr != nil {
				return
			}
			if !bytes.Equal(reply, in[consumed:consumed+len(reply)]) {
				t.Fatalf("%q at %d: ReadReply returned %q", in, consumed, reply)
			}
			consumed += len(reply)
			again := bufio.NewReaderSize(bytes.NewReader(reply), 16)
			if back, err := ReadReply(again, nil, len(reply)); err != nil || !bytes.Equal(back, reply) {
				t.Fatalf("%q read back as %q, %v", reply, back, err)
			}
			if _, err := SkipReply(again); err != io.EOF {
				t.Fatalf("%q: more after one reply: %v", reply, err)
			}
			if p, ok := Payload(reply); ok && (reply[0] == '-' || reply[0] == '!') && text != string(p) {
				t.Fatalf("%q: SkipReply's error text %q, payload %q", reply, text, p)
			}
		}
		t.Fatalf("%q: more replies than bytes", in)
	})
}

func BenchmarkSkipReply(b *testing.B) {
	b.ReportAllocs()
	in := []byte("+OK\r\n$64\r\n" + strings.Repeat("v", 64) + "\r\n*2\r\n:1\r\n$-1\r\n")
	r := bytes.NewReader(in)
	br := bufio.NewReader(r)
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		for range 3 {
			if _, err := SkipReply(br); err != nil {
				b.Fatal(err)
			}
		}
	}
}

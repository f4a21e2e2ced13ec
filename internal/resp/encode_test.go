package resp

import (
	"bufio"
	"bytes"
	"testing"
)

func TestAppendCommand(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"bytes", AppendCommand(nil, []byte("SET"), []byte("k:1"), []byte("abc")), "*3\r\n$3\r\nSET\r\n$3\r\nk:1\r\n$3\r\nabc\r\n"},
		{"empty and nil args", AppendCommand(nil, []byte("SET"), []byte("k"), nil), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"},
		{"strings", AppendCommandString(nil, "AUTH", "p\r\nw"), "*2\r\n$4\r\nAUTH\r\n$4\r\np\r\nw\r\n"},
		{"no args", AppendCommandString(nil), "*0\r\n"},
		{"appends", AppendCommandString([]byte("x"), "GET", ""), "x*2\r\n$3\r\nGET\r\n$0\r\n\r\n"},
		{"long arg", AppendCommandString(nil, string(make([]byte, 1234))), "*1\r\n$1234\r\n" + string(make([]byte, 1234)) + "\r\n"},
		{"bulk int", AppendBulkInt(nil, -1234567890123), "$14\r\n-1234567890123\r\n"},
		{"bulk int zero", AppendBulkInt(nil, 0), "$1\r\n0\r\n"},
		{"by pieces", AppendBulkString(AppendBulk(AppendArrayHeader(nil, 2), []byte("a")), "bc"), "*2\r\n$1\r\na\r\n$2\r\nbc\r\n"},
		{"bulk header", append(AppendBulkHeader(nil, 3), "xyz\r\n"...), "$3\r\nxyz\r\n"},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestAppendCommandReads checks the encoder against the reader: a command
// is one whole reply (an array of bulk strings) to ReadReply.
func TestAppendCommandReads(t *testing.T) {
	cmd := AppendCommand(nil, []byte("SET"), []byte("k\r\n"), []byte("$3\r\n"))
	cmd = AppendCommandString(cmd, "PING")
	br := bufio.NewReaderSize(bytes.NewReader(cmd), 16)
	first, err := ReadReply(br, nil, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	second, err := ReadReply(br, nil, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(first)+string(second), string(cmd); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func BenchmarkAppendCommand(b *testing.B) {
	b.ReportAllocs()
	key, value := []byte("key:000000001"), make([]byte, 64)
	set := []byte("SET")
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = AppendCommand(buf[:0], set, key, value)
	}
}

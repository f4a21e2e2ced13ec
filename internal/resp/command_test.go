package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

var testLimits = CommandLimits{MaxArgs: 1 << 10, MaxBulkLen: 4 << 20}

func readCommands(t *testing.T, in string, bufSize int) (cmds []string, c *CommandReader, err error) {
	t.Helper()
	c = NewCommandReader(bufio.NewReaderSize(strings.NewReader(in), bufSize), testLimits)
	for {
		args, err := c.Next()
		if err != nil {
			return cmds, c, err
		}
		cmds = append(cmds, string(bytes.Join(args, []byte("|"))))
	}
}

func TestCommandReader(t *testing.T) {
	set := AppendCommandString(nil, "SET", "k", "v")
	big := strings.Repeat("x", 3<<20+5) // several growth steps
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"two", string(set) + string(AppendCommand(nil, []byte("DEL"), []byte("a\r\nb"), nil)), []string{"SET|k|v", "DEL|a\r\nb|"}},
		{"name only", "*1\r\n$4\r\nPING\r\n", []string{"PING"}},
		{"big argument", string(AppendCommandString(nil, "SET", "k", big)), []string{"SET|k|" + big}},
		{"leading zeros", "*01\r\n$04\r\nPING\r\n", []string{"PING"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, c, err := readCommands(t, tt.in, 64)
			if err != io.EOF {
				t.Fatalf("err = %v, want io.EOF", err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if got, want := c.Offset(), int64(len(tt.in)); got != want {
				t.Errorf("offset %d, want %d", got, want)
			}
		})
	}
}

func TestCommandReaderErrors(t *testing.T) {
	set := string(AppendCommandString(nil, "SET", "k", "v")) // 27 bytes
	tests := []struct {
		name      string
		in        string
		wantCmds  int
		wantAt    int64
		truncated bool
		wantText  string
	}{
		{"ends after the header", set + "*2\r\n$3\r\nSET\r\n", 1, 40, true, "truncated"},
		{"ends inside a header", set + "*2\r\n$3\r", 1, 31, true, "truncated"},
		{"ends inside a bulk", set + "*1\r\n$3\r\nSE", 1, 35, true, "truncated"},
		{"ends before the CRLF", "*1\r\n$3\r\nSET", 0, 8, true, "truncated"},
		{"inline", "PING\r\n", 0, 0, false, `expected a command array, got "PING\r\n"`},
		{"not a bulk", set + "*1\r\n:3\r\n", 1, 31, false, "expected a bulk string"},
		{"bad terminator", "*1\r\n$3\r\nSETX\r\n", 0, 11, false, "not terminated by CRLF"},
		{"empty array", "*0\r\n", 0, 0, false, "bad array header"},
		{"null array", "*-1\r\n", 0, 0, false, "bad array header"},
		{"null bulk", "*1\r\n$-1\r\n", 0, 4, false, "bad bulk header"},
		{"too many args", "*1025\r\n", 0, 0, false, "bad array header"},
		{"absurd length", "*1\r\n$99999999999999\r\nx\r\n", 0, 4, false, "bad bulk header"},
		{"bare LF", "*1\n", 0, 0, false, "malformed line"},
		{"long line", "*1\r\n$" + strings.Repeat("1", 100) + "\r\n", 0, 4, false, "header line longer than 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := readCommands(t, tt.in, 64)
			if len(got) != tt.wantCmds {
				t.Errorf("%d commands before the error, want %d", len(got), tt.wantCmds)
			}
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *CommandError", err)
			}
			if ce.Offset != tt.wantAt {
				t.Errorf("offset %d, want %d", ce.Offset, tt.wantAt)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.truncated {
				t.Errorf("errors.Is(%v, io.ErrUnexpectedEOF) = %v, want %v", err, got, tt.truncated)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantText)
			}
		})
	}
}

// TestCommandReaderReadError: an error of the underlying reader is
// reported as it is, at the offset where it struck.
func TestCommandReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	in := io.MultiReader(strings.NewReader("*1\r\n$4\r\nPI"), iotest.ErrReader(boom))
	c := NewCommandReader(bufio.NewReaderSize(in, 64), testLimits)
	_, err := c.Next()
	var ce *CommandError
	if !errors.Is(err, boom) || !errors.As(err, &ce) || ce.Offset != 8 {
		t.Errorf("err = %v, want boom at offset 8", err)
	}
}

// FuzzCommandReader checks on arbitrary input that offsets only move
// forward and stay within it, that a clean end comes only at its end, and
// that every command read survives being written and read again.
func FuzzCommandReader(f *testing.F) {
	f.Add(AppendCommandString(nil, "SET", "k", "v"))
	f.Add([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"))
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nz"))
	f.Add([]byte("*01\r\n$-0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewCommandReader(bufio.NewReaderSize(bytes.NewReader(data), 16), testLimits)
		for {
			before := c.Offset()
			args, err := c.Next()
			if err == io.EOF {
				if c.Offset() != int64(len(data)) {
					t.Fatalf("io.EOF at offset %d of %d bytes", c.Offset(), len(data))
				}
				return
			}
			if err != nil {
				var ce *CommandError
				if !errors.As(err, &ce) || ce.Offset < before || ce.Offset > int64(len(data)) {
					t.Fatalf("error %v after offset %d of %d bytes", err, before, len(data))
				}
				return
			}
			after := c.Offset()
			if len(args) == 0 || after <= before || after > int64(len(data)) {
				t.Fatalf("%d args, offset %d to %d of %d bytes", len(args), before, after, len(data))
			}
			enc := AppendCommand(nil, args...)
			if int64(len(enc)) > after-before {
				t.Fatalf("command of %d bytes re-encodes to %d", after-before, len(enc))
			}
			again, err := NewCommandReader(bufio.NewReader(bytes.NewReader(enc)), testLimits).Next()
			if err != nil || !slicesEqual(again, args) {
				t.Fatalf("re-read %q: %q, %v", args, again, err)
			}
		}
	})
}

func slicesEqual(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// BenchmarkCommandReader reads a stream of small SETs, the bulk of a
// replication stream.
func BenchmarkCommandReader(b *testing.B) {
	var stream []byte
	for i := range 1000 {
		stream = AppendCommandString(stream, "SET", "key:"+strings.Repeat("k", i%16), strings.Repeat("v", 32))
	}
	r := bytes.NewReader(stream)
	br := bufio.NewReaderSize(r, 64<<10)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		br.Reset(r)
		c := NewCommandReader(br, CommandLimits{MaxArgs: 1 << 24, MaxBulkLen: 1 << 30})
		for {
			if _, err := c.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

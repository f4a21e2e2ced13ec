package wire

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// chunkReader hands out its input at most chunk bytes per Read.
type chunkReader struct {
	in    *bytes.Reader
	chunk int
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if len(b) > c.chunk {
		b = b[:c.chunk]
	}
	return c.in.Read(b)
}

// readAll runs the reader over input cut into reads of chunk bytes and
// returns the commands (arguments joined by spaces, Raw kept), and the error
// that ended it.
func readAll(input string, chunk int, cfg Limits) (cmds []string, raws []string, err error) {
	rd := NewReader(cfg)
	r := &chunkReader{in: bytes.NewReader([]byte(input)), chunk: chunk}
	for {
		reqs, err := rd.Next(r)
		for _, q := range reqs {
			words := make([]string, len(q.Args))
			for i, a := range q.Args {
				words[i] = string(a)
			}
			cmds = append(cmds, strings.Join(words, " "))
			raws = append(raws, string(q.Raw))
		}
		if err != nil {
			return cmds, raws, err
		}
	}
}

// defaultLimits are the proxy's default limits (proxy.DefaultConfig).
func defaultLimits() Limits {
	return Limits{MaxBulkLen: 512 << 20, MaxArgs: 1 << 20, MaxQueryBuffer: 1 << 30}
}

func smallLimits() Limits {
	cfg := defaultLimits()
	cfg.MaxBulkLen, cfg.MaxArgs, cfg.MaxQueryBuffer = 10, 3, 50
	return cfg
}

func TestReqReader(t *testing.T) {
	get := "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
	tests := []struct {
		name, input string
		want        []string // commands, arguments joined by a space
		wantErr     string   // the protocol error, or "" for io.EOF
	}{
		{"resp", get + get, []string{"GET a", "GET a"}, ""},
		{"inline", "PING\r\nSET k 'a b' \"c\\x41\\n\"\nECHO ''\r\n", []string{"PING", "SET k a b cA\n", "ECHO "}, ""},
		{"single quotes", "SET k 'it\\'s' 'a\\b' x\"y z\"\r\n", []string{"SET k it's a\\b xy z"}, ""},
		{"empty lines and *0 are commands of no words", "\r\n*0\r\n*-1\r\n" + get, []string{"", "", "", "GET a"}, ""},
		{"binary payload", "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00x\r\n", []string{"ECHO \r\n\x00x"}, ""},
		{"bulk too long", get + "*2\r\n$3\r\nGET\r\n$11\r\n", []string{"GET a"}, "invalid bulk length"},
		{"too many args", get + "*4\r\n", []string{"GET a"}, "invalid multibulk length"},
		{"huge count", "*99999999999999999999999\r\n", nil, "invalid multibulk length"},
		{"count not a number", "*x\r\n", nil, "invalid multibulk length"},
		{"bare LF in a header", "*1\n$4\r\nPING\r\n", nil, "invalid multibulk length"},
		{"no $", get + "*1\r\n:4\r\nPING\r\n", []string{"GET a"}, "expected '$', got ':'"},
		{"payload without CRLF", "*1\r\n$4\r\nPINGxx", nil, "invalid bulk length"},
		{"too big request", "*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n" +
			"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n",
			[]string{"SET 0123456789 0123456789"}, "too big request"},
		{"unbalanced quotes", get + "SET k \"v\r\n", []string{"GET a"}, "unbalanced quotes in request"},
		{"text after a closing quote", "SET k 'v'x\r\n", nil, "unbalanced quotes in request"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 64, 1 << 20} {
			got, raws, err := readAll(tt.input, chunk, smallLimits())
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("%s (chunk %d): commands %q, want %q", tt.name, chunk, got, tt.want)
			}
			var perr *ProtocolError
			switch {
			case tt.wantErr == "" && err != io.EOF:
				t.Errorf("%s (chunk %d): err = %v, want EOF", tt.name, chunk, err)
			case tt.wantErr != "" && (!errors.As(err, &perr) || perr.msg != tt.wantErr):
				t.Errorf("%s (chunk %d): err = %v, want protocol error %q", tt.name, chunk, err, tt.wantErr)
			}
			for i, raw := range raws {
				if raw == "" && got[i] == "" {
					continue // a command of no words has no encoding
				}
				if args, ok := parseRESPCommand(raw); !ok || strings.Join(args, " ") != got[i] {
					t.Errorf("%s (chunk %d): Raw %q does not encode %q", tt.name, chunk, raw, got[i])
				}
			}
		}
	}
}

// TestReqReaderErrorStays: after returning the commands before a protocol
// error, the reader reports the error again rather than skipping the bad
// bytes (the pub/sub loop serves those commands first, then reads again).
func TestReqReaderErrorStays(t *testing.T) {
	for _, bad := range []string{"SET k 'v\r\n", "*1\r\n:1\r\n", "*x\r\n"} {
		cfg := defaultLimits()
		rd := NewReader(cfg)
		r := bytes.NewReader([]byte("PING\r\n" + bad + "PING\r\n"))
		reqs, err := rd.Next(r)
		if len(reqs) != 1 || err == nil {
			t.Fatalf("%q: first read gave %d commands, err %v", bad, len(reqs), err)
		}
		reqs, err2 := rd.Next(r)
		if len(reqs) != 0 || err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%q: second read gave %d commands, err %v; want the same error again", bad, len(reqs), err2)
		}
	}
}

// parseRESPCommand is a plain reference decoder of one RESP array of bulk
// strings.
func parseRESPCommand(raw string) ([]string, bool) {
	hdr, rest, ok := strings.Cut(raw, "\r\n")
	n, err := strconv.Atoi(strings.TrimPrefix(hdr, "*"))
	if !ok || !strings.HasPrefix(hdr, "*") || err != nil {
		return nil, false
	}
	args := make([]string, 0, n)
	for range n {
		hdr, body, ok := strings.Cut(rest, "\r\n")
		l, err := strconv.Atoi(strings.TrimPrefix(hdr, "$"))
		if !ok || !strings.HasPrefix(hdr, "$") || err != nil || len(body) < l+2 || body[l:l+2] != "\r\n" {
			return nil, false
		}
		args = append(args, body[:l])
		rest = body[l+2:]
	}
	return args, rest == ""
}

// TestReqReaderBigArgument reads a 1 MB argument cut into small reads: the
// buffer grows to hold it and the command comes out whole.
func TestReqReaderBigArgument(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	input := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n" + big + "\r\n*1\r\n$4\r\nPING\r\n"
	got, _, err := readAll(input, 4096, defaultLimits())
	if err != io.EOF || len(got) != 2 || got[0] != "SET k "+big || got[1] != "PING" {
		t.Fatalf("got %d commands, err %v", len(got), err)
	}
}

// FuzzReqReader checks that the reader never panics, that how the input is
// cut into reads changes nothing, and that every command's Raw encodes its
// arguments.
func FuzzReqReader(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\n"), 3)
	f.Add([]byte("*1\r\n$20\r\n"), 1)
	f.Add([]byte("SET 'a' \"b\\x41\"\r\n"), 2)
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		if chunk < 1 || chunk > 64 {
			chunk = 7
		}
		cfg := smallLimits()
		cfg.MaxQueryBuffer = 1000
		whole, wholeRaws, wholeErr := readAll(string(b), len(b)+1, cfg)
		cut, _, cutErr := readAll(string(b), chunk, cfg)
		if strings.Join(whole, "\x00|") != strings.Join(cut, "\x00|") || (wholeErr == io.EOF) != (cutErr == io.EOF) {
			t.Fatalf("read whole: %q (%v); in chunks of %d: %q (%v)", whole, wholeErr, chunk, cut, cutErr)
		}
		for i, raw := range wholeRaws {
			if args, ok := parseRESPCommand(raw); !ok || strings.Join(args, " ") != whole[i] {
				t.Fatalf("Raw %q does not encode %q", raw, whole[i])
			}
		}
	})
}

package snapshot

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/resp"
)

func cmd(args ...string) string { return string(resp.AppendCommandString(nil, args...)) }

func TestCmdParser(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name string
		in   string
		kind cmdKind
		kept bool
	}{
		{"set", cmd("SET", "k", "v"), kindData, true},
		{"select", cmd("SELECT", "1"), kindData, true},
		{"multi", cmd("MULTI"), kindMulti, true},
		{"exec lowercase", cmd("exec"), kindExec, true},
		{"ping", cmd("PING"), kindPing, false},
		{"getack", cmd("REPLCONF", "GETACK", "*"), kindGetack, false},
		{"getack lowercase", cmd("replconf", "getack", "*"), kindGetack, false},
		{"other replconf", cmd("REPLCONF", "ACK", "5"), kindReplconf, false},
		{"long name", cmd(long, "a"), kindData, true},
		{"long value", cmd("SET", "k", long), kindData, true},
		{"empty arg", cmd("SET", "k", ""), kindData, true},
		{"binary", cmd("SET", "k\r\n", "\x00\r\n$3\r\n"), kindData, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := cmdParser{r: bufio.NewReaderSize(strings.NewReader(tt.in+cmd("PING")), 16)}
			var out bytes.Buffer
			n, kind, err := p.next(&out)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := n, int64(len(tt.in)); got != want {
				t.Errorf("length: got %d, want %d", got, want)
			}
			if got, want := kind, tt.kind; got != want {
				t.Errorf("kind: got %d, want %d", got, want)
			}
			want := ""
			if tt.kept {
				want = tt.in
			}
			if got := out.String(); got != want {
				t.Errorf("tail: got %q, want %q", got, want)
			}
			if _, kind, err := p.next(&out); err != nil || kind != kindPing {
				t.Errorf("next command: kind %d, err %v; want PING", kind, err)
			}
		})
	}
}

func TestCmdParserErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		proto bool // a protocol error rather than an I/O one
	}{
		{"inline", "PING\r\n", true},
		{"empty array", "*0\r\n", true},
		{"negative array", "*-1\r\n", true},
		{"bad count", "*x\r\n", true},
		{"not bulk", "*1\r\n:1\r\n", true},
		{"negative bulk", "*1\r\n$-1\r\n", true},
		{"missing crlf", "*1\r\n$4\r\nPINGxx", true},
		{"bare lf", "*1\n", true},
		{"truncated", "*2\r\n$3\r\nSET\r\n$5\r\nab", false},
		{"eof", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := cmdParser{r: bufio.NewReaderSize(strings.NewReader(tt.in), 16)}
			_, _, err := p.next(io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, ErrProtocol); got != tt.proto {
				t.Errorf("protocol error: got %v (%v), want %v", got, err, tt.proto)
			}
		})
	}
}

// FuzzCmdParser checks the framing invariants on arbitrary input: the
// lengths of the commands parsed add up to the bytes consumed, and the
// tail is exactly the kept commands' bytes.
func FuzzCmdParser(f *testing.F) {
	f.Add(cmd("SELECT", "0") + cmd("SET", "a", "b") + cmd("PING") + cmd("REPLCONF", "GETACK", "*"))
	f.Add(cmd("MULTI") + cmd("INCR", "x") + cmd("EXEC"))
	f.Add("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$-1\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		p := cmdParser{r: bufio.NewReaderSize(strings.NewReader(in), 16)}
		var out bytes.Buffer
		var total int64
		for {
			before := out.Len()
			n, kind, err := p.next(&out)
			if err != nil {
				out.Truncate(before)
				break
			}
			cmdBytes := in[total : total+n]
			if kind.kept() {
				if got := out.String()[before:]; got != cmdBytes {
					t.Fatalf("kept %q, want %q", got, cmdBytes)
				}
			} else if out.Len() != before {
				t.Fatalf("skipped command %q wrote to the tail", cmdBytes)
			}
			total += n
		}
		if total > int64(len(in)) {
			t.Fatalf("parsed %d bytes of %d", total, len(in))
		}
	})
}

func TestMarkScanner(t *testing.T) {
	mark := []byte(strings.Repeat("ab", 20))
	payload := "REDIS0010" + strings.Repeat("0123456789", 50) + "xaba"
	for _, chunk := range []int{1, 2, 3, 7, 39, 40, 41, 100, 10000} {
		in := payload + string(mark) + "*1\r\n$4\r\nPING\r\n"
		var out bytes.Buffer
		m := newMarkScanner(mark)
		pos, done := 0, false
		for !done && pos < len(in) {
			end := min(pos+chunk, len(in))
			n, d, err := m.feed([]byte(in[pos:end]), &out)
			if err != nil {
				t.Fatal(err)
			}
			pos, done = pos+n, d
		}
		if !done {
			t.Fatalf("chunk %d: mark not found", chunk)
		}
		if got, want := out.String(), payload; got != want {
			t.Errorf("chunk %d: payload %q, want %q", chunk, got, want)
		}
		if got, want := pos, len(payload)+len(mark); got != want {
			t.Errorf("chunk %d: consumed %d, want %d", chunk, got, want)
		}
	}
}

// FuzzMarkScanner compares the scanner, fed in chunks, with a search of the
// whole input.
func FuzzMarkScanner(f *testing.F) {
	f.Add([]byte("REDIS0010xyzxyzMARKMARKtrailing"), uint8(3))
	f.Add([]byte("MAMARKRK"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		mark := []byte("MARK")
		size := int(chunk%64) + 1
		var out bytes.Buffer
		m := newMarkScanner(mark)
		pos, done := 0, false
		for !done && pos < len(in) {
			end := min(pos+size, len(in))
			n, d, err := m.feed(in[pos:end], &out)
			if err != nil {
				t.Fatal(err)
			}
			if !d && n != end-pos {
				t.Fatalf("consumed %d of a %d-byte chunk without finding the mark", n, end-pos)
			}
			pos, done = pos+n, d
		}
		i := bytes.Index(in, mark)
		if got, want := done, i >= 0; got != want {
			t.Fatalf("found: got %v, want %v", got, want)
		}
		if !done {
			if !bytes.HasPrefix(in, out.Bytes()) || len(in)-out.Len() > len(mark)-1 {
				t.Fatalf("passed %q of %q", out.Bytes(), in)
			}
			return
		}
		if got, want := out.String(), string(in[:i]); got != want {
			t.Fatalf("payload %q, want %q", got, want)
		}
		if got, want := pos, i+len(mark); got != want {
			t.Fatalf("consumed %d, want %d", got, want)
		}
	})
}

func TestParseFullResync(t *testing.T) {
	id := strings.Repeat("a", 40)
	tests := []struct {
		reply  string
		id     string
		offset int64
		ok     bool
	}{
		{"+FULLRESYNC " + id + " 0", id, 0, true},
		{"+FULLRESYNC " + id + " 123456", id, 123456, true},
		{"+FULLRESYNC " + id, "", 0, false},
		{"+FULLRESYNC short 5", "", 0, false},
		{"+FULLRESYNC " + id + " -1", "", 0, false},
		{"+FULLRESYNC " + id + " x", "", 0, false},
	}
	for _, tt := range tests {
		id, off, err := parseFullResync(tt.reply)
		if got := err == nil; got != tt.ok {
			t.Errorf("%q: ok %v, want %v (%v)", tt.reply, got, tt.ok, err)
			continue
		}
		if id != tt.id || off != tt.offset {
			t.Errorf("%q: got %s %d, want %s %d", tt.reply, id, off, tt.id, tt.offset)
		}
	}
}

func TestRefusedError(t *testing.T) {
	tests := []struct {
		reply     string
		contains  string
		temporary bool
	}{
		{"-NOPERM this user has no permissions to run the 'psync' command", "lacks the ACL permission", false},
		{"-ERR unknown command 'PSYNC', with args beginning with: '?' '-1' ", "does not offer replication", false},
		{"-NOAUTH Authentication required.", "requires authentication", false},
		{"+CONTINUE", "partial resync", false},
		{"-LOADING Redis is loading the dataset in memory", "temporary", true},
	}
	for _, tt := range tests {
		err := error(&RefusedError{Addr: "10.0.0.1:6379", Command: "PSYNC", Reply: tt.reply})
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%q: not ErrRefused", tt.reply)
		}
		msg := err.Error()
		for _, want := range []string{"refused replication", "10.0.0.1:6379", tt.contains} {
			if !strings.Contains(msg, want) {
				t.Errorf("%q: message %q lacks %q", tt.reply, msg, want)
			}
		}
		var re *RefusedError
		errors.As(err, &re)
		if got := re.Temporary(); got != tt.temporary {
			t.Errorf("%q: temporary %v, want %v", tt.reply, got, tt.temporary)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultCaptureConfig()
	ok.Addr, ok.RDBPath, ok.TailPath = "127.0.0.1:1", "a.rdb", "a.tail"
	if err := ok.validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		change func(*CaptureConfig)
		want   string
	}{
		{"no addr", func(c *CaptureConfig) { c.Addr = "" }, "shard address"},
		{"no rdb", func(c *CaptureConfig) { c.RDBPath = "" }, "RDB path"},
		{"same paths", func(c *CaptureConfig) { c.TailPath = c.RDBPath }, "both"},
		{"port", func(c *CaptureConfig) { c.ListeningPort = 70000 }, "70000"},
		{"link timeout", func(c *CaptureConfig) { c.LinkTimeout = 0 }, "link timeout"},
		{"ack", func(c *CaptureConfig) { c.AckInterval = -1 }, "ack interval"},
	}
	for _, tt := range tests {
		c := ok
		tt.change(&c)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error naming %q", tt.name, err, tt.want)
		}
	}
}

func TestParseReplInfo(t *testing.T) {
	text := "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n" +
		"slave0:ip=127.0.0.1,port=6380,state=online,offset=10,lag=0\r\n" +
		"slave1:ip=127.0.0.1,port=41234,state=wait_bgsave,offset=0,lag=0\r\n" +
		"master_replid:abc\r\nmaster_replid2:def\r\nmaster_repl_offset:99\r\n"
	info := parseReplInfo(text)
	if info.role != "master" || info.replID != "abc" || info.replID2 != "def" || info.offset != 99 {
		t.Errorf("got %+v", info)
	}
	if got, want := info.replicas, []int{6380, 41234}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("replicas: got %v, want %v", got, want)
	}
}

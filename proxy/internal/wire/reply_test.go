package wire

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

var replyCases = []string{
	"+OK\r\n",
	"-ERR boom\r\n",
	":42\r\n",
	"$5\r\nhello\r\n",
	"$-1\r\n",
	"$0\r\n\r\n",
	"*-1\r\n",
	"*0\r\n",
	"*2\r\n$1\r\na\r\n:1\r\n",
	"*2\r\n*1\r\n+x\r\n$-1\r\n",
	"_\r\n",
	",3.14\r\n",
	"#t\r\n",
	"(123456789012345678901234567890\r\n",
	"!5\r\nERROR\r\n",
	"=8\r\ntxt:abcd\r\n",
	"%1\r\n+k\r\n:1\r\n",
	"~2\r\n:1\r\n:2\r\n",
	">2\r\n+message\r\n+x\r\n",
	"|1\r\n+key\r\n+val\r\n:7\r\n",
	"$13\r\nbin\r\n\x00ary\r\nxx\r\n",
}

func TestReplyLen(t *testing.T) {
	for _, c := range replyCases {
		buf := c + "+NEXT\r\n"
		got, err := ReplyLen([]byte(buf))
		if err != nil || got != len(c) {
			t.Errorf("ReplyLen(%q) = %d, %v; want %d", c, got, err, len(c))
		}
		for cut := 0; cut < len(c); cut++ {
			if _, err := ReplyLen([]byte(c[:cut])); err != errIncomplete {
				t.Errorf("ReplyLen(%q[:%d]) err = %v, want errIncomplete", c, cut, err)
			}
		}
	}
}

func TestReplyLenMalformed(t *testing.T) {
	for _, c := range []string{"\r\n", "?x\r\n", "$abc\r\n", "$3\r\nabcde\r\n", "*x\r\n", "$-2\r\n", ":1\rX\n"} {
		if _, err := ReplyLen([]byte(c)); err == nil || err == errIncomplete {
			t.Errorf("ReplyLen(%q) err = %v, want errBadReply", c, err)
		}
	}
}

func TestReadReply(t *testing.T) {
	all := strings.Join(replyCases, "")
	// A tiny buffer forces the streaming path for most replies.
	for _, size := range []int{16, 4096} {
		r := bufio.NewReaderSize(strings.NewReader(all), size)
		for _, want := range replyCases {
			got, err := ReadReply(r, nil)
			if err != nil || string(got) != want {
				t.Fatalf("size %d: ReadReply = %q, %v; want %q", size, got, err, want)
			}
		}
	}
	big := "$100000\r\n" + strings.Repeat("x", 100000) + "\r\n"
	got, err := ReadReply(bufio.NewReaderSize(strings.NewReader(big), 16), nil)
	if err != nil || string(got) != big {
		t.Fatalf("big bulk: len %d, %v", len(got), err)
	}
}

func TestArrayElems(t *testing.T) {
	elems, ok := ArrayElems([]byte("*3\r\n$1\r\na\r\n$-1\r\n:5\r\n"), nil)
	want := []string{"$1\r\na\r\n", "$-1\r\n", ":5\r\n"}
	if !ok || len(elems) != len(want) {
		t.Fatalf("ArrayElems = %q, %v", elems, ok)
	}
	for i := range want {
		if string(elems[i]) != want[i] {
			t.Errorf("elem %d = %q, want %q", i, elems[i], want[i])
		}
	}
	if _, ok := ArrayElems([]byte("-ERR x\r\n"), nil); ok {
		t.Error("ArrayElems accepted an error reply")
	}
}

// FuzzReplyLen checks the framer never panics, and that whatever it frames
// the streaming reader frames identically.
func FuzzReplyLen(f *testing.F) {
	for _, c := range replyCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ReplyLen(b)
		if err != nil {
			return
		}
		got, err := ReadReplyStream(bufio.NewReaderSize(bytes.NewReader(b), 16), nil)
		if err != nil || !bytes.Equal(got, b[:n]) {
			t.Fatalf("ReplyLen framed %q, stream read %q (%v)", b[:n], got, err)
		}
	})
}

package snapshot

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// followRig is a Stream with only what a Follower reads: a tail file that
// the test writes and publishes as the capture's reader goroutine would.
type followRig struct {
	s    *Stream
	file *os.File
	tail int64 // bytes written
}

func newFollowRig(t *testing.T, fork int64) *followRig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tail.resp")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	s := &Stream{
		cfg:     CaptureConfig{Addr: "shard:1", TailPath: path, Follow: true},
		fork:    fork,
		tailW:   bufio.NewWriter(file),
		rdbDone: make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.pub.changed = make(chan struct{})
	close(s.rdbDone)
	return &followRig{s: s, file: file}
}

func (r *followRig) write(t *testing.T, b string) {
	t.Helper()
	if _, err := r.s.tailW.WriteString(b); err != nil {
		t.Fatal(err)
	}
	r.tail += int64(len(b))
}

// publish publishes the tail up to the byte at, standing at offset off.
func (r *followRig) publish(t *testing.T, at, off int64) {
	t.Helper()
	if err := r.s.publish(boundary{tail: at, off: off}); err != nil {
		t.Fatal(err)
	}
}

func follow(t *testing.T, s *Stream) *Follower {
	t.Helper()
	f, err := s.Follow()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// next wants an event from Next, which must not block.
func next(t *testing.T, f *Follower) Event {
	t.Helper()
	ev, ok, err := f.Next()
	if err != nil || !ok {
		t.Fatalf("Next: ok %v, err %v; want an event", ok, err)
	}
	return ev
}

// TestFollowerGrowingTail follows a tail whose last command is half
// written: the follower stops at the published boundary, steps over a
// skipped PING with the offset it took, and goes on once the rest is
// published; io.EOF comes only when the capture has ended.
func TestFollowerGrowingTail(t *testing.T) {
	const fork = 1000
	set1, set2, set3 := cmd("SET", "a", "1"), cmd("SET", "b", "2"), cmd("SET", "c", strings.Repeat("v", 100))
	ping := int64(len(cmd("PING")))
	r := newFollowRig(t, fork)
	r.write(t, set1+set2+set3[:20])
	at2 := int64(len(set1 + set2))
	// The PING between the two SETs counts in the offset, not in the tail.
	r.s.skips = []skipped{{off: fork + int64(len(set1)), n: ping}}
	r.publish(t, at2, fork+at2+ping)
	f := follow(t, r.s)

	for _, want := range []struct {
		args string
		off  int64
	}{
		{"SET a 1", fork + int64(len(set1))},
		{"SET b 2", fork + at2 + ping},
	} {
		ev := next(t, f)
		if got := string(joinArgs(ev.Args)); got != want.args || ev.Offset != want.off {
			t.Errorf("event %q at %d, want %q at %d", got, ev.Offset, want.args, want.off)
		}
	}
	if _, ok, err := f.Next(); ok || err != nil {
		t.Fatalf("Next at the published end: ok %v, err %v; want nothing yet", ok, err)
	}
	wait := f.Wait()
	select {
	case <-wait:
		t.Fatal("Wait closed before anything was published")
	default:
	}

	r.write(t, set3[20:])
	r.publish(t, r.tail, fork+r.tail+ping)
	<-wait
	if ev := next(t, f); string(joinArgs(ev.Args)) != "SET c "+strings.Repeat("v", 100) || ev.Offset != fork+r.tail+ping {
		t.Errorf("third event %q at %d", joinArgs(ev.Args), ev.Offset)
	}
	if _, ok, err := f.Next(); ok || err != nil {
		t.Fatalf("Next at the end of a running capture: ok %v, err %v; want nothing yet", ok, err)
	}
	close(r.s.done)
	if _, _, err := f.Next(); err != io.EOF {
		t.Errorf("Next after the capture ended: %v, want io.EOF", err)
	}
}

// TestFollowerBadTail: a tail that does not parse, or that ends before
// what was published, is a protocol error naming the offset, never the
// io.EOF of a capture that ended well.
func TestFollowerBadTail(t *testing.T) {
	set := cmd("SET", "a", "1")
	for _, tt := range []struct {
		name      string
		file      string
		published int64
		want      string
	}{
		{"not a bulk", set + "*1\r\n:1\r\n", int64(len(set)) + 8, "at offset 31: expected a bulk string"},
		{"file shorter than published", set, int64(len(set)) + 8, "at offset 27: the stream ends inside a command"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newFollowRig(t, 0)
			r.write(t, tt.file)
			r.publish(t, tt.published, tt.published)
			f := follow(t, r.s)
			next(t, f)
			_, ok, err := f.Next()
			if ok || !errors.Is(err, ErrProtocol) || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Next: ok %v, err %v; want ErrProtocol with %q", ok, err, tt.want)
			}
		})
	}
}

func joinArgs(args [][]byte) []byte {
	var b []byte
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a...)
	}
	return b
}

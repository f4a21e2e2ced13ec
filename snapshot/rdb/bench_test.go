package rdb

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/reshard/reshard/internal/redistest"
)

// populated1M is an RDB written by redis-server after DEBUG POPULATE
// 1000000 (keys "key:N", values "value:N"), made once per test binary run.
var populated1M struct {
	once sync.Once
	file []byte
	err  error
}

func load1M(b *testing.B) []byte {
	b.Helper()
	redistest.Require(b)
	populated1M.once.Do(func() {
		ctx := context.Background()
		s := redistest.Start(b, "--enable-debug-command", "yes")
		c := clientDB(b, s, 0)
		if err := c.Do(ctx, "DEBUG", "POPULATE", 1000000).Err(); err != nil {
			populated1M.err = err
			return
		}
		if err := c.Save(ctx).Err(); err != nil {
			populated1M.err = err
			return
		}
		// In memory: the server's directory goes away with the benchmark
		// that started it.
		populated1M.file, populated1M.err = os.ReadFile(filepath.Join(s.Dir(), "dump.rdb"))
	})
	if populated1M.err != nil {
		b.Fatalf("make the 1M-key RDB: %v", populated1M.err)
	}
	return populated1M.file
}

// BenchmarkReader1M reads a 1M-key RDB: keeping values (what a restore
// does), skipping them (a counting pass), building every RESTORE payload,
// and from the file on disk.
func BenchmarkReader1M(b *testing.B) {
	file := load1M(b)
	run := func(b *testing.B, open func() io.Reader, skip bool, payload bool) {
		b.SetBytes(int64(len(file)))
		b.ReportAllocs()
		var keys int
		var buf []byte
		for b.Loop() {
			r, err := NewReader(open())
			if err != nil {
				b.Fatal(err)
			}
			r.SkipValues(skip)
			keys = 0
			for {
				e, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if e.Kind != KindKey {
					continue
				}
				keys++
				if payload {
					buf = AppendDumpPayload(buf[:0], e, r.Version())
				}
			}
		}
		if keys != 1000000 {
			b.Fatalf("read %d keys, want 1000000", keys)
		}
		b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	}
	fromMemory := func() io.Reader { return bytes.NewReader(file) }
	b.Run("values", func(b *testing.B) { run(b, fromMemory, false, false) })
	b.Run("skip-values", func(b *testing.B) { run(b, fromMemory, true, false) })
	b.Run("payloads", func(b *testing.B) { run(b, fromMemory, false, true) })
	b.Run("file", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "dump.rdb")
		if err := os.WriteFile(path, file, 0o644); err != nil {
			b.Fatal(err)
		}
		var f *os.File
		b.Cleanup(func() {
			if f != nil {
				f.Close()
			}
		})
		run(b, func() io.Reader {
			if f != nil {
				f.Close()
			}
			var err error
			if f, err = os.Open(path); err != nil {
				b.Fatal(err)
			}
			return f
		}, false, false)
	})
}

// BenchmarkDecodeList iterates a 100k-element quicklist value.
func BenchmarkDecodeList(b *testing.B) {
	var nodes [][]byte
	for i := 0; i < 100000; i += 128 {
		var elems []string
		for j := i; j < min(i+128, 100000); j++ {
			elems = append(elems, "element-"+string(rune('a'+j%26)))
		}
		nodes = append(nodes, buildListpack(elems...))
	}
	v := appendLen(nil, uint64(len(nodes)))
	for _, n := range nodes {
		v = appendLen(v, quicklistPacked)
		v = appendStr(v, string(n))
	}
	e := &Entry{Type: TypeListQuicklist2, Value: v}
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := EachListElement(e, func([]byte) error { n++; return nil }); err != nil || n != 100000 {
			b.Fatalf("%d elements, %v", n, err)
		}
	}
}

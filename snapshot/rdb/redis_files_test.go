package rdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/reshard/reshard/internal/redistest"
)

// Beyond the sweep of every type and encoding in redis_test.go, against a
// real redis-server too: encodings it still reads but no longer writes, the
// LRU and LFU fields, damaged files, and DEBUG POPULATE's keys.

// TestRedisOldEncodings RESTOREs values in encodings Redis 7.0 still reads
// but no longer writes (built by this package's test writers), and checks
// that the decoders read what Redis reads.
func TestRedisOldEncodings(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t, serverArgs...)
	c := clientDB(t, s, 0)
	for i, tt := range oldEncodings() {
		t.Run(tt.name, func(t *testing.T) {
			if MinVersion(tt.typ) > 10 {
				t.Skipf("type %d needs RDB %d, redis-server 7.0 reads 10", tt.typ, MinVersion(tt.typ))
			}
			key := fmt.Sprintf("old:%d", i)
			payload := DumpPayload(&Entry{Type: tt.typ, Value: tt.value}, 9)
			if err := c.Do(ctx, "RESTORE", key, 0, string(payload)).Err(); err != nil {
				t.Fatalf("RESTORE: %v", err)
			}
			want := live(ctx, t, c, key)
			if !slices.Equal(tt.want, want) {
				t.Errorf("Redis reads %q, the test expects %q", want, tt.want)
			}
			got, err := render(&Entry{Type: tt.typ, Value: tt.value})
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("decoded %q (%v), Redis reads %q", got, err, want)
			}
		})
	}
}

func TestRedisLRUAndLFU(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		policy             string
		wantIdle, wantFreq bool
	}{
		{"noeviction", false, false},
		{"allkeys-lru", true, false},
		{"allkeys-lfu", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			s := redistest.Start(t, "--maxmemory-policy", tt.policy)
			c := clientDB(t, s, 0)
			must(t, c.Set(ctx, "k", "v", 0).Err())
			var freq int64 = -1
			if tt.wantFreq {
				var err error
				freq, err = c.Do(ctx, "OBJECT", "FREQ", "k").Int64()
				must(t, err)
			}
			_, entries, _ := saveAndRead(ctx, t, s, c)
			var e *Entry
			for _, x := range entries {
				if x.Kind == KindKey {
					e = x
				}
			}
			if e == nil {
				t.Fatal("key not read")
			}
			if (e.Idle >= 0) != tt.wantIdle || (e.Freq >= 0) != tt.wantFreq {
				t.Errorf("Idle = %d, Freq = %d; want idle %v, freq %v", e.Idle, e.Freq, tt.wantIdle, tt.wantFreq)
			}
			if tt.wantFreq && int64(e.Freq) != freq {
				t.Errorf("Freq = %d, OBJECT FREQ said %d", e.Freq, freq)
			}
		})
	}
}

// TestRedisCorruptFiles damages a real dump.rdb in the ways that happen to
// files: a flipped byte, a cut, garbage, a future version. Every one must be
// an error naming an offset, never a panic, a hang or a silent success.
func TestRedisCorruptFiles(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t, serverArgs...)
	c0, c3 := clientDB(t, s, 0), clientDB(t, s, 3)
	populate(ctx, t, c0, c3)
	file, entries, _ := saveAndRead(ctx, t, s, c0)

	readErr := func(b []byte) error {
		_, _, err := readAll(t, b, false)
		if err == nil {
			return nil
		}
		var re *Error
		if !errors.As(err, &re) || re.Offset < 0 || re.Offset > int64(len(b)) {
			t.Errorf("error %v carries no offset within the file", err)
		}
		return err
	}

	t.Run("flipped byte", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for range 300 {
			pos := rng.IntN(len(file))
			bad := bytes.Clone(file)
			bad[pos] ^= byte(1 + rng.IntN(255))
			err := readErr(bad)
			switch {
			case err == nil:
				t.Fatalf("byte %d changed: no error", pos)
			case errors.Is(err, ErrChecksum), errors.Is(err, ErrCorrupt), errors.Is(err, ErrTruncated),
				errors.Is(err, ErrUnknownOpcode), errors.Is(err, ErrUnsupported), errors.Is(err, ErrUnsupportedVersion):
			default:
				t.Fatalf("byte %d changed: unclassified error %v", pos, err)
			}
		}
	})

	t.Run("truncated", func(t *testing.T) {
		cuts := []int{0, 1, 5, 8, 9, 10, len(file) - 9, len(file) - 8, len(file) - 1}
		for _, e := range entries {
			cuts = append(cuts, int(e.Offset), int(e.Offset)+1, int(e.Offset+e.Size)-1)
		}
		rng := rand.New(rand.NewPCG(13, 14))
		for range 300 {
			cuts = append(cuts, rng.IntN(len(file)))
		}
		for _, cut := range cuts {
			err := readErr(file[:cut])
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut at %d of %d: err = %v, want ErrTruncated", cut, len(file), err)
			}
			if !strings.Contains(err.Error(), "offset "+strconv.Itoa(cut)) {
				t.Errorf("cut at %d: error %q does not name the offset", cut, err)
			}
		}
	})

	t.Run("unknown opcode", func(t *testing.T) {
		at := entries[len(entries)/2].Offset
		bad := slices.Concat(file[:at], []byte{200}, file[at:])
		err := readErr(bad)
		if !errors.Is(err, ErrUnknownOpcode) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d:", at)) {
			t.Errorf("err = %v, want ErrUnknownOpcode at offset %d", err, at)
		}
	})

	t.Run("version 99", func(t *testing.T) {
		bad := slices.Concat([]byte("REDIS0099"), file[9:])
		err := readErr(bad)
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "99") {
			t.Errorf("err = %v, want ErrUnsupportedVersion naming 99", err)
		}
	})

	t.Run("checksum", func(t *testing.T) {
		bad := bytes.Clone(file)
		bad[len(bad)-3] ^= 0x10
		err := readErr(bad)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", len(file)-8)) {
			t.Errorf("err = %v, want ErrChecksum at offset %d", err, len(file)-8)
		}
	})
}

// TestRedisDebugPopulate reads an RDB of DEBUG POPULATE keys, the kind of
// file benchmarks and restore tests start from.
func TestRedisDebugPopulate(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t, serverArgs...)
	c := clientDB(t, s, 0)
	must(t, c.Do(ctx, "DEBUG", "POPULATE", 10000).Err())
	_, entries, r := saveAndRead(ctx, t, s, c)
	keys := 0
	for _, e := range entries {
		if e.Kind != KindKey {
			continue
		}
		keys++
		if keys%97 != 0 {
			continue
		}
		dump, err := c.Dump(ctx, string(e.Key)).Result()
		must(t, err)
		if got := DumpPayload(e, r.Version()); string(got) != dump {
			t.Errorf("key %q: DumpPayload %x, DUMP %x", e.Key, got, dump)
		}
		if v, err := DecodeString(e); err != nil || "value:"+strings.TrimPrefix(string(e.Key), "key:") != string(v) {
			t.Errorf("key %q: value %q, %v", e.Key, v, err)
		}
	}
	if keys != 10000 {
		t.Errorf("read %d keys, want 10000", keys)
	}
}

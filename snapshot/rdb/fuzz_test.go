package rdb

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

// testdata/redis-7.0.rdb is a small dump from redis-server 7.0.15 with one
// key of each type and encoding (lists with packed, LZF-compressed and plain
// quicklist nodes, a stream with a group, PEL and consumers, a TTL, db 3, a
// function), made with redis-cli and SAVE. It seeds the fuzzers with real
// structures to mutate.

func fuzzSeeds(f *testing.F) {
	f.Helper()
	real, err := os.ReadFile("testdata/redis-7.0.rdb")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(newRDB(12).aux("redis-ver", "7.4.0").
		byte1(opModuleAux).len(77).len(moduleOpUInt).len(2).raw(moduleData()).
		byte1(opSlotInfo).len(1).len(2).len(3).
		key(TypeModule2, "m", append(appendLen(nil, 77), moduleData()...)).
		end())
	w := newRDB(9).selectDB(0)
	for _, tt := range oldEncodings() {
		w.key(tt.typ, tt.name, tt.value)
	}
	f.Add(w.end())
	f.Add(newRDB(3).selectDB(0).key(TypeZSet, "z", []byte{1, 1, 'a', 253}).end())
}

// FuzzReader feeds arbitrary bytes to a Reader and decodes every key it
// returns: any input must end in io.EOF or an *Error, without a panic, a
// hang, or an allocation out of proportion to the input.
func FuzzReader(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			checkFuzzError(t, err, len(data))
			return
		}
		next := int64(9)
		for {
			e, err := r.Next()
			if err == io.EOF {
				if r.Offset() > int64(len(data)) {
					t.Fatalf("Offset %d past the input (%d bytes)", r.Offset(), len(data))
				}
				return
			}
			if err != nil {
				checkFuzzError(t, err, len(data))
				return
			}
			if e.Offset != next || e.Size <= 0 {
				t.Fatalf("entry at %d+%d, previous ended at %d", e.Offset, e.Size, next)
			}
			next = e.Offset + e.Size
			if e.Kind != KindKey {
				continue
			}
			// The payload walk must agree with the reader's walk.
			if _, _, err := ParseDumpPayload(DumpPayload(e, r.Version())); err != nil {
				t.Fatalf("ParseDumpPayload of a value the reader accepted: %v", err)
			}
			checkDecodeError(t, e)
		}
	})
}

// FuzzDumpPayload feeds arbitrary bytes to ParseDumpPayload and the
// decoders, as a RESTORE target or a --verify pass would.
func FuzzDumpPayload(f *testing.F) {
	for _, tt := range oldEncodings() {
		f.Add(DumpPayload(&Entry{Type: tt.typ, Value: tt.value}, 9))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, _, err := ParseDumpPayload(data)
		if err != nil {
			checkFuzzError(t, err, len(data))
			return
		}
		checkDecodeError(t, e)
	})
}

// FuzzDecode runs the decoders on arbitrary values of every type.
func FuzzDecode(f *testing.F) {
	for _, tt := range oldEncodings() {
		f.Add(tt.typ, tt.value)
	}
	f.Fuzz(func(t *testing.T, typ byte, value []byte) {
		checkDecodeError(t, &Entry{Kind: KindKey, Type: typ, Value: value})
	})
}

func checkFuzzError(t *testing.T, err error, n int) {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if re.Offset < 0 || re.Offset > int64(n) {
		t.Fatalf("error offset %d outside the %d-byte input: %v", re.Offset, n, err)
	}
	for _, s := range []error{ErrCorrupt, ErrTruncated, ErrChecksum, ErrUnsupportedVersion, ErrUnknownOpcode, ErrUnsupported} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

// checkDecodeError decodes e and requires any failure to be a classified
// *Error.
func checkDecodeError(t *testing.T, e *Entry) {
	t.Helper()
	switch ObjectType(e.Type) {
	case "", "module":
		return
	}
	_, err := render(e)
	var re *Error
	if err != nil && (!errors.As(err, &re) || !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongType)) {
		t.Fatalf("decode type %d: unclassified error %v", e.Type, err)
	}
}

package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads every entry of an RDB, cloned, and the final error (nil
// for a clean io.EOF).
func readAll(t testing.TB, rdb []byte, skip bool) ([]*Entry, *Reader, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(rdb))
	if err != nil {
		return nil, nil, err
	}
	r.SkipValues(skip)
	var out []*Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		out = append(out, e.Clone())
	}
}

// moduleData serializes module data: an unsigned, a string, a double, a
// float, a signed, then the EOF opcode.
func moduleData() []byte {
	b := appendLen(nil, moduleOpUInt)
	b = appendLen(b, 5)
	b = appendLen(b, moduleOpString)
	b = appendStr(b, "abc")
	b = appendLen(b, moduleOpDouble)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(1.5))
	b = appendLen(b, moduleOpFloat)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(2.5))
	b = appendLen(b, moduleOpSInt)
	b = appendLen(b, 7)
	return appendLen(b, moduleOpEOF)
}

func TestReaderEveryRecordKind(t *testing.T) {
	const modID = 0x1234567890
	longKey := strings.Repeat("k", 200)
	moduleValue := append(appendLen(nil, modID), moduleData()...)
	w := newRDB(12).
		aux("redis-ver", "7.4.0")
	w.byte1(opAux).str("redis-bits")
	w.b = appendIntStr(w.b, 64)
	w.byte1(opAux).str("lzf-aux")
	w.b = appendLZFStr(w.b, strings.Repeat("z", 100))
	w.byte1(opModuleAux).len(modID).len(moduleOpUInt).len(2).raw(moduleData())
	w.byte1(opFunction2).str("#!lua name=lib\nredis.register_function('f', function() return 1 end)")
	w.selectDB(0)
	w.byte1(opResizeDB).len(5).len(2)
	w.byte1(opSlotInfo).len(100).len(3).len(1)
	w.expireMs(1700000000123).key(TypeString, "ttl-ms", appendStr(nil, "v"))
	w.byte1(opExpireTime)
	w.b = binary.LittleEndian.AppendUint32(w.b, 1700000000)
	w.key(TypeString, "ttl-s", appendIntStr(nil, -300))
	w.byte1(opIdle).len(42).key(TypeList, "idle", strsValue("a", "b"))
	w.byte1(opFreq).byte1(7).key(TypeSet, "freq", strsValue("m"))
	w.key(TypeModule2, "mod", moduleValue)
	w.byte1(TypeString)
	w.b = appendIntStr(w.b, 12345) // a key whose name is integer-encoded
	w.raw(appendStr(nil, "int-key"))
	w.byte1(TypeString)
	w.b = appendLZFStr(w.b, longKey)
	w.raw(appendStr(nil, "lzf-key"))
	w.selectDB(3)
	w.key(TypeHash, "h", pairsValue("f", "v"))
	file := w.end()

	type want struct {
		kind       Kind
		db         int
		key, value string
		typ        byte
		expire     int64
		idle       int64
		freq       int
	}
	wants := []want{
		{kind: KindAux, key: "redis-ver", value: "7.4.0"},
		{kind: KindAux, key: "redis-bits", value: "64"},
		{kind: KindAux, key: "lzf-aux", value: strings.Repeat("z", 100)},
		{kind: KindModuleAux, value: string(moduleData())},
		{kind: KindFunction, value: "#!lua name=lib\nredis.register_function('f', function() return 1 end)"},
		{kind: KindSelectDB},
		{kind: KindResizeDB},
		{kind: KindSlotInfo},
		{kind: KindKey, key: "ttl-ms", value: string(appendStr(nil, "v")), expire: 1700000000123},
		{kind: KindKey, key: "ttl-s", value: string(appendIntStr(nil, -300)), expire: 1700000000000},
		{kind: KindKey, key: "idle", typ: TypeList, value: string(strsValue("a", "b")), idle: 42},
		{kind: KindKey, key: "freq", typ: TypeSet, value: string(strsValue("m")), freq: 7},
		{kind: KindKey, key: "mod", typ: TypeModule2, value: string(moduleValue)},
		{kind: KindKey, key: "12345", value: string(appendStr(nil, "int-key"))},
		{kind: KindKey, key: longKey, value: string(appendStr(nil, "lzf-key"))},
		{kind: KindSelectDB, db: 3},
		{kind: KindKey, db: 3, key: "h", typ: TypeHash, value: string(pairsValue("f", "v"))},
	}
	got, r, err := readAll(t, file, false)
	if err != nil {
		for _, e := range got {
			t.Logf("%s %d %q", e.Kind, e.Offset, e.Key)
		}
		t.Fatalf("read: %v", err)
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d entries, want %d", len(got), len(wants))
	}
	next := int64(9)
	for i, w := range wants {
		e := got[i]
		if w.kind == KindKey && w.expire == 0 {
			w.expire = -1
		}
		if w.kind != KindKey || w.idle == 0 {
			w.idle = -1
		}
		if w.kind != KindKey || w.freq == 0 {
			w.freq = -1
		}
		if w.kind != KindKey {
			w.expire = -1
		}
		if e.Kind != w.kind || e.DB != w.db || string(e.Key) != w.key || string(e.Value) != w.value ||
			e.Type != w.typ || e.ExpireMs != w.expire || e.Idle != w.idle || e.Freq != w.freq {
			t.Errorf("entry %d = %+v\nwant %+v", i, e, w)
		}
		// Entries tile the file: each starts where the previous ended.
		if e.Offset != next {
			t.Errorf("entry %d (%s) at offset %d, want %d", i, e.Kind, e.Offset, next)
		}
		next = e.Offset + e.Size
	}
	if eof := int64(len(file)) - 9; next != eof {
		t.Errorf("entries end at %d, EOF opcode at %d", next, eof)
	}
	if got[3].ModuleID != modID || got[3].When != 2 || got[12].ModuleID != modID {
		t.Errorf("module ids: aux %#x when %d, value %#x", got[3].ModuleID, got[3].When, got[12].ModuleID)
	}
	if got[6].DBSize != 5 || got[6].ExpiresSize != 2 || got[7].Slot != 100 || got[7].DBSize != 3 || got[7].ExpiresSize != 1 {
		t.Errorf("resizedb %+v, slot info %+v", got[6], got[7])
	}
	if stored, computed, ok := r.Checksum(); !ok || stored != computed {
		t.Errorf("Checksum() = %x, %x, %v", stored, computed, ok)
	}
	if r.Offset() != int64(len(file)) {
		t.Errorf("Offset() = %d at the end, file is %d bytes", r.Offset(), len(file))
	}

	// Skipping values gives the same records without value bytes.
	skipped, _, err := readAll(t, file, true)
	if err != nil {
		t.Fatalf("read with SkipValues: %v", err)
	}
	for i, e := range skipped {
		if e.Kind == KindKey && (e.Value != nil || e.Size != got[i].Size || !bytes.Equal(e.Key, got[i].Key)) {
			t.Errorf("skipped entry %d: value %q size %d, want no value, size %d", i, e.Value, e.Size, got[i].Size)
		}
	}
}

func TestReaderHeaderAndChecksum(t *testing.T) {
	body := func(v int) *rdbBuilder {
		return newRDB(v).selectDB(0).key(TypeString, "k", appendStr(nil, "v"))
	}
	zeroCRC := body(9)
	zeroCRC.byte1(opEOF)
	zeroCRC.raw(make([]byte, 8))
	badCRC := body(9).end()
	badCRC[len(badCRC)-1] ^= 1
	tests := []struct {
		name     string
		file     []byte
		wantErr  error
		wantText string
	}{
		{"version 3 has no checksum", body(3).end(), nil, ""},
		{"version 9", body(9).end(), nil, ""},
		{"version 12", body(12).end(), nil, ""},
		{"zero checksum means disabled", zeroCRC.b, nil, ""},
		{"checksum mismatch", badCRC, ErrChecksum, "offset 17"},
		{"version 99", body(99).end(), ErrUnsupportedVersion, "RDB version 99"},
		{"version 13", body(13).end(), ErrUnsupportedVersion, "RDB version 13"},
		{"version 0", body(0).end(), ErrUnsupportedVersion, "RDB version 0"},
		{"valkey", []byte("VALKEY080\xff"), ErrUnsupportedVersion, "Valkey"},
		{"not an rdb", []byte("*1\r\n$4\r\nPING\r\n"), ErrCorrupt, "not an RDB file"},
		{"bad version digits", []byte("REDIS00a9\xff"), ErrCorrupt, "4 digits"},
		{"empty", nil, ErrTruncated, "offset 0"},
		{"short header", []byte("REDIS"), ErrTruncated, "offset 5"},
		{"8 bytes, not an rdb", []byte("abcdefgh"), ErrCorrupt, "not an RDB file"},
		{"1 byte, not an rdb", []byte("x"), ErrCorrupt, "not an RDB file"},
		{"short valkey header", []byte("VALKEY08"), ErrTruncated, "offset 8"},
		{"no EOF opcode", body(9).b, ErrTruncated, "offset 16"},
		{"no checksum", append(body(9).b, opEOF), ErrTruncated, "offset 17"},
		{"unknown opcode", append(body(9).b, 200), ErrUnknownOpcode, "offset 16: byte 0xc8"},
		{"value type 8", append(body(9).b, 8), ErrUnknownOpcode, "offset 16"},
		{"pre-GA function", append(body(9).b, opFunctionPreGA), ErrUnsupported, "offset 16"},
		{"pre-GA module value", append(body(9).b, TypeModulePreGA, 1, 'k', 5), ErrUnsupported, "offset 19"},
		{"expire without key", append(append(body(9).b, opExpireTimeMs, 0, 0, 0, 0, 0, 0, 0, 0), opEOF, 0, 0, 0, 0, 0, 0, 0, 0), ErrCorrupt, "offset 16"},
		{"bad length encoding", append(body(9).b, opSelectDB, 0x82), ErrCorrupt, "offset 17"},
		{"bad quicklist container", append(body(9).b, TypeListQuicklist2, 1, 'l', 1, 7), ErrCorrupt, "offset 20"},
		{"bad module opcode", append(body(9).b, TypeModule2, 1, 'm', 5, 9), ErrCorrupt, "offset 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll(t, tt.file, false)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantText)
			}
			var re *Error
			if !errors.As(err, &re) {
				t.Errorf("err %v is not an *Error", err)
			}
		})
	}
}

func TestReaderStickyError(t *testing.T) {
	r, err := NewReader(bytes.NewReader(append(newRDB(9).b, 200)))
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	_, err2 := r.Next()
	if err1 == nil || err1 != err2 {
		t.Errorf("Next errors %v then %v, want the same error twice", err1, err2)
	}
}

// A source that hands out one byte at a time, or fails, exercises every
// refill path.
func TestReaderSourceBehaviour(t *testing.T) {
	big := strings.Repeat("0123456789", 20000) // larger than the read buffer
	file := newRDB(10).selectDB(0).
		key(TypeString, "big", appendStr(nil, big)).
		key(TypeList, "l", strsValue("a", big, "c")).
		end()
	t.Run("one byte reads", func(t *testing.T) {
		r, err := NewReader(iotest.OneByteReader(bytes.NewReader(file)))
		if err != nil {
			t.Fatal(err)
		}
		var values []string
		for {
			e, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Kind == KindKey {
				values = append(values, string(e.Value))
			}
		}
		if len(values) != 2 || values[0] != string(appendStr(nil, big)) || values[1] != string(strsValue("a", big, "c")) {
			t.Errorf("values differ from the file's bytes")
		}
	})
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("boom")
		r, err := NewReader(io.MultiReader(bytes.NewReader(file[:1000]), iotest.ErrReader(boom)))
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, err = r.Next()
			if err != nil {
				break
			}
		}
		if !errors.Is(err, boom) || errors.Is(err, ErrTruncated) {
			t.Errorf("err = %v, want the source's error", err)
		}
	})
}

func TestDumpPayloadRoundTrip(t *testing.T) {
	e := &Entry{Kind: KindKey, Type: TypeList, Value: strsValue("a", "b")}
	p := DumpPayload(e, 10)
	if got := AppendDumpPayload([]byte("prefix"), e, 10); !bytes.Equal(got[6:], p) {
		t.Errorf("AppendDumpPayload differs from DumpPayload")
	}
	want := append([]byte{TypeList}, strsValue("a", "b")...)
	want = append(want, 10, 0)
	want = binary.LittleEndian.AppendUint64(want, CRC64(want))
	if !bytes.Equal(p, want) {
		t.Fatalf("DumpPayload = %x, want %x", p, want)
	}
	back, version, err := ParseDumpPayload(p)
	if err != nil || version != 10 || back.Type != e.Type || !bytes.Equal(back.Value, e.Value) {
		t.Errorf("ParseDumpPayload = %+v, %d, %v", back, version, err)
	}
	p[3] ^= 0xff
	if _, _, err := ParseDumpPayload(p); !errors.Is(err, ErrChecksum) {
		t.Errorf("ParseDumpPayload(flipped) err = %v, want ErrChecksum", err)
	}
	short := DumpPayload(&Entry{Type: TypeList, Value: strsValue("a", "b")[:3]}, 10)
	if _, _, err := ParseDumpPayload(short); !errors.Is(err, ErrTruncated) {
		t.Errorf("ParseDumpPayload(short value) err = %v, want ErrTruncated", err)
	}
	long := DumpPayload(&Entry{Type: TypeString, Value: append(appendStr(nil, "x"), 0)}, 10)
	if _, _, err := ParseDumpPayload(long); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ParseDumpPayload(trailing byte) err = %v, want ErrCorrupt", err)
	}
}

func TestReaderBuffered(t *testing.T) {
	file := newRDB(10).selectDB(0).key(TypeString, "k", appendStr(nil, "v")).end()
	const tail = "0123456789012345678901234567890123456789*1\r\n$4\r\nPING\r\n"
	src := bytes.NewReader(append(bytes.Clone(file), tail...))
	r, err := NewReader(src)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err = r.Next(); err != nil {
			break
		}
	}
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	rest, err := io.ReadAll(io.MultiReader(r.Buffered(), src))
	if err != nil || string(rest) != tail {
		t.Errorf("after the RDB: %q, %v; want %q", rest, err, tail)
	}
	if r.Offset() != int64(len(file)) {
		t.Errorf("Offset() = %d, want %d", r.Offset(), len(file))
	}
}

// TestReaderExpandedElements: the size a value expands to on load (LZF
// strings at their uncompressed length, integers at their most digits)
// and its element count, with and without values kept.
func TestReaderExpandedElements(t *testing.T) {
	big := strings.Repeat("a", 1000)
	for _, tc := range []struct {
		name           string
		typ            byte
		value          []byte
		expanded, elts int64
	}{
		{"plain string", TypeString, appendStr(nil, "hello"), 6, 0},
		{"int8 string", TypeString, appendIntStr(nil, 7), 5, 0},
		{"int32 string", TypeString, appendIntStr(nil, 1<<30), 12, 0},
		{"LZF string", TypeString, appendLZFStr(nil, big), 4 + 1000, 0}, // header: encoding, 1-byte and 2-byte lengths
		{"set", TypeSet, strsValue("a", "bb", "ccc"), 1 + 2 + 3 + 4, 3},
		{"hash", TypeHash, pairsValue("f1", "v1", "f2", "v2"), 1 + 4*3, 2},
		{"listpack hash", TypeHashListpack, blobValue(buildListpack("f", "v")), int64(len(blobValue(buildListpack("f", "v")))), 0},
	} {
		for _, skip := range []bool{true, false} {
			data := newRDB(10).key(tc.typ, "k", tc.value).end()
			es, _, err := readAll(t, data, skip)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			e := es[len(es)-1]
			if e.Expanded != tc.expanded || e.Elements != tc.elts {
				t.Errorf("%s (skip %v): Expanded %d, Elements %d; want %d, %d", tc.name, skip, e.Expanded, e.Elements, tc.expanded, tc.elts)
			}
		}
	}
}

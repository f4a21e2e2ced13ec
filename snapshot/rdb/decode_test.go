package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// render decodes any value into lines that do not depend on the encoding:
// lists in order, sets and hashes sorted, zsets in score order, streams as
// entries then metadata. Integration tests build the same lines from live
// Redis replies.
func render(e *Entry) ([]string, error) {
	var out []string
	var err error
	switch ObjectType(e.Type) {
	case "string":
		var s []byte
		s, err = DecodeString(e)
		out = []string{string(s)}
	case "list":
		err = EachListElement(e, func(el []byte) error {
			out = append(out, string(el))
			return nil
		})
	case "set":
		err = EachSetMember(e, func(m []byte) error {
			out = append(out, string(m))
			return nil
		})
		slices.Sort(out)
	case "hash":
		err = EachHashField(e, func(f, v []byte, exp int64) error {
			line := string(f) + "=" + string(v)
			if exp != -1 {
				line += "@" + strconv.FormatInt(exp, 10)
			}
			out = append(out, line)
			return nil
		})
		slices.Sort(out)
	case "zset":
		type member struct {
			m string
			s float64
		}
		var ms []member
		err = EachZSetMember(e, func(m []byte, s float64) error {
			ms = append(ms, member{string(m), s})
			return nil
		})
		slices.SortStableFunc(ms, func(a, b member) int {
			if a.s != b.s {
				if a.s < b.s {
					return -1
				}
				return 1
			}
			return strings.Compare(a.m, b.m)
		})
		for _, m := range ms {
			out = append(out, m.m+"="+formatScore(m.s))
		}
	case "stream":
		var s *Stream
		s, err = DecodeStream(e, func(id StreamID, fields [][]byte) error {
			line := id.String()
			for _, f := range fields {
				line += " " + string(f)
			}
			out = append(out, line)
			return nil
		})
		if err == nil {
			out = append(out, renderStreamMeta(s)...)
		}
	default:
		return nil, fmt.Errorf("no renderer for type %d", e.Type)
	}
	return out, err
}

func formatScore(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func renderStreamMeta(s *Stream) []string {
	out := []string{fmt.Sprintf("length=%d last=%v", s.Length, s.LastID)}
	for _, g := range s.Groups {
		out = append(out, fmt.Sprintf("group %s last=%v read=%d", g.Name, g.LastID, g.EntriesRead))
		for _, p := range g.Pending {
			out = append(out, fmt.Sprintf("  pending %v %s count=%d", p.ID, p.Consumer, p.DeliveryCount))
		}
		for _, c := range g.Consumers {
			ids := make([]string, len(c.Pending))
			for i, id := range c.Pending {
				ids[i] = id.String()
			}
			out = append(out, fmt.Sprintf("  consumer %s pending=[%s]", c.Name, strings.Join(ids, " ")))
		}
	}
	return out
}

// oldEncodings are values in encodings Redis 7.0 reads but no longer
// writes, and the lines render must give for them. The integration test
// RESTOREs each into redis-server and compares what Redis reads back.
func oldEncodings() []struct {
	name  string
	typ   byte
	value []byte
	want  []string
} {
	zsetText := appendLen(nil, 3)
	for _, m := range []struct {
		name, score string
	}{{"a", "1.5"}, {"b", "inf"}, {"c", "-2"}} {
		zsetText = appendStr(zsetText, m.name)
		if m.score == "inf" {
			zsetText = append(zsetText, 254)
		} else {
			zsetText = append(zsetText, byte(len(m.score)))
			zsetText = append(zsetText, m.score...)
		}
	}
	intElems := []string{"0", "12", "13", "-1", "127", "-128", "300", "-300", "40000", "-40000", "8388607", "-8388608", "2147483647", "-2147483648", "9223372036854775807", "-9223372036854775808"}
	long := strings.Repeat("x", 300)
	quicklist := appendLen(nil, 2)
	quicklist = appendStr(quicklist, string(buildZiplist("a", "b")))
	quicklist = appendStr(quicklist, string(buildZiplist("c", "1")))
	return []struct {
		name  string
		typ   byte
		value []byte
		want  []string
	}{
		{"linked list", TypeList, strsValue("a", "b", "c"), []string{"a", "b", "c"}},
		{"ziplist list with every integer width", TypeListZiplist, blobValue(buildZiplist(append(intElems, long, "x")...)), append(intElems, long, "x")},
		{"quicklist of ziplists", TypeListQuicklist, quicklist, []string{"a", "b", "c", "1"}},
		{"hashtable set", TypeSet, strsValue("b", "a"), []string{"a", "b"}},
		{"intset 16", TypeSetIntset, blobValue(buildIntset(2, -5, 1, 300)), []string{"-5", "1", "300"}},
		{"intset 32", TypeSetIntset, blobValue(buildIntset(4, -70000, 1)), []string{"-70000", "1"}},
		{"intset 64", TypeSetIntset, blobValue(buildIntset(8, -1<<40, 1<<40)), []string{"-1099511627776", "1099511627776"}},
		{"zset with text scores", TypeZSet, zsetText, []string{"c=-2", "a=1.5", "b=+Inf"}},
		{"ziplist zset", TypeZSetZiplist, blobValue(buildZiplist("m3", "-0.125", "m1", "1", "m2", "2.5")), []string{"m3=-0.125", "m1=1", "m2=2.5"}},
		{"zipmap hash", TypeHashZipmap, blobValue(buildZipmap("f1", "v1", "f2", long)), []string{"f1=v1", "f2=" + long}},
		{"ziplist hash", TypeHashZiplist, blobValue(buildZiplist("f1", "v1", "f2", "22")), []string{"f1=v1", "f2=22"}},
		{"listpack set (7.2)", TypeSetListpack, blobValue(buildListpack("x", "5", "y")), []string{"5", "x", "y"}},
	}
}

func TestDecodeOldEncodings(t *testing.T) {
	for _, tt := range oldEncodings() {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{Kind: KindKey, Type: tt.typ, Value: tt.value}
			got, err := render(e)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			// The payload walk must agree with the decoder on where the
			// value ends.
			if _, _, err := ParseDumpPayload(DumpPayload(e, 10)); err != nil {
				t.Errorf("ParseDumpPayload: %v", err)
			}
		})
	}
}

func TestDecodeListpackIntegers(t *testing.T) {
	elems := []string{"0", "127", "128", "-1", "4095", "-4096", "4096", "-4097", "32767", "-32768", "32768", "8388607", "-8388608", "8388608", "2147483647", "-2147483648", "2147483648", "9223372036854775807", "-9223372036854775808", "", strings.Repeat("s", 63), strings.Repeat("m", 64), strings.Repeat("l", 5000)}
	e := &Entry{Type: TypeListQuicklist2, Value: append(appendLen(appendLen(nil, 1), quicklistPacked), blobValue(buildListpack(elems...))...)}
	got, err := render(e)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, elems) {
		t.Errorf("got %q\nwant %q", got, elems)
	}
}

func TestDecodeHashFieldTTL(t *testing.T) {
	// Redis 7.4 forms: metadata (min expiry, then per field a TTL relative
	// to it, 0 for none) and listpack-ex (min expiry, then a listpack of
	// field, value, absolute expiry or 0).
	meta := binary.LittleEndian.AppendUint64(nil, 1000)
	meta = appendLen(meta, 2)
	meta = appendStr(appendStr(appendLen(meta, 0), "f1"), "v1")
	meta = appendStr(appendStr(appendLen(meta, 6), "f2"), "v2") // 6 + 1000 - 1
	lpex := binary.LittleEndian.AppendUint64(nil, 1005)
	lpex = appendStr(lpex, string(buildListpack("f1", "v1", "0", "f2", "v2", "1005")))
	tests := []struct {
		name  string
		typ   byte
		value []byte
	}{
		{"metadata", TypeHashMetadata, meta},
		{"listpack-ex", TypeHashListpackEx, lpex},
	}
	want := []string{"f1=v1", "f2=v2@1005"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := render(&Entry{Type: tt.typ, Value: tt.value})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestDecodeLZFStrings(t *testing.T) {
	tests := []string{"abcdef", strings.Repeat("a", 1000), "x" + strings.Repeat("y", 300) + "zzzz" + strings.Repeat("q", 10)}
	for _, s := range tests {
		e := &Entry{Type: TypeString, Value: appendLZFStr(nil, s)}
		got, err := DecodeString(e)
		if err != nil {
			t.Fatalf("DecodeString(lzf %d bytes): %v", len(s), err)
		}
		if string(got) != s {
			t.Errorf("DecodeString(lzf) = %q, want %q", got, s)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		typ     byte
		value   []byte
		wantErr error
	}{
		{"wrong type", TypeString, appendStr(nil, "x"), ErrWrongType},
		{"trailing bytes", TypeList, append(strsValue("a"), 0), ErrCorrupt},
		{"short string", TypeList, []byte{1, 5, 'a'}, ErrCorrupt},
		{"listpack bad total", TypeSetListpack, blobValue([]byte{9, 0, 0, 0, 0, 0, 0xff}), ErrCorrupt},
		{"listpack count mismatch", TypeSetListpack, blobValue(func() []byte {
			b := buildListpack("a", "b")
			b[4] = 3
			return b
		}()), ErrCorrupt},
		{"intset size mismatch", TypeSetIntset, blobValue(buildIntset(2, 1, 2)[:10]), ErrCorrupt},
		{"intset huge count", TypeSetIntset, blobValue([]byte{2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0}), ErrCorrupt},
		{"ziplist bad prevlen", TypeListZiplist, blobValue(func() []byte {
			b := buildZiplist("a", "b")
			b[13] = 7
			return b
		}()), ErrCorrupt},
		{"bad lzf", TypeString, []byte{0xc3, 2, 100, 31, 'a'}, ErrCorrupt},
		{"quicklist container", TypeListQuicklist2, append(appendLen(appendLen(nil, 1), 3), blobValue(buildListpack("a"))...), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{Type: tt.typ, Value: tt.value}
			var err error
			if tt.name == "wrong type" {
				err = EachListElement(e, func([]byte) error { return nil })
			} else {
				_, err = render(e)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeCallbackErrorStops(t *testing.T) {
	stop := errors.New("stop")
	e := &Entry{Type: TypeList, Value: strsValue("a", "b", "c")}
	n := 0
	err := EachListElement(e, func([]byte) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("err = %v after %d calls, want the callback's error after 1", err, n)
	}
}

func TestModuleName(t *testing.T) {
	// Encode "ReJSON-RL" version 3 the way RedisModule_CreateDataType does.
	const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var id uint64
	for _, c := range "ReJSON-RL" {
		id = id<<6 | uint64(strings.IndexRune(charset, c))
	}
	id = id<<10 | 3
	name, ver := ModuleName(id)
	if name != "ReJSON-RL" || ver != 3 {
		t.Errorf("ModuleName = %q, %d; want ReJSON-RL, 3", name, ver)
	}
}

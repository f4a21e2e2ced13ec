package rdb

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Test-only writers for RDB files and the compact encodings, to build
// inputs real Redis 7.0 never writes (old encodings, modules, slot info,
// corrupt structures). The integration tests feed what they build to a
// real redis-server through RESTORE, so these writers are checked against
// Redis too.

type rdbBuilder struct {
	b []byte
}

func newRDB(version int) *rdbBuilder {
	return &rdbBuilder{b: fmt.Appendf(nil, "REDIS%04d", version)}
}

func (w *rdbBuilder) byte1(c byte) *rdbBuilder { w.b = append(w.b, c); return w }

func (w *rdbBuilder) raw(p []byte) *rdbBuilder { w.b = append(w.b, p...); return w }

func (w *rdbBuilder) len(n uint64) *rdbBuilder { w.b = appendLen(w.b, n); return w }

func (w *rdbBuilder) str(s string) *rdbBuilder { w.b = appendStr(w.b, s); return w }

func (w *rdbBuilder) aux(k, v string) *rdbBuilder { return w.byte1(opAux).str(k).str(v) }

func (w *rdbBuilder) selectDB(n uint64) *rdbBuilder { return w.byte1(opSelectDB).len(n) }

// key writes a key with a value already serialized (without type byte).
func (w *rdbBuilder) key(typ byte, k string, value []byte) *rdbBuilder {
	return w.byte1(typ).str(k).raw(value)
}

func (w *rdbBuilder) expireMs(ms int64) *rdbBuilder {
	w.byte1(opExpireTimeMs)
	w.b = binary.LittleEndian.AppendUint64(w.b, uint64(ms))
	return w
}

// end writes the EOF opcode and, from version 5 on, the checksum.
func (w *rdbBuilder) end() []byte {
	w.byte1(opEOF)
	v, _ := strconv.Atoi(string(w.b[5:9]))
	if v >= 5 {
		w.b = binary.LittleEndian.AppendUint64(w.b, CRC64(w.b))
	}
	return w.b
}

func appendLen(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x81), n)
}

func appendStr(b []byte, s string) []byte {
	return append(appendLen(b, uint64(len(s))), s...)
}

// appendIntStr writes v in the integer string encodings.
func appendIntStr(b []byte, v int64) []byte {
	switch {
	case v >= math.MinInt8 && v <= math.MaxInt8:
		return append(b, 0xc0|encInt8, byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.LittleEndian.AppendUint16(append(b, 0xc0|encInt16), uint16(v))
	}
	return binary.LittleEndian.AppendUint32(append(b, 0xc0|encInt32), uint32(v))
}

// appendLZFStr writes s LZF-compressed. The compressor only knows runs of
// one repeated byte (a back reference at distance 1, the overlapping case)
// and literals, which is enough for tests.
func appendLZFStr(b []byte, s string) []byte {
	var out []byte
	lit := func(p string) {
		for len(p) > 0 {
			n := min(len(p), 32)
			out = append(out, byte(n-1))
			out = append(out, p[:n]...)
			p = p[n:]
		}
	}
	i := 0
	for i < len(s) {
		j := i + 1
		for j < len(s) && s[j] == s[i] && j-i < 265 {
			j++
		}
		if j-i < 4 {
			lit(s[i:j])
			i = j
			continue
		}
		lit(s[i : i+1])
		n := j - i - 1 // bytes copied from one back
		l := n - 2
		if l < 7 {
			out = append(out, byte(l<<5), 0)
		} else {
			out = append(out, 7<<5, byte(l-7), 0)
		}
		i = j
	}
	b = append(b, 0xc0|encLZF)
	b = appendLen(b, uint64(len(out)))
	b = appendLen(b, uint64(len(s)))
	return append(b, out...)
}

// Compact encodings. Elements that parse as integers are stored as such,
// as Redis does.

func asInt(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(v, 10) != s {
		return 0, false
	}
	return v, true
}

func buildListpack(elems ...string) []byte {
	b := make([]byte, 6)
	for _, s := range elems {
		start := len(b)
		if v, ok := asInt(s); ok {
			switch {
			case v >= 0 && v <= 127:
				b = append(b, byte(v))
			case v >= -4096 && v <= 4095:
				u := uint16(v) & 0x1fff
				b = append(b, 0xc0|byte(u>>8), byte(u))
			case v >= math.MinInt16 && v <= math.MaxInt16:
				b = binary.LittleEndian.AppendUint16(append(b, 0xf1), uint16(v))
			case v >= -1<<23 && v < 1<<23:
				u := uint32(v)
				b = append(b, 0xf2, byte(u), byte(u>>8), byte(u>>16))
			case v >= math.MinInt32 && v <= math.MaxInt32:
				b = binary.LittleEndian.AppendUint32(append(b, 0xf3), uint32(v))
			default:
				b = binary.LittleEndian.AppendUint64(append(b, 0xf4), uint64(v))
			}
		} else {
			switch l := len(s); {
			case l < 64:
				b = append(b, 0x80|byte(l))
			case l < 4096:
				b = append(b, 0xe0|byte(l>>8), byte(l))
			default:
				b = binary.LittleEndian.AppendUint32(append(b, 0xf0), uint32(l))
			}
			b = append(b, s...)
		}
		l := len(b) - start
		switch {
		case l <= 127:
			b = append(b, byte(l))
		case l < 16383:
			b = append(b, byte(l>>7), byte(l&127)|128)
		case l < 2097151:
			b = append(b, byte(l>>14), byte(l>>7&127)|128, byte(l&127)|128)
		default:
			b = append(b, byte(l>>21), byte(l>>14&127)|128, byte(l>>7&127)|128, byte(l&127)|128)
		}
	}
	b = append(b, 0xff)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint16(b[4:], uint16(min(len(elems), 65535)))
	return b
}

func buildZiplist(elems ...string) []byte {
	b := make([]byte, 10)
	prev, tail := 0, 10
	for _, s := range elems {
		start := len(b)
		tail = start
		if prev < 254 {
			b = append(b, byte(prev))
		} else {
			b = binary.LittleEndian.AppendUint32(append(b, 0xfe), uint32(prev))
		}
		if v, ok := asInt(s); ok {
			switch {
			case v >= 0 && v <= 12:
				b = append(b, 0xf1+byte(v))
			case v >= math.MinInt8 && v <= math.MaxInt8:
				b = append(b, 0xfe, byte(v))
			case v >= math.MinInt16 && v <= math.MaxInt16:
				b = binary.LittleEndian.AppendUint16(append(b, 0xc0), uint16(v))
			case v >= -1<<23 && v < 1<<23:
				u := uint32(v)
				b = append(b, 0xf0, byte(u), byte(u>>8), byte(u>>16))
			case v >= math.MinInt32 && v <= math.MaxInt32:
				b = binary.LittleEndian.AppendUint32(append(b, 0xd0), uint32(v))
			default:
				b = binary.LittleEndian.AppendUint64(append(b, 0xe0), uint64(v))
			}
		} else {
			switch l := len(s); {
			case l < 64:
				b = append(b, byte(l))
			case l < 16384:
				b = append(b, 0x40|byte(l>>8), byte(l))
			default:
				b = binary.BigEndian.AppendUint32(append(b, 0x80), uint32(l))
			}
			b = append(b, s...)
		}
		prev = len(b) - start
	}
	b = append(b, 0xff)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], uint32(tail))
	binary.LittleEndian.PutUint16(b[8:], uint16(min(len(elems), 65535)))
	return b
}

func buildIntset(width int, vals ...int64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(width))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		switch width {
		case 2:
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		case 4:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		default:
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return b
}

func buildZipmap(pairs ...string) []byte {
	b := []byte{byte(min(len(pairs)/2, 254))}
	zl := func(n int) {
		if n < 254 {
			b = append(b, byte(n))
		} else {
			b = binary.LittleEndian.AppendUint32(append(b, 254), uint32(n))
		}
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		zl(len(pairs[i]))
		b = append(b, pairs[i]...)
		zl(len(pairs[i+1]))
		b = append(b, 1) // one byte of free space
		b = append(b, pairs[i+1]...)
		b = append(b, 0)
	}
	return append(b, 0xff)
}

// value builders: the serialized value of one type, without type byte.

func strsValue(strs ...string) []byte {
	b := appendLen(nil, uint64(len(strs)))
	for _, s := range strs {
		b = appendStr(b, s)
	}
	return b
}

func blobValue(blob []byte) []byte { return appendStr(nil, string(blob)) }

// pairsValue is a hash in the hashtable form: a pair count, then fields and
// values.
func pairsValue(kv ...string) []byte {
	b := appendLen(nil, uint64(len(kv)/2))
	for _, s := range kv {
		b = appendStr(b, s)
	}
	return b
}

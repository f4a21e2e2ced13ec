package rdb

import (
	"encoding/binary"
	"strconv"
)

// Iterators over the compact encodings Redis nests inside values as
// strings: listpack, ziplist, intset, zipmap. They work on a byte slice,
// check every length against it before use, and return elements that alias
// it. Offsets in their errors are relative to the blob.

// elem is one element of a compact encoding: a string (s) or an integer
// (v, with isInt), as Redis stores integer-looking strings as integers.
type elem struct {
	s     []byte
	v     int64
	isInt bool
}

// text returns the element as Redis shows it; integers are formatted into
// *buf, strings alias the blob.
func (el elem) text(buf *[]byte) []byte {
	if !el.isInt {
		return el.s
	}
	*buf = strconv.AppendInt((*buf)[:0], el.v, 10)
	return *buf
}

func blobError(off int, format string, args ...any) error {
	return newError(ErrCorrupt, int64(off), format, args...)
}

// listpack iterates a listpack: a 4-byte total length, a 2-byte element
// count (65535 when unknown), the elements, and a 0xFF terminator. Each
// element is an encoding byte, its data, and a back-length (1 to 5 bytes)
// giving the size of encoding and data for reverse traversal.
type listpack struct {
	b    []byte
	p    int
	n, i int // declared count (-1 unknown), elements read
}

func openListpack(b []byte) (listpack, error) {
	if len(b) < 7 {
		return listpack{}, blobError(0, "listpack of %d bytes", len(b))
	}
	if total := binary.LittleEndian.Uint32(b); uint64(total) != uint64(len(b)) {
		return listpack{}, blobError(0, "listpack header says %d bytes, blob has %d", total, len(b))
	}
	if b[len(b)-1] != 0xff {
		return listpack{}, blobError(len(b)-1, "listpack without terminator")
	}
	n := int(binary.LittleEndian.Uint16(b[4:]))
	if n == 65535 {
		n = -1
	}
	return listpack{b: b, p: 6, n: n}, nil
}

// next returns the next element; ok is false at the terminator, once the
// count has been checked.
func (lp *listpack) next() (el elem, ok bool, err error) {
	b, p := lp.b, lp.p
	c := b[p] // p < len(b): the terminator is never passed
	if c == 0xff {
		if p != len(b)-1 {
			return el, false, blobError(p, "listpack terminator before its end")
		}
		if lp.n >= 0 && lp.i != lp.n {
			return el, false, blobError(p, "listpack has %d elements, header says %d", lp.i, lp.n)
		}
		return el, false, nil
	}
	rest := len(b) - 1 - p // bytes before the terminator
	var size, hdr int      // encoding+data size, header size for strings
	switch {
	case c&0x80 == 0: // 0xxxxxxx: 7-bit unsigned
		el, size = elem{v: int64(c & 0x7f), isInt: true}, 1
	case c&0xc0 == 0x80: // 10xxxxxx: string up to 63 bytes
		hdr, size = 1, 1+int(c&0x3f)
	case c&0xe0 == 0xc0: // 110xxxxx: 13-bit signed
		if rest < 2 {
			return el, false, blobError(p, "listpack element past its end")
		}
		v := int64(c&0x1f)<<8 | int64(b[p+1])
		if v >= 1<<12 {
			v -= 1 << 13
		}
		el, size = elem{v: v, isInt: true}, 2
	case c&0xf0 == 0xe0: // 1110xxxx: string up to 4095 bytes
		if rest < 2 {
			return el, false, blobError(p, "listpack element past its end")
		}
		hdr = 2
		size = hdr + (int(c&0x0f)<<8 | int(b[p+1]))
	case c == 0xf0: // 32-bit string length
		if rest < 5 {
			return el, false, blobError(p, "listpack element past its end")
		}
		l := uint64(binary.LittleEndian.Uint32(b[p+1:]))
		if l > uint64(rest) {
			return el, false, blobError(p, "listpack string of %d bytes past its end", l)
		}
		hdr = 5
		size = hdr + int(l)
	case c >= 0xf1 && c <= 0xf4: // 16, 24, 32, 64-bit signed
		w := [...]int{2, 3, 4, 8}[c-0xf1]
		if rest < 1+w {
			return el, false, blobError(p, "listpack element past its end")
		}
		d := b[p+1 : p+1+w]
		var v int64
		switch w {
		case 2:
			v = int64(int16(binary.LittleEndian.Uint16(d)))
		case 3:
			v = int64(int32(uint32(d[0])<<8|uint32(d[1])<<16|uint32(d[2])<<24) >> 8)
		case 4:
			v = int64(int32(binary.LittleEndian.Uint32(d)))
		case 8:
			v = int64(binary.LittleEndian.Uint64(d))
		}
		el, size = elem{v: v, isInt: true}, 1+w
	default:
		return el, false, blobError(p, "listpack encoding byte 0x%02x", c)
	}
	bl := backlenSize(size)
	if size+bl > rest {
		return el, false, blobError(p, "listpack element of %d bytes past its end", size+bl)
	}
	if hdr > 0 {
		el.s = b[p+hdr : p+size]
	}
	if got := readBacklen(b[p+size : p+size+bl]); got != uint64(size) {
		return el, false, blobError(p+size, "listpack back-length %d, element is %d bytes", got, size)
	}
	lp.p = p + size + bl
	lp.i++
	return el, true, nil
}

func backlenSize(l int) int {
	switch {
	case l <= 127:
		return 1
	case l < 16383:
		return 2
	case l < 2097151:
		return 3
	case l < 268435455:
		return 4
	}
	return 5
}

// readBacklen decodes a back-length: 7 bits per byte, most significant
// first, every byte but the first flagged with 0x80.
func readBacklen(b []byte) uint64 {
	var v uint64
	for i, c := range b {
		if i > 0 && c&0x80 == 0 || i == 0 && len(b) > 1 && c&0x80 != 0 {
			return ^uint64(0)
		}
		v = v<<7 | uint64(c&0x7f)
	}
	return v
}

// ziplist iterates a ziplist (RDB < 10): 4-byte total length, 4-byte tail
// offset, 2-byte count (65535 when unknown), entries, 0xFF. Each entry is
// the previous entry's length (1 byte, or 0xFE and 4 bytes), an encoding
// and its data.
type ziplist struct {
	b     []byte
	p     int
	n, i  int
	prevl int
}

func openZiplist(b []byte) (ziplist, error) {
	if len(b) < 11 {
		return ziplist{}, blobError(0, "ziplist of %d bytes", len(b))
	}
	if total := binary.LittleEndian.Uint32(b); uint64(total) != uint64(len(b)) {
		return ziplist{}, blobError(0, "ziplist header says %d bytes, blob has %d", total, len(b))
	}
	if tail := binary.LittleEndian.Uint32(b[4:]); uint64(tail) >= uint64(len(b)) {
		return ziplist{}, blobError(4, "ziplist tail offset %d past its end", tail)
	}
	if b[len(b)-1] != 0xff {
		return ziplist{}, blobError(len(b)-1, "ziplist without terminator")
	}
	n := int(binary.LittleEndian.Uint16(b[8:]))
	if n == 65535 {
		n = -1
	}
	return ziplist{b: b, p: 10, n: n}, nil
}

func (zl *ziplist) next() (el elem, ok bool, err error) {
	b, p := zl.b, zl.p
	if b[p] == 0xff {
		if p != len(b)-1 {
			return el, false, blobError(p, "ziplist terminator before its end")
		}
		if zl.n >= 0 && zl.i != zl.n {
			return el, false, blobError(p, "ziplist has %d entries, header says %d", zl.i, zl.n)
		}
		return el, false, nil
	}
	rest := len(b) - 1 - p
	var prevl, q int
	if b[p] < 0xfe {
		prevl, q = int(b[p]), 1
	} else {
		if rest < 5 {
			return el, false, blobError(p, "ziplist entry past its end")
		}
		prevl, q = int(binary.LittleEndian.Uint32(b[p+1:])), 5
	}
	if prevl != zl.prevl {
		return el, false, blobError(p, "ziplist entry says the previous one is %d bytes, it is %d", prevl, zl.prevl)
	}
	if q >= rest {
		return el, false, blobError(p, "ziplist entry past its end")
	}
	c := b[p+q]
	var hdr, dlen int
	switch c >> 6 {
	case 0:
		hdr, dlen = 1, int(c&0x3f)
	case 1:
		if q+2 > rest {
			return el, false, blobError(p, "ziplist entry past its end")
		}
		hdr, dlen = 2, int(c&0x3f)<<8|int(b[p+q+1])
	case 2:
		if c != 0x80 || q+5 > rest {
			return el, false, blobError(p+q, "ziplist encoding byte 0x%02x", c)
		}
		l := uint64(binary.BigEndian.Uint32(b[p+q+1:]))
		if l > uint64(rest) {
			return el, false, blobError(p, "ziplist string of %d bytes past its end", l)
		}
		hdr, dlen = 5, int(l)
	default:
		hdr = 1
		el.isInt = true
		switch {
		case c == 0xc0:
			dlen = 2
		case c == 0xd0:
			dlen = 4
		case c == 0xe0:
			dlen = 8
		case c == 0xf0:
			dlen = 3
		case c == 0xfe:
			dlen = 1
		case c >= 0xf1 && c <= 0xfd:
			el.v = int64(c&0x0f) - 1
		default:
			return el, false, blobError(p+q, "ziplist encoding byte 0x%02x", c)
		}
	}
	size := q + hdr + dlen
	if size > rest {
		return el, false, blobError(p, "ziplist entry of %d bytes past its end", size)
	}
	d := b[p+q+hdr : p+size]
	if !el.isInt {
		el.s = d
	} else {
		switch dlen {
		case 1:
			el.v = int64(int8(d[0]))
		case 2:
			el.v = int64(int16(binary.LittleEndian.Uint16(d)))
		case 3:
			el.v = int64(int32(uint32(d[0])<<8|uint32(d[1])<<16|uint32(d[2])<<24) >> 8)
		case 4:
			el.v = int64(int32(binary.LittleEndian.Uint32(d)))
		case 8:
			el.v = int64(binary.LittleEndian.Uint64(d))
		}
	}
	zl.p += size
	zl.prevl = size
	zl.i++
	return el, true, nil
}

// intset: a 4-byte element width (2, 4 or 8), a 4-byte count, the sorted
// little-endian integers.
type intset struct {
	b    []byte
	w, i int
	n    int
}

func openIntset(b []byte) (intset, error) {
	if len(b) < 8 {
		return intset{}, blobError(0, "intset of %d bytes", len(b))
	}
	w := binary.LittleEndian.Uint32(b)
	if w != 2 && w != 4 && w != 8 {
		return intset{}, blobError(0, "intset element width %d", w)
	}
	n := uint64(binary.LittleEndian.Uint32(b[4:]))
	if 8+n*uint64(w) != uint64(len(b)) {
		return intset{}, blobError(4, "intset of %d elements of %d bytes in %d bytes", n, w, len(b))
	}
	return intset{b: b[8:], w: int(w), n: int(n)}, nil
}

func (is *intset) next() (elem, bool) {
	if is.i == is.n {
		return elem{}, false
	}
	d := is.b[is.i*is.w:]
	is.i++
	var v int64
	switch is.w {
	case 2:
		v = int64(int16(binary.LittleEndian.Uint16(d)))
	case 4:
		v = int64(int32(binary.LittleEndian.Uint32(d)))
	default:
		v = int64(binary.LittleEndian.Uint64(d))
	}
	return elem{v: v, isInt: true}, true
}

// zipmap (hashes, RDB < 6 or so): a count byte, then per pair a length, the
// field, a length, a free-space byte, the value and its free space; 0xFF
// ends it. Lengths are one byte below 254, else 254 and 4 bytes.
type zipmap struct {
	b []byte
	p int
}

func openZipmap(b []byte) (zipmap, error) {
	if len(b) < 2 || b[len(b)-1] != 0xff {
		return zipmap{}, blobError(0, "zipmap of %d bytes without terminator", len(b))
	}
	return zipmap{b: b, p: 1}, nil
}

func (zm *zipmap) len() (int, error) {
	b, p := zm.b, zm.p
	switch {
	case b[p] < 254:
		zm.p++
		return int(b[p]), nil
	case b[p] == 254 && p+5 < len(b):
		zm.p += 5
		l := uint64(binary.LittleEndian.Uint32(b[p+1:]))
		if l >= uint64(len(b)) {
			return 0, blobError(p, "zipmap length %d past its end", l)
		}
		return int(l), nil
	}
	return 0, blobError(p, "zipmap length byte 0x%02x", b[p])
}

func (zm *zipmap) next() (field, value []byte, ok bool, err error) {
	if zm.b[zm.p] == 0xff {
		if zm.p != len(zm.b)-1 {
			return nil, nil, false, blobError(zm.p, "zipmap terminator before its end")
		}
		return nil, nil, false, nil
	}
	fl, err := zm.len()
	if err != nil {
		return nil, nil, false, err
	}
	if zm.p+fl >= len(zm.b) {
		return nil, nil, false, blobError(zm.p, "zipmap field past its end")
	}
	field = zm.b[zm.p : zm.p+fl]
	zm.p += fl
	vl, err := zm.len()
	if err != nil {
		return nil, nil, false, err
	}
	if zm.p+1+vl >= len(zm.b) {
		return nil, nil, false, blobError(zm.p, "zipmap value past its end")
	}
	free := int(zm.b[zm.p])
	zm.p++
	value = zm.b[zm.p : zm.p+vl]
	zm.p += vl
	if zm.p+free >= len(zm.b) {
		return nil, nil, false, blobError(zm.p, "zipmap free space past its end")
	}
	zm.p += free
	return field, value, true, nil
}

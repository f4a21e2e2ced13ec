package rdb

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// The Reader's input: its window on the source (fill, need, peek, skip),
// through which every consumed byte reaches the CRC and a value being
// captured, and the RDB primitives read through it: lengths, counts and
// strings, decoded or skipped.

// fill compacts the buffer and reads from src until at least need bytes
// are available. Before bytes leave the buffer they are added to the CRC
// and, while capturing, to the value.
func (r *Reader) fill(need int) error {
	if r.capturing {
		r.val = append(r.val, r.buf[r.capFrom:r.r]...)
		r.capFrom = 0
	}
	r.crc = UpdateCRC64(r.crc, r.buf[r.crcFrom:r.r])
	r.crcFrom = 0
	n := copy(r.buf, r.buf[r.r:r.w])
	r.base += int64(r.r)
	r.r, r.w = 0, n
	empty := 0
	for r.w < need {
		if r.srcErr != nil {
			if errors.Is(r.srcErr, io.EOF) || errors.Is(r.srcErr, io.ErrUnexpectedEOF) {
				return newError(ErrTruncated, r.base+int64(r.w), "input ends %d bytes into a %d-byte read", r.w, need)
			}
			return &Error{Err: r.srcErr, Offset: r.base + int64(r.w), Detail: "reading the RDB stream"}
		}
		m, err := r.src.Read(r.buf[r.w:])
		r.w += m
		if err != nil {
			r.srcErr = err
		} else if m == 0 {
			if empty++; empty > 100 {
				r.srcErr = io.ErrNoProgress
			}
		}
	}
	return nil
}

// need makes n bytes available at buf[r:]; n must be at most readBufSize.
func (r *Reader) need(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	return r.fill(n)
}

// peek returns the next n bytes without consuming them; the slice is valid
// until the next read.
func (r *Reader) peek(n int) ([]byte, error) {
	if err := r.need(n); err != nil {
		return nil, err
	}
	return r.buf[r.r : r.r+n], nil
}

func (r *Reader) readByte() (byte, error) {
	if r.r == r.w {
		if err := r.fill(1); err != nil {
			return 0, err
		}
	}
	b := r.buf[r.r]
	r.r++
	return b, nil
}

// skip consumes n bytes (which still reach the CRC and a capture).
func (r *Reader) skip(n uint64) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return err
			}
		}
		k := uint64(r.w - r.r)
		if k > n {
			k = n
		}
		r.r += int(k)
		n -= k
	}
	return nil
}

// appendN consumes n bytes and appends them to dst. dst grows only as the
// bytes arrive, so a forged length cannot allocate more than the input has.
func (r *Reader) appendN(dst []byte, n uint64) ([]byte, error) {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return dst, err
			}
		}
		k := uint64(r.w - r.r)
		if k > n {
			k = n
		}
		dst = append(dst, r.buf[r.r:r.r+int(k)]...)
		r.r += int(k)
		n -= k
	}
	return dst, nil
}

// String encodings signalled by a length byte of the form 11xxxxxx.
const (
	encInt8  = 0
	encInt16 = 1
	encInt32 = 2
	encLZF   = 3
)

// readLen reads an RDB length. encoded reports the 11xxxxxx form, where the
// low bits name a string encoding rather than a length.
func (r *Reader) readLen() (n uint64, encoded bool, err error) {
	if r.w-r.r < 9 {
		if err := r.need(1); err != nil {
			return 0, false, err
		}
		switch b := r.buf[r.r]; {
		case b>>6 == 1:
			err = r.need(2)
		case b == 0x80:
			err = r.need(5)
		case b == 0x81:
			err = r.need(9)
		}
		if err != nil {
			return 0, false, err
		}
	}
	p := r.buf[r.r:]
	b := p[0]
	switch b >> 6 {
	case 0:
		r.r++
		return uint64(b & 0x3f), false, nil
	case 1:
		r.r += 2
		return uint64(b&0x3f)<<8 | uint64(p[1]), false, nil
	case 3:
		r.r++
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		r.r += 5
		return uint64(binary.BigEndian.Uint32(p[1:])), false, nil
	case 0x81:
		r.r += 9
		return binary.BigEndian.Uint64(p[1:]), false, nil
	}
	return 0, false, newError(ErrCorrupt, r.pos(), "unknown length encoding 0x%02x", b)
}

// readPlainLen reads a length that must not be a string encoding.
func (r *Reader) readPlainLen(start int64, what string) (uint64, error) {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, newError(ErrCorrupt, at, "%s record at %d: string encoding where a length belongs", what, start)
	}
	return n, nil
}

// readString reads an RDB string and appends it decoded to dst.
func (r *Reader) readString(dst []byte) ([]byte, error) {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return dst, err
	}
	if !enc {
		return r.appendN(dst, n)
	}
	switch n {
	case encInt8:
		b, err := r.readByte()
		if err != nil {
			return dst, err
		}
		return strconv.AppendInt(dst, int64(int8(b)), 10), nil
	case encInt16:
		b, err := r.peek(2)
		if err != nil {
			return dst, err
		}
		r.r += 2
		return strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(b))), 10), nil
	case encInt32:
		b, err := r.peek(4)
		if err != nil {
			return dst, err
		}
		r.r += 4
		return strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(b))), 10), nil
	case encLZF:
		clen, ulen, err := r.readLZFHeader(at)
		if err != nil {
			return dst, err
		}
		if r.lzfIn, err = r.appendN(r.lzfIn[:0], clen); err != nil {
			return dst, err
		}
		out, err := lzfDecompress(dst, r.lzfIn, ulen)
		if cap(r.lzfIn) > maxRetainedValue {
			r.lzfIn = nil
		}
		if err != nil {
			return dst, newError(ErrCorrupt, at, "%v", err)
		}
		return out, nil
	}
	return dst, newError(ErrCorrupt, at, "unknown string encoding %d", n)
}

func (r *Reader) readLZFHeader(at int64) (clen, ulen uint64, err error) {
	var e1, e2 bool
	if clen, e1, err = r.readLen(); err != nil {
		return 0, 0, err
	}
	if ulen, e2, err = r.readLen(); err != nil {
		return 0, 0, err
	}
	if e1 || e2 || clen == 0 {
		return 0, 0, newError(ErrCorrupt, at, "bad LZF string header")
	}
	return clen, ulen, nil
}

// skipString walks past an RDB string without decoding it.
func (r *Reader) skipString() error {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return err
	}
	if !enc {
		return r.skip(n)
	}
	// As text, an integer takes at most 4, 6 or 11 bytes ("-128",
	// "-32768", "-2147483648").
	switch n {
	case encInt8:
		r.grown += 4 - 1
		return r.skip(1)
	case encInt16:
		r.grown += 6 - 2
		return r.skip(2)
	case encInt32:
		r.grown += 11 - 4
		return r.skip(4)
	case encLZF:
		clen, ulen, err := r.readLZFHeader(at)
		if err != nil {
			return err
		}
		r.grown += int64(ulen) - int64(clen)
		return r.skip(clen)
	}
	return newError(ErrCorrupt, at, "unknown string encoding %d", n)
}

// skipStrings walks past n strings.
func (r *Reader) skipStrings(n uint64) error {
	for ; n > 0; n-- {
		if err := r.skipString(); err != nil {
			return err
		}
	}
	return nil
}

// count reads an element count. Every element takes at least one byte, so
// a count is never checked against a limit here: a forged one runs into
// the end of the input.
func (r *Reader) count(what string) (uint64, error) {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, newError(ErrCorrupt, at, "%s: string encoding where a count belongs", what)
	}
	return n, nil
}

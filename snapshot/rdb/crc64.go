package rdb

import (
	"encoding/binary"
	"hash"
)

// Redis checksums RDB files and DUMP payloads with CRC-64/Jones as found in
// Redis's crc64.c: polynomial 0xad93d23594c935a9, input and output
// reflected, initial value 0, no final xor. The check value (CRC of
// "123456789") is 0xe9c6d914c4b8d9ca.
//
// hash/crc64 cannot be used as is: it complements the register before and
// after each update (init and xorout of all ones), and for a custom table it
// rebuilds its slicing tables on every call of 2 KiB or more.

// crcPolyReflected is the Jones polynomial 0xad93d23594c935a9 bit-reversed,
// the form a reflected (LSB-first) table-driven implementation uses.
const crcPolyReflected = 0x95ac9329ac4bc9b5

// crcTables holds the slicing-by-8 tables: crcTables[0] is the classic
// byte-at-a-time table, crcTables[k][b] is the CRC of byte b followed by k
// zero bytes.
var crcTables = func() *[8][256]uint64 {
	var t [8][256]uint64
	for i := range 256 {
		c := uint64(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ crcPolyReflected
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range 256 {
		c := t[0][i]
		for k := 1; k < 8; k++ {
			c = t[0][byte(c)] ^ c>>8
			t[k][i] = c
		}
	}
	return &t
}()

// UpdateCRC64 returns the Redis CRC-64 of p continued from crc, the CRC of
// the bytes before p (0 for none). It is the function Redis calls crc64().
func UpdateCRC64(crc uint64, p []byte) uint64 {
	t := crcTables
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint64(p)
		crc = t[7][byte(crc)] ^
			t[6][byte(crc>>8)] ^
			t[5][byte(crc>>16)] ^
			t[4][byte(crc>>24)] ^
			t[3][byte(crc>>32)] ^
			t[2][byte(crc>>40)] ^
			t[1][byte(crc>>48)] ^
			t[0][byte(crc>>56)]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}

// CRC64 returns the Redis CRC-64 of p.
func CRC64(p []byte) uint64 { return UpdateCRC64(0, p) }

// Digest computes a Redis CRC-64 incrementally; it implements hash.Hash64, so
// a whole file can be checksummed while it streams (io.Copy, io.TeeReader,
// io.MultiWriter). The zero value is ready to use.
//
// Sum appends the CRC big-endian, as every hash.Hash in the standard library
// does; RDB files and DUMP payloads store it little-endian, so compare
// against Sum64.
type Digest struct {
	crc uint64
}

var _ hash.Hash64 = (*Digest)(nil)

// NewCRC64 returns a Digest at the CRC of zero bytes.
func NewCRC64() *Digest { return &Digest{} }

// Write adds p to the checksum; it never fails.
func (d *Digest) Write(p []byte) (int, error) {
	d.crc = UpdateCRC64(d.crc, p)
	return len(p), nil
}

// Sum64 returns the CRC of everything written so far.
func (d *Digest) Sum64() uint64 { return d.crc }

// Sum appends the big-endian CRC to b.
func (d *Digest) Sum(b []byte) []byte { return binary.BigEndian.AppendUint64(b, d.crc) }

// Reset restarts the checksum at zero bytes.
func (d *Digest) Reset() { d.crc = 0 }

// Size returns 8, the size of the checksum in bytes.
func (d *Digest) Size() int { return 8 }

// BlockSize returns 8: writes of multiples of 8 bytes take the fast path.
func (d *Digest) BlockSize() int { return 8 }

package router

import "bytes"

// NumSlots is the number of hash slots, as in Redis Cluster.
const NumSlots = 16384

// crc16tabs[k][v] is the CRC16/XMODEM of byte v followed by k zero bytes:
// with them crc16 takes 8 bytes per step, as eight independent lookups
// instead of a chain of eight (slicing-by-8). crc16tabs[0] is the classic
// byte-at-a-time table.
var crc16tabs [8][256]uint16

func init() {
	// CRC16/XMODEM: polynomial 0x1021, initial value 0, no reflection.
	for i := range crc16tabs[0] {
		crc := uint16(i) << 8
		for j := 0; j < 8; j++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		crc16tabs[0][i] = crc
	}
	for k := 1; k < len(crc16tabs); k++ {
		for i, prev := range crc16tabs[k-1] {
			crc16tabs[k][i] = prev<<8 ^ crc16tabs[0][prev>>8]
		}
	}
}

func crc16(b []byte) uint16 {
	var crc uint16
	t := &crc16tabs
	for ; len(b) >= 8; b = b[8:] {
		// The register is 16 bits wide, so after two bytes it holds only
		// what they left: the first two bytes are XORed into it, the
		// other six enter as they are.
		x := crc ^ uint16(b[0])<<8 ^ uint16(b[1])
		crc = t[7][x>>8] ^ t[6][x&0xff] ^ t[5][b[2]] ^ t[4][b[3]] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
	}
	for _, c := range b {
		crc = crc<<8 ^ t[0][byte(crc>>8)^c]
	}
	return crc
}

// Slot returns the hash slot of key. If the key contains a "{...}" with at
// least one byte between the first '{' and the first '}' after it, only
// those bytes are hashed (the hash tag rule of Redis Cluster).
func Slot(key []byte) uint16 {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) & (NumSlots - 1)
}

// PatternSlot returns the one slot of every key a glob-style pattern can
// match (SORT's BY and GET patterns), and false when the keys may lie in
// several: a wildcard ('*', '?', '[') or an escape ('\') comes before the
// pattern's hash tag closes. Without a tag the pattern is a single key.
func PatternSlot(pattern []byte) (uint16, bool) {
	open := -1 // the first '{', while its tag is open; -2 after an empty tag
	for i, c := range pattern {
		switch {
		case c == '*' || c == '?' || c == '[' || c == '\\':
			return 0, false
		case c == '{' && open == -1:
			open = i
		case c == '}' && open >= 0 && i == open+1:
			open = -2 // "{}": the whole key is hashed
		case c == '}' && open >= 0:
			return crc16(pattern[open+1:i]) & (NumSlots - 1), true
		}
	}
	return crc16(pattern) & (NumSlots - 1), true
}

package wire

import "bytes"

// Client text: how the proxy compares and quotes client arguments.

// EqualFold compares a client argument with a lowercase ASCII word.
func EqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 32
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Clip shortens a client argument for an error message as Redis's "%.128s"
// does: at 128 bytes or at a NUL byte.
func Clip(b []byte) string {
	b = CString(b)
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

// CString is b up to its first NUL byte.
func CString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

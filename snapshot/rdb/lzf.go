package rdb

import "fmt"

// lzfMaxRatio bounds how much LZF can expand: the longest back reference is
// 3 bytes for 264 output bytes, so no valid stream expands more than 88x.
// A declared uncompressed length beyond it is corrupt, and rejecting it
// before allocating keeps a forged header from reserving gigabytes.
const lzfMaxRatio = 88

// lzfDecompress appends the expansion of in, which must be exactly outLen
// bytes, to dst. It never reads or writes out of bounds on malformed input.
func lzfDecompress(dst, in []byte, outLen uint64) ([]byte, error) {
	if outLen > uint64(len(in))*lzfMaxRatio {
		return dst, fmt.Errorf("lzf: %d bytes cannot expand to %d", len(in), outLen)
	}
	start := len(dst)
	want := start + int(outLen)
	dst = growTo(dst, want)
	ip := 0
	for ip < len(in) {
		ctrl := int(in[ip])
		ip++
		if ctrl < 32 {
			n := ctrl + 1
			if ip+n > len(in) {
				return dst[:start], fmt.Errorf("lzf: literal run of %d past the input end", n)
			}
			if len(dst)+n > want {
				return dst[:start], fmt.Errorf("lzf: output exceeds %d bytes", outLen)
			}
			dst = append(dst, in[ip:ip+n]...)
			ip += n
			continue
		}
		n := ctrl >> 5
		back := (ctrl & 0x1f) << 8
		if n == 7 {
			if ip >= len(in) {
				return dst[:start], fmt.Errorf("lzf: truncated back reference")
			}
			n += int(in[ip])
			ip++
		}
		if ip >= len(in) {
			return dst[:start], fmt.Errorf("lzf: truncated back reference")
		}
		back += int(in[ip]) + 1
		ip++
		n += 2
		ref := len(dst) - back
		if ref < start {
			return dst[:start], fmt.Errorf("lzf: back reference before the output start")
		}
		if len(dst)+n > want {
			return dst[:start], fmt.Errorf("lzf: output exceeds %d bytes", outLen)
		}
		// Byte by byte when the source overlaps what is being written: a
		// reference one byte back repeats that byte n times.
		if back >= n {
			dst = append(dst, dst[ref:ref+n]...)
		} else {
			for i := range n {
				dst = append(dst, dst[ref+i])
			}
		}
	}
	if len(dst) != want {
		return dst[:start], fmt.Errorf("lzf: expanded to %d bytes, want %d", len(dst)-start, outLen)
	}
	return dst, nil
}

// growTo returns b with capacity for at least n bytes, same length.
func growTo(b []byte, n int) []byte {
	if cap(b) >= n {
		return b
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}

package rdb

import (
	"bytes"
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

func TestCRC64CheckValues(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{
		{"", 0},
		{"123456789", 0xe9c6d914c4b8d9ca}, // Redis crc64.c's own test vector
	}
	for _, tt := range tests {
		if got := CRC64([]byte(tt.in)); got != tt.want {
			t.Errorf("CRC64(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

// refCRC64 is the same CRC computed by hash/crc64: its update complements
// the register on the way in and out, so complementing around it yields
// the plain reflected CRC with zero init and no final xor that Redis uses.
var refTable = crc64.MakeTable(crcPolyReflected)

func refCRC64(crc uint64, p []byte) uint64 { return ^crc64.Update(^crc, refTable, p) }

func TestCRC64MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096, 100003} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if got, want := CRC64(p), refCRC64(0, p); got != want {
			t.Errorf("len %d: CRC64 = %#x, reference %#x", n, got, want)
		}
		if got, want := UpdateCRC64(0x1234, p), refCRC64(0x1234, p); got != want {
			t.Errorf("len %d: UpdateCRC64 from 0x1234 = %#x, reference %#x", n, got, want)
		}
	}
}

func TestDigestStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	want := CRC64(p)
	d := NewCRC64()
	for rest := p; len(rest) > 0; {
		n := min(len(rest), rng.IntN(5000))
		d.Write(rest[:n])
		rest = rest[n:]
	}
	if got := d.Sum64(); got != want {
		t.Fatalf("Sum64 after chunked writes = %#x, want %#x", got, want)
	}
	if got := d.Sum(nil); !bytes.Equal(got, []byte{byte(want >> 56), byte(want >> 48), byte(want >> 40), byte(want >> 32), byte(want >> 24), byte(want >> 16), byte(want >> 8), byte(want)}) {
		t.Errorf("Sum = %x, want big-endian %016x", got, want)
	}
	d.Reset()
	if d.Sum64() != 0 {
		t.Errorf("Sum64 after Reset = %#x, want 0", d.Sum64())
	}
}

func BenchmarkCRC64(b *testing.B) {
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		CRC64(p)
	}
}

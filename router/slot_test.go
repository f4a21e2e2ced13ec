package router

import "testing"

// refCRC16 is CRC16/XMODEM computed bit by bit, independent of the table.
func refCRC16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// refSlot is keyHashSlot from Redis's cluster.c, loop for loop: hash only
// what lies between the first '{' and the first '}' after it, if that is
// not empty.
func refSlot(key []byte) uint16 {
	s := 0
	for s < len(key) && key[s] != '{' {
		s++
	}
	if s == len(key) {
		return refCRC16(key) % NumSlots
	}
	e := s + 1
	for e < len(key) && key[e] != '}' {
		e++
	}
	if e == len(key) || e == s+1 {
		return refCRC16(key) % NumSlots
	}
	return refCRC16(key[s+1:e]) % NumSlots
}

func TestCRC16CheckValue(t *testing.T) {
	// The CRC-16/XMODEM check value, quoted in the Redis Cluster spec.
	if got, want := crc16([]byte("123456789")), uint16(0x31C3); got != want {
		t.Errorf("crc16(123456789) = %#04x, want %#04x", got, want)
	}
}

func TestSlot(t *testing.T) {
	// want is the CRC of what must be hashed, computed by the reference.
	crc := func(s string) uint16 { return refCRC16([]byte(s)) % NumSlots }
	tests := []struct {
		key  string
		want uint16
	}{
		{"", 0},
		{"foo", 12182},
		{"bar", 5061},
		{"123456789", 0x31C3 % NumSlots},
		{"{user1000}.following", crc("user1000")},
		{"{user1000}.followers", crc("user1000")},
		{"foo{}{bar}", crc("foo{}{bar}")}, // empty tag: the whole key
		{"foo{{bar}}zap", crc("{bar")},
		{"foo{bar}{zap}", crc("bar")},
		{"{bar", crc("{bar")}, // no closing brace
		{"bar}", crc("bar}")},
		{"}{bar}", crc("bar")},
		{"{}", crc("{}")},
		{"a{b}", crc("b")},
		{"{a}{b}", crc("a")},
		{"x{}y{z}", crc("x{}y{z}")}, // only the first '{' counts
	}
	for _, tt := range tests {
		if got := Slot([]byte(tt.key)); got != tt.want {
			t.Errorf("Slot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestSlotSameTag(t *testing.T) {
	a, b := Slot([]byte("{user1000}.following")), Slot([]byte("{user1000}.followers"))
	if a != b {
		t.Errorf("{user1000}.following -> %d, {user1000}.followers -> %d: want the same slot", a, b)
	}
	if whole := Slot([]byte("foo{}{bar}")); whole == Slot([]byte("bar")) {
		t.Errorf("foo{}{bar} hashed the second tag")
	}
}

func TestSlotMatchesReference(t *testing.T) {
	// Every 0-2 byte key, over an alphabet rich in braces.
	alphabet := []byte{0, '{', '}', 'a', 0xff}
	keys := [][]byte{{}}
	for _, a := range alphabet {
		keys = append(keys, []byte{a})
		for _, b := range alphabet {
			keys = append(keys, []byte{a, b}, []byte{'{', a, '}', b}, []byte{a, '{', b, '}'})
		}
	}
	for _, k := range keys {
		if got, want := Slot(k), refSlot(k); got != want {
			t.Errorf("Slot(%q) = %d, reference %d", k, got, want)
		}
	}
}

// TestCRC16Lengths checks all 16 bits (Slot keeps only 14) against the
// bit-by-bit reference for every length from 0 to 70, so every tail after
// the 8-byte steps.
func TestCRC16Lengths(t *testing.T) {
	buf := make([]byte, 70)
	for i := range buf {
		buf[i] = byte(i*131 + 7)
	}
	for n := 0; n <= len(buf); n++ {
		if got, want := crc16(buf[:n]), refCRC16(buf[:n]); got != want {
			t.Errorf("crc16 of %d bytes = %#04x, reference %#04x", n, got, want)
		}
	}
}

func TestSlotAllocs(t *testing.T) {
	key := []byte("{user1000}.following")
	if n := testing.AllocsPerRun(100, func() { _ = Slot(key) }); n != 0 {
		t.Errorf("Slot allocates %v times per call, want 0", n)
	}
}

func FuzzSlot(f *testing.F) {
	for _, s := range []string{"", "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{", "}", "{}", "\x00{\xff}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		if got, want := Slot(key), refSlot(key); got != want {
			t.Errorf("Slot(%q) = %d, reference %d", key, got, want)
		}
	})
}

func BenchmarkSlot(b *testing.B) {
	for _, bc := range []struct{ name, key string }{
		{"short", "foo"},
		{"16B", "key:__rand_int__"}, // redis-benchmark's key
		{"tag", "{user1000}.following"},
		{"64B", "session:0123456789abcdef0123456789abcdef0123456789abcdef01234567"},
	} {
		key := []byte(bc.key)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(key)))
			for b.Loop() {
				_ = Slot(key)
			}
		})
	}
}

func TestPatternSlot(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		key     string // a key of the one slot, or "" for several
	}{
		{"{user}:*", "{user}"},
		{"w_{user}*->f", "{user}"},
		{"weight", "weight"},
		{"w_*", ""},
		{"*{user}", ""},
		{"w?{user}", ""},
		{`w\{user}`, ""},
		{"w[ab]{user}", ""},
		{"{}*", ""},          // an empty tag hashes the whole key: the wildcard spreads it
		{"{}x{y}", "{}x{y}"}, // after an empty tag, later braces are not a tag (as Slot)
		{"{a{b}*", "{a{b}"},
	} {
		got, ok := PatternSlot([]byte(tc.pattern))
		if tc.key == "" {
			if ok {
				t.Errorf("PatternSlot(%q) = %d, want several slots", tc.pattern, got)
			}
			continue
		}
		if want := Slot([]byte(tc.key)); !ok || got != want {
			t.Errorf("PatternSlot(%q) = %d, %v; want %d (the slot of %q)", tc.pattern, got, ok, want, tc.key)
		}
	}
}

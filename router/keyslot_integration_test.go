package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// keyslotCorpus is at least 2000 keys meant to catch any difference from
// Redis in the CRC or the hash tag rule. The seed is fixed so a failure
// reproduces.
func keyslotCorpus() [][]byte {
	rng := rand.New(rand.NewPCG(20240611, 1))
	var keys [][]byte
	add := func(s string) { keys = append(keys, []byte(s)) }

	add("")
	for b := 0; b < 256; b++ { // every byte value alone and around a tag
		keys = append(keys, []byte{byte(b)}, []byte{'{', byte(b), '}', 'x'}, []byte{byte(b), '{', '}', byte(b)})
	}
	for _, s := range []string{
		"foo", "bar", "123456789",
		"{user1000}.following", "{user1000}.followers", "user1000",
		"{}", "{}{}", "{}x", "x{}", "x{}y", "foo{}{bar}", "{}{bar}", "{}bar}", "{{}}",
		"{", "}", "}{", "{{", "}}", "{{bar}}", "foo{{bar}}zap", "foo{bar}{zap}", "{a}{b}", "{{a}b}",
		"a{b{c}d}e", "{a{b}c}", "}{a}", "}{}a", "{a}", "a{b}", "a{b}c", "{ab", "ab}", "a{b", "{\x00}", "\x00{}\x00",
		"{ü}", "ключ", "{ключ}.x", "キー{タグ}", "😀{😀}😀", "{😀}", "é{}é", "\u00a0{\u00a0}",
		"{\xff\xfe}", "\xff{", "}\xff{\xff}",
		strings.Repeat("a", 1000), strings.Repeat("{", 100) + "}", "{" + strings.Repeat("x", 5000) + "}y",
		strings.Repeat("\xff", 65536),
	} {
		add(s)
	}
	// Tags at the start, in the middle and at the end of random text.
	word := func(n int) string {
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789:._-"
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return string(b)
	}
	for i := 0; i < 300; i++ {
		tag := word(rng.IntN(12))
		pre, post := word(rng.IntN(10)), word(rng.IntN(10))
		add("{" + tag + "}" + post)
		add(pre + "{" + tag + "}" + post)
		add(pre + "{" + tag + "}")
	}
	// Random binary keys, and random keys over an alphabet full of braces.
	for i := 0; i < 800; i++ {
		b := make([]byte, rng.IntN(48))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		keys = append(keys, b)
	}
	for i := 0; i < 600; i++ {
		const alphabet = "{{}}ab\x00\xff"
		b := make([]byte, rng.IntN(16))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		keys = append(keys, b)
	}
	// Random unicode text with tags.
	for i := 0; i < 100; i++ {
		var sb strings.Builder
		for j := rng.IntN(8); j >= 0; j-- {
			switch rng.IntN(4) {
			case 0:
				sb.WriteRune(rune(0x80 + rng.IntN(0x10FFFF-0x80)))
			case 1:
				sb.WriteByte('{')
			case 2:
				sb.WriteByte('}')
			default:
				sb.WriteRune(rune(0x400 + rng.IntN(0x100)))
			}
		}
		add(sb.String())
	}
	return keys
}

func TestSlotMatchesClusterKeyslot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	keys := keyslotCorpus()
	if len(keys) < 2000 {
		t.Fatalf("corpus has %d keys, want at least 2000", len(keys))
	}
	c := startClusterNode(t).Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	pipe := c.Pipeline()
	for _, k := range keys {
		pipe.ClusterKeySlot(ctx, string(k))
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT pipeline: %v", err)
	}
	if len(cmds) != len(keys) {
		t.Fatalf("got %d replies for %d keys", len(cmds), len(keys))
	}
	mismatches := 0
	for i, cmd := range cmds {
		want, err := cmd.(interface{ Result() (int64, error) }).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", keys[i], err)
		}
		if got := Slot(keys[i]); int64(got) != want {
			mismatches++
			if mismatches <= 20 {
				t.Errorf("Slot(%s) = %d, CLUSTER KEYSLOT = %d", quoteKey(keys[i]), got, want)
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d keys disagree", mismatches, len(keys))
	}
}

func quoteKey(k []byte) string {
	if len(k) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", k[:64], len(k))
	}
	return fmt.Sprintf("%q", k)
}

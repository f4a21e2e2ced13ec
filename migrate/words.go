package migrate

import (
	"strconv"
	"strings"
)

// count is n and noun, in the plural unless n is 1: "1 key", "2 keys",
// "0 mismatches", "3 function libraries".
func count[T ~int | ~int64](n T, noun string) string {
	s := strconv.FormatInt(int64(n), 10) + " "
	if n == 1 {
		return s + noun
	}
	switch {
	case strings.HasSuffix(noun, "y") && !strings.ContainsAny(noun[max(len(noun)-2, 0):len(noun)-1], "aeiou"):
		return s + noun[:len(noun)-1] + "ies"
	case strings.HasSuffix(noun, "ch"), strings.HasSuffix(noun, "s"):
		return s + noun + "es"
	}
	return s + noun + "s"
}

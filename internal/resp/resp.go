package resp

// ParseInt parses a decimal integer as RESP writes it in a header line or
// an integer reply: an optional '-' and 1 to 19 digits, no '+', no spaces.
// It reports false on anything else and on int64 overflow, so a corrupt or
// hostile length can never wrap around.
func ParseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, true
}

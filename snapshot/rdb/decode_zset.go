package rdb

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Decoding a sorted set: its members and scores from every encoding, and
// the scores stored as text by RDB_TYPE_ZSET.

// EachZSetMember calls fn for every member of a sorted set with its score,
// in the order stored (by score for the compact encodings).
func EachZSetMember(e *Entry, fn func(member []byte, score float64) error) error {
	c := cursor{b: e.Value}
	var blob, mbuf []byte
	switch e.Type {
	case TypeZSet, TypeZSet2:
		n, err := c.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			m, err := c.str(&mbuf)
			if err != nil {
				return err
			}
			var score float64
			if e.Type == TypeZSet2 {
				d, err := c.take(8)
				if err != nil {
					return err
				}
				score = math.Float64frombits(binary.LittleEndian.Uint64(d))
			} else if score, err = c.textScore(); err != nil {
				return err
			}
			if err := fn(m, score); err != nil {
				return err
			}
		}
	case TypeZSetZiplist, TypeZSetListpack:
		b, err := c.str(&blob)
		if err != nil {
			return err
		}
		it, err := openPairs(b, e.Type == TypeZSetListpack)
		if err != nil {
			return err
		}
		err = eachGroup(it, 2, func(m, s, _ elem) error {
			score := float64(s.v)
			if !s.isInt {
				var err error
				if score, err = parseScore(s.s); err != nil {
					return err
				}
			}
			return fn(m.text(&mbuf), score)
		})
		if err != nil {
			return err
		}
	default:
		return wrongType(e, "zset")
	}
	return c.end()
}

// textScore reads a score in the RDB_TYPE_ZSET form: a length byte and
// ASCII, or 253, 254, 255 for NaN, +inf, -inf.
func (c *cursor) textScore() (float64, error) {
	l, err := c.byte1()
	if err != nil {
		return 0, err
	}
	switch l {
	case 253:
		return math.NaN(), nil
	case 254:
		return math.Inf(1), nil
	case 255:
		return math.Inf(-1), nil
	}
	d, err := c.take(uint64(l))
	if err != nil {
		return 0, err
	}
	return parseScore(d)
}

func parseScore(b []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, newError(ErrCorrupt, 0, "score %q is not a number", b)
	}
	return f, nil
}

package rdb

import "encoding/binary"

// Decoding a hash: its fields and values from every encoding, with the
// field expiries of Redis 7.4+ where the encoding carries them.

// noExpiry marks a hash field without a TTL.
const noExpiry = -1

// EachHashField calls fn for every field of a hash with its value and its
// expiry in Unix milliseconds (noExpiry, -1, unless the hash has field TTLs,
// Redis 7.4+).
func EachHashField(e *Entry, fn func(field, value []byte, expireMs int64) error) error {
	c := cursor{b: e.Value}
	var blob, fbuf, vbuf []byte
	compact := func(b []byte, listpackFormat bool, triplets bool) error {
		it, err := openPairs(b, listpackFormat)
		if err != nil {
			return err
		}
		size := 2
		if triplets {
			size = 3
		}
		return eachGroup(it, size, func(f, v, t elem) error {
			exp := int64(noExpiry)
			if triplets {
				if !t.isInt {
					return newError(ErrCorrupt, 0, "hash field TTL %q is not an integer", t.s)
				}
				if t.v != 0 {
					exp = t.v
				}
			}
			return fn(f.text(&fbuf), v.text(&vbuf), exp)
		})
	}
	switch e.Type {
	case TypeHash, TypeHashMetadata, TypeHashMetadataPreGA:
		var minExpire int64
		if e.Type == TypeHashMetadata {
			d, err := c.take(8)
			if err != nil {
				return err
			}
			minExpire = int64(binary.LittleEndian.Uint64(d))
		}
		n, err := c.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			exp := int64(noExpiry)
			if e.Type != TypeHash {
				ttl, err := c.count()
				if err != nil {
					return err
				}
				switch {
				case ttl == 0:
				case e.Type == TypeHashMetadataPreGA:
					exp = int64(ttl) // absolute in the release candidates
				default:
					exp = int64(ttl) + minExpire - 1 // relative, +1 so 0 means none
				}
			}
			f, err := c.str(&fbuf)
			if err != nil {
				return err
			}
			v, err := c.str(&vbuf)
			if err != nil {
				return err
			}
			if err := fn(f, v, exp); err != nil {
				return err
			}
		}
	case TypeHashZipmap:
		b, err := c.str(&blob)
		if err != nil {
			return err
		}
		zm, err := openZipmap(b)
		if err != nil {
			return err
		}
		for {
			f, v, ok, err := zm.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := fn(f, v, noExpiry); err != nil {
				return err
			}
		}
	case TypeHashZiplist, TypeHashListpack, TypeHashListpackExPreGA, TypeHashListpackEx:
		if e.Type == TypeHashListpackEx {
			if _, err := c.take(8); err != nil { // minimum expiry, a hint
				return err
			}
		}
		b, err := c.str(&blob)
		if err != nil {
			return err
		}
		if err := compact(b, e.Type != TypeHashZiplist, e.Type == TypeHashListpackExPreGA || e.Type == TypeHashListpackEx); err != nil {
			return err
		}
	default:
		return wrongType(e, "hash")
	}
	return c.end()
}

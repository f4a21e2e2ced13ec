package rdb

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Decoding values.
//
// DESIGN.md suggests github.com/hdt3213/rdb (v1.3.2) for this. It is not
// used, for four reasons found reading and running it:
//   - it builds each whole value as Go objects (a [][]byte, a map) next to
//     the raw bytes the Reader already holds; a 5M-element list costs
//     hundreds of MB, where iterating the raw bytes costs nothing extra, and
//     big-key chunking (issue 5) only needs one element at a time;
//   - its stream entries are map[string]string: field order and repeated
//     fields are lost, so XADD could not rebuild an entry as it was;
//   - it trusts declared counts (intset cardinality, stream entry counts)
//     for make(), so a corrupt value can ask for more memory than exists,
//     which is a fatal runtime error no recover() catches; it also panics on
//     lists with plain quicklist nodes and prints to stdout for unknown
//     module types;
//   - every value type Redis 7 writes (and the older ones) fits in the few
//     hundred lines below, which share the bounds-checked iterators with the
//     rest of the package and are tested against a real redis-server.
//
// The functions below iterate one value held in an Entry. Slices passed to
// callbacks alias the entry's Value or a scratch buffer: they are valid only
// during the call. A callback's error stops the iteration and is returned as
// is. Errors in the value wrap ErrCorrupt with the offset in the value.

// cursor reads the RDB serialization of one value from memory.
type cursor struct {
	b []byte
	p int
}

func (c *cursor) fail(format string, args ...any) error {
	return newError(ErrCorrupt, int64(c.p), format, args...)
}

func (c *cursor) take(n uint64) ([]byte, error) {
	if n > uint64(len(c.b)-c.p) {
		return nil, c.fail("%d bytes needed, %d left", n, len(c.b)-c.p)
	}
	s := c.b[c.p : c.p+int(n)]
	c.p += int(n)
	return s, nil
}

func (c *cursor) byte1() (byte, error) {
	if c.p >= len(c.b) {
		return 0, c.fail("value ends early")
	}
	c.p++
	return c.b[c.p-1], nil
}

func (c *cursor) rawLen() (n uint64, encoded bool, err error) {
	b, err := c.byte1()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3f), false, nil
	case 1:
		lo, err := c.byte1()
		return uint64(b&0x3f)<<8 | uint64(lo), false, err
	case 3:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		d, err := c.take(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(d)), false, nil
	case 0x81:
		d, err := c.take(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(d), false, nil
	}
	c.p--
	return 0, false, c.fail("unknown length encoding 0x%02x", b)
}

// count reads a length that must not be a string encoding.
func (c *cursor) count() (uint64, error) {
	n, enc, err := c.rawLen()
	if err == nil && enc {
		c.p--
		err = c.fail("string encoding where a count belongs")
	}
	return n, err
}

// str reads an RDB string. Raw strings alias the value; integer and LZF
// strings are decoded into *buf.
func (c *cursor) str(buf *[]byte) ([]byte, error) {
	at := c.p
	n, enc, err := c.rawLen()
	if err != nil {
		return nil, err
	}
	if !enc {
		return c.take(n)
	}
	var v int64
	switch n {
	case encInt8:
		d, err := c.take(1)
		if err != nil {
			return nil, err
		}
		v = int64(int8(d[0]))
	case encInt16:
		d, err := c.take(2)
		if err != nil {
			return nil, err
		}
		v = int64(int16(binary.LittleEndian.Uint16(d)))
	case encInt32:
		d, err := c.take(4)
		if err != nil {
			return nil, err
		}
		v = int64(int32(binary.LittleEndian.Uint32(d)))
	case encLZF:
		clen, err := c.count()
		if err != nil {
			return nil, err
		}
		ulen, err := c.count()
		if err != nil {
			return nil, err
		}
		in, err := c.take(clen)
		if err != nil {
			return nil, err
		}
		out, err := lzfDecompress((*buf)[:0], in, ulen)
		if err != nil {
			return nil, newError(ErrCorrupt, int64(at), "%v", err)
		}
		*buf = out
		return out, nil
	default:
		c.p = at
		return nil, c.fail("unknown string encoding %d", n)
	}
	*buf = strconv.AppendInt((*buf)[:0], v, 10)
	return *buf, nil
}

// end requires the whole value to have been consumed.
func (c *cursor) end() error {
	if c.p != len(c.b) {
		return c.fail("%d bytes after the end of the value", len(c.b)-c.p)
	}
	return nil
}

func wrongType(e *Entry, want string) error {
	return newError(ErrWrongType, 0, "value type %d (%s %s), want a %s", e.Type, ObjectType(e.Type), TypeName(e.Type), want)
}

// DecodeString returns the value of a string key. The result may alias
// e.Value.
func DecodeString(e *Entry) ([]byte, error) {
	if e.Type != TypeString {
		return nil, wrongType(e, "string")
	}
	c := cursor{b: e.Value}
	var buf []byte
	s, err := c.str(&buf)
	if err != nil {
		return nil, err
	}
	return s, c.end()
}

// EachListElement calls fn for every element of a list, head to tail.
func EachListElement(e *Entry, fn func(elem []byte) error) error {
	c := cursor{b: e.Value}
	var blob, num []byte
	switch e.Type {
	case TypeList:
		n, err := c.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			s, err := c.str(&blob)
			if err != nil {
				return err
			}
			if err := fn(s); err != nil {
				return err
			}
		}
	case TypeListZiplist:
		b, err := c.str(&blob)
		if err != nil {
			return err
		}
		if err := eachZiplist(b, &num, fn); err != nil {
			return err
		}
	case TypeListQuicklist:
		n, err := c.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			b, err := c.str(&blob)
			if err != nil {
				return err
			}
			if err := eachZiplist(b, &num, fn); err != nil {
				return err
			}
		}
	case TypeListQuicklist2:
		n, err := c.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			container, err := c.count()
			if err != nil {
				return err
			}
			b, err := c.str(&blob)
			if err != nil {
				return err
			}
			switch container {
			case quicklistPlain:
				err = fn(b)
			case quicklistPacked:
				err = eachListpack(b, &num, fn)
			default:
				err = c.fail("quicklist node container %d", container)
			}
			if err != nil {
				return err
			}
		}
	default:
		return wrongType(e, "list")
	}
	return c.end()
}

func eachZiplist(b []byte, num *[]byte, fn func([]byte) error) error {
	zl, err := openZiplist(b)
	if err != nil {
		return err
	}
	for {
		el, ok, err := zl.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(el.text(num)); err != nil {
			return err
		}
	}
}

func eachListpack(b []byte, num *[]byte, fn func([]byte) error) error {
	lp, err := openListpack(b)
	if err != nil {
		return err
	}
	for {
		el, ok, err := lp.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(el.text(num)); err != nil {
			return err
		}
	}
}

// EachSetMember calls fn for every member of a set.
func EachSetMember(e *Entry, fn func(member []byte) error) error {
	c := cursor{b: e.Value}
	var blob, num []byte
	switch e.Type {
	case TypeSet:
		n, err := c.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			s, err := c.str(&blob)
			if err != nil {
				return err
			}
			if err := fn(s); err != nil {
				return err
			}
		}
	case TypeSetIntset:
		b, err := c.str(&blob)
		if err != nil {
			return err
		}
		is, err := openIntset(b)
		if err != nil {
			return err
		}
		for el, ok := is.next(); ok; el, ok = is.next() {
			if err := fn(el.text(&num)); err != nil {
				return err
			}
		}
	case TypeSetListpack:
		b, err := c.str(&blob)
		if err != nil {
			return err
		}
		if err := eachListpack(b, &num, fn); err != nil {
			return err
		}
	default:
		return wrongType(e, "set")
	}
	return c.end()
}

// pairIter is a ziplist or a listpack. Errors from inside these blobs carry
// offsets relative to the blob.
type pairIter interface {
	next() (elem, bool, error)
}

// eachGroup feeds the elements of it to fn size (2 or 3) at a time: field
// and value, member and score, or field, value and expiry.
func eachGroup(it pairIter, size int, fn func(a, b, c elem) error) error {
	var g [3]elem
	for i := 0; ; i++ {
		el, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			if i%size != 0 {
				return newError(ErrCorrupt, 0, "%d elements, not a multiple of %d", i, size)
			}
			return nil
		}
		g[i%size] = el
		if i%size == size-1 {
			if err := fn(g[0], g[1], g[2]); err != nil {
				return err
			}
		}
	}
}

// noExpiry marks a hash field without a TTL.
const noExpiry = -1

// EachHashField calls fn for every field of a hash with its value and its
// expiry in Unix milliseconds (noExpiry, -1, unless the hash has field TTLs,
// Redis 7.4+).
func EachHashField(e *Entry, fn func(field, value []byte, expireMs int64) error) error {
	c := cursor{b: e.Value}
	var blob, fbuf, vbuf []byte
	compact := func(b []byte, listpackFormat bool, triplets bool) error {
		var it pairIter
		if listpackFormat {
			lp, err := openListpack(b)
			if err != nil {
				return err
			}
			it = &lp
		} else {
			zl, err := openZiplist(b)
			if err != nil {
				return err
			}
			it = &zl
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
		var it pairIter
		if e.Type == TypeZSetListpack {
			lp, err := openListpack(b)
			if err != nil {
				return err
			}
			it = &lp
		} else {
			zl, err := openZiplist(b)
			if err != nil {
				return err
			}
			it = &zl
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

// StreamID is a stream entry id.
type StreamID struct {
	Ms, Seq uint64
}

func (id StreamID) String() string {
	return strconv.FormatUint(id.Ms, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

func streamIDFrom(b []byte) StreamID {
	return StreamID{Ms: binary.BigEndian.Uint64(b), Seq: binary.BigEndian.Uint64(b[8:])}
}

// Stream is everything in a stream value but its entries.
type Stream struct {
	// Length is the number of entries (deleted ones excluded).
	Length uint64
	// LastID is the last id generated (XADD's high-water mark).
	LastID StreamID
	// FirstID, MaxDeletedID and EntriesAdded exist from stream-v2 (Redis
	// 7.0) on; they are zero for stream-v1 values.
	FirstID, MaxDeletedID StreamID
	EntriesAdded          uint64
	Groups                []StreamGroup
}

// StreamGroup is a consumer group.
type StreamGroup struct {
	Name   []byte
	LastID StreamID
	// EntriesRead is the group's read counter (stream-v2+), -1 when unknown.
	EntriesRead int64
	// Pending is the group's PEL, in id order.
	Pending   []StreamPending
	Consumers []StreamConsumer
}

// StreamPending is an entry delivered to a consumer and not yet acknowledged.
type StreamPending struct {
	ID             StreamID
	DeliveryTimeMs int64
	DeliveryCount  uint64
	// Consumer owns the entry (from the consumers' own PELs).
	Consumer []byte
}

// StreamConsumer is a consumer of a group.
type StreamConsumer struct {
	Name       []byte
	SeenTimeMs int64
	// ActiveTimeMs exists from stream-v3 (Redis 7.2) on, -1 before.
	ActiveTimeMs int64
	Pending      []StreamID
}

// Stream listpack entry flags (t_stream.c STREAM_ITEM_FLAG_*).
const (
	streamFlagDeleted    = 1
	streamFlagSameFields = 2
)

// DecodeStream calls fn for every live entry of a stream, in id order, with
// its fields as alternating names and values (order and repeated names as
// XADD gave them), then returns the stream's metadata and consumer groups.
// The groups are built in memory: their size is that of the PELs.
func DecodeStream(e *Entry, fn func(id StreamID, fields [][]byte) error) (*Stream, error) {
	if e.Type != TypeStreamListpacks && e.Type != TypeStreamListpacks2 && e.Type != TypeStreamListpacks3 {
		return nil, wrongType(e, "stream")
	}
	c := cursor{b: e.Value}
	var kbuf, blob []byte
	d := streamDecoder{fn: fn}
	nodes, err := c.count()
	if err != nil {
		return nil, err
	}
	for ; nodes > 0; nodes-- {
		k, err := c.str(&kbuf)
		if err != nil {
			return nil, err
		}
		if len(k) != 16 {
			return nil, c.fail("stream node key of %d bytes, want 16", len(k))
		}
		lp, err := c.str(&blob)
		if err != nil {
			return nil, err
		}
		if err := d.node(streamIDFrom(k), lp); err != nil {
			return nil, err
		}
	}
	s := &Stream{}
	v2 := e.Type >= TypeStreamListpacks2
	meta := []*uint64{&s.Length, &s.LastID.Ms, &s.LastID.Seq}
	if v2 {
		meta = append(meta, &s.FirstID.Ms, &s.FirstID.Seq, &s.MaxDeletedID.Ms, &s.MaxDeletedID.Seq, &s.EntriesAdded)
	}
	for _, m := range meta {
		if *m, err = c.count(); err != nil {
			return nil, err
		}
	}
	if s.Length != d.live {
		return nil, c.fail("stream length %d, %d live entries", s.Length, d.live)
	}
	groups, err := c.count()
	if err != nil {
		return nil, err
	}
	for ; groups > 0; groups-- {
		g, err := c.streamGroup(e.Type)
		if err != nil {
			return nil, err
		}
		s.Groups = append(s.Groups, g)
	}
	return s, c.end()
}

func (c *cursor) streamGroup(typ byte) (StreamGroup, error) {
	var g StreamGroup
	var buf []byte
	name, err := c.str(&buf)
	if err != nil {
		return g, err
	}
	g.Name = append([]byte(nil), name...)
	if g.LastID.Ms, err = c.count(); err != nil {
		return g, err
	}
	if g.LastID.Seq, err = c.count(); err != nil {
		return g, err
	}
	g.EntriesRead = -1
	if typ >= TypeStreamListpacks2 {
		n, err := c.count()
		if err != nil {
			return g, err
		}
		g.EntriesRead = int64(n)
	}
	pel, err := c.count()
	if err != nil {
		return g, err
	}
	index := map[StreamID]int{}
	for ; pel > 0; pel-- {
		d, err := c.take(16 + 8)
		if err != nil {
			return g, err
		}
		p := StreamPending{ID: streamIDFrom(d), DeliveryTimeMs: int64(binary.LittleEndian.Uint64(d[16:]))}
		if p.DeliveryCount, err = c.count(); err != nil {
			return g, err
		}
		index[p.ID] = len(g.Pending)
		g.Pending = append(g.Pending, p)
	}
	consumers, err := c.count()
	if err != nil {
		return g, err
	}
	for ; consumers > 0; consumers-- {
		var cn StreamConsumer
		name, err := c.str(&buf)
		if err != nil {
			return g, err
		}
		cn.Name = append([]byte(nil), name...)
		d, err := c.take(8)
		if err != nil {
			return g, err
		}
		cn.SeenTimeMs = int64(binary.LittleEndian.Uint64(d))
		cn.ActiveTimeMs = -1
		if typ >= TypeStreamListpacks3 {
			if d, err = c.take(8); err != nil {
				return g, err
			}
			cn.ActiveTimeMs = int64(binary.LittleEndian.Uint64(d))
		}
		n, err := c.count()
		if err != nil {
			return g, err
		}
		for ; n > 0; n-- {
			d, err := c.take(16)
			if err != nil {
				return g, err
			}
			id := streamIDFrom(d)
			i, ok := index[id]
			if !ok {
				return g, c.fail("consumer %q has pending entry %v the group does not", cn.Name, id)
			}
			g.Pending[i].Consumer = cn.Name
			cn.Pending = append(cn.Pending, id)
		}
		g.Consumers = append(g.Consumers, cn)
	}
	return g, nil
}

// streamDecoder walks the listpacks of a stream's radix tree. Each listpack
// starts with a master entry (count, deleted count, field names, 0); each
// entry after it is flags, id deltas from the node key, the fields (or only
// values when it has the master's fields), and its element count.
type streamDecoder struct {
	fn     func(StreamID, [][]byte) error
	live   uint64
	master []elem
	els    []elem
	arena  []byte
	fields [][]byte
}

func (d *streamDecoder) node(master StreamID, b []byte) error {
	lp, err := openListpack(b)
	if err != nil {
		return err
	}
	num := func() (int64, error) {
		el, ok, err := lp.next()
		switch {
		case err != nil:
			return 0, err
		case !ok:
			return 0, blobError(lp.p, "stream listpack ends inside an entry")
		case !el.isInt:
			return 0, blobError(lp.p, "stream listpack: %q where an integer belongs", el.s)
		}
		return el.v, nil
	}
	element := func() (elem, error) {
		el, ok, err := lp.next()
		if err == nil && !ok {
			err = blobError(lp.p, "stream listpack ends inside an entry")
		}
		return el, err
	}
	count, err := num()
	if err != nil {
		return err
	}
	deleted, err := num()
	if err != nil {
		return err
	}
	nf, err := num()
	if err != nil {
		return err
	}
	if count < 0 || deleted < 0 || nf < 0 || nf > int64(len(b)) {
		return blobError(6, "stream master entry: count %d, deleted %d, fields %d", count, deleted, nf)
	}
	d.master = d.master[:0]
	for range nf {
		el, err := element()
		if err != nil {
			return err
		}
		d.master = append(d.master, el)
	}
	if z, err := num(); err != nil || z != 0 {
		if err == nil {
			err = blobError(lp.p, "stream master entry terminator %d", z)
		}
		return err
	}
	var seen int64
	for {
		if lp.b[lp.p] == 0xff {
			break
		}
		flags, err := num()
		if err != nil {
			return err
		}
		msd, err := num()
		if err != nil {
			return err
		}
		seqd, err := num()
		if err != nil {
			return err
		}
		d.els = d.els[:0]
		if flags&streamFlagSameFields != 0 {
			for _, f := range d.master {
				v, err := element()
				if err != nil {
					return err
				}
				d.els = append(d.els, f, v)
			}
		} else {
			n, err := num()
			if err != nil {
				return err
			}
			if n < 0 || n > int64(len(b)) {
				return blobError(lp.p, "stream entry with %d fields", n)
			}
			for range 2 * n {
				el, err := element()
				if err != nil {
					return err
				}
				d.els = append(d.els, el)
			}
		}
		if _, err := num(); err != nil { // element count, for reverse walks
			return err
		}
		seen++
		if flags&streamFlagDeleted != 0 {
			continue
		}
		d.live++
		id := StreamID{Ms: master.Ms + uint64(msd), Seq: master.Seq + uint64(seqd)}
		if err := d.fn(id, d.texts()); err != nil {
			return err
		}
	}
	if _, ok, err := lp.next(); err != nil || ok {
		return err
	}
	if seen != count+deleted {
		return blobError(lp.p, "stream node has %d entries, master entry says %d+%d", seen, count, deleted)
	}
	return nil
}

// texts renders d.els; integers go to an arena sized up front so that
// earlier slices into it stay valid.
func (d *streamDecoder) texts() [][]byte {
	d.arena = growTo(d.arena[:0], 20*len(d.els))
	d.fields = d.fields[:0]
	for _, el := range d.els {
		if !el.isInt {
			d.fields = append(d.fields, el.s)
			continue
		}
		start := len(d.arena)
		d.arena = strconv.AppendInt(d.arena, el.v, 10)
		d.fields = append(d.fields, d.arena[start:len(d.arena):len(d.arena)])
	}
	return d.fields
}

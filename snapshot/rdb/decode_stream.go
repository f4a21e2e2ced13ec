package rdb

import (
	"encoding/binary"
	"strconv"
)

// Decoding a stream: its entries from the listpacks of its radix tree, then
// its metadata and consumer groups (with their PELs) into a Stream.

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

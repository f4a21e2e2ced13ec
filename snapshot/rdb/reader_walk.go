package rdb

// Walking a key's value: following its structure only as far as needed to
// find where it ends, counting what it expands to and how many elements it
// opens with, without decoding it (decode.go does that, from memory).

// walkValue consumes the serialized value of type typ, following its
// structure only as far as needed to find its end.
func (r *Reader) walkValue(e *Entry, typ byte) error {
	at := r.pos()
	switch typ {
	case TypeString,
		TypeHashZipmap, TypeListZiplist, TypeSetIntset, TypeZSetZiplist,
		TypeHashZiplist, TypeHashListpack, TypeZSetListpack, TypeSetListpack,
		TypeHashListpackExPreGA:
		return r.skipString()

	case TypeList, TypeSet, TypeListQuicklist:
		n, err := r.count("element count")
		if err != nil {
			return err
		}
		r.elements = int64(n)
		return r.skipStrings(n)

	case TypeHash:
		n, err := r.count("field count")
		if err != nil {
			return err
		}
		r.elements = int64(n)
		for ; n > 0; n-- {
			if err := r.skipStrings(2); err != nil {
				return err
			}
		}
		return nil

	case TypeZSet:
		n, err := r.count("member count")
		if err != nil {
			return err
		}
		r.elements = int64(n)
		for ; n > 0; n-- {
			if err := r.skipString(); err != nil {
				return err
			}
			// Scores as text: a length byte, or 253/254/255 for
			// NaN/+inf/-inf with nothing after.
			l, err := r.readByte()
			if err != nil {
				return err
			}
			if l < 253 {
				if err := r.skip(uint64(l)); err != nil {
					return err
				}
			}
		}
		return nil

	case TypeZSet2:
		n, err := r.count("member count")
		if err != nil {
			return err
		}
		r.elements = int64(n)
		for ; n > 0; n-- {
			if err := r.skipString(); err != nil {
				return err
			}
			if err := r.skip(8); err != nil {
				return err
			}
		}
		return nil

	case TypeListQuicklist2:
		n, err := r.count("node count")
		if err != nil {
			return err
		}
		r.elements = int64(n)
		for ; n > 0; n-- {
			cat := r.pos()
			c, err := r.count("node container")
			if err != nil {
				return err
			}
			if c != quicklistPlain && c != quicklistPacked {
				return newError(ErrCorrupt, cat, "quicklist node container %d", c)
			}
			if err := r.skipString(); err != nil {
				return err
			}
		}
		return nil

	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return r.walkStream(typ)

	case TypeModule2:
		id, err := r.count("module id")
		if err != nil {
			return err
		}
		e.ModuleID = id
		return r.walkModuleData(at)

	case TypeModulePreGA:
		id, _, _ := r.readLen()
		name, _ := ModuleName(id)
		return newError(ErrUnsupported, at, "module value of type %q in the pre-GA format, which no Redis loads", name)

	case TypeHashMetadataPreGA, TypeHashMetadata:
		if typ == TypeHashMetadata {
			if err := r.skip(8); err != nil { // minimum field expiry
				return err
			}
		}
		n, err := r.count("field count")
		if err != nil {
			return err
		}
		r.elements = int64(n)
		for ; n > 0; n-- {
			if _, err := r.count("field TTL"); err != nil {
				return err
			}
			if err := r.skipStrings(2); err != nil {
				return err
			}
		}
		return nil

	case TypeHashListpackEx:
		if err := r.skip(8); err != nil { // minimum field expiry
			return err
		}
		return r.skipString()
	}
	return newError(ErrUnknownOpcode, at, "value type %d", typ)
}

// Quicklist node containers (quicklist.h QUICKLIST_NODE_CONTAINER_*).
const (
	quicklistPlain  = 1
	quicklistPacked = 2
)

// walkStream walks a stream: its listpack nodes, its metadata, then its
// consumer groups with their pending entries and consumers. Version 2 (Redis
// 7.0) added the first/max-deleted ids, entries-added and per-group
// entries-read; version 3 (7.2) added each consumer's active time.
func (r *Reader) walkStream(typ byte) error {
	n, err := r.count("stream node count")
	if err != nil {
		return err
	}
	r.elements += int64(n)
	if err := r.skipStrings(2 * n); err != nil { // node key (master id), listpack
		return err
	}
	meta := 3 // length, last id ms, last id seq
	if typ >= TypeStreamListpacks2 {
		meta += 5 // first id, max deleted id, entries added
	}
	for range meta {
		if _, err := r.count("stream metadata"); err != nil {
			return err
		}
	}
	groups, err := r.count("consumer group count")
	if err != nil {
		return err
	}
	for ; groups > 0; groups-- {
		if err := r.skipString(); err != nil { // name
			return err
		}
		gmeta := 2 // last delivered id
		if typ >= TypeStreamListpacks2 {
			gmeta++ // entries read
		}
		for range gmeta {
			if _, err := r.count("consumer group metadata"); err != nil {
				return err
			}
		}
		pel, err := r.count("pending entry count")
		if err != nil {
			return err
		}
		r.elements += int64(pel)
		for ; pel > 0; pel-- {
			if err := r.skip(16 + 8); err != nil { // raw id, delivery time
				return err
			}
			if _, err := r.count("delivery count"); err != nil {
				return err
			}
		}
		consumers, err := r.count("consumer count")
		if err != nil {
			return err
		}
		for ; consumers > 0; consumers-- {
			if err := r.skipString(); err != nil { // name
				return err
			}
			times := uint64(8) // seen time
			if typ >= TypeStreamListpacks3 {
				times += 8 // active time
			}
			if err := r.skip(times); err != nil {
				return err
			}
			at := r.pos()
			ids, err := r.count("consumer pending count")
			if err != nil {
				return err
			}
			if ids > 1<<58 {
				return newError(ErrCorrupt, at, "consumer pending count %d", ids)
			}
			r.elements += int64(ids)
			if err := r.skip(16 * ids); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkModuleData walks module-serialized data: opcode/value pairs up to the
// EOF opcode. Redis writes every module value this way since RDB 8, which is
// what lets a reader skip values of modules it does not know.
func (r *Reader) walkModuleData(start int64) error {
	for {
		at := r.pos()
		op, err := r.count("module opcode")
		if err != nil {
			return err
		}
		switch op {
		case moduleOpEOF:
			return nil
		case moduleOpSInt, moduleOpUInt:
			_, err = r.count("module integer")
		case moduleOpFloat:
			err = r.skip(4)
		case moduleOpDouble:
			err = r.skip(8)
		case moduleOpString:
			err = r.skipString()
		default:
			return newError(ErrCorrupt, at, "module data from %d: unknown module opcode %d", start, op)
		}
		if err != nil {
			return err
		}
	}
}

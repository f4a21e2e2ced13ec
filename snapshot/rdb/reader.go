package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// The Reader: its state, the file header, and Next, which reads a record's
// opcodes and prefixes and hands a key's value to walkValue
// (reader_walk.go).

// MaxVersion is the newest RDB version a Reader accepts. Redis 7.0 writes
// 10, 7.2 writes 11, 7.4 and 8.0 write 12.
const MaxVersion = 12

// readBufSize is the Reader's window on its source. Values larger than it
// are gathered in Entry.Value as they stream through.
const readBufSize = 64 << 10

// maxRetainedValue bounds the value buffer a Reader keeps between entries,
// so one huge value early in a file does not pin its memory to the end.
const maxRetainedValue = 1 << 20

// Reader reads the records of an RDB file one by one, as Redis writes it to
// disk or sends it to a replica. It walks every value's structure to find
// where it ends but does not decode it, and checks the trailing CRC64 when
// it reaches the end.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	src      io.Reader
	version  uint16
	skipVals bool

	buf  []byte
	r, w int   // buf[r:w] is read from src but not consumed
	base int64 // file offset of buf[0]

	crc     uint64 // CRC of the file up to buf[crcFrom]
	crcFrom int

	capturing bool // consumed bytes are appended to val
	capFrom   int

	srcErr error // sticky error from src; io.EOF once it is drained
	err    error // sticky error (io.EOF after a clean end)

	db int
	e  Entry

	// Prefix opcodes read but not yet attached to a key.
	pending      bool
	pendingStart int64
	expireMs     int64
	idle         int64
	freq         int

	key, val, lzfIn []byte

	// grown is what the strings of the value being walked gain on load
	// (Entry.Expanded); elements counts into Entry.Elements.
	grown, elements int64

	storedCRC, computedCRC uint64
	checked                bool
}

// NewReader reads the RDB header from src and returns a Reader positioned
// at the first record. It fails with ErrUnsupportedVersion for RDB versions
// above MaxVersion (naming the version), ErrCorrupt if src does not start
// like an RDB file, ErrTruncated if it is shorter than a header.
func NewReader(src io.Reader) (*Reader, error) {
	r := &Reader{src: src, buf: make([]byte, readBufSize), expireMs: -1, idle: -1, freq: -1}
	if err := r.need(9); err != nil {
		// a short file that does not even start like a header is no RDB,
		// not a truncated one
		if have := r.buf[r.r:r.w]; errors.Is(err, ErrTruncated) && !isHeaderStart(have) {
			return nil, newError(ErrCorrupt, 0, "not an RDB file: %d bytes, starting %q", len(have), have[:min(len(have), 9)])
		}
		return nil, err
	}
	hdr := r.buf[r.r : r.r+9]
	if bytes.HasPrefix(hdr, []byte("VALKEY")) {
		return nil, newError(ErrUnsupportedVersion, 0, "Valkey RDB format %q", hdr)
	}
	if !bytes.HasPrefix(hdr, []byte("REDIS")) {
		return nil, newError(ErrCorrupt, 0, "not an RDB file: header %q", hdr)
	}
	v := 0
	for _, c := range hdr[5:] {
		if c < '0' || c > '9' {
			return nil, newError(ErrCorrupt, 5, "RDB version %q is not 4 digits", hdr[5:])
		}
		v = v*10 + int(c-'0')
	}
	if v < 1 || v > MaxVersion {
		return nil, newError(ErrUnsupportedVersion, 5, "RDB version %d (this reader supports 1 to %d)", v, MaxVersion)
	}
	r.version = uint16(v)
	r.r += 9
	return r, nil
}

// isHeaderStart reports whether b could be the start of an RDB header
// (REDIS or VALKEY, then digits).
func isHeaderStart(b []byte) bool {
	for _, magic := range []string{"REDIS", "VALKEY"} {
		n := min(len(b), len(magic))
		if string(b[:n]) == magic[:n] {
			return true
		}
	}
	return false
}

// Version returns the RDB version from the file header.
func (r *Reader) Version() uint16 { return r.version }

// SkipValues makes Next walk key values without keeping their bytes:
// Entry.Value stays nil and memory stays at the read buffer, for passes
// that only count or measure. It can be switched between calls to Next.
func (r *Reader) SkipValues(skip bool) { r.skipVals = skip }

// Offset returns the number of bytes consumed so far: after Next returns
// io.EOF, the size of the file.
func (r *Reader) Offset() int64 { return r.pos() }

// Checksum returns, once Next has returned io.EOF, the CRC64 stored in the
// file and the one computed over its content. ok is false before the end,
// and for RDB versions below 5, which have no checksum. A stored value of
// zero means the writer had rdbchecksum off.
func (r *Reader) Checksum() (stored, computed uint64, ok bool) {
	return r.storedCRC, r.computedCRC, r.checked
}

// Buffered returns the bytes the Reader has read from its source but not
// consumed. The Reader reads ahead; after io.EOF these are the bytes that
// followed the RDB (in a diskless replication transfer, the EOF mark and
// then the command stream), so io.MultiReader(r.Buffered(), src) continues
// the source where the RDB ended.
func (r *Reader) Buffered() io.Reader { return bytes.NewReader(r.buf[r.r:r.w]) }

func (r *Reader) pos() int64 { return r.base + int64(r.r) }

// Next returns the next record, or io.EOF after the EOF opcode and a
// matching checksum. Any other error is final: Next keeps returning it.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		r.capturing = false
		r.err = err
		return nil, err
	}
	return e, nil
}

func (r *Reader) next() (*Entry, error) {
	e := &r.e
	if cap(r.val) > maxRetainedValue {
		r.val = nil
	}
	*e = Entry{DB: r.db, ExpireMs: -1, Idle: -1, Freq: -1}
	for {
		start := r.pos()
		op, err := r.readByte()
		if err != nil {
			return nil, err
		}
		switch op {
		case opExpireTimeMs, opExpireTime, opIdle, opFreq:
			if err := r.readPrefix(op, start); err != nil {
				return nil, err
			}
			continue
		case opEOF:
			return nil, r.finish(start)
		}
		if r.pending && op >= opSlotInfo {
			// Redis carries such a prefix over to the next key; it never
			// writes one, and accepting it would break the tiling of
			// entries.
			return nil, newError(ErrCorrupt, r.pendingStart, "expire/idle/freq opcode followed by opcode %d, not a key", op)
		}
		switch op {
		case opSelectDB:
			n, err := r.readPlainLen(start, "SELECTDB")
			if err != nil {
				return nil, err
			}
			if n > 1<<31-1 {
				return nil, newError(ErrCorrupt, start, "SELECTDB %d", n)
			}
			r.db = int(n)
			e.Kind, e.DB = KindSelectDB, r.db
		case opResizeDB:
			if e.DBSize, err = r.readPlainLen(start, "RESIZEDB"); err != nil {
				return nil, err
			}
			if e.ExpiresSize, err = r.readPlainLen(start, "RESIZEDB"); err != nil {
				return nil, err
			}
			e.Kind = KindResizeDB
		case opSlotInfo:
			if e.Slot, err = r.readPlainLen(start, "SLOT_INFO"); err != nil {
				return nil, err
			}
			if e.DBSize, err = r.readPlainLen(start, "SLOT_INFO"); err != nil {
				return nil, err
			}
			if e.ExpiresSize, err = r.readPlainLen(start, "SLOT_INFO"); err != nil {
				return nil, err
			}
			e.Kind = KindSlotInfo
		case opAux:
			if r.key, err = r.readString(r.key[:0]); err != nil {
				return nil, err
			}
			if r.val, err = r.readString(r.val[:0]); err != nil {
				return nil, err
			}
			e.Kind, e.Key, e.Value = KindAux, r.key, r.val
		case opFunction2:
			if r.val, err = r.readString(r.val[:0]); err != nil {
				return nil, err
			}
			e.Kind, e.Value = KindFunction, r.val
		case opFunctionPreGA:
			return nil, newError(ErrUnsupported, start, "function library in the Redis 7.0 release-candidate format (Redis 7.0 GA refuses it too)")
		case opModuleAux:
			if err := r.readModuleAux(e, start); err != nil {
				return nil, err
			}
		default:
			if !isValueType(op) {
				return nil, newError(ErrUnknownOpcode, start, "byte 0x%02x (%d) in opcode position (RDB version %d)", op, op, r.version)
			}
			if err := r.readKey(e, op, start); err != nil {
				return nil, err
			}
		}
		if e.Kind != KindKey {
			e.Offset, e.Size = start, r.pos()-start
		}
		return e, nil
	}
}

func (r *Reader) readPrefix(op byte, start int64) error {
	if !r.pending {
		r.pending, r.pendingStart = true, start
	}
	switch op {
	case opExpireTimeMs:
		b, err := r.peek(8)
		if err != nil {
			return err
		}
		r.expireMs = int64(binary.LittleEndian.Uint64(b))
		r.r += 8
	case opExpireTime:
		b, err := r.peek(4)
		if err != nil {
			return err
		}
		r.expireMs = int64(int32(binary.LittleEndian.Uint32(b))) * 1000
		r.r += 4
	case opIdle:
		n, err := r.readPlainLen(start, "IDLE")
		if err != nil {
			return err
		}
		if n > 1<<62 {
			return newError(ErrCorrupt, start, "LRU idle time %d", n)
		}
		r.idle = int64(n)
	case opFreq:
		b, err := r.readByte()
		if err != nil {
			return err
		}
		r.freq = int(b)
	}
	return nil
}

func (r *Reader) readKey(e *Entry, typ byte, start int64) error {
	var err error
	if r.key, err = r.readString(r.key[:0]); err != nil {
		return err
	}
	e.Kind, e.Key, e.Type = KindKey, r.key, typ
	e.Offset = start
	if r.pending {
		e.Offset = r.pendingStart
		e.ExpireMs, e.Idle, e.Freq = r.expireMs, r.idle, r.freq
		r.pending, r.expireMs, r.idle, r.freq = false, -1, -1, -1
	}
	valStart := r.pos()
	r.grown, r.elements = 0, 0
	if r.skipVals {
		err = r.walkValue(e, typ)
	} else {
		r.val = r.val[:0]
		r.capturing, r.capFrom = true, r.r
		err = r.walkValue(e, typ)
		r.val = append(r.val, r.buf[r.capFrom:r.r]...)
		r.capturing = false
		e.Value = r.val
	}
	if err != nil {
		return err
	}
	e.Size = r.pos() - e.Offset
	e.Expanded = r.pos() - valStart + r.grown
	e.Elements = r.elements
	return nil
}

func (r *Reader) readModuleAux(e *Entry, start int64) error {
	var err error
	if e.ModuleID, err = r.readPlainLen(start, "MODULE_AUX"); err != nil {
		return err
	}
	op, err := r.readPlainLen(start, "MODULE_AUX")
	if err != nil {
		return err
	}
	if op != moduleOpUInt {
		return newError(ErrCorrupt, start, "module aux record: when-opcode %d, want %d", op, moduleOpUInt)
	}
	if e.When, err = r.readPlainLen(start, "MODULE_AUX"); err != nil {
		return err
	}
	e.Kind = KindModuleAux
	r.val = r.val[:0]
	r.capturing, r.capFrom = true, r.r
	err = r.walkModuleData(start)
	r.val = append(r.val, r.buf[r.capFrom:r.r]...)
	r.capturing = false
	e.Value = r.val
	return err
}

// finish handles the EOF opcode at offset at: the checksum that follows it
// covers every byte before it, the opcode included.
func (r *Reader) finish(at int64) error {
	r.computedCRC = UpdateCRC64(r.crc, r.buf[r.crcFrom:r.r])
	r.crc, r.crcFrom = r.computedCRC, r.r
	if r.pending {
		return newError(ErrCorrupt, r.pendingStart, "expire/idle/freq opcode not followed by a key")
	}
	if r.version < 5 {
		return io.EOF
	}
	b, err := r.peek(8)
	if err != nil {
		return err
	}
	r.storedCRC = binary.LittleEndian.Uint64(b)
	r.r += 8
	r.checked = true
	if r.storedCRC != 0 && r.storedCRC != r.computedCRC {
		return newError(ErrChecksum, at+1, "file says %016x, content is %016x", r.storedCRC, r.computedCRC)
	}
	return io.EOF
}

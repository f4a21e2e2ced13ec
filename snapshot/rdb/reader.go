package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// MaxVersion is the newest RDB version a Reader accepts. Redis 7.0 writes
// 10, 7.2 writes 11, 7.4 and 8.0 write 12.
const MaxVersion = 12

// Kind says what an Entry is.
type Kind uint8

// The kinds of entries Next returns, in the order they usually appear.
const (
	// KindAux is an AUX field: Key is its name (redis-ver, ctime, used-mem,
	// repl-id, repl-offset, aof-base, ...), Value its value, decoded
	// (integer-encoded values as decimal text).
	KindAux Kind = iota + 1
	// KindModuleAux is module auxiliary data: ModuleID names the module
	// type, When is its "when" field, Value the raw serialized data after
	// it (module opcodes up to and including the EOF opcode).
	KindModuleAux
	// KindFunction is a function library (RDB_OPCODE_FUNCTION2): Value is
	// its source code, as FUNCTION LOAD takes it.
	KindFunction
	// KindSelectDB switches the database: DB is the new one.
	KindSelectDB
	// KindResizeDB is a sizing hint: DBSize keys in DB, ExpiresSize of
	// them with a TTL.
	KindResizeDB
	// KindSlotInfo is a cluster slot sizing hint (Redis 7.4+): Slot, and
	// DBSize / ExpiresSize for that slot.
	KindSlotInfo
	// KindKey is a key and its value.
	KindKey
)

var kindNames = [...]string{
	KindAux:       "aux",
	KindModuleAux: "module-aux",
	KindFunction:  "function",
	KindSelectDB:  "selectdb",
	KindResizeDB:  "resizedb",
	KindSlotInfo:  "slot-info",
	KindKey:       "key",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Entry is one record of an RDB file. The Reader reuses it: an Entry and
// its Key and Value slices are valid only until the next call to Next;
// Clone one to keep it.
type Entry struct {
	Kind Kind
	// Offset is the file offset of the record's first byte. For a key
	// that is its first prefix opcode (EXPIRETIME_MS, IDLE, FREQ) if it
	// has any, else its type byte.
	Offset int64
	// Size is the number of bytes the record occupies in the file.
	Size int64
	// DB is the database selected when the record was read.
	DB int

	// Key is the key name (KindKey, decoded: integer-encoded and
	// LZF-compressed names are expanded) or the AUX field name.
	Key []byte
	// Value depends on Kind. For KindKey it is the value exactly as
	// stored, without its type byte: nested listpacks, LZF blobs and all,
	// not decoded. It is nil when the Reader skips values.
	Value []byte
	// Type is the RDB value type byte of a key (TypeString, ...).
	Type byte
	// ExpireMs is a key's absolute expiry in Unix milliseconds, -1 for
	// none. The older seconds form is converted.
	ExpireMs int64
	// Idle is the key's LRU idle time in seconds (written when the source
	// had an LRU maxmemory-policy), -1 when absent.
	Idle int64
	// Freq is the key's LFU counter (written under an LFU policy), -1
	// when absent.
	Freq int
	// Expanded is the size of a key's value as it expands on load, for
	// memory estimates: LZF-compressed strings count at their
	// uncompressed length, integer-encoded ones at the most digits they
	// can have, every other byte as stored.
	Expanded int64
	// Elements is, for a key, the count its value's structure opens
	// with: the elements of a list, set or sorted set stored one by one,
	// the fields of a hash stored so, the nodes of a quicklist; for a
	// stream its listpack nodes plus its pending entries (of groups and
	// of consumers). 0 for a value stored as one string (listpack,
	// intset, plain string).
	Elements int64
	// ModuleID is the module type id of a TypeModule2 value or of a
	// KindModuleAux record; see ModuleName.
	ModuleID uint64
	// When is the "when" field of a KindModuleAux record (before or after
	// the keyspace).
	When uint64

	// DBSize and ExpiresSize are the counts of a KindResizeDB or
	// KindSlotInfo record; Slot is the slot of a KindSlotInfo record.
	DBSize, ExpiresSize uint64
	Slot                uint64
}

// Clone returns a deep copy of e that stays valid after Next.
func (e *Entry) Clone() *Entry {
	c := *e
	c.Key = bytes.Clone(e.Key)
	c.Value = bytes.Clone(e.Value)
	return &c
}

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

// fill compacts the buffer and reads from src until at least need bytes
// are available. Before bytes leave the buffer they are added to the CRC
// and, while capturing, to the value.
func (r *Reader) fill(need int) error {
	if r.capturing {
		r.val = append(r.val, r.buf[r.capFrom:r.r]...)
		r.capFrom = 0
	}
	r.crc = UpdateCRC64(r.crc, r.buf[r.crcFrom:r.r])
	r.crcFrom = 0
	n := copy(r.buf, r.buf[r.r:r.w])
	r.base += int64(r.r)
	r.r, r.w = 0, n
	empty := 0
	for r.w < need {
		if r.srcErr != nil {
			if errors.Is(r.srcErr, io.EOF) || errors.Is(r.srcErr, io.ErrUnexpectedEOF) {
				return newError(ErrTruncated, r.base+int64(r.w), "input ends %d bytes into a %d-byte read", r.w, need)
			}
			return &Error{Err: r.srcErr, Offset: r.base + int64(r.w), Detail: "reading the RDB stream"}
		}
		m, err := r.src.Read(r.buf[r.w:])
		r.w += m
		if err != nil {
			r.srcErr = err
		} else if m == 0 {
			if empty++; empty > 100 {
				r.srcErr = io.ErrNoProgress
			}
		}
	}
	return nil
}

// need makes n bytes available at buf[r:]; n must be at most readBufSize.
func (r *Reader) need(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	return r.fill(n)
}

// peek returns the next n bytes without consuming them; the slice is valid
// until the next read.
func (r *Reader) peek(n int) ([]byte, error) {
	if err := r.need(n); err != nil {
		return nil, err
	}
	return r.buf[r.r : r.r+n], nil
}

func (r *Reader) readByte() (byte, error) {
	if r.r == r.w {
		if err := r.fill(1); err != nil {
			return 0, err
		}
	}
	b := r.buf[r.r]
	r.r++
	return b, nil
}

// skip consumes n bytes (which still reach the CRC and a capture).
func (r *Reader) skip(n uint64) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return err
			}
		}
		k := uint64(r.w - r.r)
		if k > n {
			k = n
		}
		r.r += int(k)
		n -= k
	}
	return nil
}

// appendN consumes n bytes and appends them to dst. dst grows only as the
// bytes arrive, so a forged length cannot allocate more than the input has.
func (r *Reader) appendN(dst []byte, n uint64) ([]byte, error) {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return dst, err
			}
		}
		k := uint64(r.w - r.r)
		if k > n {
			k = n
		}
		dst = append(dst, r.buf[r.r:r.r+int(k)]...)
		r.r += int(k)
		n -= k
	}
	return dst, nil
}

// String encodings signalled by a length byte of the form 11xxxxxx.
const (
	encInt8  = 0
	encInt16 = 1
	encInt32 = 2
	encLZF   = 3
)

// readLen reads an RDB length. encoded reports the 11xxxxxx form, where the
// low bits name a string encoding rather than a length.
func (r *Reader) readLen() (n uint64, encoded bool, err error) {
	if r.w-r.r < 9 {
		if err := r.need(1); err != nil {
			return 0, false, err
		}
		switch b := r.buf[r.r]; {
		case b>>6 == 1:
			err = r.need(2)
		case b == 0x80:
			err = r.need(5)
		case b == 0x81:
			err = r.need(9)
		}
		if err != nil {
			return 0, false, err
		}
	}
	p := r.buf[r.r:]
	b := p[0]
	switch b >> 6 {
	case 0:
		r.r++
		return uint64(b & 0x3f), false, nil
	case 1:
		r.r += 2
		return uint64(b&0x3f)<<8 | uint64(p[1]), false, nil
	case 3:
		r.r++
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		r.r += 5
		return uint64(binary.BigEndian.Uint32(p[1:])), false, nil
	case 0x81:
		r.r += 9
		return binary.BigEndian.Uint64(p[1:]), false, nil
	}
	return 0, false, newError(ErrCorrupt, r.pos(), "unknown length encoding 0x%02x", b)
}

// readPlainLen reads a length that must not be a string encoding.
func (r *Reader) readPlainLen(start int64, what string) (uint64, error) {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, newError(ErrCorrupt, at, "%s record at %d: string encoding where a length belongs", what, start)
	}
	return n, nil
}

// readString reads an RDB string and appends it decoded to dst.
func (r *Reader) readString(dst []byte) ([]byte, error) {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return dst, err
	}
	if !enc {
		return r.appendN(dst, n)
	}
	switch n {
	case encInt8:
		b, err := r.readByte()
		if err != nil {
			return dst, err
		}
		return strconv.AppendInt(dst, int64(int8(b)), 10), nil
	case encInt16:
		b, err := r.peek(2)
		if err != nil {
			return dst, err
		}
		r.r += 2
		return strconv.AppendInt(dst, int64(int16(binary.LittleEndian.Uint16(b))), 10), nil
	case encInt32:
		b, err := r.peek(4)
		if err != nil {
			return dst, err
		}
		r.r += 4
		return strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(b))), 10), nil
	case encLZF:
		clen, ulen, err := r.readLZFHeader(at)
		if err != nil {
			return dst, err
		}
		if r.lzfIn, err = r.appendN(r.lzfIn[:0], clen); err != nil {
			return dst, err
		}
		out, err := lzfDecompress(dst, r.lzfIn, ulen)
		if cap(r.lzfIn) > maxRetainedValue {
			r.lzfIn = nil
		}
		if err != nil {
			return dst, newError(ErrCorrupt, at, "%v", err)
		}
		return out, nil
	}
	return dst, newError(ErrCorrupt, at, "unknown string encoding %d", n)
}

func (r *Reader) readLZFHeader(at int64) (clen, ulen uint64, err error) {
	var e1, e2 bool
	if clen, e1, err = r.readLen(); err != nil {
		return 0, 0, err
	}
	if ulen, e2, err = r.readLen(); err != nil {
		return 0, 0, err
	}
	if e1 || e2 || clen == 0 {
		return 0, 0, newError(ErrCorrupt, at, "bad LZF string header")
	}
	return clen, ulen, nil
}

// skipString walks past an RDB string without decoding it.
func (r *Reader) skipString() error {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return err
	}
	if !enc {
		return r.skip(n)
	}
	// As text, an integer takes at most 4, 6 or 11 bytes ("-128",
	// "-32768", "-2147483648").
	switch n {
	case encInt8:
		r.grown += 4 - 1
		return r.skip(1)
	case encInt16:
		r.grown += 6 - 2
		return r.skip(2)
	case encInt32:
		r.grown += 11 - 4
		return r.skip(4)
	case encLZF:
		clen, ulen, err := r.readLZFHeader(at)
		if err != nil {
			return err
		}
		r.grown += int64(ulen) - int64(clen)
		return r.skip(clen)
	}
	return newError(ErrCorrupt, at, "unknown string encoding %d", n)
}

// skipStrings walks past n strings.
func (r *Reader) skipStrings(n uint64) error {
	for ; n > 0; n-- {
		if err := r.skipString(); err != nil {
			return err
		}
	}
	return nil
}

// count reads an element count. Every element takes at least one byte, so
// a count is never checked against a limit here: a forged one runs into
// the end of the input.
func (r *Reader) count(what string) (uint64, error) {
	at := r.pos()
	n, enc, err := r.readLen()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, newError(ErrCorrupt, at, "%s: string encoding where a count belongs", what)
	}
	return n, nil
}

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

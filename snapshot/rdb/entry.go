package rdb

import (
	"bytes"
	"strconv"
)

// The records a Reader returns: Entry, and the Kind that says which fields
// of it are set.

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

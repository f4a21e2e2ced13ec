package rdb

// RDB value types: the byte in front of a key that says how its value is
// serialized (rdb.h RDB_TYPE_*). The same byte opens a DUMP payload.
const (
	TypeString              byte = 0
	TypeList                byte = 1 // linked list, RDB < 7
	TypeSet                 byte = 2 // hashtable
	TypeZSet                byte = 3 // skiplist, scores as strings, RDB < 8
	TypeHash                byte = 4 // hashtable
	TypeZSet2               byte = 5 // skiplist, binary scores
	TypeModulePreGA         byte = 6 // Redis 4.0 release candidates; unreadable
	TypeModule2             byte = 7
	TypeHashZipmap          byte = 9
	TypeListZiplist         byte = 10
	TypeSetIntset           byte = 11
	TypeZSetZiplist         byte = 12
	TypeHashZiplist         byte = 13
	TypeListQuicklist       byte = 14 // quicklist of ziplists
	TypeStreamListpacks     byte = 15
	TypeHashListpack        byte = 16
	TypeZSetListpack        byte = 17
	TypeListQuicklist2      byte = 18 // quicklist of listpacks and plain nodes
	TypeStreamListpacks2    byte = 19
	TypeSetListpack         byte = 20
	TypeStreamListpacks3    byte = 21
	TypeHashMetadataPreGA   byte = 22 // hash with field TTLs, 7.4 release candidates
	TypeHashListpackExPreGA byte = 23
	TypeHashMetadata        byte = 24 // hash with field TTLs
	TypeHashListpackEx      byte = 25
)

// Opcodes: bytes in key-type position that are not values (rdb.h
// RDB_OPCODE_*).
const (
	opSlotInfo      = 244
	opFunction2     = 245
	opFunctionPreGA = 246
	opModuleAux     = 247
	opIdle          = 248
	opFreq          = 249
	opAux           = 250
	opResizeDB      = 251
	opExpireTimeMs  = 252
	opExpireTime    = 253
	opSelectDB      = 254
	opEOF           = 255
)

// Module value serialization opcodes (rdb.h RDB_MODULE_OPCODE_*).
const (
	moduleOpEOF    = 0
	moduleOpSInt   = 1
	moduleOpUInt   = 2
	moduleOpFloat  = 3
	moduleOpDouble = 4
	moduleOpString = 5
)

type typeInfo struct {
	name       string // the encoding, as inspect reports it
	object     string // the Redis type, as TYPE answers
	minVersion uint16 // the first RDB version that can hold it
}

// typeInfos is indexed by type byte; a zero entry is an unknown type.
//
// Minimum versions: quicklist arrived with RDB 7 (Redis 3.2), module values
// and binary zset scores with 8 (4.0), streams with 9 (5.0), listpack
// encodings with 10 (7.0), set listpacks and stream v3 with 11 (7.2), hash
// field TTLs with 12 (7.4). The older encodings report 1: every Redis that
// could be a restore target loads them.
var typeInfos = [...]typeInfo{
	TypeString:              {"string", "string", 1},
	TypeList:                {"linkedlist", "list", 1},
	TypeSet:                 {"hashtable", "set", 1},
	TypeZSet:                {"skiplist-v1", "zset", 1},
	TypeHash:                {"hashtable", "hash", 1},
	TypeZSet2:               {"skiplist", "zset", 8},
	TypeModulePreGA:         {"module-pre-ga", "module", 8},
	TypeModule2:             {"module", "module", 8},
	TypeHashZipmap:          {"zipmap", "hash", 1},
	TypeListZiplist:         {"ziplist", "list", 1},
	TypeSetIntset:           {"intset", "set", 1},
	TypeZSetZiplist:         {"ziplist", "zset", 1},
	TypeHashZiplist:         {"ziplist", "hash", 1},
	TypeListQuicklist:       {"quicklist", "list", 7},
	TypeStreamListpacks:     {"stream-v1", "stream", 9},
	TypeHashListpack:        {"listpack", "hash", 10},
	TypeZSetListpack:        {"listpack", "zset", 10},
	TypeListQuicklist2:      {"quicklist2", "list", 10},
	TypeStreamListpacks2:    {"stream-v2", "stream", 10},
	TypeSetListpack:         {"listpack", "set", 11},
	TypeStreamListpacks3:    {"stream-v3", "stream", 11},
	TypeHashMetadataPreGA:   {"hashtable-ttl-pre-ga", "hash", 12},
	TypeHashListpackExPreGA: {"listpack-ttl-pre-ga", "hash", 12},
	TypeHashMetadata:        {"hashtable-ttl", "hash", 12},
	TypeHashListpackEx:      {"listpack-ttl", "hash", 12},
}

func isValueType(t byte) bool {
	_, ok := lookupType(t)
	return ok
}

func lookupType(t byte) (typeInfo, bool) {
	if int(t) >= len(typeInfos) || typeInfos[t].name == "" {
		return typeInfo{}, false
	}
	return typeInfos[t], true
}

// TypeName returns the encoding a value type byte stands for ("listpack",
// "quicklist2", "intset", ...), or "" for an unknown byte. Two types can
// share a name (hash and zset listpacks); pair it with ObjectType.
func TypeName(t byte) string {
	ti, _ := lookupType(t)
	return ti.name
}

// ObjectType returns the Redis type of a value type byte, as the TYPE
// command names it ("string", "list", "set", "zset", "hash", "stream",
// "module"), or "" for an unknown byte.
func ObjectType(t byte) string {
	ti, _ := lookupType(t)
	return ti.object
}

// MinVersion returns the first RDB version that has value type t, or 0 for
// an unknown byte. A target that writes an older RDB version cannot RESTORE
// the value, whatever version its payload claims.
func MinVersion(t byte) uint16 {
	ti, _ := lookupType(t)
	return ti.minVersion
}

// ModuleName decodes a module type id (the 64-bit id in front of a module
// value or module aux record) into the 9-character type name the module
// registered and its encoding version, the form Redis prints in its errors.
func ModuleName(id uint64) (name string, encVersion int) {
	const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b [9]byte
	rest := id >> 10
	for i := 8; i >= 0; i-- {
		b[i] = charset[rest&63]
		rest >>= 6
	}
	return string(b[:]), int(id & 1023)
}

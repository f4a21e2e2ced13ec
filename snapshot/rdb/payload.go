package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// dumpFooterLen is the RDB version (2 bytes) and CRC64 (8 bytes) that end a
// DUMP payload.
const dumpFooterLen = 2 + 8

// AppendDumpPayload appends to dst the payload that DUMP returns and
// RESTORE takes for key entry e: its type byte, its value bytes as stored,
// rdbVersion (little-endian) and the CRC64 of all that (little-endian).
//
// rdbVersion is the version the payload claims. RESTORE refuses a payload
// that claims a version newer than its own (Redis 7.0 is 10, 7.2 is 11, 7.4
// is 12) and does not otherwise look at it, so the caller picks: the file's
// version (Reader.Version) reproduces DUMP of the source byte for byte, the
// target's lets a value restore into an older Redis as long as the target
// knows the value's type (see MinVersion).
func AppendDumpPayload(dst []byte, e *Entry, rdbVersion uint16) []byte {
	start := len(dst)
	dst = growTo(dst, start+1+len(e.Value)+dumpFooterLen)
	dst = append(dst, e.Type)
	dst = append(dst, e.Value...)
	dst = binary.LittleEndian.AppendUint16(dst, rdbVersion)
	return binary.LittleEndian.AppendUint64(dst, CRC64(dst[start:]))
}

// DumpPayload returns the DUMP/RESTORE payload of key entry e; see
// AppendDumpPayload.
func DumpPayload(e *Entry, rdbVersion uint16) []byte {
	return AppendDumpPayload(nil, e, rdbVersion)
}

// ParseDumpPayload checks a DUMP payload (its CRC64 and the structure of its
// value) and returns it as a key entry without a key, with the RDB version
// it claims. The entry's Value aliases p. A zero CRC is accepted, as Redis
// does for payloads made with rdbchecksum off. Errors carry the offset in
// the payload.
func ParseDumpPayload(p []byte) (*Entry, uint16, error) {
	if len(p) < 1+dumpFooterLen {
		return nil, 0, newError(ErrTruncated, int64(len(p)), "DUMP payload of %d bytes is shorter than its footer", len(p))
	}
	body := p[:len(p)-8]
	version := binary.LittleEndian.Uint16(p[len(p)-dumpFooterLen:])
	stored := binary.LittleEndian.Uint64(p[len(p)-8:])
	if computed := CRC64(body); stored != 0 && stored != computed {
		return nil, version, newError(ErrChecksum, int64(len(body)), "payload says %016x, content is %016x", stored, computed)
	}
	e := &Entry{Kind: KindKey, Type: p[0], Value: p[1 : len(p)-dumpFooterLen], ExpireMs: -1, Idle: -1, Freq: -1}
	if _, ok := lookupType(e.Type); !ok {
		return nil, version, newError(ErrUnknownOpcode, 0, "value type %d", e.Type)
	}
	if err := walkValueBytes(e); err != nil {
		var re *Error
		if errors.As(err, &re) {
			re.Offset++ // the type byte
		}
		return nil, version, err
	}
	e.Size = int64(len(p))
	return e, version, nil
}

// walkValueBytes walks e.Value as a value of type e.Type and requires it to
// end exactly at the end of the slice.
func walkValueBytes(e *Entry) error {
	r := &Reader{
		src:      bytes.NewReader(e.Value),
		buf:      make([]byte, max(16, min(len(e.Value), readBufSize))),
		skipVals: true,
		version:  MaxVersion,
	}
	if err := r.walkValue(e, e.Type); err != nil {
		return err
	}
	if r.pos() != int64(len(e.Value)) {
		return newError(ErrCorrupt, r.pos(), "value ends after %d of %d bytes", r.pos(), len(e.Value))
	}
	return nil
}

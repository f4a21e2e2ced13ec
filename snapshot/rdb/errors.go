package rdb

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the package returns for bad input wraps one
// of them in an *Error that carries the byte offset, so callers can both
// classify (errors.Is) and point at the spot (errors.As).
var (
	// ErrCorrupt: the bytes do not form a valid RDB structure.
	ErrCorrupt = errors.New("rdb: corrupt data")
	// ErrTruncated: the input ended inside the file (before the EOF opcode
	// and its checksum).
	ErrTruncated = errors.New("rdb: truncated")
	// ErrChecksum: the trailing CRC64 (or a DUMP payload's) does not match
	// the content.
	ErrChecksum = errors.New("rdb: checksum mismatch")
	// ErrUnsupportedVersion: the header names an RDB version this package
	// does not read.
	ErrUnsupportedVersion = errors.New("rdb: unsupported RDB version")
	// ErrUnknownOpcode: a byte in opcode position is neither an opcode nor
	// a value type this package knows.
	ErrUnknownOpcode = errors.New("rdb: unknown opcode or value type")
	// ErrUnsupported: a known construct that cannot be read without help
	// Redis itself lacks too: pre-GA module values and functions.
	ErrUnsupported = errors.New("rdb: unsupported construct")
	// ErrWrongType: a decode function was called on a value of another
	// type (e.g. EachHashField on a list).
	ErrWrongType = errors.New("rdb: wrong value type for this decoder")
)

// Error is a failure at a place in the input.
type Error struct {
	// Err is one of the package's sentinel errors, or an I/O error from the
	// underlying reader.
	Err error
	// Offset is the byte offset where the problem was detected: in the file
	// for a Reader, in the value for decode functions, in the payload for
	// ParseDumpPayload.
	Offset int64
	// Detail says what was wrong.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%v at offset %d", e.Err, e.Offset)
	}
	return fmt.Sprintf("%v at offset %d: %s", e.Err, e.Offset, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

func newError(sentinel error, off int64, format string, args ...any) *Error {
	return &Error{Err: sentinel, Offset: off, Detail: fmt.Sprintf(format, args...)}
}

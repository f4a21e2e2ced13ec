package router

import (
	"errors"
	"fmt"
)

var (
	// ErrBadTopology is wrapped by every error about a topology that cannot
	// be routed: a malformed spec entry, a bad address, a slot that is
	// missing or owned twice.
	ErrBadTopology = errors.New("router: bad topology")

	// ErrNoTable is returned by Load when the state directory holds no
	// persisted table (a first start).
	ErrNoTable = errors.New("router: no persisted table")

	// ErrCorruptTable is wrapped by Load's error when the persisted table
	// exists but cannot be trusted: unreadable JSON, a checksum mismatch,
	// or a topology that does not validate.
	ErrCorruptTable = errors.New("router: corrupt persisted table")
)

// topologyError reads as its own message ("router: slot 5461 is not owned by
// any shard") rather than as a chain of prefixes, and still matches
// ErrBadTopology with errors.Is.
type topologyError struct{ msg string }

func badTopology(format string, args ...any) error {
	return &topologyError{msg: "router: " + fmt.Sprintf(format, args...)}
}

func (e *topologyError) Error() string { return e.msg }

func (e *topologyError) Unwrap() error { return ErrBadTopology }

package migrate

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors from Restore wrap one of them (a PreflightError
// wraps one per problem), so callers can classify with errors.Is and still
// print the message, which names the file, offset, target or key.
var (
	// ErrInvalidConfig: a RestoreConfig field has an unusable value.
	ErrInvalidConfig = errors.New("migrate: invalid restore configuration")
	// ErrPreflight: at least one pre-flight check failed; nothing was
	// written to any target.
	ErrPreflight = errors.New("migrate: pre-flight check failed")
	// ErrBadSource: a source file is missing, unreadable, corrupt,
	// truncated or fails its checksum.
	ErrBadSource = errors.New("migrate: bad source")
	// ErrMultipleDBs: the sources hold keys in more than one database and
	// RestoreConfig.DB does not pick one.
	ErrMultipleDBs = errors.New("migrate: keys in more than one database")
	// ErrTargetTooOld: a value in the sources needs a newer RDB version
	// than a target's Redis loads.
	ErrTargetTooOld = errors.New("migrate: target too old for the data")
	// ErrNoRoom: a target's maxmemory leaves no room for its share.
	ErrNoRoom = errors.New("migrate: target without room for its share")
	// ErrTargetNotEmpty: a target holds keys (or function libraries the
	// sources also define) and neither Replace nor Flush was given.
	ErrTargetNotEmpty = errors.New("migrate: target not empty")
	// ErrDuplicateKeys: a key is in more than one source and
	// AllowDuplicates is not set.
	ErrDuplicateKeys = errors.New("migrate: keys in more than one source")
	// ErrTargetLive: a target is a shard that a reshard proxy serves (the
	// proxy's own table, or another proxy connected to it).
	ErrTargetLive = errors.New("migrate: target is a live shard")
	// ErrModuleType: the sources hold module values or module data.
	ErrModuleType = errors.New("migrate: module data")
	// ErrUnroutable: a command of a tail file cannot be applied to the
	// target topology (keys on several targets, SWAPDB, ...).
	ErrUnroutable = errors.New("migrate: tail command cannot be routed")
	// ErrTarget: a target is unreachable, refused a command, or broke off
	// mid-restore.
	ErrTarget = errors.New("migrate: target failed")
	// ErrVerify: Verify found a target that does not hold what was sent.
	ErrVerify = errors.New("migrate: verification failed")
)

// PreflightError lists every problem the pre-flight checks found. It
// unwraps to ErrPreflight and to each problem, so errors.Is(err,
// ErrMultipleDBs) works on it.
type PreflightError struct {
	Problems []error
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		fmt.Fprintf(&b, "%v: %v", ErrPreflight, e.Problems[0])
	} else {
		fmt.Fprintf(&b, "%v: %d problems", ErrPreflight, len(e.Problems))
		for _, p := range e.Problems {
			b.WriteString("\n  - ")
			b.WriteString(p.Error())
		}
	}
	b.WriteString(" (nothing was written)")
	return b.String()
}

func (e *PreflightError) Unwrap() []error {
	return append([]error{ErrPreflight}, e.Problems...)
}

// problemf builds one pre-flight problem wrapping sentinel.
func problemf(sentinel error, format string, args ...any) error {
	return &wrapped{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

// wrapped is an error with its own message that unwraps to a sentinel (and
// optionally to a cause, such as an *rdb.Error with its offset).
type wrapped struct {
	sentinel error
	cause    error
	msg      string
}

func (e *wrapped) Error() string { return e.msg }

func (e *wrapped) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}

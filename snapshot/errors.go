package snapshot

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error a capture returns wraps at most one of them
// (plus, where there is one, the underlying cause), so callers classify with
// errors.Is and show err.Error() to operators as it is.
var (
	// ErrRefused: the shard answered the replication handshake with an
	// error (ACL, a managed service that disables PSYNC, no auth, ...).
	// The concrete error is a *RefusedError.
	ErrRefused = errors.New("snapshot: shard refused replication")
	// ErrSourceGone: the link dropped and the shard no longer answers, or
	// answers as a different instance (restarted, failed over).
	ErrSourceGone = errors.New("snapshot: shard went away")
	// ErrClosedBySource: the link dropped while the same shard is still
	// up and no longer lists the capture as a replica: the shard closed
	// the link itself, most likely because the capture fell behind and hit
	// client-output-buffer-limit replica.
	ErrClosedBySource = errors.New("snapshot: replication link closed by the source")
	// ErrLinkLost: the link failed in a way none of the above explains
	// (a network error while the shard still lists the capture, a timeout).
	ErrLinkLost = errors.New("snapshot: replication link lost")
	// ErrProtocol: the shard sent something a Redis master does not send.
	ErrProtocol = errors.New("snapshot: replication protocol error")
	// ErrBadCut: StopAt was given an offset that cannot end a tail: before
	// the fork, not on a command boundary, or inside MULTI/EXEC.
	ErrBadCut = errors.New("snapshot: bad cut offset")
	// ErrClosed: the capture was closed (Close, or its context ended)
	// before StopAt completed.
	ErrClosed = errors.New("snapshot: capture closed")
)

// RefusedError is a reply that ends the handshake: the shard does not let
// this connection replicate. It matches ErrRefused with errors.Is.
type RefusedError struct {
	// Addr is the shard's address.
	Addr string
	// Command is the handshake step that was refused ("PSYNC", ...).
	Command string
	// Reply is the shard's reply line, without CRLF.
	Reply string
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("snapshot: shard %s refused replication: %s answered %q", e.Addr, e.Command, e.Reply)
	if h := e.hint(); h != "" {
		msg += " (" + h + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Temporary reports whether the refusal is one a replica would retry: the
// shard is loading, or is itself a replica without a link to its master.
func (e *RefusedError) Temporary() bool {
	switch replyCode(e.Reply) {
	case "LOADING", "NOMASTERLINK", "MASTERDOWN", "BUSY":
		return true
	}
	return false
}

func (e *RefusedError) hint() string {
	switch code := replyCode(e.Reply); {
	case code == "NOPERM":
		return "the user lacks the ACL permission; replication needs +psync and +replconf"
	case code == "NOAUTH":
		return "the shard requires authentication; set the password (and user)"
	case code == "WRONGPASS":
		return "the username or password is wrong"
	case strings.HasPrefix(e.Reply, "+CONTINUE"):
		return "a partial resync was offered to a full-sync request"
	case strings.Contains(strings.ToLower(e.Reply), "unknown command"):
		return "the shard does not offer replication; managed services often disable it"
	case e.Temporary():
		return "temporary; retry later"
	}
	return ""
}

// replyCode is the error code of a RESP error line ("-NOPERM ..." -> NOPERM).
func replyCode(reply string) string {
	if !strings.HasPrefix(reply, "-") {
		return ""
	}
	code, _, _ := strings.Cut(reply[1:], " ")
	return code
}

// linkError marks an error of the connection to the shard (read, write,
// timeout), as opposed to a file, protocol or verification error; only
// these are worth probing the shard to explain.
type linkError struct{ err error }

func (e *linkError) Error() string { return e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

// protoError is something a Redis master does not send. It matches
// ErrProtocol; the capture adds the shard's address when it reports it.
type protoError struct{ detail string }

func (e *protoError) Error() string        { return ErrProtocol.Error() + ": " + e.detail }
func (e *protoError) Is(target error) bool { return target == ErrProtocol }

func protocolf(format string, args ...any) error {
	return &protoError{fmt.Sprintf(format, args...)}
}

// quote shortens a protocol fragment for an error message.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

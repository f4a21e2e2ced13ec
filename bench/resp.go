package bench

import (
	"github.com/reshard/reshard/internal/resp"
)

// The load's commands and replies, over internal/resp. A connection speaks
// RESP2 (Run never sends HELLO 3).

// Names of the load's commands, as resp.AppendCommand takes them.
var (
	cmdGet = []byte("GET")
	cmdSet = []byte("SET")
)

// readResult reads the reply to one load command. A reply that is itself
// an error is a failed command: isErr is set and text is the error without
// its '-' and CRLF, valid until the next call. An error inside an array is
// not (EXEC returns those). Other replies are skipped through the reader's
// buffer without being held whole. err is an I/O or protocol error, after
// which the stream cannot be used.
func (w *worker) readResult() (isErr bool, text []byte, err error) {
	head, err := w.br.Peek(1)
	if err != nil {
		return false, nil, err
	}
	if head[0] != '-' {
		_, err := resp.SkipReply(w.br)
		return false, nil, err
	}
	// An error reply is one line, so it fits the reader's buffer.
	w.rbuf, err = resp.ReadReply(w.br, w.rbuf[:0], w.br.Size())
	if err != nil {
		return false, nil, err
	}
	text, _ = resp.Payload(w.rbuf)
	return true, text, nil
}

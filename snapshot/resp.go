package snapshot

import (
	"bufio"
	"bytes"
	"io"

	"github.com/reshard/reshard/internal/resp"
)

// Framing of the replication command stream. A master sends its replicas
// nothing but RESP arrays of bulk strings, so that is all the parser
// accepts. Commands are never held whole in memory: a data command is
// copied to the tail as it is parsed, and only its name (and for REPLCONF
// its subcommand) is looked at.

// cmdKind says what the capture does with a command of the stream.
type cmdKind uint8

const (
	kindData     cmdKind = iota // kept in the tail
	kindMulti                   // kept; opens a transaction
	kindExec                    // kept; closes one
	kindPing                    // protocol noise: counted, not kept
	kindReplconf                // protocol noise: counted, not kept
	kindGetack                  // REPLCONF GETACK: counted, not kept, answered
)

// kept reports whether a command of this kind goes to the tail.
func (k cmdKind) kept() bool { return k <= kindExec }

const (
	// maxNameLen: a command name longer than this is no command the
	// capture treats specially, so it is streamed without being buffered.
	maxNameLen = 16
	// maxBulkLen bounds one argument; Redis's proto-max-bulk-len tops out
	// far below, so anything larger is a corrupt stream.
	maxBulkLen = 1 << 40
	// maxArgs bounds the argument count of one command.
	maxArgs = 1 << 32
)

// cmdParser reads commands of a replication stream from r.
type cmdParser struct {
	r   *bufio.Reader
	hdr []byte // the bytes of a command read before deciding whether to keep it
}

// next reads one command, copies it to w if its kind is kept, and returns
// its length on the wire and its kind. On error, w may have received part
// of the command; the caller cuts the tail at its last boundary.
func (p *cmdParser) next(w io.Writer) (int64, cmdKind, error) {
	line, err := p.line()
	if err != nil {
		return 0, 0, err
	}
	if line[0] != '*' {
		return 0, 0, protocolf("stream: expected a command array, got %s", quote(line))
	}
	argc, ok := parseLen(line[1 : len(line)-2])
	if !ok || argc < 1 || argc > maxArgs {
		return 0, 0, protocolf("stream: bad array header %s", quote(line))
	}
	p.hdr = append(p.hdr[:0], line...)

	alen, err := p.bulkHeader()
	if err != nil {
		return 0, 0, err
	}
	kind := kindData
	if alen <= maxNameLen {
		start := len(p.hdr)
		if p.hdr, err = p.readPayload(p.hdr, alen); err != nil {
			return 0, 0, err
		}
		kind = nameKind(p.hdr[start : start+int(alen)])
	}
	n := int64(len(p.hdr))
	if kind.kept() {
		if err := write(w, p.hdr); err != nil {
			return 0, 0, err
		}
		if alen > maxNameLen {
			if err := p.copyPayload(w, alen); err != nil {
				return 0, 0, err
			}
			n += alen + 2
		}
	}

	for i := int64(1); i < argc; i++ {
		hdrStart := len(p.hdr)
		alen, err := p.bulkHeader()
		if err != nil {
			return 0, 0, err
		}
		n += int64(len(p.hdr)-hdrStart) + alen + 2
		switch {
		case kind.kept():
			if err := write(w, p.hdr[hdrStart:]); err != nil {
				return 0, 0, err
			}
			if err := p.copyPayload(w, alen); err != nil {
				return 0, 0, err
			}
		case kind == kindReplconf && i == 1 && alen <= maxNameLen:
			start := len(p.hdr)
			if p.hdr, err = p.readPayload(p.hdr, alen); err != nil {
				return 0, 0, err
			}
			if bytes.EqualFold(p.hdr[start:start+int(alen)], []byte("GETACK")) {
				kind = kindGetack
			}
		default:
			if err := p.copyPayload(io.Discard, alen); err != nil {
				return 0, 0, err
			}
		}
		p.hdr = p.hdr[:hdrStart] // headers of later args need not be kept
	}
	return n, kind, nil
}

func nameKind(name []byte) cmdKind {
	switch {
	case bytes.EqualFold(name, []byte("PING")):
		return kindPing
	case bytes.EqualFold(name, []byte("REPLCONF")):
		return kindReplconf
	case bytes.EqualFold(name, []byte("MULTI")):
		return kindMulti
	case bytes.EqualFold(name, []byte("EXEC")):
		return kindExec
	}
	return kindData
}

// line reads one CRLF-terminated line. The slice is valid until the next
// read.
func (p *cmdParser) line() ([]byte, error) {
	line, err := p.r.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, protocolf("stream: header line longer than %d bytes", p.r.Size())
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, protocolf("stream: malformed line %s", quote(line))
	}
	return line, nil
}

// bulkHeader reads a "$<len>\r\n" line, appends it to p.hdr, and returns len.
func (p *cmdParser) bulkHeader() (int64, error) {
	line, err := p.line()
	if err != nil {
		return 0, err
	}
	if line[0] != '$' {
		return 0, protocolf("stream: expected a bulk string, got %s", quote(line))
	}
	n, ok := parseLen(line[1 : len(line)-2])
	if !ok || n < 0 || n > maxBulkLen {
		return 0, protocolf("stream: bad bulk header %s", quote(line))
	}
	p.hdr = append(p.hdr, line...)
	return n, nil
}

// readPayload appends a bulk payload of n bytes and its CRLF to buf.
func (p *cmdParser) readPayload(buf []byte, n int64) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, n+2)...)
	if _, err := io.ReadFull(p.r, buf[start:]); err != nil {
		return buf, err
	}
	if buf[len(buf)-2] != '\r' || buf[len(buf)-1] != '\n' {
		return buf, protocolf("stream: bulk string not terminated by CRLF")
	}
	return buf, nil
}

// copyPayload copies a bulk payload of n bytes and its CRLF to w.
func (p *cmdParser) copyPayload(w io.Writer, n int64) error {
	if err := copyN(w, p.r, n); err != nil {
		return err
	}
	crlf, err := p.r.Peek(2)
	if err != nil {
		return err
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return protocolf("stream: bulk string not terminated by CRLF")
	}
	if err := write(w, crlf); err != nil {
		return err
	}
	_, err = p.r.Discard(2)
	return err
}

// copyN copies n bytes from r to w straight out of r's buffer, so neither
// side needs a buffer of its own.
func copyN(w io.Writer, r *bufio.Reader, n int64) error {
	for n > 0 {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				return err
			}
		}
		k := int64(r.Buffered())
		if k > n {
			k = n
		}
		b, _ := r.Peek(int(k))
		if err := write(w, b); err != nil {
			return err
		}
		r.Discard(int(k))
		n -= k
	}
	return nil
}

// fileError marks an error of the capture's own files, to keep it apart
// from errors of the link.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

func write(w io.Writer, b []byte) error {
	if w == io.Discard {
		return nil
	}
	if _, err := w.Write(b); err != nil {
		return &fileError{err}
	}
	return nil
}

// markScanner passes a diskless RDB transfer ("$EOF:<mark>\r\n<rdb><mark>")
// through to a writer until the end mark. It holds back the last
// len(mark)-1 bytes it has seen, which could be the start of the mark, so
// the mark itself never reaches the writer; it needs no buffer beyond that.
type markScanner struct {
	mark []byte
	held []byte
	edge []byte // scratch for a mark that spans two chunks
}

func newMarkScanner(mark []byte) *markScanner {
	return &markScanner{mark: mark, held: make([]byte, 0, 2*len(mark)), edge: make([]byte, 0, 2*len(mark))}
}

// feed scans chunk. It writes to w every byte known to precede the mark,
// and returns how many bytes of chunk it consumed: all of them, or, when
// the mark ends inside chunk, the bytes up to and including the mark (then
// done is true).
func (m *markScanner) feed(chunk []byte, w io.Writer) (consumed int, done bool, err error) {
	L := len(m.mark)
	if len(m.held) > 0 {
		// A mark that starts in the held bytes ends in the first L-1 bytes
		// of chunk.
		head := chunk
		if len(head) > L-1 {
			head = head[:L-1]
		}
		m.edge = append(append(m.edge[:0], m.held...), head...)
		if i := bytes.Index(m.edge, m.mark); i >= 0 && i < len(m.held) {
			if err := write(w, m.held[:i]); err != nil {
				return 0, false, err
			}
			consumed = i + L - len(m.held)
			m.held = m.held[:0]
			return consumed, true, nil
		}
	}
	if i := bytes.Index(chunk, m.mark); i >= 0 {
		if err := write(w, m.held); err != nil {
			return 0, false, err
		}
		if err := write(w, chunk[:i]); err != nil {
			return 0, false, err
		}
		m.held = m.held[:0]
		return i + L, true, nil
	}
	total := len(m.held) + len(chunk)
	keep := min(L-1, total)
	out := total - keep
	if out <= len(m.held) {
		if err := write(w, m.held[:out]); err != nil {
			return 0, false, err
		}
		n := copy(m.held, m.held[out:])
		m.held = append(m.held[:n], chunk...)
	} else {
		if err := write(w, m.held); err != nil {
			return 0, false, err
		}
		if err := write(w, chunk[:out-len(m.held)]); err != nil {
			return 0, false, err
		}
		m.held = append(m.held[:0], chunk[out-len(m.held):]...)
	}
	return len(chunk), false, nil
}

// parseLen parses a header line's number (without the type byte and CRLF),
// capped so that length arithmetic cannot overflow.
func parseLen(b []byte) (int64, bool) {
	n, ok := resp.ParseInt(b)
	return n, ok && n <= 1<<62
}

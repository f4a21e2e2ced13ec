package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/internal/resp"
)

// pipe is one pipelined connection to a target. The restore's producer
// (the goroutine reading the sources) appends commands to its buffer; a
// writer goroutine sends what has gathered in one write while the producer
// fills the other buffer; a reader goroutine reads the replies in order and
// matches each with the record of the command it answers.
//
// At most window commands are in flight (queued, sent or unanswered): the
// inflight channel is both the bound and the FIFO of records. Any error
// reply that is not benign, a broken connection or a target silent for
// longer than the timeout fails the pipe, which fails the whole job.
type pipe struct {
	addr    string
	local   string // the connection's own address, as CLIENT LIST shows it
	nc      net.Conn
	timeout time.Duration
	job     *jobState
	stats   *targetStats

	mu    sync.Mutex
	out   []byte
	space chan struct{} // signalled when the writer takes the buffer
	wake  chan struct{} // signalled when there is something to write

	inflight chan pending
	stop     chan struct{}
	wg       sync.WaitGroup
	closing  atomic.Bool

	// The live reshard tracks how far a source's stream has been applied:
	// sentEnd is the stream offset after the last command queued with one,
	// ackedEnd the same for the last such command answered.
	sentEnd, ackedEnd atomic.Int64

	// strs is the MSET being gathered (queueString); only the producer
	// touches it.
	strs stringBatch
}

// stringBatch is an MSET being gathered: the key and value bulk strings
// of n keys, and its first and last keys for error messages.
type stringBatch struct {
	body        []byte
	n           int
	first, last []byte
}

// op says what a command is, for counting and for errors.
type op uint8

const (
	opRestore  op = iota + 1 // RESTORE of one key: counts a key written
	opMSet                   // MSET of plain strings: counts pending.keys keys written
	opChunk                  // one command of a big key
	opCommit                 // EXEC that renames a big key into place: counts a key
	opTail                   // a tail command
	opFence                  // PING whose reply closes done
	opFunction               // FUNCTION LOAD
	opTx                     // MULTI or EXEC around tail commands
)

// pending is the record of a command in flight.
type pending struct {
	op   op
	key  string        // the key, or the command, for error messages
	keys int           // opMSet: the keys it writes
	done chan struct{} // opFence
	end  int64         // stream offset after the command (live reshard); 0: none
}

// flushAt is how much the producer buffers before it wakes the writer.
// Few large writes are what keep a target fast: Redis reads up to 16 KiB
// per call, and a stream of small writes costs it a read and an event-loop
// turn every few commands. Buffered commands also go out when the window
// fills and at every fence, so nothing waits for the buffer to fill.
const flushAt = 32 << 10

// maxOutBuffer is how much the producer queues on one pipe before it waits
// for the writer; one command larger than that is queued whole.
const maxOutBuffer = 256 << 10

// maxRetainedBuffer bounds the buffers a pipe keeps after a large command.
const maxRetainedBuffer = 1 << 20

// An MSET gathers at most msetKeys keys and about msetBytes of keys and
// values (queueString). On Redis 7.0 with 1M small keys, a target spent
// 1.0 to 1.2 µs of CPU a key on SETs and 0.8 to 0.95 µs on MSETs of 16 to
// 512 keys alike, nearly all of it inside MSET, inserting the keys: the
// per-command cost is gone by 16 keys, and a larger MSET only holds the
// target longer in one command (about 0.1 ms for 128 small keys).
const (
	msetKeys  = 128
	msetBytes = 64 << 10
)

func dialPipe(ctx context.Context, cfg *RestoreConfig, addr string, job *jobState, stats *targetStats) (*pipe, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: target %s: %v", ErrTarget, addr, err)
	}
	// The handshake runs before the goroutines start: AUTH, and a name
	// that tells an operator looking at CLIENT LIST what the connection is.
	var hs []byte
	n := 1
	if args := resp.AuthArgs(cfg.Username, cfg.Password); args != nil {
		hs = resp.AppendCommandString(hs, args...)
		n++
	}
	hs = appendCommand(hs, "CLIENT", "SETNAME", "reshard-restore")
	_ = nc.SetDeadline(time.Now().Add(cfg.Timeout))
	br := bufio.NewReaderSize(nc, 64<<10)
	if _, err := nc.Write(hs); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: target %s: %v", ErrTarget, addr, err)
	}
	for i := 0; i < n; i++ {
		e, err := resp.SkipReply(br)
		if err == nil && e != "" {
			err = errors.New(e)
		}
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("%w: target %s: connection handshake: %v", ErrTarget, addr, err)
		}
	}
	_ = nc.SetDeadline(time.Time{})
	p := &pipe{
		addr:     addr,
		local:    nc.LocalAddr().String(),
		nc:       nc,
		timeout:  cfg.Timeout,
		job:      job,
		stats:    stats,
		space:    make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		inflight: make(chan pending, cfg.Window),
		stop:     make(chan struct{}),
	}
	p.wg.Add(2)
	go p.writer()
	go p.reader(br)
	return p, nil
}

// send queues one command: build appends it to the buffer, after the MSET
// being gathered, if any, so commands reach the target in the order they
// were queued. It blocks while the window is full or the buffer is over
// its bound, and fails when the job has failed or ctx ends.
func (p *pipe) send(ctx context.Context, pd pending, build func([]byte) []byte) error {
	if err := p.flushStrings(ctx); err != nil {
		return err
	}
	return p.queue(ctx, pd, build)
}

// queueString queues SET key value (no TTL) as part of an MSET gathered
// from the plain strings queued one after the other on this pipe. The
// MSET is queued when it holds msetKeys keys or msetBytes of data, before
// any other command sent on the pipe, and so at every fence and drain.
// MSET writes like SET: it replaces a key of any type and drops its TTL.
// It counts as one command in the window; its reply counts all its keys
// written, an error reply to it all its keys failed.
func (p *pipe) queueString(ctx context.Context, key, value []byte) error {
	b := &p.strs
	if b.n == 0 {
		b.first = append(b.first[:0], key...)
	}
	b.last = append(b.last[:0], key...)
	b.body = resp.AppendBulk(resp.AppendBulk(b.body, key), value)
	b.n++
	if b.n >= msetKeys || len(b.body) >= msetBytes {
		return p.flushStrings(ctx)
	}
	return nil
}

// flushStrings queues the MSET gathered so far, if any.
func (p *pipe) flushStrings(ctx context.Context) error {
	b := &p.strs
	if b.n == 0 {
		return nil
	}
	n, body := b.n, b.body
	names := fmt.Sprintf("%q", clip(b.first, 60))
	if n > 1 {
		names += fmt.Sprintf(" ... %q", clip(b.last, 60))
	}
	b.n = 0
	err := p.queue(ctx, pending{op: opMSet, key: names, keys: n}, func(out []byte) []byte {
		out = resp.AppendArrayHeader(out, 1+2*n)
		out = resp.AppendBulkString(out, "MSET")
		return append(out, body...)
	})
	b.body = body[:0]
	return err
}

// queue is send without the flush of the gathered MSET.
func (p *pipe) queue(ctx context.Context, pd pending, build func([]byte) []byte) error {
	select {
	case p.inflight <- pd:
	default:
		// The window is full: what is buffered must go out, or the
		// replies that would open the window never come.
		p.kick()
		select {
		case p.inflight <- pd:
		case <-p.job.failed:
			return p.job.err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	for len(p.out) >= maxOutBuffer {
		p.mu.Unlock()
		select {
		case <-p.space:
		case <-p.job.failed:
			return p.job.err()
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	p.out = build(p.out)
	full := len(p.out) >= flushAt
	p.mu.Unlock()
	if full {
		p.kick()
	}
	return nil
}

// kick wakes the writer to send whatever is buffered.
func (p *pipe) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pipe) writer() {
	defer p.wg.Done()
	var buf []byte
	for {
		select {
		case <-p.wake:
		case <-p.stop:
			return
		}
		p.mu.Lock()
		buf, p.out = p.out, buf[:0]
		p.mu.Unlock()
		select {
		case p.space <- struct{}{}:
		default:
		}
		if len(buf) == 0 {
			continue
		}
		_ = p.nc.SetWriteDeadline(time.Now().Add(p.timeout))
		if _, err := p.nc.Write(buf); err != nil {
			p.fail(p.lost(err), 1)
			return
		}
		if cap(buf) > maxRetainedBuffer {
			buf = nil
		}
	}
}

// deadlineReader sets a read deadline before each read, so a target that
// stops answering fails the pipe after the timeout. The reader only reads
// while a reply is due, so an idle pipe never times out.
type deadlineReader struct {
	nc      net.Conn
	timeout time.Duration
}

func (d deadlineReader) Read(b []byte) (int, error) {
	_ = d.nc.SetReadDeadline(time.Now().Add(d.timeout))
	return d.nc.Read(b)
}

func (p *pipe) reader(br *bufio.Reader) {
	defer p.wg.Done()
	br.Reset(deadlineReader{p.nc, p.timeout})
	for {
		var pd pending
		// The fast path is a plain receive; select only to wait.
		select {
		case pd = <-p.inflight:
		default:
			select {
			case pd = <-p.inflight:
			case <-p.stop:
				return
			}
		}
		e, err := resp.SkipReply(br)
		if err != nil {
			p.fail(p.lost(err), 1)
			return
		}
		if e != "" {
			if !benign(pd.op, e) {
				p.fail(fmt.Errorf("%w: target %s: %s: %s", ErrTarget, p.addr, describe(pd), e), pd.weight())
				return
			}
			p.stats.benign.Add(1)
		}
		if pd.end != 0 {
			p.ackedEnd.Store(pd.end)
		}
		switch pd.op {
		case opRestore, opMSet, opCommit:
			p.stats.written.Add(pd.weight())
		case opTail:
			p.stats.tail.Add(1)
		case opFence:
			close(pd.done)
		}
	}
}

// weight is what a reply to pd counts for: the keys of an MSET, one key
// or command for anything else.
func (pd pending) weight() int64 {
	if pd.op == opMSet {
		return int64(pd.keys)
	}
	return 1
}

func describe(pd pending) string {
	switch pd.op {
	case opRestore:
		return fmt.Sprintf("RESTORE %q", pd.key)
	case opMSet:
		return fmt.Sprintf("MSET of %s %s (none of them written)", count(pd.keys, "key"), pd.key)
	case opChunk, opCommit:
		return fmt.Sprintf("writing big key %q", pd.key)
	case opTail, opTx:
		return "tail command " + pd.key
	case opStreamFunction:
		return "stream command " + pd.key
	case opExpiryFixup:
		return "expiry fix-up of " + pd.key
	case opFunction:
		return "FUNCTION LOAD of library " + pd.key
	}
	return pd.key
}

// benign reports whether an error reply is expected and harmless. A tail
// replays commands that succeeded on the source, but the source and the
// target do not expire keys at the same instant: a command on a key that
// the target has already expired can find no such key.
//
// The live reshard applies every source's FUNCTION commands to every
// target (the proxy sends them to every shard), so a FUNCTION DELETE
// reaches a target once per source: only the first finds the library.
func benign(o op, reply string) bool {
	switch o {
	case opTail:
		return strings.HasPrefix(reply, "ERR no such key")
	case opStreamFunction:
		return strings.HasPrefix(reply, "ERR Library not found")
	}
	return false
}

func (p *pipe) lost(err error) error {
	if p.closing.Load() {
		return errClosing
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: target %s answered nothing for %v (%s unanswered)", ErrTarget, p.addr, p.timeout, count(len(p.inflight)+1, "command"))
	}
	return fmt.Errorf("%w: target %s: connection lost with %s unanswered: %v", ErrTarget, p.addr, count(len(p.inflight)+1, "command"), err)
}

var errClosing = errors.New("migrate: pipe closed")

// fail fails the job; n is what the failure counts for in the target's
// errors: the keys of a failed MSET, else 1.
func (p *pipe) fail(err error, n int64) {
	if !errors.Is(err, errClosing) {
		p.stats.errors.Add(n)
		p.job.fail(err)
	}
	p.nc.Close()
}

// fence queues a PING and returns a channel closed when its reply, and so
// every reply before it, has been read.
func (p *pipe) fence(ctx context.Context) (chan struct{}, error) {
	done := make(chan struct{})
	err := p.send(ctx, pending{op: opFence, key: "PING", done: done}, func(b []byte) []byte {
		return appendCommand(b, "PING")
	})
	p.kick()
	return done, err
}

// close stops the goroutines and closes the connection; commands still in
// flight are abandoned.
func (p *pipe) close() {
	if p.closing.Swap(true) {
		return
	}
	close(p.stop)
	p.nc.Close()
	p.wg.Wait()
}

// targetStats are counted by the pipes' readers and the producer.
type targetStats struct {
	written atomic.Int64 // keys acknowledged
	tail    atomic.Int64 // tail commands acknowledged
	benign  atomic.Int64 // error replies taken as benign
	errors  atomic.Int64 // keys (commands) whose error reply, or connection failure, failed the job
}

// jobState is the failure shared by every pipe of a restore: the first
// error wins and stops the producer.
type jobState struct {
	once   sync.Once
	failed chan struct{}
	first  error
}

func newJobState() *jobState { return &jobState{failed: make(chan struct{})} }

func (j *jobState) fail(err error) {
	j.once.Do(func() {
		j.first = err
		close(j.failed)
	})
}

func (j *jobState) err() error {
	select {
	case <-j.failed:
		return j.first
	default:
		return nil
	}
}

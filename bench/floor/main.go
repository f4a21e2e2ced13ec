//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/router"
)

// client is one client connection: requests not yet whole, replies not yet
// written.
type client struct {
	fd      int
	in, out []byte
	dirty   bool // in the loop's list of clients to write
	closed  bool
}

// shard is one connection to a shard: the requests batched for it and, in
// order, the clients its replies go to.
type shard struct {
	fd      int
	in, out []byte
	waiting []*client
	dirty   bool
}

type loop struct {
	table   *router.Table
	shards  []*shard
	byFD    map[int]*shard
	clients map[int]*client
	buf     []byte
	dirtyS  []*shard
	dirtyC  []*client
}

func main() {
	listen := pflag.String("listen", "127.0.0.1:7000", "address to listen on (IPv4)")
	shards := pflag.String("shards", "127.0.0.1:6379", "shard addresses (IPv4), comma-separated; slots split evenly")
	pflag.Parse()
	if err := run(*listen, *shards); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

func run(listen, spec string) error {
	shards, err := router.ParseSpec(spec)
	if err != nil {
		return err
	}
	table, err := router.NewTable(1, shards)
	if err != nil {
		return err
	}
	l := &loop{table: table, byFD: map[int]*shard{}, clients: map[int]*client{}, buf: make([]byte, 64<<10)}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	for i := range table.NumShards() {
		fd, err := dial(table.Addr(i))
		if err != nil {
			return err
		}
		s := &shard{fd: fd}
		l.shards = append(l.shards, s)
		l.byFD[fd] = s
		if err := watch(ep, fd); err != nil {
			return err
		}
	}
	ln, err := listenOn(listen)
	if err != nil {
		return err
	}
	if err := watch(ep, ln); err != nil {
		return err
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			switch {
			case fd == ln:
				c, _, err := syscall.Accept4(ln, syscall.SOCK_CLOEXEC)
				if err != nil {
					continue
				}
				if err := errors.Join(nodelay(c), watch(ep, c)); err != nil {
					syscall.Close(c)
					continue
				}
				l.clients[c] = &client{fd: c}
			case l.byFD[fd] != nil:
				if err := l.readShard(l.byFD[fd]); err != nil {
					return err
				}
			case l.clients[fd] != nil:
				l.readClient(l.clients[fd])
			}
		}
		if err := l.flush(); err != nil {
			return err
		}
	}
}

// readClient reads what the client sent and queues each whole request on
// its shard.
func (l *loop) readClient(c *client) {
	n, err := readNow(c.fd, l.buf)
	if retry(err) {
		return // level-triggered: the next wait reports it again
	}
	if n <= 0 {
		l.drop(c)
		return
	}
	c.in = append(c.in, l.buf[:n]...)
	pos := 0
	for pos < len(c.in) {
		size, key, err := request(c.in[pos:])
		if err != nil {
			c.out = append(c.out, "-ERR floor: "+err.Error()+"\r\n"...)
			writeAll(c.fd, c.out)
			l.drop(c)
			return
		}
		if size == 0 {
			break
		}
		s := l.shards[l.table.ShardOfSlot(router.Slot(key))]
		s.out = append(s.out, c.in[pos:pos+size]...)
		s.waiting = append(s.waiting, c)
		if !s.dirty {
			s.dirty = true
			l.dirtyS = append(l.dirtyS, s)
		}
		pos += size
	}
	c.in = append(c.in[:0], c.in[pos:]...)
}

// readShard reads the shard's replies and hands each, in order, to the
// client that sent the request.
func (l *loop) readShard(s *shard) error {
	n, err := readNow(s.fd, l.buf)
	if retry(err) {
		return nil
	}
	if n <= 0 {
		return fmt.Errorf("shard connection lost: %v", err)
	}
	s.in = append(s.in, l.buf[:n]...)
	pos, done := 0, 0
	for pos < len(s.in) {
		size, err := reply(s.in[pos:])
		if err != nil {
			return fmt.Errorf("shard reply: %w", err)
		}
		if size == 0 {
			break
		}
		if done == len(s.waiting) {
			return errors.New("shard reply with no request")
		}
		c := s.waiting[done]
		done++
		if !c.closed {
			c.out = append(c.out, s.in[pos:pos+size]...)
			if !c.dirty {
				c.dirty = true
				l.dirtyC = append(l.dirtyC, c)
			}
		}
		pos += size
	}
	s.waiting = append(s.waiting[:0], s.waiting[done:]...)
	s.in = append(s.in[:0], s.in[pos:]...)
	return nil
}

// flush ends a turn of the loop: one write per shard with requests, then one
// per client with replies.
func (l *loop) flush() error {
	for _, s := range l.dirtyS {
		if err := writeAll(s.fd, s.out); err != nil {
			return fmt.Errorf("shard write: %w", err)
		}
		s.out, s.dirty = s.out[:0], false
	}
	l.dirtyS = l.dirtyS[:0]
	for _, c := range l.dirtyC {
		if !c.closed && writeAll(c.fd, c.out) != nil {
			l.drop(c)
		}
		c.out, c.dirty = c.out[:0], false
	}
	l.dirtyC = l.dirtyC[:0]
	return nil
}

// drop closes a client; replies still due to it are read and discarded.
func (l *loop) drop(c *client) {
	if c.closed {
		return
	}
	c.closed = true
	syscall.Close(c.fd)
	delete(l.clients, c.fd)
}

// The floor frames requests and replies itself, on the bytes it holds:
// internal/resp's readers take a bufio.Reader and would wait for the rest
// of a partial reply, and the loop must never wait on one connection.

var errFraming = errors.New("protocol error")

// request frames one RESP array of bulk strings at the start of b: its size
// and its first key (the second element; nil for a one-word command), or
// size 0 when b does not hold all of it yet.
func request(b []byte) (size int, key []byte, err error) {
	if b[0] != '*' {
		return 0, nil, errors.New("only RESP arrays are supported")
	}
	n, pos, err := header(b, 0)
	if err != nil || pos == 0 {
		return 0, nil, err
	}
	for i := range n {
		if pos >= len(b) {
			return 0, nil, nil
		}
		if b[pos] != '$' {
			return 0, nil, errFraming
		}
		l, next, err := header(b, pos)
		if err != nil || next == 0 {
			return 0, nil, err
		}
		if l < 0 {
			return 0, nil, errFraming
		}
		if next+l+2 > len(b) {
			return 0, nil, nil
		}
		if i == 1 {
			key = b[next : next+l]
		}
		pos = next + l + 2
	}
	return pos, key, nil
}

// reply frames one RESP2 reply at the start of b: its size, or 0 when b
// does not hold all of it yet.
func reply(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	switch b[0] {
	case '+', '-', ':':
		end := bytes.Index(b, []byte("\r\n"))
		if end < 0 {
			return 0, nil
		}
		return end + 2, nil
	case '$':
		l, pos, err := header(b, 0)
		if err != nil || pos == 0 || l < 0 {
			return pos, err
		}
		if pos+l+2 > len(b) {
			return 0, nil
		}
		return pos + l + 2, nil
	case '*':
		n, pos, err := header(b, 0)
		if err != nil || pos == 0 {
			return 0, err
		}
		for range max(n, 0) {
			size, err := reply(b[pos:])
			if err != nil || size == 0 {
				return 0, err
			}
			pos += size
		}
		return pos, nil
	}
	return 0, errFraming
}

// header reads the number after the type byte at b[at] up to its CRLF:
// the number and where the next element starts, or next 0 when the line
// is not whole yet.
func header(b []byte, at int) (n, next int, err error) {
	end := bytes.Index(b[at:], []byte("\r\n"))
	if end < 0 {
		return 0, 0, nil
	}
	v, ok := resp.ParseInt(b[at+1 : at+end])
	if !ok {
		return 0, 0, errFraming
	}
	return int(v), at + end + 2, nil
}

func listenOn(addr string) (int, error) {
	fd, sa, err := socket(addr)
	if err != nil {
		return 0, fmt.Errorf("--listen: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return 0, err
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return 0, fmt.Errorf("listen %s: %w", addr, err)
	}
	if err := syscall.Listen(fd, 1024); err != nil {
		return 0, fmt.Errorf("listen %s: %w", addr, err)
	}
	return fd, nil
}

func dial(addr string) (int, error) {
	fd, sa, err := socket(addr)
	if err != nil {
		return 0, fmt.Errorf("--shards: %w", err)
	}
	if err := syscall.Connect(fd, sa); err != nil {
		syscall.Close(fd)
		return 0, fmt.Errorf("dial %s: %w", addr, err)
	}
	return fd, nodelay(fd)
}

// socket makes a TCP socket for addr, an IPv4 address and port.
func socket(addr string) (int, *syscall.SockaddrInet4, error) {
	a, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0, nil, err
	}
	if !a.Addr().Is4() {
		return 0, nil, fmt.Errorf("%s: IPv4 only", addr)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, err
	}
	return fd, &syscall.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}, nil
}

// nodelay sets TCP_NODELAY, as Redis and every proxy do: a batch goes out
// when written.
func nodelay(fd int) error {
	return syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
}

// watch adds fd to the epoll set, level-triggered for reading.
func watch(ep, fd int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// readNow reads what fd holds without waiting: its sockets block (see the
// package comment), and an event can be stale when a closed client's fd is
// reused by a client accepted in the same turn of the loop.
func readNow(fd int, b []byte) (int, error) {
	n, _, err := syscall.Recvfrom(fd, b, syscall.MSG_DONTWAIT)
	return n, err
}

func retry(err error) bool {
	return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

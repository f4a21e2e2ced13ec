package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy"
	"github.com/reshard/reshard/proxy/control"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// evenTable is a table at epoch that splits the slots evenly over shards.
func evenTable(t testing.TB, epoch uint64, shards []*redistest.Server) *router.Table {
	t.Helper()
	var addrs []string
	for _, s := range shards {
		addrs = append(addrs, s.Addr())
	}
	spec, err := router.ParseShardArgs(addrs)
	if err != nil {
		t.Fatal(err)
	}
	table, err := router.NewTable(epoch, spec)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// serveTable runs a proxy over table on a free loopback port, for tests
// that need it without proxytest's wait for every shard; stop closes it and
// checks that Serve ended the way Close ends it.
func serveTable(t testing.TB, cfg proxy.Config, ccfg control.Config, table *router.Table, log *zap.Logger) (addr string, stop func()) {
	t.Helper()
	ccfg.ShardUsername, ccfg.ShardPassword = cfg.ShardUsername, cfg.ShardPassword
	auth, err := control.TableAuth(ccfg, table, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShardUsername, cfg.ShardPassword = auth.Username, auth.Password
	srv, err := proxy.New(cfg, table, log)
	if err != nil {
		t.Fatal(err)
	}
	ctl := control.New(ccfg, srv, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctl.Close()
		srv.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	}
}

// Helpers shared by the integration tests: a raw RESP client (the tests
// check exact bytes and connection state, which a client library hides),
// reply rendering for got/want comparisons, and key pickers that find keys
// on a given shard or slot.

// respError is an error reply, without the leading '-'.
type respError string

// status is a simple-string reply, without the leading '+'.
type status string

// The RESP3 types (HELLO 3), each its own Go type so that a reply of the
// wrong type, RESP2's $-1 where RESP3 has _, an array where Redis sends a
// map, never compares equal to the right one.
type (
	respNull     struct{} // _
	respBool     bool     // #t, #f
	respDouble   string   // ,1.5: the text as sent (Redis's %.17g, inf, -inf, nan)
	respBigNum   string   // (12345678901234567890
	respVerbatim string   // =: the format, ':' and the text, as "txt:..."
	respBlobErr  string   // !: an error as a bulk
	respMap      []any    // %: keys and values in turn, in the order sent
	respSet      []any    // ~
	respPush     []any    // >: out-of-band data (pub/sub), not a reply to a command
	// respAttr is an attribute (|) and the reply it comes before.
	respAttr struct {
		attrs respMap
		reply any
	}
)

// readReply decodes one RESP2 or RESP3 reply: status, respError, int64,
// []byte (a null bulk is a nil []byte), []any (a null array is a nil
// []any), and the RESP3 types above. RESP3's streamed strings and
// aggregates ($?, *?), which Redis never sends, are an error.
func readReply(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return status(body), nil
	case '-':
		return respError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$', '=', '!':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("bulk header %q: %v", line, err)
		}
		if n < 0 && line[0] == '$' {
			return []byte(nil), nil
		}
		if n < 0 {
			return nil, fmt.Errorf("negative length in %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		if string(buf[n:]) != "\r\n" {
			return nil, fmt.Errorf("bulk of %d bytes not followed by CRLF", n)
		}
		switch line[0] {
		case '=':
			if n < 4 || buf[3] != ':' {
				return nil, fmt.Errorf("verbatim string %q without its format", buf[:n])
			}
			return respVerbatim(buf[:n]), nil
		case '!':
			return respBlobErr(buf[:n]), nil
		}
		return buf[:n], nil
	case '*', '%', '~', '>', '|':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("aggregate header %q: %v", line, err)
		}
		if n < 0 && line[0] == '*' {
			return []any(nil), nil
		}
		if n < 0 {
			return nil, fmt.Errorf("negative length in %q", line)
		}
		if line[0] == '%' || line[0] == '|' {
			n *= 2
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(br); err != nil {
				return nil, err
			}
		}
		switch line[0] {
		case '%':
			return respMap(out), nil
		case '~':
			return respSet(out), nil
		case '>':
			return respPush(out), nil
		case '|':
			reply, err := readReply(br)
			if err != nil {
				return nil, err
			}
			return respAttr{attrs: out, reply: reply}, nil
		}
		return out, nil
	case '_':
		if body != "" {
			return nil, fmt.Errorf("malformed null %q", line)
		}
		return respNull{}, nil
	case '#':
		switch body {
		case "t", "f":
			return respBool(body == "t"), nil
		}
		return nil, fmt.Errorf("malformed boolean %q", line)
	case ',':
		if _, err := strconv.ParseFloat(body, 64); err != nil {
			return nil, fmt.Errorf("malformed double %q", line)
		}
		return respDouble(body), nil
	case '(':
		if _, ok := new(big.Int).SetString(body, 10); !ok {
			return nil, fmt.Errorf("malformed big number %q", line)
		}
		return respBigNum(body), nil
	}
	return nil, fmt.Errorf("unknown reply type in %q", line)
}

// render prints a reply compactly for got/want comparisons: +OK, -ERR ...,
// :3, "bulk", (nil), [a, b]; in RESP3 _, #t, ,1.5, (123, ="txt:..",
// %{k: v}, ~[a], >[a], |{k: v} reply.
func render(v any) string {
	switch v := v.(type) {
	case status:
		return "+" + string(v)
	case respError:
		return "-" + string(v)
	case int64:
		return ":" + strconv.FormatInt(v, 10)
	case []byte:
		if v == nil {
			return "(nil)"
		}
		return strconv.Quote(string(v))
	case []any:
		if v == nil {
			return "(nil array)"
		}
		return renderElems("[", v, "]", render)
	case respNull:
		return "_"
	case respBool:
		if v {
			return "#t"
		}
		return "#f"
	case respDouble:
		return "," + string(v)
	case respBigNum:
		return "(" + string(v)
	case respVerbatim:
		return "=" + strconv.Quote(string(v))
	case respBlobErr:
		return "!" + strconv.Quote(string(v))
	case respMap:
		return renderPairs("%{", v, "}", render)
	case respSet:
		return renderElems("~[", v, "]", render)
	case respPush:
		return renderElems(">[", v, "]", render)
	case respAttr:
		return renderPairs("|{", v.attrs, "} ", render) + render(v.reply)
	}
	return fmt.Sprintf("%#v", v)
}

// renderElems renders elems with each, in open and close.
func renderElems(open string, elems []any, close string, each func(any) string) string {
	parts := make([]string, len(elems))
	for i, e := range elems {
		parts[i] = each(e)
	}
	return open + strings.Join(parts, ", ") + close
}

// renderPairs renders keys and values in turn as k: v.
func renderPairs(open string, kv []any, close string, each func(any) string) string {
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, each(kv[i])+": "+each(kv[i+1]))
	}
	return open + strings.Join(parts, ", ") + close
}

// encode returns args as a RESP array of bulk strings.
func encode(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// rawConn is one client connection driven by hand.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// write sends bytes as they are.
func (rc *rawConn) write(s string) {
	rc.t.Helper()
	rc.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.nc, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// send writes one command.
func (rc *rawConn) send(args ...string) {
	rc.t.Helper()
	rc.write(encode(args...))
}

// tryRead reads one reply, waiting at most 10 s.
func (rc *rawConn) tryRead() (any, error) {
	rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	return readReply(rc.br)
}

func (rc *rawConn) read() any {
	rc.t.Helper()
	v, err := rc.tryRead()
	if err != nil {
		rc.t.Fatalf("read reply: %v", err)
	}
	return v
}

// do sends one command and returns its reply rendered.
func (rc *rawConn) do(args ...string) string {
	rc.t.Helper()
	rc.send(args...)
	return render(rc.read())
}

// expectClosed checks that the server closes the connection within limit
// without sending anything more.
func (rc *rawConn) expectClosed(limit time.Duration) {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(limit))
	b, err := rc.br.ReadByte()
	switch {
	case err == nil:
		rest, _ := rc.br.Peek(rc.br.Buffered())
		rc.t.Fatalf("expected the connection to be closed, got more data %q", append([]byte{b}, rest...))
	case isClosed(err):
	default:
		rc.t.Fatalf("expected the connection to be closed within %s, got %v", limit, err)
	}
}

// isClosed reports whether err says the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// keyOn returns a key starting with prefix that the cluster's table places
// on shard i.
func keyOn(t testing.TB, c *proxytest.Cluster, prefix string, i int) string {
	t.Helper()
	for n := 0; n < 1_000_000; n++ {
		k := prefix + strconv.Itoa(n)
		if c.Table.ShardOf([]byte(k)) == i {
			return k
		}
	}
	t.Fatalf("no key with prefix %q on shard %d", prefix, i)
	return ""
}

// keyBeside returns a key starting with prefix on the same shard as key but
// in another slot: a pair that proves the proxy checks slots, not shards.
func keyBeside(t testing.TB, c *proxytest.Cluster, prefix, key string) string {
	t.Helper()
	shard, slot := c.Table.ShardOf([]byte(key)), router.Slot([]byte(key))
	for n := 0; n < 1_000_000; n++ {
		k := prefix + strconv.Itoa(n)
		if c.Table.ShardOf([]byte(k)) == shard && router.Slot([]byte(k)) != slot {
			return k
		}
	}
	t.Fatalf("no key with prefix %q beside %q", prefix, key)
	return ""
}

// directClients returns go-redis clients of every shard, for reading what
// the proxy wrote where.
func directClients(c *proxytest.Cluster) []*redis.Client {
	out := make([]*redis.Client, len(c.Shards))
	for i, sh := range c.Shards {
		out[i] = sh.Client()
	}
	return out
}

// shardsHolding returns the indexes of the shards where key exists, read
// from the shards directly.
func shardsHolding(t testing.TB, shards []*redis.Client, key string) []int {
	t.Helper()
	var out []int
	for i, sh := range shards {
		n, err := sh.Exists(t.Context(), key).Result()
		if err != nil {
			t.Fatalf("EXISTS %q on shard %d: %v", key, i, err)
		}
		if n == 1 {
			out = append(out, i)
		}
	}
	return out
}

// checkOnlyOn fails unless key exists on its owning shard and no other.
func checkOnlyOn(t testing.TB, c *proxytest.Cluster, shards []*redis.Client, key string) {
	t.Helper()
	got := fmt.Sprint(shardsHolding(t, shards, key))
	want := fmt.Sprint([]int{c.Table.ShardOf([]byte(key))})
	if got != want {
		t.Errorf("key %q is on shards %s, want %s", key, got, want)
	}
}

// pipeConn is a raw client for use from goroutines other than the test's:
// its methods return errors instead of failing the test.
type pipeConn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func dialPipe(addr string) (*pipeConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &pipeConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, nil
}

func (p *pipeConn) Close() error { return p.nc.Close() }

// exchange sends every command in one write, then reads one reply per
// command and renders each.
func (p *pipeConn) exchange(cmds [][]string) ([]string, error) {
	p.nc.SetDeadline(time.Now().Add(30 * time.Second))
	for _, c := range cmds {
		p.bw.WriteString(encode(c...))
	}
	if err := p.bw.Flush(); err != nil {
		return nil, err
	}
	out := make([]string, len(cmds))
	for i := range cmds {
		v, err := readReply(p.br)
		if err != nil {
			return nil, fmt.Errorf("reply %d of %d: %w", i+1, len(cmds), err)
		}
		out[i] = render(v)
	}
	return out, nil
}

// keeper drives one connection through rounds of a pipeline that, for each
// of its keys, reads the key (which must hold the value it wrote in the
// previous round, or nothing in the first) and writes a new value. A reply
// that belongs to another key or another client shows up as a mismatch.
type keeper struct {
	conn  *pipeConn
	keys  []string
	last  []string // rendered value each key must hold
	round int
	cmds  [][]string
}

func newKeeper(conn *pipeConn, prefix string, nkeys int) *keeper {
	k := &keeper{conn: conn}
	for i := 0; i < nkeys; i++ {
		k.keys = append(k.keys, fmt.Sprintf("%s:%d", prefix, i))
		k.last = append(k.last, "(nil)")
	}
	return k
}

func (k *keeper) step() error {
	k.round++
	k.cmds = k.cmds[:0]
	vals := make([]string, len(k.keys))
	for i, key := range k.keys {
		vals[i] = fmt.Sprintf("%s=%d", key, k.round)
		k.cmds = append(k.cmds, []string{"GET", key}, []string{"SET", key, vals[i]})
	}
	got, err := k.conn.exchange(k.cmds)
	if err != nil {
		return fmt.Errorf("round %d: %w", k.round, err)
	}
	for i, key := range k.keys {
		if g := got[2*i]; g != k.last[i] {
			return fmt.Errorf("round %d: GET %s = %s, want %s", k.round, key, g, k.last[i])
		}
		if g := got[2*i+1]; g != "+OK" {
			return fmt.Errorf("round %d: SET %s = %s, want +OK", k.round, key, g)
		}
		k.last[i] = strconv.Quote(vals[i])
	}
	return nil
}

// sameRESP3Shapes sends each command, in RESP3, to the proxy at addr and to
// the Redis at ref, and fails the test where the replies' shapes differ.
func sameRESP3Shapes(t *testing.T, addr, ref string, commands [][]string) {
	t.Helper()
	p3, r3 := dialRaw(t, addr), dialRaw(t, ref)
	for _, args := range append([][]string{{"HELLO", "3"}}, commands...) {
		p3.send(args...)
		r3.send(args...)
		got, err := shape3(p3)
		if err != nil {
			t.Fatal(err)
		}
		want, err := shape3(r3)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("RESP3 %q: shape %s, want %s (as Redis)", args, got, want)
		}
	}
}

// shape3 reads one RESP3 reply and renders its shape: the type byte of
// every item, with the keys of maps spelt out (map keys are field names in
// the replies compared).
func shape3(c *rawConn) (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	kind, body := line[0], strings.TrimSuffix(line[1:], "\r\n")
	n, _ := strconv.Atoi(body)
	switch kind {
	case '$', '=', '!':
		if n >= 0 {
			if _, err := io.ReadFull(c.br, make([]byte, n+2)); err != nil {
				return "", err
			}
		}
		return string(kind), nil
	case '*', '~', '>':
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = shape3(c); err != nil {
				return "", err
			}
		}
		return string(kind) + "[" + strings.Join(parts, " ") + "]", nil
	case '%':
		parts := make([]string, n)
		for i := range parts {
			key, err := c.br.ReadString('\n') // a bulk string's length line
			if err != nil {
				return "", err
			}
			name, err := c.br.ReadString('\n')
			if err != nil || !strings.HasPrefix(key, "$") {
				return "", fmt.Errorf("map key %q %q: %v", key, name, err)
			}
			val, err := shape3(c)
			if err != nil {
				return "", err
			}
			parts[i] = strings.TrimSuffix(name, "\r\n") + ":" + val
		}
		return "%{" + strings.Join(parts, " ") + "}", nil
	}
	return string(kind), nil
}

// barrierCloses checks that the proxy's barrier closes within 5 s, so that
// nothing holds it (a lock left held, a write inside the gate); when says
// in what case.
func barrierCloses(t *testing.T, c *proxytest.Cluster, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resume, err := c.Proxy.Pause(ctx)
	if err != nil {
		t.Fatalf("the barrier did not close %s: %v", when, err)
	}
	resume()
}

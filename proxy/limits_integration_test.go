package proxy_test

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reshard/reshard/proxy"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// TestIntegrationRequestLimits sends requests over the bulk length and
// argument count limits. As in Redis, the commands before the bad one are
// answered first, then the protocol error, then the connection closes.
func TestIntegrationRequestLimits(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.MaxBulkLen = 1024
	cfg.MaxArgs = 16
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Config: &cfg})

	const (
		badBulk  = "-ERR Protocol error: invalid bulk length"
		badMulti = "-ERR Protocol error: invalid multibulk length"
	)
	sixteen := []string{"DEL"}
	for i := 0; i < 15; i++ {
		sixteen = append(sixteen, "k"+strings.Repeat("x", i))
	}
	tests := []struct {
		name   string
		before []string // commands answered before the bad request
		bad    string   // raw bytes
		want   []string // replies, the last one the protocol error
	}{
		{
			name:   "bulk over the limit",
			before: []string{encode("PING"), encode("SET", "limit:a", "1"), encode("GET", "limit:a")},
			bad:    "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n" + strings.Repeat("v", 100),
			want:   []string{"+PONG", "+OK", `"1"`, badBulk},
		},
		{
			name:   "huge bulk header",
			before: []string{encode("SET", "limit:b", strings.Repeat("v", 1024))},
			bad:    "*2\r\n$4\r\nECHO\r\n$9999999999\r\n",
			want:   []string{"+OK", badBulk},
		},
		{
			name: "negative bulk length",
			bad:  "*2\r\n$4\r\nECHO\r\n$-5\r\n",
			want: []string{badBulk},
		},
		{
			name:   "too many arguments",
			before: []string{encode(sixteen...)},
			bad:    "*17\r\n$3\r\nDEL\r\n",
			want:   []string{":0", badMulti},
		},
		{
			name:   "multibulk length not a number",
			before: []string{encode("PING")},
			bad:    "*x1\r\n",
			want:   []string{"+PONG", badMulti},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, c.Addr)
			// Everything in one write: the proxy sees the good commands and
			// the bad one in the same read.
			rc.write(strings.Join(tt.before, "") + tt.bad)
			for i, want := range tt.want {
				v, err := rc.tryRead()
				if err != nil {
					t.Fatalf("reply %d: %v, want %s", i, err, want)
				}
				if got := render(v); got != want {
					t.Errorf("reply %d = %s, want %s", i, got, want)
				}
			}
			rc.expectClosed(2 * time.Second)
		})
	}

	t.Run("bulk at the limit", func(t *testing.T) {
		rc := dialRaw(t, c.Addr)
		v := strings.Repeat("v", 1024)
		if got := rc.do("SET", "limit:c", v); got != "+OK" {
			t.Errorf("SET with a %d-byte value = %s, want +OK", len(v), got)
		}
		if got := rc.do("GET", "limit:c"); got != `"`+v+`"` {
			t.Errorf("GET = %.40s..., want the value", got)
		}
	})
}

func TestIntegrationOutputBufferLimit(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.MaxOutputBuffer = 64 << 10
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Config: &cfg})
	rc := dialRaw(t, c.Addr)
	big := strings.Repeat("o", 10<<10)
	if got := rc.do("SET", "out:big", big); got != "+OK" {
		t.Fatalf("SET = %s", got)
	}
	if got := rc.do("GET", "out:big"); len(got) != len(big)+2 {
		t.Fatalf("one GET of a 10 KB value: %d bytes, want it whole", len(got))
	}
	// Twenty of them in one pipeline are 200 KB of replies: over the limit,
	// the client is dropped as Redis drops it.
	rc.write(strings.Repeat(encode("GET", "out:big"), 20))
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var err error
	for err == nil {
		_, err = readReply(rc.br)
	}
	if !isClosed(err) {
		t.Errorf("after a pipeline over the output buffer limit: %v, want the connection closed", err)
	}
	other := dialRaw(t, c.Addr)
	if got := other.do("STRLEN", "out:big"); got != ":10240" {
		t.Errorf("another client: STRLEN = %s, want :10240", got)
	}

	// The limit bounds what the proxy holds while the replies arrive, not
	// only what it writes. The proxy reads 16 KB of commands at a time, so
	// a pipeline of short GETs of a 300 KB value is about 750 of them: over
	// 200 MB of replies, and the heap must not grow by anything like that.
	huge := strings.Repeat("h", 300<<10)
	if got := other.do("SET", "o:h", huge); got != "+OK" {
		t.Fatalf("SET = %s", got)
	}
	heapBefore, _ := heapAndGoroutines()
	var peak atomic.Uint64
	sampled := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	hc := dialRaw(t, c.Addr)
	hc.write(strings.Repeat(encode("GET", "o:h"), 1500))
	hc.expectClosed(30 * time.Second)
	close(stop)
	<-sampled
	t.Logf("heap in use: %d MB before, %d MB at most while the replies arrived", heapBefore>>20, peak.Load()>>20)
	if peak.Load() > heapBefore+64<<20 {
		t.Errorf("the heap grew by %d MB under a pipeline of over 200 MB of replies, with a 64 KB output buffer limit", (peak.Load()-heapBefore)>>20)
	}
}

func TestIntegrationMaxClients(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.MaxClients = 5
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Config: &cfg})

	first := dialRaw(t, c.Addr)
	n := connectedClients(t, first) // this one and the harness's pooled client
	conns := []*rawConn{first}
	for i := n; i < 5; i++ {
		rc := dialRaw(t, c.Addr)
		if got := rc.do("PING"); got != "+PONG" {
			t.Fatalf("client %d of 5: PING = %s", i+1, got)
		}
		conns = append(conns, rc)
	}
	sixth := dialRaw(t, c.Addr)
	v, err := sixth.tryRead()
	if err != nil {
		t.Fatalf("6th client: %v, want an error reply", err)
	}
	if got, want := render(v), "-ERR max number of clients reached"; got != want {
		t.Errorf("6th client reads %s, want %s", got, want)
	}
	sixth.expectClosed(2 * time.Second)
	for i, rc := range conns {
		if got := rc.do("PING"); got != "+PONG" {
			t.Errorf("client %d after the refusal: PING = %s", i+1, got)
		}
	}

	// A slot frees when a client leaves.
	conns[len(conns)-1].nc.Close()
	var got string
	ok := waitFor(5*time.Second, func() bool {
		rc := dialRaw(t, c.Addr)
		defer rc.nc.Close()
		got = rc.do("PING")
		return got == "+PONG"
	})
	if !ok {
		t.Errorf("after a client left, a new client's PING = %s, want +PONG", got)
	}
}

func TestIntegrationIdleTimeout(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.IdleTimeout = 300 * time.Millisecond
	c := proxytest.Start(t, proxytest.Options{Shards: 3, Config: &cfg})

	idle, busy := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
	// Redis times out neither subscribers nor monitors, which wait
	// without sending anything.
	sub, mon := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
	if got := sub.do("SUBSCRIBE", "idle:ch"); got != `["subscribe", "idle:ch", :1]` {
		t.Fatalf("SUBSCRIBE = %s", got)
	}
	if got := mon.do("MONITOR"); got != "+OK" {
		t.Fatalf("MONITOR = %s", got)
	}
	start := time.Now()
	if got := idle.do("PING"); got != "+PONG" {
		t.Fatalf("PING = %s", got)
	}
	done := make(chan time.Duration)
	go func() {
		idle.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := idle.br.ReadByte()
		if isClosed(err) {
			done <- time.Since(start)
		} else {
			done <- -1
		}
	}()
	// A client that keeps talking is not idle.
	for time.Since(start) < time.Second {
		if got := busy.do("PING"); got != "+PONG" {
			t.Fatalf("busy client after %s: PING = %s", time.Since(start), got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	switch d := <-done; {
	case d < 0:
		t.Errorf("idle client not closed within 3 s")
	case d < 250*time.Millisecond || d > 2*time.Second:
		t.Errorf("idle client closed after %s, want about 300ms", d)
	}
	if got := busy.do("PUBLISH", "idle:ch", "still here"); got != ":1" {
		t.Errorf("PUBLISH after %s = %s, want :1 (the subscriber timed out?)", time.Since(start), got)
	}
	if got := render(sub.read()); got != `["message", "idle:ch", "still here"]` {
		t.Errorf("subscriber got %s", got)
	}
	for {
		v, err := mon.tryRead()
		if err != nil {
			t.Fatalf("monitor after %s: %v (timed out?)", time.Since(start), err)
		}
		if line := render(v); strings.Contains(line, `"still here"`) {
			break
		}
	}
}

// TestIntegrationInline sends commands as typed text (telnet style), which
// Redis accepts beside RESP arrays.
func TestIntegrationInline(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	ref := redistest.Start(t)
	px, rf := dialRaw(t, c.Addr), dialRaw(t, ref.Addr())
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{"ping", "PING\r\n", []string{"+PONG"}},
		{"bare newline", "PING\n", []string{"+PONG"}},
		{"set and get", "SET inline:k hello\r\nGET inline:k\r\n", []string{"+OK", `"hello"`}},
		{"quoted argument", "ECHO \"hello world\"\r\n", []string{`"hello world"`}},
		{"mixed with RESP", "PING\r\n" + encode("ECHO", "resp") + "EXISTS inline:k\r\n", []string{"+PONG", `"resp"`, ":1"}},
		{"lower case", "get inline:k\r\n", []string{`"hello"`}},
	}
	for _, tt := range tests {
		px.write(tt.raw)
		rf.write(tt.raw)
		for i, want := range tt.want {
			if got := render(rf.read()); got != want {
				t.Errorf("%s: redis-server reply %d = %s, want %s (the test's expectation is wrong)", tt.name, i, got, want)
			}
			if got := render(px.read()); got != want {
				t.Errorf("%s: reply %d = %s, want %s", tt.name, i, got, want)
			}
		}
	}
	// The inline SET went to the key's shard.
	if got := c.ShardOf("inline:k").Client().Get(t.Context(), "inline:k").Val(); got != "hello" {
		t.Errorf("owner shard GET inline:k = %q, want hello", got)
	}
}

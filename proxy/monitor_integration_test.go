package proxy_test

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/proxy"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// monitorLine is one MONITOR line: time, client address, arguments.
var monitorLine = regexp.MustCompile(`^\d+\.\d{6} \[0 ([^\]]+)\] (.*)$`)

// watchMonitor reads MONITOR lines from m until one ends with marker, and
// returns their arguments, checking that each names the client at addr.
func watchMonitor(t *testing.T, m *rawConn, addr, marker string) []string {
	t.Helper()
	var got []string
	for {
		line, ok := m.read().(status)
		if !ok {
			t.Fatalf("MONITOR sent something else than a status line")
		}
		parts := monitorLine.FindStringSubmatch(string(line))
		if parts == nil {
			t.Fatalf("MONITOR line %q is not `time [0 addr] args`", line)
		}
		if parts[1] != addr {
			t.Errorf("MONITOR line %q names client %s, want %s", line, parts[1], addr)
		}
		got = append(got, parts[2])
		if strings.HasSuffix(parts[2], marker) {
			return got
		}
	}
}

// The proxy's MONITOR shows what a redis-server's shows for the same
// commands: arguments as the client sent them, quoted and escaped alike,
// passwords redacted, admin commands left out, each command once however
// many shards it went to.
func TestIntegrationMonitor(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	commands := [][]string{
		{"SET", "k", "v"},
		{"GET", "k"},
		{"set", "bin", "\x00\xff\"\\\n\r\t\a\bok"},
		{"MSET", "a", "1", "b", "2", "c", "3"}, // split over the shards
		{"DEL", "a", "b", "c"},
		{"MULTI"}, {"INCR", "{t}n"}, {"INCRBY", "{t}n", "2"}, {"EXEC"},
		{"MULTI"}, {"SET", "{t}d", "1"}, {"WATCH", "{t}n"}, {"DISCARD"}, // SET never runs; WATCH runs and fails
		{"WATCH", "{t}w"}, {"SET", "{t}w", "1"}, {"MULTI"}, {"INCR", "{t}w"}, {"EXEC"}, // the watch fails: INCR never runs
		{"MULTI"}, {"INCR", "{t}n"}, {"GET"}, {"EXEC"}, // GET refused: EXECABORT, INCR never runs
		{"AUTH", "not-a-password"},
		{"AUTH", "someone", "not-a-password"},
		{"HELLO", "2", "AUTH", "default", "not-a-password", "SETNAME", "n"},
		{"CONFIG", "GET", "maxmemory"}, // admin: left out
		{"CLIENT", "SETNAME", "watched"},
		{"PING"},
		{"ECHO", "end"},
	}
	streams := map[string][]string{}
	for name, addr := range map[string]string{"proxy": c.Addr, "redis": direct.Addr()} {
		m := dialRaw(t, addr)
		if got := m.do("MONITOR"); got != "+OK" {
			t.Fatalf("%s: MONITOR = %s", name, got)
		}
		cl := dialRaw(t, addr)
		for _, cmd := range commands {
			cl.do(cmd...)
		}
		streams[name] = watchMonitor(t, m, cl.nc.LocalAddr().String(), `"end"`)
	}
	if !slices.Equal(streams["proxy"], streams["redis"]) {
		t.Errorf("MONITOR through the proxy:\n%s\nMONITOR of redis-server:\n%s",
			strings.Join(streams["proxy"], "\n"), strings.Join(streams["redis"], "\n"))
	}
}

// A transaction's commands show in MONITOR with the time EXEC ran them, as
// in Redis, not the time they were queued.
func TestIntegrationMonitorTransactionTime(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	m, cl := dialRaw(t, c.Addr), dialRaw(t, c.Addr)
	if got := m.do("MONITOR"); got != "+OK" {
		t.Fatalf("MONITOR = %s", got)
	}
	cl.do("MULTI")
	cl.do("SET", "{t}k", "v")
	cl.do("INCR", "{t}n")
	time.Sleep(200 * time.Millisecond)
	execAt := time.Now()
	if got := cl.do("EXEC"); got != "[+OK, :1]" {
		t.Fatalf("EXEC = %s", got)
	}
	cl.do("ECHO", "end")
	for _, want := range []string{`"MULTI"`, `"SET" "{t}k" "v"`, `"INCR" "{t}n"`, `"EXEC"`, `"ECHO" "end"`} {
		line := string(m.read().(status))
		if !strings.HasSuffix(line, want) {
			t.Fatalf("MONITOR line %q, want one ending %s", line, want)
		}
		secs, err := strconv.ParseFloat(line[:strings.IndexByte(line, ' ')], 64)
		if err != nil {
			t.Fatalf("MONITOR line %q: %v", line, err)
		}
		at := time.UnixMicro(int64(secs * 1e6))
		if want == `"MULTI"` {
			if at.After(execAt) {
				t.Errorf("MULTI shown at %s, after EXEC was sent (%s)", at.Format(time.StampMicro), execAt.Format(time.StampMicro))
			}
		} else if at.Before(execAt.Add(-time.Millisecond)) {
			t.Errorf("%s shown at %s, before EXEC was sent (%s)", want, at.Format(time.StampMicro), execAt.Format(time.StampMicro))
		}
	}
}

// A monitoring client's own commands get what redis-server (7) gives them:
// their reply, then their line in the stream; for a command that touches
// the keyspace an error and no line; for MONITOR again nothing. The same
// steps run against redis-server and the proxy.
func TestIntegrationMonitorOwnCommands(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	direct := redistest.Start(t)
	const replica = "-ERR Replica can't interact with the keyspace"
	steps := []struct {
		cmd   []string
		reply string // "" for none, "*" for any
		shown bool
	}{
		{[]string{"PING"}, "+PONG", true},
		{[]string{"ECHO", "hi"}, `"hi"`, true},
		{[]string{"SET", "k", "1"}, replica, false},
		{[]string{"GET", "k"}, replica, false},
		{[]string{"DBSIZE"}, replica, false},
		{[]string{"PUBLISH", "ch", "m"}, replica, false}, // may replicate
		{[]string{"EVAL", "return 1", "0"}, replica, false},
		{[]string{"FCALL", "f", "0"}, replica, false},
		{[]string{"TIME"}, "*", true},
		{[]string{"MONITOR"}, "", false},
		{[]string{"CLIENT", "SETNAME", "mon"}, "+OK", true},
		{[]string{"ECHO", "end"}, `"end"`, true},
	}
	for name, addr := range map[string]string{"proxy": c.Addr, "redis": direct.Addr()} {
		m := dialRaw(t, addr)
		if got := m.do("MONITOR"); got != "+OK" {
			t.Fatalf("%s: MONITOR = %s", name, got)
		}
		self := m.nc.LocalAddr().String()
		for _, st := range steps {
			m.send(st.cmd...)
			if st.reply != "" {
				if got := render(m.read()); got != st.reply && st.reply != "*" {
					t.Fatalf("%s: monitor's %q = %s, want %s", name, st.cmd, got, st.reply)
				}
			}
			if st.shown {
				want := `"` + strings.Join(st.cmd, `" "`) + `"`
				if got := watchMonitor(t, m, self, want); len(got) != 1 {
					t.Fatalf("%s: after the reply to the monitor's %q, lines %q, want its own only", name, st.cmd, got)
				}
			}
		}
		if got := m.do("RESET"); got != "+RESET" {
			t.Fatalf("%s: RESET = %s", name, got)
		}
		if got := m.do("GET", "k"); got != "(nil)" {
			t.Errorf("%s: GET after RESET = %s, want (nil): the monitor's SET must not have run", name, got)
		}
	}
}

// A monitoring client shows in CLIENT LIST with flag O until RESET ends
// monitoring; lines fed before the RESET go out before its reply.
func TestIntegrationMonitorReset(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 2})
	m := dialRaw(t, c.Addr)
	m.do("CLIENT", "SETNAME", "mon")
	if got := m.do("MONITOR"); got != "+OK" {
		t.Fatalf("MONITOR = %s", got)
	}
	cl := dialRaw(t, c.Addr)
	if list := cl.do("CLIENT", "LIST"); !regexp.MustCompile(`name=mon [^\n]*flags=O`).MatchString(list) {
		t.Errorf("CLIENT LIST does not flag the monitor O:\n%s", list)
	}
	if got := cl.do("SET", "from-monitor", "1"); got != "+OK" {
		t.Fatalf("SET = %s", got)
	}
	if got := watchMonitor(t, m, cl.nc.LocalAddr().String(), `"from-monitor" "1"`); len(got) != 1 { // CLIENT LIST is admin: not shown
		t.Errorf("lines up to the SET: %q", got)
	}
	if got := cl.do("GET", "from-monitor"); got != `"1"` {
		t.Errorf("GET = %s", got)
	}
	m.send("RESET")
	var before []string
	for { // lines sent before the RESET, then its reply
		got := m.read()
		if got == status("RESET") {
			break
		}
		s, _ := got.(status)
		parts := monitorLine.FindStringSubmatch(string(s))
		if parts == nil {
			t.Fatalf("RESET = %s", render(got))
		}
		before = append(before, parts[2])
	}
	// the GET had its reply before the RESET was sent
	if want := `"GET" "from-monitor"`; !slices.Contains(before, want) {
		t.Errorf("MONITOR lines before RESET's reply: %q, want %s among them", before, want)
	}
	cl.do("SET", "after-reset", "1")
	if got := m.do("PING"); got != "+PONG" {
		t.Errorf("PING after RESET = %s, want +PONG and no more MONITOR lines", got)
	}
}

// A monitor that does not read is disconnected when what it has not read
// passes the output buffer limit; the clients it watched never wait for it.
func TestIntegrationMonitorSlowReader(t *testing.T) {
	cfg := proxy.DefaultConfig()
	cfg.MaxOutputBuffer = 256 << 10
	c := proxytest.Start(t, proxytest.Options{Shards: 2, Config: &cfg})
	m := dialRaw(t, c.Addr)
	if got := m.do("MONITOR"); got != "+OK" {
		t.Fatalf("MONITOR = %s", got)
	}
	cl := c.Client()
	value := strings.Repeat("v", 1024)
	for i := 0; i < 40; i++ { // 40 MB of lines: more than any socket buffers hold
		pipe := cl.Pipeline()
		for j := 0; j < 1000; j++ {
			pipe.Set(t.Context(), "slow", value, 0)
		}
		if _, err := pipe.Exec(t.Context()); err != nil {
			t.Fatalf("clients stalled behind a monitor that does not read: %v", err)
		}
	}
	if !waitFor(5*time.Second, func() bool { return !strings.Contains(cl.ClientList(t.Context()).Val(), "flags=O") }) {
		t.Fatal("the monitor that does not read is still connected")
	}
}

// A subscribed client's commands, served by the proxy's pub/sub loop and
// not by the session's plan, show in MONITOR and count in INFO
// commandstats as in redis-server.
func TestIntegrationMonitorSubscribed(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	commands := []struct {
		args    []string
		replies int
	}{
		{[]string{"SUBSCRIBE", "a"}, 0}, // one pipeline with the next two
		{[]string{"SUBSCRIBE", "b"}, 0},
		{[]string{"PING"}, 3},
		{[]string{"SSUBSCRIBE", "s"}, 1},
		{[]string{"SUNSUBSCRIBE", "s"}, 1},
		{[]string{"UNSUBSCRIBE", "a", "b"}, 2},
		{[]string{"ECHO", "end"}, 1},
	}
	streams := map[string][]string{}
	stats := map[string]map[string]string{}
	for name, addr := range map[string]string{"proxy": c.Addr, "redis": direct.Addr()} {
		admin := dialRaw(t, addr)
		admin.do("CONFIG", "RESETSTAT")
		before := infoInt(t, admin, "stats", "total_commands_processed")
		m := dialRaw(t, addr)
		if got := m.do("MONITOR"); got != "+OK" {
			t.Fatalf("%s: MONITOR = %s", name, got)
		}
		cl := dialRaw(t, addr)
		for _, cmd := range commands {
			cl.send(cmd.args...)
			for range cmd.replies {
				cl.read()
			}
		}
		streams[name] = watchMonitor(t, m, cl.nc.LocalAddr().String(), `"end"`)
		after := infoInt(t, admin, "stats", "total_commands_processed")
		if got, want := after-before, int64(len(commands)+2); got != want { // +2: MONITOR and the INFO reading it
			t.Errorf("%s: total_commands_processed went up by %d for MONITOR, %d commands and an INFO, want %d", name, got, len(commands), want)
		}
		stats[name] = infoSection(t, admin, "commandstats")
	}
	if !slices.Equal(streams["proxy"], streams["redis"]) {
		t.Errorf("MONITOR through the proxy:\n%s\nMONITOR of redis-server:\n%s",
			strings.Join(streams["proxy"], "\n"), strings.Join(streams["redis"], "\n"))
	}
	calls := regexp.MustCompile(`^calls=\d+`)
	for _, cmd := range []string{"subscribe", "ping", "ssubscribe", "sunsubscribe", "unsubscribe", "echo"} {
		got := calls.FindString(stats["proxy"]["cmdstat_"+cmd])
		if want := calls.FindString(stats["redis"]["cmdstat_"+cmd]); got != want {
			t.Errorf("cmdstat_%s through the proxy: %q, redis-server: %q", cmd, got, want)
		}
	}
}

package proxy_test

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reshard/reshard/internal/proxytest"
	"github.com/reshard/reshard/internal/redistest"
)

// INFO commandstats and errorstats count what clients sent as a real
// redis-server counts it: the same commands, pipelined or not, give the same
// calls, rejected_calls and failed_calls per command and the same error
// codes, whether the command went to one shard, was split over several or
// was answered by the proxy itself.
func TestIntegrationCommandStats(t *testing.T) {
	c := proxytest.Start(t, proxytest.Options{Shards: 3})
	direct := redistest.Start(t)
	commands := [][]string{
		{"CONFIG", "RESETSTAT"},
		{"SET", "k", "v"}, {"SET", "n", "1"}, {"SET", "l", "x"},
		{"GET", "k"}, {"GET", "missing"},
		{"LPUSH", "k", "x"},                    // WRONGTYPE: failed
		{"INCR", "k"},                          // not an integer: failed
		{"GET"},                                // wrong arity: rejected
		{"NOSUCHCOMMAND", "a"},                 // unknown: an ERR, no cmdstat line
		{"CONFIG", "NOSUCHSUB"},                // unknown subcommand: an ERR
		{"MSET", "a", "1", "b", "2", "c", "3"}, // split over the shards: one call
		{"MGET", "a", "b", "c", "k"},
		{"DEL", "a", "b", "c"},
		{"PING"}, {"ECHO", "e"},
		{"OBJECT", "ENCODING", "n"},
		{"OBJECT", "ENCODING", "missing"},
		{"MULTI"}, {"INCR", "n"}, {"EXEC"},
		{"MULTI"}, {"WATCH", "k"}, {"GET"}, {"EXEC"}, // WATCH fails, GET is rejected, EXEC aborts
		{"MULTI"}, {"SET", "m", "1"}, {"LPUSH", "m", "x"}, {"EXEC"}, // LPUSH fails inside EXEC
		{"MULTI"}, {"INCR", "n"}, {"DISCARD"}, // INCR never runs
		{"WATCH", "w"}, {"SET", "w", "1"}, {"MULTI"}, {"INCR", "w"}, {"EXEC"}, // the watch fails: INCR never runs
	}
	stats := map[string]map[string]string{}
	errs := map[string]map[string]string{}
	for name, addr := range map[string]string{"proxy": c.Addr, "redis": direct.Addr()} {
		cl := dialRaw(t, addr)
		for _, cmd := range commands[:5] {
			cl.do(cmd...)
		}
		// the rest as one pipeline, as a client library sends it
		for _, cmd := range commands[5:] {
			cl.send(cmd...)
		}
		for range commands[5:] {
			cl.read()
		}
		// Protocol errors are error replies too, subscribed or not.
		for _, prefix := range [][]string{nil, {"SUBSCRIBE", "ch"}} {
			bad := dialRaw(t, addr)
			if prefix != nil {
				bad.do(prefix...)
			}
			bad.write("*1\r\n$x\r\n")
			if got := render(bad.read()); !strings.Contains(got, "Protocol error") {
				t.Errorf("%s: a bad bulk length after %v answered %s", name, prefix, got)
			}
			bad.expectClosed(5 * time.Second)
		}
		stats[name] = infoSection(t, cl, "commandstats")
		errs[name] = infoSection(t, cl, "errorstats")
	}
	// the figures Redis keeps per command, less the time
	counts := regexp.MustCompile(`calls=\d+|rejected_calls=\d+|failed_calls=\d+`)
	for _, name := range slices.Sorted(maps.Keys(stats["redis"])) {
		if name == "cmdstat_info" {
			continue // Redis counts an INFO after answering it
		}
		want := strings.Join(counts.FindAllString(stats["redis"][name], -1), ",")
		got := strings.Join(counts.FindAllString(stats["proxy"][name], -1), ",")
		if got != want {
			t.Errorf("%s through the proxy: %q, redis-server: %q", name, got, want)
		}
	}
	for name := range stats["proxy"] {
		if _, ok := stats["redis"][name]; !ok && name != "cmdstat_info" {
			t.Errorf("the proxy has %s=%s, redis-server has no such line", name, stats["proxy"][name])
		}
	}
	if !maps.Equal(errs["proxy"], errs["redis"]) {
		t.Errorf("errorstats through the proxy: %v, redis-server: %v", errs["proxy"], errs["redis"])
	}

	// usec is the time the shards spent: SET ran there, ECHO did not (the
	// proxy answers it).
	set := parseStat(t, stats["proxy"]["cmdstat_set"])
	if set["usec"] <= 0 {
		t.Errorf("cmdstat_set usec = %v, want the shards' time (> 0)", set["usec"])
	}
	if echo := parseStat(t, stats["proxy"]["cmdstat_echo"]); echo["usec"] != 0 || echo["calls"] != 1 {
		t.Errorf("cmdstat_echo = %v, want 1 call and usec 0: the proxy answers ECHO itself", echo)
	}

	// CROSSSLOT exists only through the proxy: a rejected call, as in
	// Redis Cluster.
	cl := dialRaw(t, c.Addr)
	cl.do("CONFIG", "RESETSTAT")
	if got := cl.do("SUNION", "a", "b"); !strings.HasPrefix(got, "-CROSSSLOT") {
		t.Fatalf("SUNION a b = %s, want CROSSSLOT", got)
	}
	if got := infoSection(t, cl, "commandstats")["cmdstat_sunion"]; !strings.Contains(got, "calls=0,") || !strings.Contains(got, "rejected_calls=1,") {
		t.Errorf("cmdstat_sunion after a CROSSSLOT = %q, want calls=0 and rejected_calls=1", got)
	}
	if got := infoSection(t, cl, "errorstats")["errorstat_CROSSSLOT"]; got != "count=1" {
		t.Errorf("errorstat_CROSSSLOT = %q, want count=1", got)
	}

	// INFO's default sections carry errorstats; INFO all adds commandstats.
	if names := sectionNames(infoText(t, cl)); !slices.Contains(names, "errorstats") || slices.Contains(names, "commandstats") {
		t.Errorf("INFO has sections %v: want errorstats and not commandstats", names)
	}
	if names := sectionNames(infoText(t, cl, "all")); !slices.Contains(names, "commandstats") {
		t.Errorf("INFO all has sections %v: want commandstats", names)
	}
}

// infoSection returns the fields of one INFO section, read through cl.
func infoSection(t *testing.T, cl *rawConn, section string) map[string]string {
	t.Helper()
	text := infoText(t, cl, section)
	fields := infoFields(text)[section]
	if fields == nil {
		t.Fatalf("INFO %s has no such section:\n%s", section, text)
	}
	return fields
}

// infoText returns INFO's text, read through cl.
func infoText(t *testing.T, cl *rawConn, args ...string) string {
	t.Helper()
	cl.send(append([]string{"INFO"}, args...)...)
	text, ok := cl.read().([]byte)
	if !ok {
		t.Fatalf("INFO %v did not answer a bulk string", args)
	}
	return string(text)
}

// parseStat parses "calls=3,usec=12,usec_per_call=4.00,..." into numbers.
func parseStat(t *testing.T, line string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, f := range strings.Split(line, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("malformed stat %q", line)
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("malformed stat %q: %v", line, err)
		}
		out[k] = n
	}
	return out
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/reshard/reshard/internal/redisproc"
	"github.com/reshard/reshard/internal/redistest"
	"github.com/reshard/reshard/proxy"
)

// scrape reads /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	return fams
}

// metric is the value of the sample of name whose labels include want
// ("k=v" pairs); ok is false if there is none.
func metric(fams map[string]*dto.MetricFamily, name string, want ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for _, w := range want {
			k, val, _ := strings.Cut(w, "=")
			match = match && labels[k] == val
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func statusField(t *testing.T, cl *redis.Client, field string) int64 {
	t.Helper()
	st, err := cl.Do(t.Context(), "PROXY", "RESHARD", "STATUS").Text()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(st, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in PROXY RESHARD STATUS:\n%s", field, st)
	return 0
}

func probe(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// --metrics-listen serves the Prometheus metrics: the text parses; the
// command and shard counters count what clients did; during a reshard the
// progress metrics move and end where PROXY RESHARD STATUS does, and the
// barrier's pause is counted. /healthz and /readyz answer 200, and
// /healthz 503 naming a shard once it is down.
func TestMetrics(t *testing.T) {
	sources := redistest.StartN(t, 2, "--repl-diskless-sync-delay", "0")
	targets := redistest.StartN(t, 3)
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	maddr := "127.0.0.1:" + strconv.Itoa(port)
	f := proxyFlags{cfg: proxy.DefaultConfig(), shards: sources[0].Addr() + "," + sources[1].Addr(), stateDir: t.TempDir(), metrics: maddr}
	addr, _, stop := startProxy(t, f)
	defer stop()
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer cl.Close()
	const keys = 100000
	if err := preloadKeys(t, cl, keys); err != nil {
		t.Fatal(err)
	}
	if err := cl.Incr(t.Context(), "pre:1").Err(); err == nil { // a string, not a number
		t.Fatal("INCR of a non-number succeeded")
	}
	fams := scrape(t, maddr)
	if v, _ := metric(fams, "reshard_command_errors_total", "command=incr"); v != 1 {
		t.Errorf("reshard_command_errors_total{command=incr} = %v, want 1", v)
	}
	var shardErrors float64
	for i, s := range sources {
		v, _ := metric(fams, "reshard_shard_error_replies_total", fmt.Sprintf("shard=%d:%s", i, s.Addr()))
		shardErrors += v
	}
	if shardErrors != 1 {
		t.Errorf("reshard_shard_error_replies_total sums to %v over the shards, want 1 (the INCR)", shardErrors)
	}
	if v, _ := metric(fams, "reshard_commands_total", "command=set"); v < keys {
		t.Errorf("reshard_commands_total{command=set} = %v, want at least %d", v, keys)
	}
	for i, s := range sources {
		if v, ok := metric(fams, "reshard_shard_up", fmt.Sprintf("shard=%d:%s", i, s.Addr())); !ok || v != 1 {
			t.Errorf("reshard_shard_up of %s = %v, %v; want 1", s.Addr(), v, ok)
		}
	}
	for i, s := range sources {
		// every request answered has its reply time counted
		label := fmt.Sprintf("shard=%d:%s", i, s.Addr())
		n, _ := metric(fams, "reshard_shard_latency_seconds", label)
		if sent := mustMetric(t, fams, "reshard_shard_requests_total", label); n != sent || n < keys/4 {
			t.Errorf("reshard_shard_latency_seconds of %s counts %v replies; %v requests were sent (about %d)", s.Addr(), n, sent, keys/2)
		}
	}
	for _, name := range []string{"reshard_connected_clients", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := metric(fams, name); !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	if code, body := probe(t, maddr, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}

	args := []any{"PROXY", "RESHARD"}
	for _, s := range targets {
		args = append(args, s.Addr())
	}
	if err := cl.Do(t.Context(), args...).Err(); err != nil {
		t.Fatal(err)
	}
	var seen []float64
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fams = scrape(t, maddr)
		v, _ := metric(fams, "reshard_reshard_keys_copied")
		seen = append(seen, v)
		if done, _ := metric(fams, "reshard_reshard_state", "state=done"); done == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reshard did not end in 60s; keys_copied seen %v", seen)
		}
	}
	if seen[0] >= seen[len(seen)-1] {
		t.Errorf("reshard_reshard_keys_copied did not move while the reshard ran: %v", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Errorf("reshard_reshard_keys_copied went back: %v", seen)
			break
		}
	}
	if got, want := seen[len(seen)-1], float64(statusField(t, cl, "keys_copied")); got != want || want < keys {
		t.Errorf("reshard_reshard_keys_copied ends at %v; STATUS keys_copied %v (want at least %d)", got, want, keys)
	}
	if got, want := mustMetric(t, fams, "reshard_reshard_pause_seconds"), float64(statusField(t, cl, "pause_us"))/1e6; got != want || want <= 0 {
		t.Errorf("reshard_reshard_pause_seconds = %v; STATUS pause_us says %v", got, want)
	}
	if n := mustMetric(t, fams, "reshard_barrier_pause_seconds"); n < 1 {
		t.Errorf("reshard_barrier_pause_seconds counts %v pauses, want the cutover's", n)
	}
	if v := mustMetric(t, fams, "reshard_table_epoch"); v != 2 {
		t.Errorf("reshard_table_epoch = %v after the reshard, want 2", v)
	}
	t.Logf("keys_copied scraped %d times while the reshard ran: %v ... %v", len(seen), seen[0], seen[len(seen)-1])

	if code, body := probe(t, maddr, "/readyz"); code != 200 || body != "ok" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	targets[1].Kill()
	for i := 0; i < 100; i++ { // some of them on the dead shard
		cl.Get(t.Context(), "pre:"+strconv.Itoa(i))
	}
	label := fmt.Sprintf("shard=1:%s", targets[1].Addr())
	if v, _ := metric(scrape(t, maddr), "reshard_shard_failed_requests_total", label); v < 1 {
		t.Errorf("reshard_shard_failed_requests_total{%s} = %v after GETs of its keys with it down", label, v)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := probe(t, maddr, "/healthz")
		if code == 503 && strings.Contains(body, targets[1].Addr()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz with a shard down = %d %q, want 503 naming %s", code, body, targets[1].Addr())
		}
	}
}

func mustMetric(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metric(fams, name, labels...)
	if !ok {
		t.Fatalf("no %s%v in /metrics", name, labels)
	}
	return v
}

package proxy

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// LATENCY HISTOGRAM of the commands the proxy answers itself
// (ownSlowlogCommands), which no shard sees: the proxy times them as it
// runs them (loggedOwn) and counts them in buckets as Redis does, the
// first for anything under 1024 ns and each next one twice as wide, and
// merges them with the shards' histograms (latencyHistogram). CONFIG
// RESETSTAT clears them.

// latencyBuckets is the number of buckets: the last holds 1024 ns << 31
// (about 37 minutes) and anything longer.
const latencyBuckets = 32

type latencyHist struct {
	buckets [latencyBuckets]atomic.Int64
}

// ownLatency holds a histogram per command of ownSlowlogCommands; the map
// is built once and only read, the histograms are atomics.
type ownLatency map[*command.Info]*latencyHist

func newOwnLatency() ownLatency {
	l := ownLatency{}
	for _, name := range ownSlowlogCommands {
		l[command.LookupName(name)] = &latencyHist{}
	}
	return l
}

func (l ownLatency) record(info *command.Info, d time.Duration) {
	h := l[info]
	if h == nil {
		return
	}
	k := 0
	for k < latencyBuckets-1 && d >= 1024<<k {
		k++
	}
	h.buckets[k].Add(1)
}

func (l ownLatency) reset() {
	for _, h := range l {
		for i := range h.buckets {
			h.buckets[i].Store(0)
		}
	}
}

// reply renders the histograms of the commands names asks for (a command,
// or a container for all its subcommands; every one for none) as a
// shard's RESP2 LATENCY HISTOGRAM reply.
func (l ownLatency) reply(names [][]byte) []byte {
	var body []byte
	n := 0
	for info, h := range l {
		if !latencyAsked(info.Name(), names) {
			continue
		}
		var counts [latencyBuckets]int64
		var calls int64
		for i := range h.buckets {
			counts[i] = h.buckets[i].Load()
			calls += counts[i]
		}
		if calls == 0 {
			continue
		}
		n++
		body = resp.AppendBulkString(body, info.Name())
		body = resp.AppendArrayHeader(body, 4)
		body = resp.AppendBulkString(body, "calls")
		body = wire.AppendInt(body, calls)
		body = resp.AppendBulkString(body, "histogram_usec")
		var pairs []byte
		npairs, cum := 0, int64(0)
		for i, c := range counts {
			if c == 0 {
				continue
			}
			cum += c
			npairs++
			pairs = wire.AppendInt(pairs, int64(1024<<i)/1000)
			pairs = wire.AppendInt(pairs, cum)
		}
		body = append(resp.AppendArrayHeader(body, 2*npairs), pairs...)
	}
	return append(resp.AppendArrayHeader(nil, 2*n), body...)
}

// latencyAsked reports whether LATENCY HISTOGRAM names asks for the
// command name.
func latencyAsked(name string, names [][]byte) bool {
	if len(names) == 0 {
		return true
	}
	container, _, _ := strings.Cut(name, "|")
	for _, a := range names {
		if strings.EqualFold(string(a), name) || strings.EqualFold(string(a), container) {
			return true
		}
	}
	return false
}

package proxy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/proxy/internal/wire"
)

// INFO commandstats and errorstats, as Redis counts them, for the commands
// clients send to the proxy: monitoring tools (redis_exporter, Datadog's
// Redis check) read them from the one server they think they watch.
//
// calls, rejected_calls and failed_calls are the proxy's own count per
// client command: a command refused before it runs (wrong arity, no
// permission, CROSSSLOT, not supported by the proxy) is rejected and not a
// call; a call whose reply is an error failed. usec, the time spent running
// the command, comes from the shards' own INFO commandstats, summed: the
// proxy does not time commands on the data path, and what an operator
// looks for there is the time Redis spent. A command the proxy answers
// itself (PING, CLUSTER SLOTS) has no shard time. Commands queued in a
// transaction count when EXEC runs them, with the errors inside EXEC's
// reply, as Redis counts them.
//
// The data path pays one atomic add per command and one byte comparison
// per reply.
type cmdStats struct {
	cmds []cmdStat // by command.Info ID

	errMu   sync.Mutex
	errs    map[string]int64 // error replies by code: "ERR", "WRONGTYPE"
	errFull bool             // maxErrorCodes reached (logged once)
	errors  atomic.Int64     // every error reply: total_error_replies
}

type cmdStat struct {
	calls, rejected, failed atomic.Int64

	// everyShard: the proxy has sent the command to every shard for one
	// call (a fan-out), so each shard's LATENCY HISTOGRAM counts that call
	// (latencyHistogram). Not a figure: CONFIG RESETSTAT leaves it.
	everyShard atomic.Bool
}

// sentToEveryShard notes that the command being planned goes to every
// shard.
func (s *session) sentToEveryShard() {
	if s.stat != nil && !s.stat.everyShard.Load() {
		s.stat.everyShard.Store(true)
	}
}

// maxErrorCodes bounds the distinct error codes counted, as Redis's 128:
// codes are the first word of the error, and a shard or a script can make
// up any number of them. Past the bound new codes still count in
// total_error_replies.
const maxErrorCodes = 128

func newCmdStats() *cmdStats {
	return &cmdStats{cmds: make([]cmdStat, command.Count()), errs: map[string]int64{}}
}

func (cs *cmdStats) of(info *command.Info) *cmdStat { return &cs.cmds[info.ID()] }

// errorReplied counts an error reply sent for a call of stat (nil for a
// rejected or unknown command): a failed call.
func (cs *cmdStats) errorReplied(stat *cmdStat, reply []byte, log *zap.Logger) {
	if stat != nil {
		stat.failed.Add(1)
	}
	cs.countError(reply, log)
}

// countError counts one error reply by its code: the text after '-' up to
// the first space, at most 32 bytes, as Redis takes it.
func (cs *cmdStats) countError(reply []byte, log *zap.Logger) {
	cs.errors.Add(1)
	code := reply[1:]
	if i := strings.IndexAny(string(code[:min(len(code), 34)]), " \r"); i >= 0 {
		code = code[:i]
	}
	code = code[:min(len(code), 32)]
	cs.errMu.Lock()
	defer cs.errMu.Unlock()
	if _, ok := cs.errs[string(code)]; ok || len(cs.errs) < maxErrorCodes {
		cs.errs[string(code)]++
		return
	}
	if !cs.errFull {
		cs.errFull = true
		log.Warn("errorstats: too many distinct error codes, new ones are not counted by code",
			zap.Int("limit", maxErrorCodes))
	}
}

// execRan counts the commands of a transaction as EXEC ran them: each is a
// call, and one whose element of EXEC's reply is an error failed. An EXEC
// that ran nothing (a null reply: a watched key changed; EXECABORT) counts
// none, as in Redis. It reports whether EXEC ran the commands.
func (cs *cmdStats) execRan(stats []*cmdStat, reply []byte, log *zap.Logger) bool {
	end := wire.IndexCRLF(reply)
	if end < 2 || reply[0] != '*' || reply[1] == '-' {
		return false
	}
	pos := end + 2
	for _, stat := range stats {
		n, err := wire.ReplyLen(reply[pos:])
		if err != nil {
			return true // not the array of len(stats) replies EXEC sends
		}
		stat.calls.Add(1)
		if reply[pos] == '-' {
			cs.errorReplied(stat, reply[pos:pos+n], log)
		}
		pos += n
	}
	return true
}

// reset clears every figure (CONFIG RESETSTAT).
func (cs *cmdStats) reset() {
	for i := range cs.cmds {
		c := &cs.cmds[i]
		c.calls.Store(0)
		c.rejected.Store(0)
		c.failed.Store(0)
	}
	cs.errMu.Lock()
	clear(cs.errs)
	cs.errFull = false
	cs.errMu.Unlock()
	cs.errors.Store(0)
}

// writeCommands writes a cmdstat_ line for every command clients sent or
// had rejected, with usec from the shards' own commandstats (shardUsec, by
// the name Redis gives there: "get", "config|get").
func (cs *cmdStats) writeCommands(field func(string, any), shardUsec map[string]int64) {
	cs.each(func(name string, calls, rejected, failed int64) {
		usec := shardUsec[name]
		perCall := 0.0
		if calls > 0 {
			perCall = float64(usec) / float64(calls)
		}
		field("cmdstat_"+name, fmt.Sprintf("calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d",
			calls, usec, perCall, rejected, failed))
	})
}

// each calls f for every command clients sent or had rejected, in name
// order, subcommands after their command.
func (cs *cmdStats) each(f func(name string, calls, rejected, failed int64)) {
	visit := func(info *command.Info) {
		c := cs.of(info)
		calls, rejected, failed := c.calls.Load(), c.rejected.Load(), c.failed.Load()
		if calls != 0 || rejected != 0 || failed != 0 {
			f(info.Name(), calls, rejected, failed)
		}
	}
	all := command.All()
	for i := range all {
		visit(&all[i])
		subs := all[i].Subcommands()
		for j := range subs {
			visit(&subs[j])
		}
	}
}

// writeErrors writes an errorstat_ line per error code, in name order.
func (cs *cmdStats) writeErrors(field func(string, any)) {
	cs.errMu.Lock()
	counts := maps.Clone(cs.errs)
	cs.errMu.Unlock()
	codes := slices.Sorted(maps.Keys(counts))
	for _, code := range codes {
		field("errorstat_"+code, "count="+strconv.FormatInt(counts[code], 10))
	}
}

// shardCommandUsec sums the usec of each command over the shards' INFO
// commandstats lines ("cmdstat_get:calls=3,usec=12,...").
func shardCommandUsec(shards []map[string]string) map[string]int64 {
	usec := map[string]int64{}
	for _, sh := range shards {
		for k, v := range sh {
			name, ok := strings.CutPrefix(k, "cmdstat_")
			if !ok {
				continue
			}
			for _, f := range strings.Split(v, ",") {
				if n, ok := strings.CutPrefix(f, "usec="); ok {
					usec[name] += atoi(n)
				}
			}
		}
	}
	return usec
}

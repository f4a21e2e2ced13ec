package proxy

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// The handlers of the families too small for a file of their own (PING,
// QUIT, SELECT; CONFIG; FLUSHALL, KEYS; SORT and COPY as Redis Cluster
// checks them; XREAD), and the handler builders the command table uses for
// the rest: fanout, split, allowBusy, anyShard, refuse.

// clusterChecked routes SORT and COPY by their keys after the checks Redis
// Cluster makes of their options (clusterRefusal).
func clusterChecked(s *session, r *route, info *command.Info, c wire.Request) {
	if msg := clusterRefusal(info, c.Args); msg != "" {
		s.reject(info, msg)
		return
	}
	s.routeByKeys(r, info, c)
}

// clusterRefusal is Redis Cluster's error for options that reach beyond the
// command's slot, which a shard of the proxy would run on its own keys:
// SORT's BY and GET patterns whose keys may lie in other slots than the
// sorted key (a shard would read only its own, giving wrong results), and
// COPY into another database (one no client of the proxy can select).
func clusterRefusal(info *command.Info, args [][]byte) string {
	switch info.Name() {
	case "sort", "sort_ro":
		if len(args) < 2 {
			return ""
		}
		slot := router.Slot(args[1])
		for j := 2; j+1 < len(args); j++ {
			opt, pat := args[j], args[j+1]
			switch {
			case wire.EqualFold(opt, "limit"):
				j += 2
			case wire.EqualFold(opt, "store"):
				j++
			case wire.EqualFold(opt, "by"), wire.EqualFold(opt, "get"):
				j++
				if bytes.IndexByte(pat, '*') < 0 {
					continue // one key (BY nosort, GET #, ...): Redis reads no pattern
				}
				if ps, ok := router.PatternSlot(pat); !ok || ps != slot {
					return "ERR " + strings.ToUpper(string(opt)) + " option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots."
				}
			}
		}
	case "copy":
		for j := 3; j+1 < len(args); j++ {
			if wire.EqualFold(args[j], "db") {
				// Redis checks the index (its 16 databases), then cluster mode
				switch n, err := strconv.ParseInt(string(args[j+1]), 10, 64); {
				case err != nil || n == 0:
				case n < 0 || n >= 16:
					return "ERR DB index is out of range"
				default:
					return "ERR Copying to another database is not allowed in cluster mode"
				}
				j++
			}
		}
	}
	return ""
}

func replyOK(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(wire.AppendStatus(nil, "OK"))
}

func refuse(s *session, _ *route, info *command.Info, _ wire.Request) {
	s.reject(info, unsupported(info))
}

func ping(s *session, _ *route, info *command.Info, c wire.Request) {
	if len(c.Args) > 2 {
		s.errorReply("ERR wrong number of arguments for '" + info.Name() + "' command")
		return
	}
	if busy := s.srv.busyReply(); busy != nil {
		// a shard runs a script past its busy-reply-threshold: the proxy
		// answers as the one server it stands for, as Redis answers PING
		// then (clients and Redis's own tests wait for a script so)
		s.local(busy)
		return
	}
	if s.sub.restricted { // a subscriber's PING, in RESP2: [pong, arg or ""]
		var arg []byte
		if len(c.Args) == 2 {
			arg = c.Args[1]
		}
		s.local(resp.AppendBulk(resp.AppendBulkString(resp.AppendArrayHeader(nil, 2), "pong"), arg))
		return
	}
	if len(c.Args) == 2 {
		s.local(resp.AppendBulk(nil, c.Args[1]))
		return
	}
	s.local(wire.AppendStatus(nil, "PONG"))
}

func quit(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(wire.AppendStatus(nil, "OK"))
	s.quit = true
}

func selectDB(s *session, _ *route, _ *command.Info, c wire.Request) {
	if string(c.Args[1]) == "0" {
		s.local(wire.AppendStatus(nil, "OK"))
		return
	}
	// Redis Cluster's wording: the shards serve database 0 only.
	s.errorReply("ERR SELECT is not allowed in cluster mode")
}

// resetStats clears the proxy's own INFO figures that Redis's CONFIG
// RESETSTAT clears (commandstats, errorstats), then the shards'.
func resetStats(s *session, r *route, info *command.Info, c wire.Request) {
	s.srv.stats.reset()
	s.srv.ownLatency.reset()
	s.fanout(r, c.Args, c.Raw, allOK)
}

// anyShard serves a keyless read whose answer is the same on every shard.
// Sessions spread over the shards.
func anyShard(s *session, r *route, _ *command.Info, c wire.Request) {
	s.forward(int(s.id%uint64(len(r.pools))), c.Raw)
}

// The shards' configuration is theirs and the proxy's, not its clients':
// CONFIG GET through the proxy must not hand out the password the proxy
// uses on the shards (CONFIG GET is open to every client, as they probe it
// at connect time), and CONFIG SET must not change how the proxy reaches
// them. Redis itself shows a client its own requirepass, so that one reads
// as the proxy's own --requirepass.
var (
	secretConfig = map[string]bool{
		"requirepass": true, "masterauth": true,
		"tls-key-file-pass": true, "tls-client-key-file-pass": true,
	}
	shardConfig = map[string]bool{
		"requirepass": true, "masterauth": true, "masteruser": true,
		"tls-key-file-pass": true, "tls-client-key-file-pass": true,
		"port": true, "tls-port": true, "bind": true, "bind-source-addr": true,
		"unixsocket": true,
	}
)

// configGet answers CONFIG GET from one shard, with the secrets replaced.
func configGet(s *session, r *route, _ *command.Info, c wire.Request) {
	first := s.stageTo(int(s.id%uint64(len(r.pools))), c.Raw)
	s.calls = append(s.calls, call{first: first, n: 1, merge: redactConfig})
}

// redactConfig copies CONFIG GET's reply, name and value pairs in an array
// (RESP2) or a map (RESP3), with each secret's value replaced.
func redactConfig(s *session, c *call, out []byte) []byte {
	reply := s.b.Results[c.first]
	hdr := wire.IndexCRLF(reply)
	if hdr < 1 || reply[0] != '*' && reply[0] != '%' {
		return append(out, reply...) // an error
	}
	n, ok := wire.ParseLen(reply[1:hdr])
	if reply[0] == '%' {
		n *= 2
	}
	start, pos := len(out), hdr+2
	out = append(out, reply[:pos]...)
	for i := int64(0); ok && i < n; i += 2 {
		nl, err := wire.ReplyLen(reply[pos:])
		if err != nil {
			ok = false
			break
		}
		vl, err := wire.ReplyLen(reply[pos+nl:])
		if err != nil {
			ok = false
			break
		}
		name, value := reply[pos:pos+nl], reply[pos+nl:pos+nl+vl]
		out = append(out, name...)
		switch text, _ := wire.BulkText(name); {
		case string(text) == "requirepass":
			out = resp.AppendBulkString(out, s.srv.cfg.RequirePass)
		case secretConfig[string(text)]:
			out = resp.AppendBulkString(out, "")
		default:
			out = append(out, value...)
		}
		pos += nl + vl
	}
	if !ok || n%2 != 0 || pos != len(reply) {
		// Not the reply CONFIG GET sends: pass nothing of it on.
		return wire.AppendError(out[:start], "ERR unexpected CONFIG GET reply from the shard")
	}
	return out
}

// configSet sets parameters on every shard, except those that are how the
// proxy reaches the shards.
func configSet(s *session, r *route, info *command.Info, c wire.Request) {
	if msg := configSetRefusal(c.Args); msg != "" {
		s.reject(info, msg)
		return
	}
	s.fanout(r, c.Args, c.Raw, configSetDone)
}

// configSetRefusal is why CONFIG SET args is refused, or "".
func configSetRefusal(args [][]byte) string {
	for i := 2; i < len(args); i += 2 {
		if name := strings.ToLower(string(args[i])); shardConfig[name] {
			return "ERR CONFIG SET failed (possibly related to argument '" + name +
				"') - the proxy reaches its shards with it: set it on the shards themselves, and tell the proxy (--shard-password)"
		}
	}
	return ""
}

// flush empties every shard; during a reshard it is refused, because the
// targets would have to replay it over other sources' keys.
func flush(s *session, r *route, info *command.Info, c wire.Request) {
	if msg := s.srv.refusal(info.Name()); msg != "" {
		s.errorReply(msg)
		return
	}
	s.onEveryShard(c, false, allOK)
	s.step.afterArrived = true // see order.go
}

// allowBusy serves the commands a shard answers while it runs a script
// (SCRIPT KILL, FUNCTION KILL, FUNCTION STATS, flagged allow_busy) over
// connections of their own: the script holds the shared connection its
// EVAL came on (the shard reads nothing more from it until the script
// ends), where they would wait behind it, or get the BUSY the proxy
// answers for it meanwhile (backend.busy). A shard past its
// busy-reply-threshold answers them at once; a stopped one gets
// --shard-timeout to answer.
func allowBusy(m merger) handler {
	return func(s *session, _ *route, _ *command.Info, c wire.Request) {
		s.onEveryShardWithin(c, nil, false, s.srv.cfg.ShardTimeout, m)
	}
}

// keys lists every shard's matching keys. Like a synchronous FLUSHALL, it
// may keep a large shard busy for longer than --shard-timeout, so it runs
// over dedicated connections (onEveryShard).
func keys(s *session, _ *route, _ *command.Info, c wire.Request) {
	s.onEveryShard(c, true, concatArrays)
}

func fanout(m merger) handler {
	return func(s *session, r *route, _ *command.Info, c wire.Request) {
		s.fanout(r, c.Args, c.Raw, m)
	}
}

// streamRead serves XREAD/XREADGROUP without BLOCK; blocking reads need a
// dedicated connection.
func streamRead(s *session, r *route, info *command.Info, c wire.Request) {
	for _, a := range c.Args[1:] {
		if wire.EqualFold(a, "streams") {
			break
		}
		if wire.EqualFold(a, "block") {
			blocking(s, r, info, c)
			return
		}
	}
	slot, ok, errMsg := s.slotOf(info, c.Args)
	switch {
	case errMsg != "":
		s.badKeys(info, errMsg, c.Raw)
	case !ok:
		s.errorReply("ERR syntax error")
	default:
		s.forward(r.table.ShardOfSlot(slot), c.Raw)
	}
}

// split serves MGET, MSET, DEL and the like: keys (each followed by step-1
// values) are grouped per shard, each shard gets one command with its keys,
// and the replies are merged. When every key is on one shard the command is
// forwarded unchanged.
func split(step int, m merger) handler {
	return func(s *session, r *route, info *command.Info, c wire.Request) {
		args := c.Args
		if (len(args)-1)%step != 0 {
			s.errorReply("ERR wrong number of arguments for '" + info.Name() + "' command")
			return
		}
		t := r.table
		nkeys := (len(args) - 1) / step
		first := t.ShardOf(args[1])
		same := true
		for k := 1; k < nkeys && same; k++ {
			same = t.ShardOf(args[1+k*step]) == first
		}
		if same {
			s.forward(first, c.Raw)
			return
		}
		// Count keys per shard, then give each shard one command.
		counts := make([]int, len(r.pools))
		auxOff := int32(len(s.aux))
		for k := 0; k < nkeys; k++ {
			sh := t.ShardOf(args[1+k*step])
			counts[sh]++
			s.aux = append(s.aux, int32(sh))
		}
		sub := make([]int32, len(r.pools))
		firstSlot := s.nslots
		n := int32(0)
		for sh, cnt := range counts {
			if cnt == 0 {
				continue
			}
			sub[sh] = n
			n++
			i := s.slot()
			st := &s.stages[sh]
			st.reqs = append(st.reqs, backend.Pending{B: &s.b, I: i})
			st.raw = resp.AppendArrayHeader(st.raw, 1+cnt*step)
			st.raw = resp.AppendBulk(st.raw, args[0])
		}
		for k := 0; k < nkeys; k++ {
			sh := s.aux[auxOff+int32(k)]
			st := &s.stages[sh]
			for j := 0; j < step; j++ {
				st.raw = resp.AppendBulk(st.raw, args[1+k*step+j])
			}
			s.aux[auxOff+int32(k)] = sub[sh] // from shard index to reply index
		}
		s.calls = append(s.calls, call{first: firstSlot, n: n, merge: m, args: args, auxOff: auxOff})
	}
}

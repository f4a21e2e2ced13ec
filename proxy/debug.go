package proxy

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/proxy/internal/wire"
	"github.com/reshard/reshard/router"
)

// DEBUG through the proxy, where it has a meaning for the one server the
// proxy stands for (the shards must allow DEBUG: enable-debug-command):
//
//   - about a key: OBJECT, SDSLEN, LISTPACK, QUICKLIST, HTSTATS-KEY,
//     DIGEST-VALUE (its keys in one slot, as Redis Cluster would have them
//     on one node), on the shard of the key;
//   - about the whole dataset: DIGEST, every shard's merged into the
//     digest one server holding every key would give (debugDigest);
//   - settings of the server as a whole: SET-ACTIVE-EXPIRE,
//     QUICKLIST-PACKED-THRESHOLD, SET-SKIP-CHECKSUM-VALIDATION,
//     SET-DISABLE-DENY-SCRIPTS, PAUSE-CRON and REPLYBUFFER, on every shard;
//   - answered alike anywhere: PROTOCOL (so clients can test the RESP3
//     types), HELP, LOG, ERROR, STRUCTSIZE, STRINGMATCH-TEST, and SLEEP
//     (one shard sleeps: a client of the proxy waits as on one server;
//     the others go on);
//   - RELOAD (each shard saves its dataset to its own RDB file and loads
//     it again, with the options given) on every shard, over connections of
//     its own as a FLUSHALL, refused while a snapshot or reshard runs;
//   - the rest act on one whole server process (RESTART, CRASH-*,
//     SEGFAULT, PANIC, POPULATE, CHANGE-REPL-ID, JMAP, MALLCTL, ...) and
//     are refused by name.
var (
	debugKeyed = map[string]bool{"object": true, "sdslen": true, "listpack": true, "quicklist": true,
		"htstats-key": true, "digest-value": true}
	debugEveryShard = map[string]bool{"set-active-expire": true, "quicklist-packed-threshold": true,
		"set-skip-checksum-validation": true, "set-disable-deny-scripts": true, "pause-cron": true,
		"replybuffer": true}
	debugAnyShard = map[string]bool{"protocol": true, "help": true, "sleep": true, "log": true,
		"error": true, "structsize": true, "stringmatch-test": true}
)

// debugAnyShardArgs reports whether args are a DEBUG subcommand any shard
// answers alike (SLEEP, PROTOCOL, ...): inside a transaction, the
// transaction's shard runs it.
func debugAnyShardArgs(info *command.Info, args [][]byte) bool {
	return info.Name() == "debug" && len(args) > 1 && debugAnyShard[strings.ToLower(string(args[1]))]
}

func debugCmd(s *session, r *route, info *command.Info, c wire.Request) {
	sub := strings.ToLower(string(c.Args[1]))
	switch {
	case sub == "digest" && len(c.Args) == 2:
		s.fanout(r, c.Args, c.Raw, debugDigest)
	case debugEveryShard[sub]:
		s.fanout(r, c.Args, c.Raw, allOK)
	case debugAnyShard[sub]:
		anyShard(s, r, info, c)
	case sub == "reload":
		if msg := s.srv.refusal("debug|reload"); msg != "" {
			s.errorReply(msg)
			return
		}
		s.onEveryShard(c, false, allOK)
	case debugKeyed[sub]:
		if len(c.Args) < 3 {
			s.errorReply("ERR wrong number of arguments for 'debug|" + sub + "' command")
			return
		}
		slot := router.Slot(c.Args[2])
		for _, k := range c.Args[3:] {
			if sub == "digest-value" && router.Slot(k) != slot {
				s.errorReply("CROSSSLOT Keys in request don't hash to the same slot")
				return
			}
		}
		s.forward(r.table.ShardOfSlot(slot), c.Raw)
	default:
		s.reject(info, "ERR DEBUG "+strings.ToUpper(sub)+" is not supported by the proxy: it acts on one whole server process")
	}
}

// emptyDigest is what DEBUG DIGEST answers for an empty dataset.
var emptyDigest = strings.Repeat("0", 40)

// db0Mix is the digest Redis starts the keys of database 0 from: it XORs
// the SHA1 of the database number (4 big-endian bytes, zeros for 0) into
// the digest so far (zeros) and takes the SHA1 of the 20 bytes (debug.c,
// computeDatasetDigest, mixDigest and xorDigest, Redis 7.0).
var db0Mix = func() [20]byte {
	h := sha1.Sum(make([]byte, 4))
	return sha1.Sum(h[:])
}()

// debugDigest merges the shards' DEBUG DIGEST into one server's. Redis's
// digest of a dataset in database 0 is db0Mix XORed with one digest per
// key (the SHA1 of the key's and its value's), so the XOR of the shards' digests is the whole's XORed with db0Mix
// once per non-empty shard: an even number of them leaves it out, and it
// is put back. Keys in other databases (which no client of the proxy can
// reach) would make the merge wrong; the proxy serves database 0.
func debugDigest(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	var sum [20]byte
	nonEmpty := 0
	for _, r := range rs {
		text, ok := wire.BulkText(r)
		if !ok && len(r) > 2 && r[0] == '+' { // a status reply, as Redis gives it
			text, ok = r[1:len(r)-2], true
		}
		d, err := hex.DecodeString(string(text))
		if !ok || err != nil || len(d) != 20 {
			return wire.AppendError(out, "ERR unexpected DEBUG DIGEST reply from a shard")
		}
		if string(text) == emptyDigest {
			continue
		}
		nonEmpty++
		for i := range sum {
			sum[i] ^= d[i]
		}
	}
	if nonEmpty == 0 {
		return wire.AppendStatus(out, emptyDigest)
	}
	if nonEmpty%2 == 0 {
		for i := range sum {
			sum[i] ^= db0Mix[i]
		}
	}
	return wire.AppendStatus(out, hex.EncodeToString(sum[:]))
}

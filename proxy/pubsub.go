package proxy

import (
	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Pub/sub with the semantics of one Redis: every classic subscription
// (SUBSCRIBE, PSUBSCRIBE) and every PUBLISH goes to one *home* shard, the
// first of the table, so a message published through the proxy reaches every
// subscriber of the proxy. Shard channels (SSUBSCRIBE, SPUBLISH) go to the
// shard of the channel's slot, as in Redis Cluster.
//
// This file holds the pub/sub commands' handlers, outside subscribed mode.
// A subscribed client is served by its pub/sub loop (pubsub_loop.go) over
// subscription connections and their pumps (pubsub_pump.go); keyspace
// notifications come over mirrors (pubsub_keyspace.go); a table swap moves
// the subscriptions to the new shards (pubsub_swap.go).

// home sends a command to the pub/sub home shard.
func home(s *session, _ *route, _ *command.Info, c wire.Request) { s.forward(0, c.Raw) }

// shardChannel routes SPUBLISH by its channel's slot.
func shardChannel(s *session, r *route, info *command.Info, c wire.Request) {
	chans, err := info.RoutingKeys(c.Args, s.keys[:0])
	if err != nil || len(chans) == 0 {
		s.errorReply("ERR syntax error")
		return
	}
	s.keys = chans
	slot := router.Slot(c.Args[chans[0]])
	s.forward(r.table.ShardOfSlot(slot), c.Raw)
}

// notSubscribed answers (P|S)UNSUBSCRIBE outside subscribed mode. In a
// pub/sub loop that holds subscriptions, the loop sends it on (sub.detachWith).
func notSubscribed(s *session, _ *route, info *command.Info, c wire.Request) {
	if info.Name() == "sunsubscribe" { // shard channels share a slot, as for SSUBSCRIBE
		if msg := shardChannelsSlot(s, info, c); msg != "" {
			s.errorReply(msg)
			return
		}
	}
	if s.sub.loop != nil && s.sub.loop.subscribed {
		s.sub.detachWith = c
		return
	}
	s.local(notSubscribedReply(info, c, s.proto))
	s.replyAlways = true // a confirmation: CLIENT REPLY OFF or SKIP does not silence it
}

// notSubscribedReply is Redis's reply to (P|S)UNSUBSCRIBE from channels the
// client is not subscribed to: one confirmation per channel (or one with a
// null channel), count 0, pushed in RESP3.
func notSubscribedReply(info *command.Info, c wire.Request, proto int) []byte {
	kind := info.Name()
	header := resp.AppendArrayHeader(nil, 3)
	if proto == 3 {
		header = []byte(">3\r\n")
	}
	var b []byte
	if len(c.Args) == 1 {
		b = append(b, header...)
		b = resp.AppendBulkString(b, kind)
		b = wire.AppendNullIn(b, proto)
		b = wire.AppendInt(b, 0)
	}
	for _, ch := range c.Args[1:] {
		b = append(b, header...)
		b = resp.AppendBulkString(b, kind)
		b = resp.AppendBulk(b, ch)
		b = wire.AppendInt(b, 0)
	}
	return b
}

// subscribe enters subscribed mode: the connection goes to a pub/sub loop
// once what is planned so far has been answered.
func subscribe(s *session, r *route, info *command.Info, c wire.Request) {
	if info.Name() == "ssubscribe" {
		if msg := shardChannelsSlot(s, info, c); msg != "" {
			s.errorReply(msg)
			return
		}
	}
	s.sub.detachWith = c
}

// shardChannelsSlot checks that shard channels share one slot.
func shardChannelsSlot(s *session, info *command.Info, c wire.Request) string {
	chans, err := info.RoutingKeys(c.Args, s.keys[:0])
	if err != nil {
		return err.Error()
	}
	s.keys = chans
	if len(chans) == 0 {
		return ""
	}
	slot := router.Slot(c.Args[chans[0]])
	for _, i := range chans[1:] {
		if router.Slot(c.Args[i]) != slot {
			return crossSlot
		}
	}
	return ""
}

// sumPairs merges PUBSUB SHARDNUMSUB replies ([channel, count, ...] per
// shard) by adding the counts of each channel.
func sumPairs(s *session, c *call, out []byte) []byte {
	rs := s.results(c)
	if e := firstError(rs); e != nil {
		return append(out, e...)
	}
	var names [][]byte
	var sums []int64
	for _, r := range rs {
		elems, ok := wire.ArrayElems(r, nil)
		if !ok || len(elems)%2 != 0 {
			return wire.AppendError(out, "ERR unexpected reply from shard")
		}
		for i := 0; i < len(elems); i += 2 {
			n, _ := wire.IntReply(elems[i+1])
			j := i / 2
			if j == len(names) {
				names = append(names, elems[i])
				sums = append(sums, 0)
			}
			sums[j] += n
		}
	}
	out = resp.AppendArrayHeader(out, 2*len(names))
	for i := range names {
		out = append(out, names[i]...)
		out = wire.AppendInt(out, sums[i])
	}
	return out
}

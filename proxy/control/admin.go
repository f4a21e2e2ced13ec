package control

import (
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// Admin commands live under PROXY. Their replies are made by the control
// plane; each subcommand family has its file (snapshot.go, restore.go,
// reshard.go), and a new one is added to admin's switch and to proxyHelp.

var proxyHelp = []string{
	"PROXY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"TOPOLOGY",
	"    Return the routing table: its epoch and, per shard, the address, slot ranges and status.",
	"MEMBERS",
	"    The live proxies that share this one's routing table through etcd (--etcd): address, run id,",
	"    epoch and the seconds left on each one's lease.",
	"SNAPSHOT [<name>]",
	"    Snapshot every shard at one point in time (as BGSAVE); returns the snapshot id.",
	"SNAPSHOT STATUS [<id>|<name>]",
	"    The running or last snapshot job, or a stored snapshot, as field:value lines. A name stands",
	"    for the newest snapshot of that name, here and in RESTORE.",
	"SNAPSHOT LIST",
	"    The stored snapshots.",
	"SNAPSHOT DELETE <id>|<name>",
	"    Delete a stored snapshot (by name only if one snapshot has that name).",
	"RESTORE <id|name|path[,path...]> <target> [<target> ...] [REPLACE|FLUSH] [ALLOW-DUPLICATES] [DB <n>] [AUTH <password> | AUTH2 <username> <password>]",
	"    Restore a snapshot or .rdb files into the targets (HOST:PORT[=RANGES] each) in the background;",
	"    returns the job's id. The proxy keeps serving its own shards; a target that is one of them, or",
	"    that any reshard proxy is connected to, is refused. DB: the source database to restore (needed",
	"    when the sources hold several). AUTH/AUTH2: the targets' credentials (default: those of the",
	"    proxy's current shards).",
	"RESTORE STATUS",
	"    The running or last restore (its id first), as field:value lines.",
	"RESHARD <target> [<target> ...] [MANUAL] [FLUSH] [FORCE] [RATE <keys/s>] [AUTH <password> | AUTH2 <username> <password>]",
	"    Move live traffic onto new shards (HOST:PORT[=RANGES] each): copy, catch up, then cut over",
	"    atomically. MANUAL stops at state ready for RESHARD CUTOVER; FLUSH empties the targets first.",
	"    Refused while other reshard proxies are connected to the shards, unless FORCE, and when a",
	"    target is one of the current shards or another reshard proxy is connected to it.",
	"    AUTH/AUTH2: the new shards' credentials, kept for them after the cutover (default: those of",
	"    the current shards). RATE paces the copy at that many keys per second (default: no pace).",
	"RESHARD STATUS | ABORT | CUTOVER | RATE <keys/s>",
	"    The running or last reshard; abort it before its commit; cut over a MANUAL one; pace its",
	"    copy from now on (0: no pace).",
	"HELP",
	"    Print this help.",
}

// admin serves PROXY: args as the client sent them.
func (p *Plane) admin(proto int, args [][]byte) []byte {
	if len(args) == 1 || wire.EqualFold(args[1], "help") {
		return wire.AppendHelp(nil, proxyHelp)
	}
	switch {
	case wire.EqualFold(args[1], "topology") && len(args) == 2:
		return p.topologyReply(proto)
	case wire.EqualFold(args[1], "members") && len(args) == 2:
		return p.membersReply()
	case wire.EqualFold(args[1], "snapshot"):
		return p.snapshotAdmin(args[2:], proto)
	case wire.EqualFold(args[1], "restore"):
		return p.restoreAdmin(args[2:], proto)
	case wire.EqualFold(args[1], "reshard"):
		return p.reshardAdmin(args[2:], proto)
	}
	return wire.AppendError(nil, "ERR unknown subcommand or wrong number of arguments for '"+wire.Clip(args[1])+"'. Try PROXY HELP.")
}

// topologyReply lists epoch, the canonical spec, and per shard its address,
// slot ranges and status: maps in RESP3, as HELLO's reply, flat arrays of
// name and value in RESP2.
func (p *Plane) topologyReply(proto int) []byte {
	r := p.srv.Route()
	table := r.Table()
	b := wire.AppendMapHeader(nil, 3, proto)
	b = resp.AppendBulkString(b, "epoch")
	b = wire.AppendInt(b, int64(table.Epoch()))
	b = resp.AppendBulkString(b, "spec")
	b = resp.AppendBulkString(b, router.FormatSpec(table.Shards()))
	b = resp.AppendBulkString(b, "shards")
	shards := r.Shards()
	b = resp.AppendArrayHeader(b, len(shards))
	spec := table.Shards()
	for i, sh := range shards {
		status := "up"
		if !sh.Up() {
			status = "down"
		}
		b = wire.AppendMapHeader(b, 3, proto)
		b = resp.AppendBulkString(b, "addr")
		b = resp.AppendBulkString(b, sh.Addr())
		b = resp.AppendBulkString(b, "slots")
		b = resp.AppendBulkString(b, spec[i].RangeSpec())
		b = resp.AppendBulkString(b, "status")
		b = resp.AppendBulkString(b, status)
	}
	return b
}

// membersReply lists the proxies of the etcd group, one line each.
func (p *Plane) membersReply() []byte {
	if p.cfg.Etcd == nil {
		return wire.AppendError(nil, "ERR this proxy shares its routing table with no other: PROXY MEMBERS needs --etcd")
	}
	list, err := p.cfg.Etcd.members(p.ctx)
	if err != nil {
		return wire.AppendError(nil, "ERR "+err.Error())
	}
	b := resp.AppendArrayHeader(nil, len(list))
	for _, m := range list {
		b = resp.AppendBulkString(b, m)
	}
	return b
}

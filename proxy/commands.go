package proxy

import (
	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// The command table: which function serves each command the proxy does not
// simply route by its keys, grouped by family, each group naming the file
// that implements it.

// handler serves a command that is not simply routed by its keys.
type handler func(s *session, r *route, info *command.Info, cmd wire.Request)

// handlers maps COMMAND INFO names ("config|get") to their handler. Every
// other command is routed by its keys (routeByKeys) or, keyless, refused.
// It is built before any init function runs and only read afterwards.
var handlers = commandTable()

func commandTable() map[string]handler {
	t := map[string]handler{}
	// The connection (handlers.go; HELLO and AUTH in auth.go, RESET in
	// reset.go).
	addHandlers(t, map[string]handler{
		"ping":      ping,
		"echo":      func(s *session, _ *route, _ *command.Info, c wire.Request) { s.local(resp.AppendBulk(nil, c.Args[1])) },
		"quit":      quit,
		"select":    selectDB,
		"hello":     hello,
		"auth":      auth,
		"reset":     reset,
		"readonly":  readonlyCmd,
		"readwrite": readwriteCmd,
	})

	// CLIENT subcommands about the proxy's own clients (client.go).
	addHandlers(t, map[string]handler{
		"client|setname":      clientSetName,
		"client|getname":      clientGetName,
		"client|id":           func(s *session, _ *route, _ *command.Info, _ wire.Request) { s.local(wire.AppendInt(nil, int64(s.id))) },
		"client|list":         clientList,
		"client|info":         clientInfo,
		"client|kill":         clientKill,
		"client|reply":        clientReply,
		"client|no-evict":     clientNoEvict,
		"client|getredir":     clientGetRedir,
		"client|tracking":     clientTracking,
		"client|caching":      clientCaching,
		"client|trackinginfo": clientTrackingInfo,
		"client|help":         clientHelp,
		"client|pause":        clientPauseCmd,
		"client|unpause":      clientUnpauseCmd,
		"acl|whoami": func(s *session, _ *route, _ *command.Info, _ wire.Request) {
			s.local(resp.AppendBulkString(nil, s.user()))
		},
	})

	// The server as one: INFO (info.go), and the shards' figures merged
	// (merge.go; fanout, flush and keys in handlers.go).
	addHandlers(t, map[string]handler{
		"info": info,

		// the shards' slow logs as one (slowlog.go)
		"slowlog|get":   fanout(slowlogGet),
		"slowlog|len":   fanout(slowlogLen),
		"slowlog|reset": slowlogReset,
		// and their latency figures (LATENCY DOCTOR and GRAPH, prose and
		// a drawing about one server, stay refused)
		"latency|latest":    fanout(latencyLatest),
		"latency|history":   fanout(latencyHistory),
		"latency|histogram": fanout(latencyHistogram),
		"latency|reset":     fanout(sumInts),
		// the proxy is a master with no replicas to its clients
		"role":      func(s *session, _ *route, _ *command.Info, _ wire.Request) { s.local(roleReply) },
		"dbsize":    fanout(sumInts),
		"flushdb":   flush,
		"flushall":  flush,
		"keys":      keys,
		"randomkey": fanout(anyNonNull),
	})

	// Answered alike by every shard, so by any one (handlers.go).
	addHandlers(t, map[string]handler{
		"time":                    anyShard,
		"lolwut":                  anyShard,
		"command":                 anyShard,
		"command|count":           anyShard,
		"command|info":            anyShard,
		"command|docs":            anyShard,
		"command|list":            anyShard,
		"command|getkeys":         anyShard,
		"command|getkeysandflags": anyShard,
		"command|help":            anyShard,
		// the shards' own help texts, for the containers the proxy serves
		// some of (a subcommand it refuses says so when sent)
		"config|help":   anyShard,
		"slowlog|help":  anyShard,
		"latency|help":  anyShard,
		"object|help":   anyShard,
		"memory|help":   anyShard,
		"xinfo|help":    anyShard,
		"xgroup|help":   anyShard,
		"pubsub|help":   anyShard,
		"script|help":   anyShard,
		"function|help": anyShard,
	})

	// DEBUG where it has a meaning through a proxy (debug.go), and
	// PFSELFTEST, a test of the server's own HyperLogLog code.
	addHandlers(t, map[string]handler{
		"debug":      debugCmd,
		"pfselftest": anyShard,
	})

	// CONFIG (handlers.go).
	addHandlers(t, map[string]handler{
		"config|get":       configGet,
		"config|set":       configSet,
		"config|resetstat": resetStats,
		"config|rewrite":   fanout(allOK),
	})

	// Scripts and functions (scripts.go; allowBusy in handlers.go).
	addHandlers(t, map[string]handler{
		"script|load":      scriptLoad,
		"script|exists":    fanout(scriptExists),
		"script|flush":     scriptFlush,
		"script|kill":      allowBusy(anyKilled),
		"function|kill":    allowBusy(anyKilled),
		"function|stats":   allowBusy(runningFunction),
		"function|load":    fanout(allOK),
		"function|delete":  fanout(allOK),
		"function|flush":   fanout(allOK),
		"function|restore": fanout(allOK),
		"function|list":    anyShard,
		"function|dump":    anyShard,

		"eval":       script,
		"evalsha":    script,
		"eval_ro":    script,
		"evalsha_ro": script,
		"fcall":      script,
		"fcall_ro":   script,
	})

	// Keyed commands that need more than routing by their keys
	// (handlers.go): split over the shards of their keys, read from a
	// stream (blocking or not), checked as Redis Cluster checks them.
	addHandlers(t, map[string]handler{
		"mget":   split(1, mgetMerge),
		"mset":   split(2, allOK),
		"del":    split(1, sumInts),
		"unlink": split(1, sumInts),
		"exists": split(1, sumInts),
		"touch":  split(1, sumInts),

		"xread":      streamRead,
		"xreadgroup": streamRead,

		"sort":    clusterChecked,
		"sort_ro": clusterChecked,
		"copy":    clusterChecked,

		// Keyed commands that must not run on a shared connection or have
		// no meaning behind a proxy.
		"migrate": refuse,
		"move":    refuse,
	})

	// Transactions (transaction.go), WAIT (blocking.go; the blocking
	// commands themselves are routed by their keys, see routeByKeys),
	// MONITOR (monitor.go).
	addHandlers(t, map[string]handler{
		"multi":   multi,
		"exec":    exec,
		"discard": discard,
		"watch":   watch,
		"unwatch": unwatch,
		"wait":    wait,
		"monitor": monitorCmd,
	})

	// Pub/sub (pubsub.go).
	addHandlers(t, map[string]handler{
		"subscribe":            subscribe,
		"psubscribe":           subscribe,
		"ssubscribe":           subscribe,
		"unsubscribe":          notSubscribed,
		"punsubscribe":         notSubscribed,
		"sunsubscribe":         notSubscribed,
		"publish":              home,
		"pubsub|channels":      home,
		"pubsub|numsub":        home,
		"pubsub|numpat":        home,
		"spublish":             shardChannel,
		"pubsub|shardchannels": fanout(concatArrays),
		"pubsub|shardnumsub":   fanout(sumPairs),
	})

	// The commands the control plane answers (controller.go), but PROXY,
	// which is not in Redis's command table: the session hands it over when
	// its lookup finds nothing (planOne).
	control := map[string]handler{}
	for _, name := range ControlCommands[1:] {
		control[name] = func(s *session, _ *route, _ *command.Info, c wire.Request) { s.controlCommand(c.Args) }
	}
	addHandlers(t, control)

	// SCAN over every shard (scan.go).
	addHandlers(t, map[string]handler{
		"scan": scanKeyspace,
	})

	// CLUSTER, answered as a cluster of one node (cluster.go).
	addHandlers(t, map[string]handler{
		"cluster|info":                  clusterInfo,
		"cluster|slots":                 clusterSlots,
		"cluster|shards":                clusterShards,
		"cluster|nodes":                 clusterNodes,
		"cluster|myid":                  clusterMyID,
		"cluster|keyslot":               clusterKeySlot,
		"cluster|countkeysinslot":       clusterCountKeysInSlot,
		"cluster|getkeysinslot":         clusterGetKeysInSlot,
		"cluster|links":                 clusterLinks,
		"cluster|replicas":              clusterReplicas,
		"cluster|slaves":                clusterReplicas,
		"cluster|count-failure-reports": clusterFailureReports,
		"cluster|help":                  clusterHelp,
	})
	// Every other subcommand of the table, so that one added by a newer
	// command table is refused rather than forwarded to a shard.
	if c := command.LookupName("cluster"); c != nil {
		for _, sub := range c.Subcommands() {
			if _, ok := t[sub.Name()]; !ok {
				t[sub.Name()] = clusterManaged
			}
		}
	}
	// The commands the proxy answers itself, in its own slow log
	// (slowlog.go).
	for _, name := range ownSlowlogCommands {
		if t[name] == nil {
			panic("proxy: command " + name + " has no handler")
		}
		t[name] = loggedOwn(t[name])
	}
	return t
}

// addHandlers adds a family's handlers to table. A name already there
// panics, naming it: the second one would silently replace the first, and
// which one serves the command would depend on the order of the families.
// (Go refuses a name given twice within one family's literal.) The table is
// filled at start, so a duplicate stops every run of the proxy and its tests
// rather than changing one command's behaviour.
func addHandlers(table, family map[string]handler) {
	for name, h := range family {
		if _, dup := table[name]; dup {
			panic("proxy: command " + name + " has two handlers")
		}
		table[name] = h
	}
}

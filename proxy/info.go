package proxy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reshard/reshard/proxy/command"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/internal/sentinel"
	"github.com/reshard/reshard/proxy/internal/backend"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// INFO is answered by the proxy: its own server, clients, stats and proxy
// sections, and memory and keyspace figures summed over the shards, so tools
// that read INFO see one server.

// What INFO asks every shard: the sections whose figures it sums, and
// commandstats for the time the shards spent per command (cmdstats.go).
var (
	shardInfoCmd      = resp.AppendCommand(nil, []byte("INFO"), []byte("server"), []byte("memory"), []byte("persistence"), []byte("keyspace"), []byte("stats"), []byte("replication"))
	shardInfoStatsCmd = resp.AppendCommand(nil, []byte("INFO"), []byte("server"), []byte("memory"), []byte("persistence"), []byte("keyspace"), []byte("stats"), []byte("replication"), []byte("commandstats"))
)

// The sections of INFO and INFO default, in Redis's order with the proxy's
// own; INFO all and everything add commandstats, as Redis does.
var (
	infoSections    = []string{"server", "clients", "memory", "persistence", "stats", "replication", "cpu", "errorstats", "cluster", "proxy", "keyspace"}
	infoAllSections = []string{"server", "clients", "memory", "persistence", "stats", "replication", "cpu", "commandstats", "errorstats", "cluster", "proxy", "keyspace"}
)

// info asks the shards only for the sections that sum their figures
// (memory, persistence, keyspace, stats, replication, commandstats): INFO
// proxy or clients must answer at once even while a shard is stopped,
// which is when an operator reads them.
func info(s *session, r *route, _ *command.Info, c wire.Request) {
	want := infoWants(c.Args)
	switch {
	case want["commandstats"]:
		s.fanout(r, c.Args, shardInfoStatsCmd, infoMerge)
	case want["memory"] || want["persistence"] || want["keyspace"] || want["stats"] || want["replication"]:
		s.fanout(r, c.Args, shardInfoCmd, infoMerge)
	default:
		s.local(infoMerge(s, &call{args: c.Args}, nil))
	}
}

// infoWants returns the sections INFO's arguments ask for.
func infoWants(args [][]byte) map[string]bool {
	want := map[string]bool{}
	add := func(sections []string) {
		for _, n := range sections {
			want[n] = true
		}
	}
	for _, a := range args[1:] {
		switch sec := strings.ToLower(string(a)); sec {
		case "all", "everything":
			add(infoAllSections)
		case "default":
			add(infoSections)
		default:
			want[sec] = true
		}
	}
	if len(args) == 1 {
		add(infoSections)
	}
	return want
}

func infoMerge(s *session, c *call, out []byte) []byte {
	want := infoWants(c.args)
	shards := make([]map[string]string, c.n)
	keyspace := map[string][3]int64{} // db -> keys, expires, avg_ttl*keys
	for i, r := range s.results(c) {
		shards[i] = infoFields(r)
		for k, v := range shards[i] {
			if strings.HasPrefix(k, "db") {
				ks := keyspace[k]
				for _, f := range strings.Split(v, ",") {
					name, val, _ := strings.Cut(f, "=")
					n, _ := strconv.ParseInt(val, 10, 64)
					switch name {
					case "keys":
						ks[0] += n
					case "expires":
						ks[1] += n
					case "avg_ttl":
						ks[2] += n
					}
				}
				keyspace[k] = ks
			}
		}
	}
	if c.n > 0 {
		if v := shards[0]["redis_version"]; v != "" {
			s.srv.version.Store(&v)
		}
	}
	var b strings.Builder
	section := func(name string) bool {
		if !want[name] {
			return false
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + strings.ToUpper(name[:1]) + name[1:] + "\r\n")
		return true
	}
	field := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }
	// sum gives the shards' figures of names added up, as one server
	// holding every shard's keys and work would count them
	sum := func(names ...string) {
		for _, name := range names {
			var n int64
			for _, sh := range shards {
				n += atoi(sh[name])
			}
			field(name, n)
		}
	}
	srv := s.srv
	up := time.Since(srv.started)
	if section("server") {
		field("redis_version", srv.redisVersion())
		// Redis's own words for a build not made from a git checkout:
		// the proxy is no build of Redis's source at all.
		field("redis_git_sha1", "00000000")
		field("redis_git_dirty", 0)
		field("redis_mode", "cluster") // as cluster_enabled below
		field("reshard_version", Version)
		field("os", runtime.GOOS+" "+runtime.GOARCH)
		field("arch_bits", strconv.IntSize)
		field("process_id", os.Getpid())
		field("run_id", srv.runID)
		field("tcp_port", srv.port())
		field("uptime_in_seconds", int64(up.Seconds()))
		field("uptime_in_days", int64(up.Hours()/24))
	}
	if section("clients") {
		field("connected_clients", srv.counters.clients.Load())
		field("maxclients", srv.cfg.MaxClients)
		field("blocked_clients", srv.counters.blocked.Load())
		tracking, _, _, _ := srv.tracker.trackingInfo()
		field("tracking_clients", tracking)
		field("pubsub_clients", srv.pubsubClients())
	}
	if section("memory") {
		var used, peak, maxmem, lazyfree int64
		for _, sh := range shards {
			used += atoi(sh["used_memory"])
			peak += atoi(sh["used_memory_peak"])
			maxmem += atoi(sh["maxmemory"])
			lazyfree += atoi(sh["lazyfree_pending_objects"])
		}
		field("used_memory", used)
		field("used_memory_human", humanBytes(used))
		field("used_memory_peak", peak)
		field("maxmemory", maxmem)
		// The scripts EVALSHA runs through the proxy: those it knows,
		// whichever shards have loaded them so far (scripts.go).
		field("number_of_cached_scripts", srv.scripts.count())
		field("lazyfree_pending_objects", lazyfree)
		sum("lazyfreed_objects", "used_memory_lua", "mem_not_counted_for_evict", "mem_clients_normal",
			"allocator_allocated", "allocator_active")
		if len(shards) > 0 && shards[0]["mem_allocator"] != "" {
			field("mem_allocator", shards[0]["mem_allocator"])
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		field("proxy_heap_inuse", ms.HeapInuse)
		field("proxy_sys", ms.Sys)
	}
	if section("persistence") {
		var answered []map[string]string
		for _, sh := range shards {
			if len(sh) > 0 {
				answered = append(answered, sh)
			}
		}
		srv.controlInfo("persistence", field, answered)
	}
	if section("stats") {
		field("total_connections_received", srv.counters.accepted.Load())
		field("total_commands_processed", srv.counters.commands.Load())
		field("instantaneous_ops_per_sec", srv.counters.ops.value())
		field("rejected_connections", srv.counters.rejected.Load())
		field("total_error_replies", srv.stats.errors.Load())
		// the keyspace's figures are the shards', summed
		sum("expired_keys", "evicted_keys", "evicted_clients", "keyspace_hits", "keyspace_misses",
			"total_forks", "active_defrag_hits", "active_defrag_misses")
		_, keys, items, prefixes := srv.tracker.trackingInfo()
		field("tracking_total_keys", keys)
		field("tracking_total_items", items)
		field("tracking_total_prefixes", prefixes)
	}
	if section("replication") {
		field("role", "master")
		field("connected_slaves", 0)
		// the shards' replication offsets added up: it grows with every
		// write, as one server's does (tools wait on it)
		sum("master_repl_offset")
	}
	if section("cpu") {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		field("used_cpu_sys", fmt.Sprintf("%.6f", time.Duration(ru.Stime.Nano()).Seconds()))
		field("used_cpu_user", fmt.Sprintf("%.6f", time.Duration(ru.Utime.Nano()).Seconds()))
	}
	if section("commandstats") {
		srv.stats.writeCommands(field, shardCommandUsec(shards))
	}
	if section("errorstats") {
		srv.stats.writeErrors(field)
	}
	if section("cluster") {
		// As a Redis Cluster node says: the proxy answers CLUSTER SLOTS as
		// the one node of a cluster, and cluster clients (redis-py's
		// RedisCluster) check this field before they ask.
		field("cluster_enabled", 1)
	}
	if section("proxy") {
		rt := srv.route.Load()
		field("proxy_version", Version)
		field("uptime_in_seconds", int64(up.Seconds()))
		field("connected_clients", srv.counters.clients.Load())
		field("total_commands_processed", srv.counters.commands.Load())
		field("instantaneous_ops_per_sec", srv.counters.ops.value())
		field("client_panics", srv.counters.panics.Load())
		field("shard_connection_panics", srv.counters.shardPanics.Load())
		field("epoch", rt.table.Epoch())
		srv.controlInfo("proxy", field, nil) // the reshard
		field("shards", len(rt.pools))
		shards := rt.table.Shards()
		for i, p := range rt.pools {
			status := "up"
			switch {
			case !p.Up():
				status = "down"
			case p.Held():
				status = "failover" // requests held while Sentinel promotes a replica
			case p.Busy() != nil:
				status = "busy" // running a script past its busy-reply-threshold
			}
			at := ""
			if name, ok := sentinel.Name(p.Addr); ok && srv.sentinels != nil {
				primary, _ := srv.sentinels.Known(name)
				at = ",primary=" + primary
			}
			var reconnects, requests, pending, writes int64
			for _, bc := range p.Conns {
				reconnects += bc.Reconnects.Load()
				n := bc.Requests.Load()
				requests += n
				pending += max(0, n-bc.Answered.Load())
				writes += bc.Writes.Load()
			}
			field("shard"+strconv.Itoa(i), fmt.Sprintf("addr=%s%s,status=%s,slots=%s,reconnects=%d,requests=%d,pending=%d,writes=%d",
				p.Addr, at, status, shards[i].RangeSpec(), reconnects, requests, pending, writes))
		}
		if srv.sentinels != nil {
			field("sentinel_failovers", srv.counters.failovers.Load())
			field("sentinel_refused_retried", srv.counters.refusedRetried.Load())
		}
		field("read_from", srv.cfg.ReadFrom.String())
		rt.replicasInfo(field)
	}
	if section("keyspace") {
		for db := 0; db < 16; db++ {
			name := "db" + strconv.Itoa(db)
			if ks, ok := keyspace[name]; ok {
				avg := int64(0)
				if c.n > 0 {
					avg = ks[2] / int64(c.n)
				}
				field(name, fmt.Sprintf("keys=%d,expires=%d,avg_ttl=%d", ks[0], ks[1], avg))
			}
		}
	}
	return wire.AppendVerbatim(out, b.String(), s.proto)
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.2fK", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10) + "B"
}

// redisVersion is the Redis version the proxy reports: the first shard's,
// learnt from INFO, or a Redis 7 default until a shard has answered.
func (srv *Server) redisVersion() string {
	if v := srv.version.Load(); v != nil {
		return *v
	}
	return "7.0.0"
}

func (srv *Server) port() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.ln == nil {
		return 0
	}
	return srv.ln.Addr().(*net.TCPAddr).Port
}

// probeVersion asks one shard for its version once at start, so HELLO and
// INFO report it before any INFO has gone through.
func (srv *Server) probeVersion(d backend.Dialer, addr string) {
	c, r, err := d.Dial(addr, nil, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(resp.AppendCommand(nil, []byte("INFO"), []byte("server"))); err != nil {
		return
	}
	reply, err := wire.ReadReply(r, nil)
	if err != nil {
		return
	}
	text, _ := wire.BulkText(reply)
	for _, line := range bytes.Split(text, []byte("\r\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("redis_version:")); ok {
			ver := string(v)
			srv.version.Store(&ver)
			return
		}
	}
}

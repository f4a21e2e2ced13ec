package proxy

import (
	"crypto/sha1"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"

	"github.com/reshard/reshard/proxy/command"
	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/proxy/internal/wire"
)

// The CLUSTER family, answered as a cluster of one node: the proxy, at its
// announce address, master of every slot. Clients in cluster mode (go-redis
// ClusterClient, ioredis Cluster, node-redis createCluster) then send every
// command to the proxy and never see MOVED or ASK; the proxy routes by its
// own table behind that one node, so a table swap changes nothing a client
// can see but the epoch.
//
// The reply shapes are Redis 7.0's in RESP2 and RESP3 (maps, verbatim
// strings), checked against a cluster-enabled redis-server by the
// integration tests.
//
// Subcommands that change a Redis Cluster's topology (MEET, ADDSLOTS,
// FAILOVER, RESET, ...) are refused: the proxy's topology is its routing
// table, changed through the proxy's own admin commands.

// clusterSelf describes the proxy as the cluster's one node, as a client
// connected on this session sees it.
type clusterSelf struct {
	id       string // 40 hex digits
	ip       string
	hostname string // set when the announce address is a host name
	port     int
	epoch    uint64
}

// endpoint is what clients should connect to: Redis's preferred endpoint.
// With a host name announced, that is the name (as Redis with
// cluster-preferred-endpoint-type hostname); otherwise the IP.
func (n *clusterSelf) endpoint() string {
	if n.hostname != "" {
		return n.hostname
	}
	return n.ip
}

// busPort is Redis's default cluster bus port, port+10000. Clients ignore
// it; 0 (no bus) where that is not a port.
func (n *clusterSelf) busPort() int {
	if p := n.port + 10000; p <= 65535 {
		return p
	}
	return 0
}

func (s *session) clusterSelf(r *route) clusterSelf {
	addr := s.srv.AnnounceAddr()
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	n := clusterSelf{id: clusterNodeID(addr), port: port, epoch: r.table.Epoch()}
	ip, err := netip.ParseAddr(host)
	switch {
	case err == nil && !ip.IsUnspecified():
		n.ip = ip.String()
	case err != nil && host != "":
		n.hostname = host
		n.ip = s.localIP()
	default:
		// Listening on every interface with no announce address: the
		// address this client reached is one it can reach again.
		n.ip = s.localIP()
	}
	return n
}

// localIP is the proxy's address on this client's connection.
func (s *session) localIP() string {
	if a, ok := s.conn.NetConn().LocalAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap().String()
		}
	}
	return ""
}

// clusterNodeID is a stable node id: the SHA-1 of the announce address, so
// that a proxy keeps its id across restarts and two proxies at different
// addresses differ.
func clusterNodeID(addr string) string {
	sum := sha1.Sum([]byte(addr))
	return hex.EncodeToString(sum[:])
}

func clusterInfo(s *session, r *route, _ *command.Info, _ wire.Request) {
	epoch := strconv.FormatUint(r.table.Epoch(), 10)
	s.local(wire.AppendVerbatim(nil, "cluster_state:ok\r\n"+
		"cluster_slots_assigned:16384\r\n"+
		"cluster_slots_ok:16384\r\n"+
		"cluster_slots_pfail:0\r\n"+
		"cluster_slots_fail:0\r\n"+
		"cluster_known_nodes:1\r\n"+
		"cluster_size:1\r\n"+
		"cluster_current_epoch:"+epoch+"\r\n"+
		"cluster_my_epoch:"+epoch+"\r\n"+
		"cluster_stats_messages_sent:0\r\n"+
		"cluster_stats_messages_received:0\r\n"+
		"total_cluster_links_buffer_limit_exceeded:0\r\n", s.proto))
}

// clusterSlots: one range, 0-16383, served by [endpoint, port, id, metadata].
func clusterSlots(s *session, r *route, _ *command.Info, _ wire.Request) {
	n := s.clusterSelf(r)
	b := resp.AppendArrayHeader(nil, 1)
	b = resp.AppendArrayHeader(b, 3)
	b = wire.AppendInt(b, 0)
	b = wire.AppendInt(b, router.NumSlots-1)
	b = resp.AppendArrayHeader(b, 4)
	b = resp.AppendBulkString(b, n.endpoint())
	b = wire.AppendInt(b, int64(n.port))
	b = resp.AppendBulkString(b, n.id)
	if n.hostname != "" {
		// The endpoint is the host name, so the metadata gives the IP.
		b = wire.AppendMapHeader(b, 1, s.proto)
		b = resp.AppendBulkString(b, "ip")
		b = resp.AppendBulkString(b, n.ip)
	} else {
		b = wire.AppendMapHeader(b, 0, s.proto)
	}
	s.local(b)
}

// clusterShards: one shard owning [0, 16383] with one node, in Redis 7's
// field order; the hostname field only when one is announced, as in Redis.
// Shards and nodes are maps, which RESP2 sends as flat arrays.
func clusterShards(s *session, r *route, _ *command.Info, _ wire.Request) {
	n := s.clusterSelf(r)
	fields := 7
	if n.hostname != "" {
		fields++
	}
	b := resp.AppendArrayHeader(nil, 1)
	b = wire.AppendMapHeader(b, 2, s.proto)
	b = resp.AppendBulkString(b, "slots")
	b = resp.AppendArrayHeader(b, 2)
	b = wire.AppendInt(b, 0)
	b = wire.AppendInt(b, router.NumSlots-1)
	b = resp.AppendBulkString(b, "nodes")
	b = resp.AppendArrayHeader(b, 1)
	b = wire.AppendMapHeader(b, fields, s.proto)
	b = resp.AppendBulkString(b, "id")
	b = resp.AppendBulkString(b, n.id)
	b = resp.AppendBulkString(b, "port")
	b = wire.AppendInt(b, int64(n.port))
	b = resp.AppendBulkString(b, "ip")
	b = resp.AppendBulkString(b, n.ip)
	b = resp.AppendBulkString(b, "endpoint")
	b = resp.AppendBulkString(b, n.endpoint())
	if n.hostname != "" {
		b = resp.AppendBulkString(b, "hostname")
		b = resp.AppendBulkString(b, n.hostname)
	}
	b = resp.AppendBulkString(b, "role")
	b = resp.AppendBulkString(b, "master")
	b = resp.AppendBulkString(b, "replication-offset")
	b = wire.AppendInt(b, 0)
	b = resp.AppendBulkString(b, "health")
	b = resp.AppendBulkString(b, "online")
	s.local(b)
}

// clusterNodes: Redis's one line per node, "\n"-terminated.
func clusterNodes(s *session, r *route, _ *command.Info, _ wire.Request) {
	n := s.clusterSelf(r)
	line := make([]byte, 0, 128)
	line = append(line, n.id...)
	line = append(line, ' ')
	line = append(line, n.ip...)
	line = append(line, ':')
	line = strconv.AppendInt(line, int64(n.port), 10)
	line = append(line, '@')
	line = strconv.AppendInt(line, int64(n.busPort()), 10)
	if n.hostname != "" {
		line = append(line, ',')
		line = append(line, n.hostname...)
	}
	line = append(line, " myself,master - 0 0 "...)
	line = strconv.AppendUint(line, n.epoch, 10)
	line = append(line, " connected 0-16383\n"...)
	s.local(wire.AppendVerbatim(nil, string(line), s.proto))
}

func clusterMyID(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(resp.AppendBulkString(nil, clusterNodeID(s.srv.AnnounceAddr())))
}

func clusterKeySlot(s *session, _ *route, _ *command.Info, c wire.Request) {
	s.local(wire.AppendInt(nil, int64(router.Slot(c.Args[2]))))
}

// COUNTKEYSINSLOT and GETKEYSINSLOT check their arguments as Redis does,
// then are refused. The shards are plain Redis servers, which keep no index
// of keys by slot: an answer would take a SCAN of the owning shard's whole
// keyspace (many round trips for one command, and a cost in the size of the
// shard, not of the slot) or a Lua script doing the same while blocking the
// shard. Their users are resharding tools (redis-cli --cluster reshard,
// MIGRATE loops), which the proxy replaces with its own resharding; client
// libraries do not call them.

func clusterCountKeysInSlot(s *session, _ *route, info *command.Info, c wire.Request) {
	slot, ok := clusterParseInt(c.Args[2])
	switch {
	case !ok:
		s.errorReply("ERR value is not an integer or out of range")
	case slot < 0 || slot >= router.NumSlots:
		s.errorReply("ERR Invalid slot")
	default:
		s.errorReply(keysInSlotRefusal(info))
	}
}

func clusterGetKeysInSlot(s *session, _ *route, info *command.Info, c wire.Request) {
	slot, ok1 := clusterParseInt(c.Args[2])
	count, ok2 := clusterParseInt(c.Args[3])
	switch {
	case !ok1 || !ok2:
		s.errorReply("ERR value is not an integer or out of range")
	case count < 0 || slot < 0 || slot >= router.NumSlots:
		s.errorReply("ERR Invalid slot or number of keys")
	default:
		s.errorReply(keysInSlotRefusal(info))
	}
}

func keysInSlotRefusal(info *command.Info) string {
	return "ERR " + clusterCommandName(info) + " is not supported by the proxy: " +
		"its shards are not in cluster mode and keep no index of keys by slot"
}

// clusterLinks: a cluster of one node has no links.
func clusterLinks(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(resp.AppendArrayHeader(nil, 0))
}

// clusterReplicas: the one node has no replicas; any other id is unknown.
func clusterReplicas(s *session, _ *route, _ *command.Info, c wire.Request) {
	if string(c.Args[2]) != clusterNodeID(s.srv.AnnounceAddr()) {
		s.errorReply("ERR Unknown node " + wire.Clip(c.Args[2]))
		return
	}
	s.local(resp.AppendArrayHeader(nil, 0))
}

func clusterFailureReports(s *session, _ *route, _ *command.Info, c wire.Request) {
	if string(c.Args[2]) != clusterNodeID(s.srv.AnnounceAddr()) {
		s.errorReply("ERR Unknown node " + wire.Clip(c.Args[2]))
		return
	}
	s.local(wire.AppendInt(nil, 0))
}

// clusterManaged refuses the subcommands that change a cluster's topology.
func clusterManaged(s *session, _ *route, info *command.Info, _ wire.Request) {
	s.errorReply("ERR " + clusterCommandName(info) +
		" is not supported: the proxy manages its own topology (see PROXY HELP)")
}

// clusterCommandName is "CLUSTER MEET" for "cluster|meet".
func clusterCommandName(info *command.Info) string {
	name := []byte(upper(info.Name()))
	for i, c := range name {
		if c == '|' {
			name[i] = ' '
		}
	}
	return string(name)
}

// clusterHelpLines are Redis 7.0's lines for the subcommands the proxy
// answers.
var clusterHelpLines = []string{
	"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"COUNT-FAILURE-REPORTS <node-id>",
	"    Return number of failure reports for <node-id>.",
	"INFO",
	"    Return information about the cluster.",
	"KEYSLOT <key>",
	"    Return the hash slot for <key>.",
	"MYID",
	"    Return the node id.",
	"NODES",
	"    Return cluster configuration seen by node. Output format:",
	"    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
	"REPLICAS <node-id>",
	"    Return <node-id> replicas.",
	"SLOTS",
	"    Return information about slots range mappings. Each range is made of:",
	"    start, end, master and replicas IP addresses, ports and ids",
	"SHARDS",
	"    Return information about slot range mappings and the nodes associated with them.",
	"LINKS",
	"    Return information about all network links between this node and its peers.",
	"    Output format is an array where each array element is a map containing attributes of a link",
	"HELP",
	"    Prints this help.",
}

func clusterHelp(s *session, _ *route, _ *command.Info, _ wire.Request) {
	s.local(wire.AppendHelp(nil, clusterHelpLines))
}

// clusterParseInt parses a client argument as Redis's string2ll does: an
// optional minus sign and decimal digits, no leading zeros, no plus sign.
func clusterParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || b[0] == '+' || (len(b) > 1 && b[0] == '-' && b[1] == '0') {
		return 0, false
	}
	return n, true
}

package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/reshard/reshard/router"

	"github.com/reshard/reshard/internal/proxyname"
	"github.com/reshard/reshard/internal/resp"
	"github.com/reshard/reshard/internal/sentinel"
	"github.com/reshard/reshard/proxy/internal/backend"
)

// This file is the data plane's side of its seam with the control plane
// (package proxy/control): what the data plane asks of it (Controller),
// and what it lends it: the barrier (Pause, barrier.go), routes to
// prepare and swap (Route), and one command at a time on one shard
// (Shard.Do). The control plane is never on the per-command path: the
// data plane calls it only for the commands it owns and for INFO.

// Controller is the control plane as the data plane calls it, from the
// goroutines of client sessions; its methods must be safe for concurrent
// use.
type Controller interface {
	// Command answers a command the control plane owns (ControlCommands),
	// args as the client sent them, in protocol proto (2 or 3). It
	// returns the whole reply.
	Command(proto int, args [][]byte) []byte
	// Info adds the control plane's fields to an INFO section
	// ("persistence": the snapshots; "proxy": the reshard). shards holds
	// the INFO fields of each shard that answered, for the sections that
	// ask the shards.
	Info(section string, field func(name string, v any), shards []map[string]string)
	// Refusal returns why a command (its lowercase name) must be refused
	// now, as the client's error text, or "": FLUSHALL while a reshard
	// runs.
	Refusal(name string) string
}

// ControlCommands are the commands the data plane hands to its
// Controller: PROXY (the admin commands), and Redis's persistence
// commands, which the proxy answers with its snapshots.
var ControlCommands = []string{"proxy", "bgsave", "save", "lastsave"}

// SetController makes c answer the control commands. Call it before
// Serve; without one they are refused.
func (srv *Server) SetController(c Controller) { srv.ctl = c }

// controlCommand answers a command the control plane owns.
func (s *session) controlCommand(args [][]byte) {
	if s.srv.ctl == nil {
		s.errorReply("ERR " + upper(string(args[0])) + " needs the proxy's control plane")
		return
	}
	s.local(s.srv.ctl.Command(s.proto, args))
}

// refusal is the control plane's reason to refuse the command name now.
func (srv *Server) refusal(name string) string {
	if srv.ctl == nil {
		return ""
	}
	return srv.ctl.Refusal(name)
}

// controlInfo adds the control plane's fields to an INFO section.
func (srv *Server) controlInfo(section string, field func(string, any), shards []map[string]string) {
	if srv.ctl != nil {
		srv.ctl.Info(section, field, shards)
	}
}

// Auth is what the proxy sends as AUTH [username] password on every
// connection to the shards of one table; an empty password sends none.
// The credentials belong to the route: after a cutover onto shards with
// a password of their own, every new connection to them must use theirs.
type Auth struct{ Username, Password string }

// Route is a routing table and the connections to its shards: the one in
// use (Server.Route), or one prepared for a swap (Prepare).
type Route struct{ r *route }

// Table is the route's routing table.
func (rt Route) Table() *router.Table { return rt.r.table }

// Auth is the credentials of the route's shards.
func (rt Route) Auth() Auth { return rt.r.auth }

// Shards are the route's shards, in the table's order.
func (rt Route) Shards() []Shard {
	out := make([]Shard, len(rt.r.pools))
	for i, p := range rt.r.pools {
		out[i] = Shard{p}
	}
	return out
}

// Replicas are the replicas of the route's shard i (the table's order),
// as Shards for the control plane's own commands. For a sentinel:NAME
// shard they are the replicas the sentinels list now (nil if they cannot
// say; logged).
func (rt Route) Replicas(i int) []Shard {
	if name, ok := sentinel.Name(rt.r.pools[i].Addr); ok {
		return rt.r.srv.sentinelReplicas(name, rt.r.auth)
	}
	if rt.r.replicas == nil {
		return nil
	}
	out := make([]Shard, len(rt.r.replicas[i]))
	for j, rp := range rt.r.replicas[i] {
		out[j] = Shard{rp.pool}
	}
	return out
}

// Shard is one shard of a route, for the control plane's own commands.
type Shard struct{ p *backend.Pool }

// Addr is the shard's address.
func (sh Shard) Addr() string { return sh.p.Addr }

// Up reports whether every shared connection to the shard is up.
func (sh Shard) Up() bool { return sh.p.Up() }

// Do runs one command (raw, RESP-encoded) on a dedicated connection of
// the shard and returns its reply: an error reply naming the shard if it
// cannot be reached or has not answered by deadline (none if zero). It
// never runs on a connection a client's commands use.
func (sh Shard) Do(raw []byte, deadline time.Time) []byte {
	return sh.p.DedicatedPool(2).DoBy(raw, deadline)
}

// Route returns the route in use.
func (srv *Server) Route() Route { return Route{srv.route.Load()} }

// RunID is the proxy's run id: INFO's run_id, and the name of its shard
// connections (CLIENT SETNAME reshard-proxy-RUNID).
func (srv *Server) RunID() string { return srv.runID }

// Started is when the proxy started (LASTSAVE before any snapshot).
func (srv *Server) Started() time.Time { return srv.started }

// DialTimeout bounds one connection attempt to a shard; the control
// plane bounds its own shard commands by it.
func (srv *Server) DialTimeout() time.Duration { return srv.cfg.DialTimeout }

// newRunID returns 40 random hex digits, as Redis's run_id.
func newRunID() string {
	var b [20]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setnameCommand is the CLIENT SETNAME that names a shard connection after
// the proxy whose run id is id, so that a shard's CLIENT LIST tells which
// proxy a connection belongs to (the control plane looks for other
// proxies by these names before a reshard).
func setnameCommand(id string) []byte {
	return resp.AppendCommand(nil, []byte("CLIENT"), []byte("SETNAME"), []byte(proxyname.Name(id)))
}

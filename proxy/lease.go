package proxy

import (
	"strings"
	"time"
)

// A proxy that shares its table with others (package proxy/control, with
// etcd) may serve only while it holds its membership lease: once the lease
// could have expired on the server, the others may have cut over without
// it, and its table may be stale. The control plane tells the data plane
// until when it may serve (ServeUntil), from the send time of the last
// keep-alive etcd acknowledged, on the monotonic clock; every pipeline
// compares that deadline with the time it already reads at its start, so
// a proxy that was stopped (SIGSTOP, a long pause) and wakes past its
// deadline refuses its first command, before its control plane has run a
// single instruction. Without a deadline (one proxy) nothing is checked
// but one atomic load per pipeline.

// leaseState is until when the proxy may serve, and what it answers after.
type leaseState struct {
	until time.Time // on the monotonic clock
	why   string    // the error a refused command gets
}

// ServeUntil lets the proxy serve data commands until deadline (a time
// taken with time.Now, so compared on the monotonic clock), and refuse
// them after it with why, a Redis error ("CLUSTERDOWN ..."). Commands
// about the connection and the proxy itself (PING, AUTH, HELLO, CLIENT,
// INFO, PROXY, ...) are still answered. A zero deadline refuses at once.
func (srv *Server) ServeUntil(deadline time.Time, why string) {
	srv.lease.Store(&leaseState{until: deadline, why: why})
}

// leaseRefusal is why the pipeline starting at now may not serve data
// commands, or "".
func (srv *Server) leaseRefusal(now time.Time) string {
	l := srv.lease.Load()
	if l == nil || now.Before(l.until) {
		return ""
	}
	return l.why
}

// servedWithoutLease lists the commands a proxy answers while it may not
// serve data: they are about the connection or the proxy, and none reads
// or writes the shards' data by the table.
var servedWithoutLease = map[string]bool{
	"ping": true, "echo": true, "quit": true, "reset": true, "hello": true, "auth": true,
	"select": true, "readonly": true, "readwrite": true, "client": true, "info": true,
	"command": true, "lastsave": true,
}

// refusedWithoutLease reports whether a command named name (COMMAND INFO's
// form, "client|list") is refused while the lease does not hold.
func refusedWithoutLease(name string) bool {
	family, _, _ := strings.Cut(name, "|")
	return !servedWithoutLease[family]
}

// Package proc runs a local server process and watches it: the part of
// starting redis-server (internal/redisproc) and etcd (internal/etcdtest)
// that does not depend on which server it is.
//
// A Process owns the goroutine that waits for its exit; it ends when the
// process does, which Kill and Stop bring about. FreePort hands out loopback
// ports for the caller to pass to its server, and ListensOn tells whether
// the process that was started, and not another one, holds a port: a port
// picked by FreePort is free only until someone binds it, so a readiness
// probe alone could be answered by a stranger. Processes are stopped by
// PID, never by name. All methods of Process are safe for concurrent use.
package proc

// Package redisproc starts and stops local redis-server processes.
//
// It serves two owners: the proxy's embedded default (reshard proxy without
// --shards starts its own shards) and the test rig internal/redistest. Every
// process it starts listens on 127.0.0.1 on a port the kernel handed out, and
// is stopped by its PID, never by name. What does not depend on redis-server
// (the process, free ports, who listens on a port) is in internal/proc.
package redisproc

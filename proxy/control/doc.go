// Package control is the proxy's control plane: the PROXY admin
// commands, BGSAVE and LASTSAVE, the lifecycle and status of its jobs
// (snapshots, restores, a live reshard), the fence of the shards a
// cutover leaves, the look for other proxies on the shards, and what a
// cutover persists in the state directory (the new table and its shards'
// credentials).
//
// It sits beside the data plane (package proxy), never on its
// per-command path: the data plane calls it through proxy.Controller only
// for the commands it owns (proxy.ControlCommands) and for INFO's
// persistence and proxy sections, and it drives the data plane through
// proxy.Server's small control surface: Pause (the write barrier),
// Prepare, SwapTable and Discard (routes), Route and Shard.Do (one
// command on one shard, over a connection no client uses). The jobs
// themselves are packages snapshot and migrate; this package gives them
// what they need of a proxy: snapshot.Barrier is the Server itself, and
// migrate.Proxy is a cutover (reshard.go), one per PROXY RESHARD.
//
// Files: plane.go (Plane, Config, the Controller methods), admin.go
// (PROXY dispatch, HELP, TOPOLOGY; a new subcommand goes in its switch
// and in proxyHelp, and its handler in a file of its own), snapshot.go,
// restore.go, reshard.go (the job and the cutover), fence.go, peers.go,
// shardauth.go (credentials persisted per table), args.go (the target
// arguments RESTORE and RESHARD share), etcd.go (with --etcd: the table
// shared with other proxies, the membership lease and the data plane's
// serving deadline it sets), etcd_cutover.go (the cutover the group takes
// together), etcd_pause.go (CLIENT PAUSE and UNPAUSE shared with the
// group, the data plane's proxy.PauseShare).
//
// Every method of Plane is safe for concurrent use. Plane owns its job
// goroutines: they run within its context, and Close ends them and waits
// for the goroutines that follow their end. A Plane must be closed before
// the Server it controls, so that a reshard that has not committed aborts
// while the data plane still serves.
package control

// Package backend is the proxy's connections to its shards.
//
// A Pool is everything the proxy holds to one shard: Config.Conns
// multiplexed connections (Conn) per protocol, RESP2 at once and RESP3
// on first use, and a DedicatedPool of plain request/response
// connections (Dedicated) for what holds state on a connection or blocks
// it: transactions, blocking commands, WAIT, subscriptions, the control
// plane's own commands. A Dialer makes every connection the same way:
// AUTH, HELLO 3 where asked, CLIENT SETNAME with the proxy's name.
//
// The contract with callers (package proxy's sessions):
//   - Submit hands a Conn requests already encoded, with one Pending
//     (a Batch and a result slot) per request, in the order written. The
//     Conn answers every Pending exactly once, with the shard's reply or
//     an error naming the shard, by Batch.Deliver or Batch.Fail; a Batch
//     signals Done when its last slot is filled. A caller keeps its own
//     requests in order by always using the same Conn of a shard
//     (Pool.Pick by session id).
//   - A Dedicated is borrowed (DedicatedPool.Get) by one goroutine and
//     given back with Put only in a clean state, or closed (NetConn.Close)
//     when its state is unknown. The caller may read and write its
//     NetConn and R directly between Get and Put.
//
// Goroutines: each Conn owns two, a writer and a reader (with a watchdog
// while requests wait), started by NewPool and ended by Pool.Close, which
// also closes the idle dedicated connections. Nothing here blocks a
// caller of Submit on the network: a shard that is down fails requests
// at once while the Conn reconnects in the background. The package knows
// RESP framing (package wire), not commands or routing.
package backend

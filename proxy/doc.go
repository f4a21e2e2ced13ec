// Package proxy is reshard's data plane: it serves clients the Redis
// protocol and routes every command through the current routing table to
// the shards.
//
// One request's path, for a client pipeline "SET a 1; MGET a b":
//
//	client socket
//	   │  conn.go      clientConn: reads with wire.Reader, writes the replies once per pipeline
//	   ▼
//	session goroutine (one per client; session.go serve, under the barrier's gate, barrier.go)
//	   │  plan         command table lookup (commands.go), arity, auth, then the handler:
//	   │               forward by slot · split per shard (merge.go) · fan out to all ·
//	   │               answer locally · a sync step (transactions, blocking: their files)
//	   │  stage        requests appended to a per-shard stage, a result slot each
//	   │  submit       one lock per shard per pipeline: backend.Conn.Submit
//	   ▼
//	backend.Conn (proxy/internal/backend; per shard, writer + reader goroutines)
//	   │  one write per gathered batch ─► shard ─► replies framed, each to its slot
//	   ▼
//	session: waits for the last slot (backend.Batch), writes every reply in the
//	client's order: raw bytes as the shard sent them, merged ones for split commands
//
// Invariants:
//   - Per-client order: a session plans, submits and replies one pipeline
//     at a time, and always uses the same multiplexed connection of a shard
//     (Pool.Pick by session id), so its requests to a shard stay in order.
//     Replies go out in the order the client sent the commands.
//   - The barrier (barrier.go): a session holds the gate shared for the
//     whole of one pipeline (plan, submit, wait); Pause takes it
//     exclusively, so when Pause returns no command is in flight and none
//     is dispatched until resume. Steps that may block for long (BLPOP,
//     WAIT, a subscriber's commands) run outside the gate. A snapshot's
//     cut and a cutover's swap (SwapTable) happen inside it.
//   - The route (table, credentials, one backend.Pool per shard) is one
//     atomic pointer; a pipeline routes by the route it loaded at its
//     start.
//
// Who owns which goroutine: Serve's accept loop starts one goroutine per
// client (conn.go), which ends when the client goes or Close closes its
// connection. A SUBSCRIBE or MONITOR hands the connection to a pub/sub
// loop (pubsub*.go) or a monitor writer (monitor.go), whose goroutines the
// session owns until the client leaves. Each shard connection's writer
// and reader belong to its backend.Pool, closed when a route retires it or
// at Close. The ops sampler (INFO instantaneous_ops_per_sec) runs until
// Close. While any client uses CLIENT TRACKING, the tracker reads one
// connection per shard (tracking_source.go) until the last tracking client
// stops, the table drops the shard, or Close; a client that gets
// invalidation messages has a writer its session stops as it ends.
//
// The seams: the wire protocol is package proxy/internal/wire; the shard
// connections package proxy/internal/backend; the command table (key
// positions, flags) package proxy/command. The control plane (PROXY,
// BGSAVE, snapshots, restores, reshards) is package proxy/control, which
// this package calls only through Controller (controller.go) and which
// drives this package through Pause, Prepare, SwapTable and Shard.Do.
package proxy

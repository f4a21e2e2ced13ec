package proxy

// connState is where a client connection is in its life, as net/http's
// ConnState says it for an HTTP connection. The goroutine serving the
// connection (its serving loop, or the pub/sub loop that owns it) stores
// it; other goroutines only load it: a flush waits for the connections
// that are active (letArrivedFirst), and Shutdown ends each connection as
// its state allows.
//
// The transitions:
//
//	new ──read──▶ active ──answered──▶ idle ──read──▶ active ...
//	                 │  ▲
//	     sent a      │  │ the shard answered, or the
//	     blocking    ▼  │ other sessions went first
//	     command   blocked
//
//	active ──SUBSCRIBE──▶ hijacked ──no subscription left──▶ active
//	any ──session ended──▶ closed
//
// Where they are made:
//
//   - new → active, idle → active: the serving loop's read returned bytes
//     (arrivalReader), before a command of them is parsed.
//   - active → idle: the pipeline has been dispatched and answered
//     (session.served); its replies may still be being written.
//   - active → blocked → back: a blocking command is on its shard, or the
//     session waits for what other clients sent before its flush
//     (blocking, letArrivedFirst).
//   - active → hijacked: a pub/sub loop owns the connection (detach); it
//     serves the client's commands itself without leaving hijacked, and
//     hands the connection back with commands to serve (handBack, then
//     active).
//   - closed: the session has ended (endSession); final.
//
// MONITOR is no state of its own: a monitor's commands (RESET, PING, ...)
// are still read and served by its serving loop, which only shares the
// connection's writes with the monitor's writer (clientConn.shared), so a
// monitor is idle or active like any client.
//
// Costs: the serving loop stores the state once per read that returns
// bytes and once per pipeline answered, as it did for the flush alone.
type connState int32

const (
	connNew      connState = iota // accepted; nothing read yet
	connIdle                      // waiting for the client's next pipeline
	connActive                    // serving a pipeline: planning, waiting for the shards, replying
	connBlocked                   // in a pipeline, waiting outside any batch: a blocking command on its shard, or other clients (letArrivedFirst)
	connHijacked                  // a pub/sub loop owns the connection
	connClosed                    // the session has ended
)

func (cc *clientConn) setState(cs connState) { cc.state.Store(int32(cs)) }
func (cc *clientConn) loadState() connState  { return connState(cc.state.Load()) }

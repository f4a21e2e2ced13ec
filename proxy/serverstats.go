package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// serverStats holds the server's own counters, the figures INFO's clients,
// stats and proxy sections show, and the sampler behind
// instantaneous_ops_per_sec. (The per-command figures of commandstats and
// errorstats are cmdStats'.)
//
// Every field is an atomic, updated by whichever goroutine does the thing
// counted (the accept loop, a session, a pub/sub loop, a backend) and read
// by INFO from any session's goroutine: none takes a lock, so counting costs
// the data path one atomic add where it counts at all.
type serverStats struct {
	clients  atomic.Int64  // connections with a session, from serveConn to endSession
	blocked  atomic.Int64  // sessions in a blocking command or WAIT (INFO blocked_clients)
	nextID   atomic.Uint64 // the last client ID given (CLIENT ID, CLIENT LIST id=)
	accepted atomic.Int64  // connections served (total_connections_received)
	rejected atomic.Int64  // connections refused at maxclients
	commands atomic.Int64  // commands read from clients (total_commands_processed)

	panics      atomic.Int64 // clients closed because serving them panicked (contain)
	shardPanics atomic.Int64 // shard connections dropped because reading them panicked

	pubsubDropped  atomic.Int64 // subscribed clients closed at the pub/sub output buffer limits
	failovers      atomic.Int64 // Sentinel failovers of a shard seen starting (failover.go)
	refusedRetried atomic.Int64 // requests sent again after a -READONLY refusal

	// connections accepted whose session is not registered yet: a flush
	// waits for them too (letArrivedFirst), and Shutdown for their end
	unregistered atomic.Int64

	ops sampler // instantaneous_ops_per_sec, from commands
}

// sampler computes instantaneous_ops_per_sec as Redis does: the mean of the
// last 16 samples taken every 100 ms.
type sampler struct {
	mu      sync.Mutex
	samples [16]float64
	idx     int
}

// sample runs the ops sampler on the commands counter until stop closes. Its
// owner is the Server: New starts it, Close stops it.
func (ss *serverStats) sample(stop chan struct{}) {
	ss.ops.run(&ss.commands, stop)
}

func (sm *sampler) run(counter *atomic.Int64, stop chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last, lastT := counter.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := counter.Load()
			rate := float64(n-last) / now.Sub(lastT).Seconds()
			last, lastT = n, now
			sm.mu.Lock()
			sm.samples[sm.idx] = rate
			sm.idx = (sm.idx + 1) % len(sm.samples)
			sm.mu.Unlock()
		}
	}
}

func (sm *sampler) value() int64 {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var sum float64
	for _, v := range sm.samples {
		sum += v
	}
	return int64(sum / float64(len(sm.samples)))
}

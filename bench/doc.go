// Package bench measures a Redis-protocol endpoint: the proxy, or a plain
// redis-server to compare it with.
//
// Run drives a fixed number of raw TCP connections, each sending pipelined
// batches of SET and GET commands, and returns throughput, errors and a
// latency distribution (Histogram). It speaks RESP itself instead of going
// through go-redis: at a few hundred thousand commands per second a client
// library's per-command allocations and goroutine hand-offs cost about as
// much as the proxy under test, and the comparison would measure the client.
//
// Compare runs the same load against the proxy and against a direct
// redis-server, one after the other, and reports the ratio of their
// throughputs. RedisBenchmark and CompareRedisBenchmark do the same with the
// system's redis-benchmark tool, so a second, independent load generator
// checks the first; CompareRedisBenchmark runs in rounds that alternate
// which side goes first and measures each server process's CPU time, and
// its summaries take medians over the rounds.
//
// Every load is bounded: Run stops after Config.Duration at the latest, and
// the redis-benchmark helpers stop when their context ends (redis-benchmark
// itself can spin forever on a dead server; the helpers dial first and kill
// it on cancellation).
//
// Subpackage floor is a command, not a library: a multiplexing proxy cut
// down to framing, routing and batching on one epoll loop, which
// BenchmarkProxyVsDirect runs beside reshard as the best ratio a proxy of
// its kind reaches on the machine at hand.
//
// The package depends on no proxy internals, so it measures any server, and
// no production package may import it. A Histogram is owned by one
// goroutine; Run gives each connection its own and merges them at the end.
// Run, Compare and the redis-benchmark helpers own every goroutine and
// process they start and have stopped them all when they return.
package bench

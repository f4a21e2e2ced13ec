package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus metrics. The collector reads, at scrape time, the counters
// INFO reads. What the command path does for metrics alone is the shard
// latency histogram (backend.Latency): a clock read per write and per
// read of a shared connection, two atomic adds per reply, no lock. The
// barrier's pause histogram is observed at each resume, far from the
// command path.

// pauseBuckets are the barrier pause histogram's bounds, in seconds: a
// cutover's pause is milliseconds; a snapshot's cut, less.
var pauseBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

func newPauseHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "reshard_barrier_pause_seconds",
		Help:    "How long the write barrier held every client's commands, at a cutover or a snapshot's cut.",
		Buckets: pauseBuckets,
	})
}

var (
	descClients        = prometheus.NewDesc("reshard_connected_clients", "Client connections open.", nil, nil)
	descBlocked        = prometheus.NewDesc("reshard_blocked_clients", "Clients in a blocking command or WAIT.", nil, nil)
	descPubsub         = prometheus.NewDesc("reshard_pubsub_clients", "Clients in subscribed mode.", nil, nil)
	descAccepted       = prometheus.NewDesc("reshard_connections_received_total", "Client connections accepted.", nil, nil)
	descRejected       = prometheus.NewDesc("reshard_connections_rejected_total", "Client connections refused at maxclients.", nil, nil)
	descCommands       = prometheus.NewDesc("reshard_commands_total", "Commands run, by command (as INFO commandstats calls).", []string{"command"}, nil)
	descCmdFailed      = prometheus.NewDesc("reshard_command_errors_total", "Commands that ran and answered an error, by command.", []string{"command"}, nil)
	descCmdRejected    = prometheus.NewDesc("reshard_commands_rejected_total", "Commands refused before they ran, by command.", []string{"command"}, nil)
	descErrors         = prometheus.NewDesc("reshard_error_replies_total", "Error replies sent to clients.", nil, nil)
	descPanics         = prometheus.NewDesc("reshard_client_panics_total", "Clients closed because serving them panicked.", nil, nil)
	descEpoch          = prometheus.NewDesc("reshard_table_epoch", "Epoch of the routing table served.", nil, nil)
	descShardUp        = prometheus.NewDesc("reshard_shard_up", "1 if every shared connection to the shard is up.", []string{"shard"}, nil)
	descShardRequests  = prometheus.NewDesc("reshard_shard_requests_total", "Requests sent to the shard on its shared connections.", []string{"shard"}, nil)
	descShardPending   = prometheus.NewDesc("reshard_shard_pending_requests", "Requests sent to the shard and not yet answered.", []string{"shard"}, nil)
	descShardLatency   = prometheus.NewDesc("reshard_shard_latency_seconds", "Reply times of the shard's shared connections as the proxy sees them: from the write that sent a request to the read that brought its reply.", []string{"shard"}, nil)
	descShardReconnect = prometheus.NewDesc("reshard_shard_reconnects_total", "Shared connections to the shard lost and made again.", []string{"shard"}, nil)
	descShardErrors    = prometheus.NewDesc("reshard_shard_error_replies_total", "Error replies the shard sent on its shared connections.", []string{"shard"}, nil)
	descShardFailed    = prometheus.NewDesc("reshard_shard_failed_requests_total", "Requests to the shard the proxy failed because its connection was down or was lost before the reply.", []string{"shard"}, nil)
	descPubsubDropped  = prometheus.NewDesc("reshard_pubsub_clients_dropped_total", "Subscribed clients closed for passing the pub/sub output buffer limits.", nil, nil)
	descFailovers      = prometheus.NewDesc("reshard_sentinel_failovers_total", "Sentinel failovers of a shard seen starting.", nil, nil)
	descRetried        = prometheus.NewDesc("reshard_sentinel_refused_retried_total", "Requests sent again after a demoted primary refused them.", nil, nil)
)

// collector is the proxy's prometheus.Collector.
type collector struct{ srv *Server }

// Collector returns the proxy's metrics, for a Prometheus registry.
func (srv *Server) Collector() prometheus.Collector { return collector{srv} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descBlocked, descPubsub, descAccepted, descRejected, descCommands,
		descCmdFailed, descCmdRejected, descErrors, descPanics, descEpoch, descShardUp, descShardRequests,
		descShardPending, descShardReconnect, descShardLatency, descShardErrors, descShardFailed, descPubsubDropped,
		descFailovers, descRetried} {
		ch <- d
	}
	c.srv.pauses.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	srv := c.srv
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descClients, float64(srv.counters.clients.Load()))
	gauge(descBlocked, float64(srv.counters.blocked.Load()))
	gauge(descPubsub, float64(srv.pubsubClients()))
	counter(descAccepted, srv.counters.accepted.Load())
	counter(descRejected, srv.counters.rejected.Load())
	counter(descErrors, srv.stats.errors.Load())
	counter(descPanics, srv.counters.panics.Load())
	counter(descPubsubDropped, srv.counters.pubsubDropped.Load())
	srv.stats.each(func(name string, calls, rejected, failed int64) {
		counter(descCommands, calls, name)
		counter(descCmdFailed, failed, name)
		counter(descCmdRejected, rejected, name)
	})
	rt := srv.route.Load()
	gauge(descEpoch, float64(rt.table.Epoch()))
	for i, p := range rt.pools {
		shard := strconv.Itoa(i) + ":" + p.Addr
		up := 0.0
		if p.Up() {
			up = 1
		}
		var requests, pending, reconnects, errs, failed int64
		for _, bc := range p.Conns {
			n := bc.Requests.Load()
			requests += n
			pending += max(0, n-bc.Answered.Load())
			reconnects += bc.Reconnects.Load()
			errs += bc.ErrorReplies.Load()
			failed += bc.Failed.Load()
		}
		counter(descShardErrors, errs, shard)
		counter(descShardFailed, failed, shard)
		gauge(descShardUp, up, shard)
		counter(descShardRequests, requests, shard)
		gauge(descShardPending, float64(pending), shard)
		counter(descShardReconnect, reconnects, shard)
		bounds, cumulative, count, sum := p.Latency.Snapshot()
		buckets := make(map[float64]uint64, len(bounds))
		for j, b := range bounds {
			buckets[b] = cumulative[j]
		}
		ch <- prometheus.MustNewConstHistogram(descShardLatency, count, sum, buckets, shard)
	}
	if srv.sentinels != nil {
		counter(descFailovers, srv.counters.failovers.Load())
		counter(descRetried, srv.counters.refusedRetried.Load())
	}
	srv.pauses.Collect(ch)
}

// Healthy reports whether the proxy serves data and reaches every shard
// of its table (a load balancer's health check).
func (srv *Server) Healthy() (bool, string) {
	if ok, why := srv.Ready(); !ok {
		return false, why
	}
	for _, p := range srv.route.Load().pools {
		if !p.Up() {
			return false, "shard " + p.Addr + " is unreachable"
		}
	}
	return true, "ok"
}

// LeaseHeld reports whether the data plane may serve now as far as its
// lease goes (ServeUntil): always without --etcd.
func (srv *Server) LeaseHeld() bool { return srv.leaseRefusal(time.Now()) == "" }

// Ready reports whether the proxy accepts clients and serves data
// commands (not draining, and with --etcd, holding its lease).
func (srv *Server) Ready() (bool, string) {
	srv.mu.Lock()
	closed, draining := srv.closed, srv.isDraining()
	srv.mu.Unlock()
	switch {
	case closed:
		return false, "closed"
	case draining:
		return false, "shutting down"
	}
	if why := srv.leaseRefusal(time.Now()); why != "" {
		return false, why
	}
	return true, "ok"
}

package backend

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency is a histogram of a shard's reply times as the proxy sees them:
// from the write that sent a request to the read that brought its reply
// (a reply read in the same read as others shares their time). Its
// buckets are powers of two of microseconds, from 16 µs to about 1 s; an
// observation is two atomic adds, no lock and no allocation.
type Latency struct {
	buckets [latencyBuckets]atomic.Int64 // not cumulative; the last is +Inf
	sumUS   atomic.Int64
}

const (
	latencyFirstShift = 4 // the first bucket's bound: 1<<4 µs
	latencyBuckets    = 18
)

func (l *Latency) observe(d time.Duration) {
	us := max(int64(d/time.Microsecond), 0)
	i := min(bits.Len64(uint64(us)>>latencyFirstShift), latencyBuckets-1)
	l.buckets[i].Add(1)
	l.sumUS.Add(us)
}

// Snapshot returns the upper bounds in seconds of the finite buckets, the
// cumulative count at each, the total count and the sum in seconds, as
// Prometheus histograms take them.
func (l *Latency) Snapshot() (bounds []float64, cumulative []uint64, count uint64, sum float64) {
	var n uint64
	for i := range latencyBuckets {
		n += uint64(l.buckets[i].Load())
		if i < latencyBuckets-1 {
			bounds = append(bounds, float64(int64(1)<<(latencyFirstShift+i))/1e6)
			cumulative = append(cumulative, n)
		}
	}
	return bounds, cumulative, n, float64(l.sumUS.Load()) / 1e6
}

// sentMark is one write of a connection: when, and how many requests it
// carried.
type sentMark struct {
	at time.Time
	n  int
}

package bench

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// The timeline's record of latency over time: the series the workers add
// their windows to, and the small per-window histogram it is made of.

// series is the shared latency-over-time record; workers add to it under
// its lock once per window each.
type series struct {
	start time.Time
	width time.Duration
	mu    sync.Mutex
	wins  []winAcc
}

type winAcc struct {
	h         windowHist
	ops, errs int64
}

func (s *series) add(idx int, h *windowHist, ops, errs int64) {
	if idx < 0 {
		idx = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.wins) <= idx {
		s.wins = append(s.wins, winAcc{})
	}
	a := &s.wins[idx]
	a.h.merge(h)
	a.ops += ops
	a.errs += errs
}

func (s *series) windows() ([]Window, []windowHist) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Window, len(s.wins))
	hs := make([]windowHist, len(s.wins))
	for i, a := range s.wins {
		out[i] = Window{
			Start: s.start.Add(time.Duration(i) * s.width),
			Ops:   a.ops, Errors: a.errs,
			P999: a.h.quantile(0.999), Max: time.Duration(a.h.max),
		}
		hs[i] = a.h
	}
	return out, hs
}

// windowHist is a small latency histogram for one window: 16 buckets per
// power of two (values within ~6%), 2.4 KB, against Histogram's 32 KB, so
// a long run's thousands of windows stay cheap. Its max is exact.
type windowHist struct {
	counts [wBuckets]uint32
	n      uint64
	max    int64
}

const (
	wSubBits = 4
	wSub     = 1 << wSubBits
	wMaxBits = 40 // ~18 minutes in ns; longer values are clamped
	wBuckets = (wMaxBits - wSubBits + 1) * wSub
)

func wBucket(v uint64) int {
	if v >= 1<<wMaxBits {
		v = 1<<wMaxBits - 1
	}
	if v < wSub {
		return int(v)
	}
	shift := bits.Len64(v) - wSubBits - 1
	return wSub*(shift+1) + int(v>>uint(shift)) - wSub
}

func wBucketHigh(b int) int64 {
	if b < wSub {
		return int64(b)
	}
	shift := b/wSub - 1
	sub := int64(b%wSub + wSub)
	return (sub+1)<<uint(shift) - 1
}

func (h *windowHist) record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[wBucket(uint64(v))]++
	h.n++
	h.max = max(h.max, v)
}

func (h *windowHist) merge(o *windowHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

func (h *windowHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(h.n))), 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(min(wBucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}

package bench

import (
	"math"
	"math/bits"
	"time"
)

// The layout is HdrHistogram's log-linear one with 7 bits of sub-bucket
// precision: values below 2*subBuckets nanoseconds have a bucket each;
// above that, every power-of-two range [2^e, 2^(e+1)) is cut into
// subBuckets equal buckets. A bucket's width is then at most 1/subBuckets
// of its lower bound, so any value a bucket stands for is within 0.79% of
// every value recorded in it.
const (
	subBits    = 7
	subBuckets = 1 << subBits // 128
	// maxShift makes the top bucket end at 2^36 ns (about 68.7 s).
	maxShift   = 36 - subBits - 1
	numBuckets = (maxShift+1)*subBuckets + subBuckets

	// HistogramMax is the largest latency the histogram resolves; larger
	// values are counted in its top bucket (Max still reports them exactly).
	HistogramMax = time.Duration(1<<36 - 1)
)

// Histogram is a latency distribution with fixed memory (about 30 KiB) and
// a relative error below 1% for any value from 1 ns to HistogramMax. The
// zero value is an empty histogram ready to use.
//
// A Histogram is not safe for concurrent use: Record is a plain increment
// so the hot path costs nothing beyond it. Give each goroutine its own and
// Merge them when they are done.
type Histogram struct {
	counts [numBuckets]uint64
	count  uint64
	sum    uint64 // nanoseconds; overflows only after ~3e8 samples of a minute each
	min    int64
	max    int64
}

// bucketOf returns the index of the bucket holding v (0 <= v <= HistogramMax).
func bucketOf(v uint64) int {
	shift := bits.Len64(v) - (subBits + 1)
	if shift < 0 {
		shift = 0
	}
	return shift*subBuckets + int(v>>uint(shift))
}

// bucketHigh returns the largest value the bucket at index i holds.
func bucketHigh(i int) int64 {
	shift := i/subBuckets - 1
	if shift < 0 {
		shift = 0
	}
	sub := int64(i - shift*subBuckets)
	return (sub+1)<<uint(shift) - 1
}

// Record adds one latency. Negative values count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count++
	h.sum += uint64(v)
	if v > int64(HistogramMax) {
		v = int64(HistogramMax)
	}
	h.counts[bucketOf(uint64(v))]++
}

// Count returns the number of recorded values.
func (h *Histogram) Count() int64 { return int64(h.count) }

// Max returns the largest recorded value, exactly; 0 when empty.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min returns the smallest recorded value, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean returns the arithmetic mean of the recorded values; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}

// Quantile returns the value at quantile q (0 <= q <= 1; q is clamped into
// that range): the smallest recorded value v such that at least q of all
// values are <= v, rounded up to the top of its bucket, so it never
// understates a latency and overstates it by less than 1%. Quantile(1)
// is Max. It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if math.IsNaN(q) || q < 0 {
		q = 0
	}
	if q > 1 {
		q = 1
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.count {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == numBuckets-1 {
				return time.Duration(h.max) // the top bucket has no upper bound
			}
			v := bucketHigh(i)
			// The exact extremes are known; no bucket rounding past them.
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Merge adds every value recorded in o to h. o is not changed.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.count += o.count
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// Reset empties the histogram.
func (h *Histogram) Reset() { *h = Histogram{} }

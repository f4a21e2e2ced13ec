package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the definition Quantile approximates: the smallest value
// with at least q of the samples at or below it.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestHistogramQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		gen  func() time.Duration
	}{
		// Log-uniform over the whole promised range, 1µs to 60s.
		{"log-uniform", func() time.Duration {
			return time.Duration(math.Exp(rng.Float64()*math.Log(60e9/1e3)) * 1e3)
		}},
		{"exponential-200us", func() time.Duration {
			return time.Duration(rng.ExpFloat64() * 200e3)
		}},
		{"bimodal", func() time.Duration {
			if rng.IntN(100) == 0 {
				return time.Duration(50e6 + rng.IntN(50e6))
			}
			return time.Duration(100e3 + rng.IntN(20e3))
		}},
		{"small-exact", func() time.Duration { return time.Duration(rng.IntN(300)) }},
	}
	qs := []float64{0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var h Histogram
			samples := make([]time.Duration, 200000)
			var sum time.Duration
			for i := range samples {
				samples[i] = d.gen()
				sum += samples[i]
				h.Record(samples[i])
			}
			slices.Sort(samples)
			if got, want := h.Count(), int64(len(samples)); got != want {
				t.Fatalf("Count() = %d, want %d", got, want)
			}
			if got, want := h.Max(), samples[len(samples)-1]; got != want {
				t.Errorf("Max() = %v, want %v", got, want)
			}
			if got, want := h.Min(), samples[0]; got != want {
				t.Errorf("Min() = %v, want %v", got, want)
			}
			if got, want := h.Mean(), sum/time.Duration(len(samples)); got != want {
				t.Errorf("Mean() = %v, want %v", got, want)
			}
			for _, q := range qs {
				got, want := h.Quantile(q), exactQuantile(samples, q)
				if got < want {
					t.Errorf("Quantile(%v) = %v, below the exact %v", q, got, want)
				}
				if rel := float64(got-want) / float64(max(want, 1)); rel > 0.01 {
					t.Errorf("Quantile(%v) = %v, exact %v: relative error %.4f > 1%%", q, got, want, rel)
				}
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets are contiguous and each is narrower than 1/128 of its values.
	for i := 0; i < numBuckets-1; i++ {
		hi := bucketHigh(i)
		if got := bucketOf(uint64(hi)); got != i {
			t.Fatalf("bucketOf(bucketHigh(%d)=%d) = %d", i, hi, got)
		}
		if got := bucketOf(uint64(hi + 1)); got != i+1 {
			t.Fatalf("bucketOf(%d) = %d, want %d", hi+1, got, i+1)
		}
		lo := int64(0)
		if i > 0 {
			lo = bucketHigh(i-1) + 1
		}
		if lo > 0 && float64(hi-lo)/float64(lo) > 1.0/subBuckets {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d of its values", i, lo, hi, subBuckets)
		}
	}
	if got, want := bucketHigh(numBuckets-1), int64(HistogramMax); got != want {
		t.Fatalf("top bucket ends at %d, want HistogramMax %d", got, want)
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Count() != 0 || h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatalf("empty histogram: count %d p50 %v max %v min %v mean %v", h.Count(), h.Quantile(0.5), h.Max(), h.Min(), h.Mean())
	}
	h.Record(-5)
	if got := h.Quantile(1); got != 0 {
		t.Errorf("negative value recorded as %v, want 0", got)
	}
	h.Reset()
	big := 10 * time.Minute // beyond HistogramMax
	h.Record(time.Millisecond)
	h.Record(big)
	if got := h.Max(); got != big {
		t.Errorf("Max() = %v, want %v", got, big)
	}
	if got := h.Quantile(1); got != big {
		t.Errorf("Quantile(1) = %v, want the exact max %v", got, big)
	}
	if got := h.Quantile(0.5); got < time.Millisecond || got > time.Millisecond*101/100 {
		t.Errorf("Quantile(0.5) = %v, want about 1ms", got)
	}
	for _, q := range []float64{-1, math.NaN()} {
		if got, want := h.Quantile(q), h.Quantile(0); got != want {
			t.Errorf("Quantile(%v) = %v, want Quantile(0) = %v", q, got, want)
		}
	}
	if got := h.Quantile(2); got != big {
		t.Errorf("Quantile(2) = %v, want max %v", got, big)
	}
}

func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all Histogram
	parts := make([]Histogram, 4)
	for i := range 100000 {
		v := time.Duration(rng.ExpFloat64() * 1e6)
		all.Record(v)
		parts[i%len(parts)].Record(v)
	}
	var merged Histogram
	merged.Merge(&Histogram{}) // an empty one changes nothing
	merged.Merge(nil)
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if merged != all {
		t.Fatalf("merged histogram differs from one that recorded everything: count %d vs %d, p99 %v vs %v",
			merged.Count(), all.Count(), merged.Quantile(0.99), all.Quantile(0.99))
	}
	before := parts[0]
	parts[1].Merge(&parts[0])
	if parts[0] != before {
		t.Fatal("Merge changed its argument")
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	b.ReportAllocs()
	var h Histogram
	var v time.Duration
	for b.Loop() {
		v = (v + 7919) & (1<<30 - 1)
		h.Record(v)
	}
}

func BenchmarkHistogramQuantile(b *testing.B) {
	b.ReportAllocs()
	var h Histogram
	for i := range 100000 {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for b.Loop() {
		h.Quantile(0.999)
	}
}

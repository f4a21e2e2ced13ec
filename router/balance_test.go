package router

import (
	"math/rand"
	"testing"
)

// Balance covers every slot once with n contiguous ranges, and no range is
// further from the mean than the heaviest slot; without weights it is the
// even split.
func TestBalance(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{1, 2, 3, 5, 7, 100, NumSlots} {
		for _, shape := range []string{"uniform", "skewed", "one hot slot", "empty", "sparse"} {
			w := make([]int64, NumSlots)
			for s := range w {
				switch shape {
				case "uniform":
					w[s] = 100
				case "skewed":
					w[s] = 100 + rng.Int63n(50)
					if s%10 == 3 {
						w[s] *= 10
					}
				case "one hot slot":
					w[s] = 1
				case "sparse":
					if rng.Intn(100) == 0 {
						w[s] = rng.Int63n(1000)
					}
				}
			}
			if shape == "one hot slot" {
				w[9000] = 1 << 30
			}
			ranges, err := Balance(w, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(ranges) != n {
				t.Fatalf("%s, n=%d: %d ranges", shape, n, len(ranges))
			}
			next := 0
			var total, heaviest int64
			for _, x := range w {
				total += x
				heaviest = max(heaviest, x)
			}
			mean := float64(total) / float64(n)
			for _, r := range ranges {
				if int(r.From) != next || r.To < r.From {
					t.Fatalf("%s, n=%d: ranges %v do not tile the slots", shape, n, ranges)
				}
				next = int(r.To) + 1
				var sum int64
				for s := r.From; ; s++ {
					sum += w[s]
					if s == r.To {
						break
					}
				}
				if d := float64(sum) - mean; shape != "one hot slot" && (d > float64(heaviest) || -d > float64(heaviest)) {
					t.Errorf("%s, n=%d: range %v weighs %d, mean %.0f, heaviest slot %d", shape, n, r, sum, mean, heaviest)
				}
			}
			if next != NumSlots {
				t.Fatalf("%s, n=%d: ranges end at %d", shape, n, next)
			}
			if shape == "empty" {
				for i, r := range evenRanges(n) {
					if ranges[i] != r {
						t.Fatalf("empty weights, n=%d: %v, want the even split", n, ranges)
					}
				}
			}
		}
	}
	if _, err := Balance(make([]int64, 10), 2); err == nil {
		t.Error("Balance of 10 weights succeeded")
	}
}

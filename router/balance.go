package router

import "fmt"

// Balance splits the slots into n contiguous ranges whose weights
// (weights[slot], a slot's keys or bytes) are as even as contiguous ranges
// allow: the k-th range ends where the running total comes nearest to k/n
// of the whole, so no range is further from the mean than the heaviest
// single slot. Every range holds at least one slot. Without any weight it
// is the even split.
func Balance(weights []int64, n int) ([]Range, error) {
	if len(weights) != NumSlots {
		return nil, fmt.Errorf("router: balance: %d weights, want one per slot (%d)", len(weights), NumSlots)
	}
	if n < 1 || n > NumSlots {
		return nil, fmt.Errorf("router: balance: %d ranges, want 1 to %d", n, NumSlots)
	}
	var total int64
	for _, w := range weights {
		if w < 0 {
			return nil, fmt.Errorf("router: balance: negative weight %d", w)
		}
		total += w
	}
	if total == 0 {
		return evenRanges(n), nil
	}
	out := make([]Range, 0, n)
	from, slot := 0, 0
	var sum int64
	for k := 1; k < n; k++ {
		goal := float64(total) * float64(k) / float64(n)
		// the range may end no later than leaves one slot to each range after it
		last := NumSlots - 1 - (n - k)
		for slot <= last && float64(sum+weights[slot]) <= goal {
			sum += weights[slot]
			slot++
		}
		// slot is the first whose weight would pass the goal: end before it
		// or after it, whichever comes nearer
		end := slot - 1
		if slot <= last && goal-float64(sum) > float64(sum+weights[slot])-goal {
			sum += weights[slot]
			end = slot
			slot++
		}
		if end < from { // at least one slot
			sum += weights[from]
			end, slot = from, from+1
		}
		out = append(out, Range{From: uint16(from), To: uint16(end)})
		from = end + 1
	}
	return append(out, Range{From: uint16(from), To: NumSlots - 1}), nil
}

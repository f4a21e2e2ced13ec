package bench

import (
	"image/color"
	"strings"
	"testing"
	"time"
)

func TestWindowHistQuantileAndMax(t *testing.T) {
	var h windowHist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	h.record(50 * time.Millisecond)
	if got := time.Duration(h.max); got != 50*time.Millisecond {
		t.Errorf("max = %v", got)
	}
	// p99.9 of 1001 values is the 1000th: 1 ms, within the 6% bucket.
	if q := h.quantile(0.999); q < time.Millisecond || q > 1070*time.Microsecond {
		t.Errorf("p99.9 = %v, want ~1ms", q)
	}
	if q := h.quantile(1); q != 50*time.Millisecond {
		t.Errorf("p100 = %v", q)
	}
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 1000, 123456789, 1<<40 - 1} {
		b := wBucket(v)
		if b < 0 || b >= wBuckets || uint64(wBucketHigh(b)) < v || (b > 0 && uint64(wBucketHigh(b-1)) >= v) {
			t.Errorf("value %d in bucket %d [.., %d], previous ends at %d", v, b, wBucketHigh(b), wBucketHigh(b-1))
		}
	}
}

func TestSeriesAndSpans(t *testing.T) {
	start := time.Unix(1000, 0)
	ser := &series{start: start, width: 50 * time.Millisecond}
	w := &tlWorker{}
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	w.account(ser, at(10), time.Millisecond)
	w.account(ser, at(20), 2*time.Millisecond)
	w.account(ser, at(160), 40*time.Millisecond) // window 3; windows 1, 2 empty
	w.accountErrs(ser, at(170), 2)
	w.accountErrs(ser, at(175), 0) // no-op
	w.account(ser, at(260), time.Millisecond)
	w.flush(ser)
	wins, hists := ser.windows()
	if len(wins) != 6 {
		t.Fatalf("%d windows, want 6", len(wins))
	}
	if wins[0].Ops != 2 || wins[0].Max != 2*time.Millisecond || wins[1].Ops != 0 || wins[3].Ops != 1 || wins[3].Errors != 2 || wins[5].Ops != 1 {
		t.Errorf("windows = %+v", wins)
	}
	if !wins[3].Start.Equal(at(150)) {
		t.Errorf("window 3 starts at %v", wins[3].Start)
	}
	r := &TimelineResult{Start: start, Windows: wins, hists: hists, Options: TimelineOptions{Window: 50 * time.Millisecond, Margin: 10 * time.Millisecond}}
	if _, ok := r.CutoverSummary(); ok {
		t.Error("cutover summary without a cutover phase")
	}
	r.Phases = []Phase{{"copying", at(0)}, {"cutover", at(155)}, {"done", at(170)}}
	s, ok := r.CutoverSummary()
	if !ok || s.Ops != 1 || s.Errors != 2 || s.Max != 40*time.Millisecond || s.P999 != 40*time.Millisecond {
		t.Errorf("cutover summary = %+v, %v", s, ok)
	}
	if all := r.Span(start, at(300)); all.Ops != 4 || all.Errors != 2 || all.Max != 40*time.Millisecond {
		t.Errorf("whole span = %+v", all)
	}
	if !strings.Contains(r.String(), "cutover") {
		t.Errorf("report lacks the cutover window:\n%s", r)
	}
}

func TestCheckLost(t *testing.T) {
	acked := []int64{5, 0, 7, 3}
	got := []int64{5, -1, 6, 4} // key 2 lost a write; key 1 was never acknowledged; 3 holds a later unacknowledged one
	lost, samples := checkLost("p:", acked, got)
	if lost != 1 || len(samples) != 1 || !strings.Contains(samples[0], "p:seq:2 = 6, last acknowledged 7") {
		t.Errorf("lost = %d %q", lost, samples)
	}
	if lost, _ := checkLost("p:", []int64{4}, []int64{-1}); lost != 1 {
		t.Errorf("a missing key with an acknowledged write is not lost: %d", lost)
	}
}

func TestParseStatus(t *testing.T) {
	f := ParseStatus("state:done\r\ncutover_ms:1700000000123\r\nerror:\r\n")
	if f["state"] != "done" || f["cutover_ms"] != "1700000000123" || f["error"] != "" {
		t.Errorf("%v", f)
	}
}

func TestPlot(t *testing.T) {
	start := time.Unix(1000, 0)
	ser := &series{start: start, width: 50 * time.Millisecond}
	w := &tlWorker{}
	for i := range 100 {
		lat := 200 * time.Microsecond
		if i == 60 {
			lat = 30 * time.Millisecond
		}
		w.account(ser, start.Add(time.Duration(i)*50*time.Millisecond+time.Millisecond), lat)
	}
	w.flush(ser)
	wins, hists := ser.windows()
	r := &TimelineResult{Start: start, Windows: wins, hists: hists, Result: Result{Duration: 5 * time.Second},
		Options: TimelineOptions{Window: 50 * time.Millisecond, Margin: 50 * time.Millisecond},
		Phases:  []Phase{{"copying", start.Add(time.Second)}, {"cutover", start.Add(3 * time.Second)}, {"done", start.Add(3100 * time.Millisecond)}}}
	for _, linear := range []bool{false, true} {
		img := r.Plot(PlotOptions{Width: 800, Height: 300, Linear: linear})
		if b := img.Bounds(); b.Dx() != 800 || b.Dy() != 300 {
			t.Fatalf("size %v", b)
		}
		count := map[color.RGBA]int{}
		for y := 0; y < 300; y++ {
			for x := 0; x < 800; x++ {
				count[img.RGBAAt(x, y)]++
			}
		}
		for name, c := range map[string]color.RGBA{"max": colMax, "p99.9": colP999, "cutover shade": colShade, "phase": colPhase, "text": colAxis} {
			if count[c] < 20 {
				t.Errorf("linear=%v: %d pixels of %s", linear, count[c], name)
			}
		}
	}
	if err := r.SavePlot(t.TempDir()+"/p.png", PlotOptions{}); err != nil {
		t.Fatal(err)
	}
}

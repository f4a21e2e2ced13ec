package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"
	"time"
)

// PlotOptions size and scale the latency plot.
type PlotOptions struct {
	Width, Height int  // pixels; 0: 1200x500
	Linear        bool // linear y axis; default logarithmic
}

var (
	colBG     = color.RGBA{255, 255, 255, 255}
	colAxis   = color.RGBA{40, 40, 40, 255}
	colGrid   = color.RGBA{225, 225, 225, 255}
	colMax    = color.RGBA{220, 40, 40, 255}
	colP999   = color.RGBA{30, 90, 200, 255}
	colPhase  = color.RGBA{120, 120, 120, 255}
	colShade  = color.RGBA{255, 225, 180, 255}
	colErrors = color.RGBA{0, 0, 0, 255}
)

// Plot draws the latency over time of r: per window the max (red) and the
// p99.9 (blue) in milliseconds, the phases as labelled vertical lines, the
// cutover window shaded, and windows with errors marked by a black tick
// under the axis.
func (r *TimelineResult) Plot(opt PlotOptions) *image.RGBA {
	w, h := opt.Width, opt.Height
	if w <= 0 || h <= 0 {
		w, h = 1200, 500
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBG}, image.Point{}, draw.Src)
	const left, right, top, bottom = 80, 20, 84, 45
	px0, px1, py0, py1 := left, w-right, top, h-bottom // plot area
	if px1-px0 < 10 || py1-py0 < 10 {
		return img
	}

	span := r.Duration
	if n := len(r.Windows); n > 0 {
		span = max(span, r.Windows[n-1].Start.Add(r.Options.Window).Sub(r.Start))
	}
	if span <= 0 {
		span = time.Second
	}
	xOf := func(t time.Time) int {
		return px0 + int(float64(px1-px0)*t.Sub(r.Start).Seconds()/span.Seconds())
	}

	// y axis in ms.
	hiMS, loMS := 0.0, math.Inf(1)
	for _, win := range r.Windows {
		if win.Ops == 0 {
			continue
		}
		hiMS = max(hiMS, ms(win.Max))
		if v := ms(win.P999); v > 0 {
			loMS = min(loMS, v)
		}
	}
	if hiMS == 0 {
		hiMS, loMS = 1, 0.1
	}
	var yOf func(v float64) int
	var ticks []float64
	if opt.Linear {
		top := niceCeil(hiMS * 1.05)
		yOf = func(v float64) int { return py1 - int(float64(py1-py0)*v/top) }
		for i := 0; i <= 5; i++ {
			ticks = append(ticks, top*float64(i)/5)
		}
	} else {
		lo := math.Pow(10, math.Floor(math.Log10(max(loMS, 0.001))))
		hi := math.Pow(10, math.Ceil(math.Log10(hiMS*1.01)))
		if hi <= lo {
			hi = lo * 10
		}
		yOf = func(v float64) int {
			v = max(v, lo)
			return py1 - int(float64(py1-py0)*math.Log10(v/lo)/math.Log10(hi/lo))
		}
		for t := lo; t <= hi*1.0001; t *= 10 {
			ticks = append(ticks, t)
		}
	}

	// Cutover window shaded, below everything else.
	if s, ok := r.CutoverSummary(); ok {
		x0, x1 := max(xOf(s.From), px0), min(xOf(s.To), px1)
		if x1 <= x0 {
			x1 = x0 + 1
		}
		draw.Draw(img, image.Rect(x0, py0, x1, py1), &image.Uniform{colShade}, image.Point{}, draw.Src)
	}
	// Grid and y labels.
	for _, t := range ticks {
		y := yOf(t)
		hline(img, px0, px1, y, colGrid)
		label := fmtMS(t)
		drawText(img, px0-8-textWidth(label, 1), y-3, label, 1, colAxis)
	}
	// x ticks every nice number of seconds.
	step := niceCeil(span.Seconds() / 10)
	for s := 0.0; s <= span.Seconds()+1e-9; s += step {
		x := px0 + int(float64(px1-px0)*s/span.Seconds())
		vline(img, x, py1, py1+4, colAxis)
		label := strconv.FormatFloat(s, 'f', -1, 64) + "s"
		drawText(img, x-textWidth(label, 1)/2, py1+8, label, 1, colAxis)
	}
	// Phases: a dashed line each, labels on the first of four rows where
	// they do not overlap an earlier one.
	var rowEnd [4]int
	for _, p := range r.Phases {
		x := xOf(p.At)
		if x < px0 || x > px1 {
			continue
		}
		for y := py0; y < py1; y += 6 {
			vline(img, x, y, min(y+3, py1), colPhase)
		}
		row := 0
		for i := range rowEnd {
			if rowEnd[i] < x {
				row = i
				break
			}
			if rowEnd[i] < rowEnd[row] {
				row = i
			}
		}
		rowEnd[row] = x + textWidth(p.Name, 1) + 6
		ly := 18 + row*14
		vline(img, x, ly+15, py0, colPhase)
		drawText(img, min(x+2, w-textWidth(p.Name, 1)-2), ly+2, p.Name, 1, colAxis)
	}
	// Axes.
	hline(img, px0, px1, py1, colAxis)
	vline(img, px0, py0, py1, colAxis)
	// Series, with gaps where a window had no reply.
	plotSeries := func(val func(Window) time.Duration, c color.Color) {
		havePrev := false
		var x0, y0 int
		for _, win := range r.Windows {
			if win.Ops == 0 {
				havePrev = false
				continue
			}
			x := xOf(win.Start.Add(r.Options.Window / 2))
			y := yOf(ms(val(win)))
			if havePrev {
				line(img, x0, y0, x, y, c)
				line(img, x0, y0+1, x, y+1, c)
			} else {
				line(img, x, y, x, y+1, c)
			}
			x0, y0, havePrev = x, y, true
		}
	}
	plotSeries(func(w Window) time.Duration { return w.P999 }, colP999)
	plotSeries(func(w Window) time.Duration { return w.Max }, colMax)
	for _, win := range r.Windows {
		if win.Errors > 0 {
			x := xOf(win.Start)
			vline(img, x, py1+1, py1+6, colErrors)
		}
	}
	// Title and legend.
	title := fmt.Sprintf("latency (ms) per %s window", r.Options.Window)
	drawText(img, 8, 4, title, 1, colAxis)
	lx := w - right - 150
	draw.Draw(img, image.Rect(lx, 6, lx+14, 9), &image.Uniform{colMax}, image.Point{}, draw.Src)
	drawText(img, lx+18, 4, "max", 1, colAxis)
	draw.Draw(img, image.Rect(lx+50, 6, lx+64, 9), &image.Uniform{colP999}, image.Point{}, draw.Src)
	drawText(img, lx+68, 4, "p99.9", 1, colAxis)
	return img
}

// SavePlot writes r's plot as a PNG file.
func (r *TimelineResult) SavePlot(path string, opt PlotOptions) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, r.Plot(opt)); err != nil {
		f.Close()
		return fmt.Errorf("bench: write plot %s: %w", path, err)
	}
	return f.Close()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(v float64) string {
	return strconv.FormatFloat(v, 'g', 3, 64) + "ms"
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

// line draws a 1-pixel segment (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

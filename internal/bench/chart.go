package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

// canvas is an RGBA image with the few drawing operations the chart needs.
type canvas struct{ *image.RGBA }

func newCanvas(w, h int) canvas {
	c := canvas{image.NewRGBA(image.Rect(0, 0, w, h))}
	c.fill(0, 0, w, h, color.RGBA{255, 255, 255, 255})
	return c
}

func (c canvas) fill(x0, y0, x1, y1 int, col color.RGBA) {
	for y := max(y0, 0); y < min(y1, c.Rect.Dy()); y++ {
		for x := max(x0, 0); x < min(x1, c.Rect.Dx()); x++ {
			c.SetRGBA(x, y, col)
		}
	}
}

// dashed draws a vertical dashed line.
func (c canvas) dashed(x, y0, y1 int, col color.RGBA) {
	for y := y0; y < y1; y += 8 {
		c.fill(x, y, x+2, min(y+5, y1), col)
	}
}

// label draws s on a white box, so lines under it do not cross it.
func (c canvas) label(x, y, scale int, s string, col color.RGBA) {
	c.fill(x-3, y-3, x+textWidth(s, scale)+3, y+7*scale+3, color.RGBA{255, 255, 255, 255})
	c.text(x, y, scale, s, col)
}

// text draws s with its top-left corner at (x, y), each font pixel scale
// pixels wide, and returns the x after it.
func (c canvas) text(x, y, scale int, s string, col color.RGBA) int {
	for _, r := range s {
		g, ok := glyphs[r]
		if !ok {
			g = missingGlyph
		}
		drop := 0
		if descenders[r] {
			drop = 2
		}
		for row, bits := range g {
			for bit := range 5 {
				if bits&(0x10>>bit) != 0 {
					px, py := x+bit*scale, y+(row+drop)*scale
					c.fill(px, py, px+scale, py+scale, col)
				}
			}
		}
		x += glyphW * scale
	}
	return x
}

func textWidth(s string, scale int) int { return len([]rune(s)) * glyphW * scale }

var (
	ink     = color.RGBA{30, 30, 30, 255}
	faint   = color.RGBA{120, 120, 120, 255}
	gridCol = color.RGBA{225, 225, 225, 255}
	target  = color.RGBA{200, 40, 40, 255}
)

// contenderColor: the ceiling grey, Meshlet blue, the peer orange; the
// second shade is for p99.
func contenderColor(id string) (color.RGBA, color.RGBA) {
	switch id {
	case "pipe-plain", "pipe-txn":
		return color.RGBA{110, 110, 110, 255}, color.RGBA{190, 190, 190, 255}
	case "meshlet-alo", "meshlet-eos":
		return color.RGBA{30, 90, 200, 255}, color.RGBA{140, 175, 235, 255}
	default:
		return color.RGBA{230, 120, 20, 255}, color.RGBA{245, 190, 130, 255}
	}
}

// Chart layout, in pixels; text is drawn at scale s.
const (
	width = 1200
	left  = 350 // bars start here, labels before
	right = width - 230
	s     = 2
	barH  = 26
	gap   = 14
)

// drawChart renders throughput and latency per contender.
func drawChart(r *Results, file string) error {
	n := len(r.Contenders)
	height := 200 + 3*(110+n*(barH+gap))
	c := newCanvas(width, height)
	y := 20
	c.text(20, y, 3, "Meshlet vs ceiling vs Redpanda Connect", ink)
	y += 34
	c.text(20, y, s, fmt.Sprintf("%s, %d cores, %s GB; broker: kfake in its own process", r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryGB), faint)
	y += 40

	// Throughput.
	c.text(20, y, s, "Throughput, events/s (median of runs; thin line = range)", ink)
	y += 30
	maxEPS := 0.0
	for _, cr := range r.Contenders {
		maxEPS = max(maxEPS, cr.MaxEventsPerSec, cr.EventsPerSec)
	}
	scaleX := func(v float64) int { return left + int(v/maxEPS*float64(right-left)) }
	top := y
	rows := n * (barH + gap)
	txn := r.contender("pipe-txn")
	if txn != nil {
		c.dashed(scaleX(0.6*txn.EventsPerSec), top-6, top+rows-gap+6, target)
	}
	for _, cr := range r.Contenders {
		col, light := contenderColor(cr.ID)
		c.text(20, y+6, s, cr.Name, ink)
		c.fill(left, y, scaleX(cr.EventsPerSec), y+barH, col)
		c.fill(scaleX(cr.MinEventsPerSec), y+barH/2-1, scaleX(cr.MaxEventsPerSec)+1, y+barH/2+1, light)
		c.label(max(scaleX(cr.EventsPerSec), scaleX(cr.MaxEventsPerSec))+8, y+6, s, humanRate(cr.EventsPerSec), ink)
		y += barH + gap
	}
	if txn != nil {
		c.text(scaleX(0.6*txn.EventsPerSec)+6, y-4, s, "target: 60% of raw txn pipe", target)
		y += 24
	}
	y += 30

	// Latency panels, log scale: at each contender's half load, and at the
	// one load Meshlet exactly-once is judged at.
	y = latencyPanel(c, y, "End-to-end latency at half of each contender's max, ms, log scale (dark p50, light p99)",
		"not measured", r.Contenders, func(cr *ContenderResult) *LatencyResult { return cr.Latency })
	if eos := r.contender("meshlet-eos"); eos != nil && eos.Latency != nil {
		y += 20
		title := fmt.Sprintf("The same at %s events/s for all that can carry it (Meshlet exactly-once's half load)", humanRate(eos.Latency.AchievedRate))
		y = latencyPanel(c, y, title, "its max is below this load", r.Contenders, func(cr *ContenderResult) *LatencyResult {
			if cr.ID == eos.ID {
				return cr.Latency
			}
			return cr.LatencyAtEOSLoad
		})
	}

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.SubImage(image.Rect(0, 0, width, min(height, y+10)))); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// humanRate prints 153412 as "153k".
func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// latencyPanel draws one latency panel from y and returns the y after it.
func latencyPanel(c canvas, y int, title, missing string, crs []*ContenderResult, pick func(*ContenderResult) *LatencyResult) int {
	c.text(20, y, s, title, ink)
	y += 30
	maxMs := 50.0
	for _, cr := range crs {
		if l := pick(cr); l != nil {
			maxMs = max(maxMs, l.P99Ms)
		}
	}
	lo, hi := -1.0, math.Ceil(math.Log10(maxMs))
	logX := func(ms float64) int {
		v := math.Log10(max(ms, math.Pow(10, lo)))
		return left + int((v-lo)/(hi-lo)*float64(right-left))
	}
	top, rows := y, len(crs)*(barH+gap)
	for e := lo; e <= hi; e++ {
		x := logX(math.Pow(10, e))
		c.fill(x, top, x+1, top+rows, gridCol)
		label := fmt.Sprintf("%g", math.Pow(10, e))
		c.text(x-textWidth(label, s)/2, top+rows+4, s, label, faint)
	}
	c.dashed(logX(50), top-6, top+rows, target)
	for _, cr := range crs {
		col, light := contenderColor(cr.ID)
		c.text(20, y+6, s, cr.Name, ink)
		if l := pick(cr); l != nil && l.Samples > 0 {
			c.fill(left, y, logX(l.P99Ms), y+barH, light)
			c.fill(left, y+5, logX(l.P50Ms), y+barH-5, col)
			c.label(logX(l.P99Ms)+8, y+6, s, fmtMs(l.P50Ms)+" / "+fmtMs(l.P99Ms), ink)
		} else {
			c.text(left+8, y+6, s, missing, faint)
		}
		y += barH + gap
	}
	c.text(logX(50)+6, top+rows+26, s, "target: p99 < 50 ms", target)
	return top + rows + 50
}

func fmtMs(ms float64) string {
	if ms >= 100 {
		return fmt.Sprintf("%.0f", ms)
	}
	return fmt.Sprintf("%.1f", ms)
}

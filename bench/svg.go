package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	svgGroupW = 76  // one workload at one C
	svgBarW   = 24  // one ratio bar
	svgLeft   = 60  // the axis labels
	svgTop    = 56  // title and legend
	svgPlotH  = 300 // the plot area
	svgBottom = 60  // group labels
)

// bar colours: Grove ÷ ZooKeeper, Grove ÷ etcd.
var svgColors = [2]string{"#3b6fb6", "#e08a2c"}

// SVG draws Grove's (native client) throughput ratio to ZooKeeper and to
// etcd for each workload and C as bars on a log scale that grow up from
// 1.0 when Grove is faster and down when it is slower, with the line at
// 1.0 and each workload's goal against ZooKeeper as a dashed red line.
func (r *Report) SVG() string {
	keys := r.throughput()
	type group struct {
		label  string
		ratios [2]float64 // 0 = not measured
		goal   float64
	}
	var groups []group
	lo, hi := 0.5, 2.5
	for _, k := range keys {
		w, c := k[0].(string), k[1].(int)
		g := group{label: fmt.Sprintf("%s C=%d", w, c)}
		if w == wLock {
			g.label = fmt.Sprintf("lock W=%d", c)
		}
		for i, other := range []string{"zookeeper", "etcd"} {
			if v, ok := r.ratio("grove", other, w, c); ok && v > 0 {
				g.ratios[i] = v
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		if gl, ok := goalFor(w); ok {
			g.goal = gl.bound
			hi = math.Max(hi, gl.bound)
		}
		groups = append(groups, g)
	}
	// Log scale from lo/1.3 to hi*1.3.
	l0, l1 := math.Log(lo/1.3), math.Log(hi*1.3)
	y := func(v float64) float64 { return svgTop + svgPlotH*(l1-math.Log(v))/(l1-l0) }
	width := svgLeft + max(1, len(groups))*svgGroupW + 20
	height := svgTop + svgPlotH + svgBottom

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft,
		html.EscapeString(fmt.Sprintf("Grove (native client) ops/s ÷ other system, same run — %s, %s", r.Date, r.Commit)))
	legend := []struct{ color, text string }{{svgColors[0], "Grove ÷ ZooKeeper"}, {svgColors[1], "Grove ÷ etcd"}, {"red", "goal vs ZooKeeper"}}
	for i, l := range legend {
		x := svgLeft + i*170
		if l.color == "red" {
			fmt.Fprintf(&b, `<line x1="%d" y1="36" x2="%d" y2="36" stroke="red" stroke-width="2" stroke-dasharray="5,3"/>`+"\n", x, x+14)
		} else {
			fmt.Fprintf(&b, `<rect x="%d" y="30" width="14" height="12" fill="%s"/>`+"\n", x, l.color)
		}
		fmt.Fprintf(&b, `<text x="%d" y="40">%s</text>`+"\n", x+20, l.text)
	}
	// Axis ticks at powers of two.
	for e := math.Floor(math.Log2(lo / 1.3)); math.Pow(2, e) <= hi*1.3; e++ {
		v := math.Pow(2, e)
		if v < lo/1.3 {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", svgLeft, y(v), width-20, y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g×</text>`+"\n", svgLeft-6, y(v)+4, v)
	}
	for i, g := range groups {
		x0 := float64(svgLeft + i*svgGroupW)
		for j, v := range g.ratios {
			if v == 0 {
				continue
			}
			x := x0 + 12 + float64(j*(svgBarW+4))
			top, bot := math.Min(y(v), y(1)), math.Max(y(v), y(1))
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s: %.2f×</title></rect>`+"\n",
				x, top, svgBarW, math.Max(bot-top, 1), svgColors[j], html.EscapeString(g.label), v)
			ty := top - 3
			if v < 1 {
				ty = bot + 11
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%.2f</text>`+"\n", x+svgBarW/2, ty, v)
		}
		if g.goal > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="red" stroke-width="2" stroke-dasharray="5,3"/>`+"\n",
				x0+6, y(g.goal), x0+svgGroupW-6, y(g.goal))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x0+svgGroupW/2, svgTop+svgPlotH+18, html.EscapeString(g.label))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black" stroke-width="1.5"/>`+"\n", svgLeft, y(1), width-20, y(1))
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">bars grow up from 1.0× where Grove is faster, down where it is slower (log scale)</text>`+"\n", svgLeft, svgTop+svgPlotH+42)
	b.WriteString("</svg>\n")
	return b.String()
}

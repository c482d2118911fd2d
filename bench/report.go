package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Meta is what a reader needs to trust or reproduce a run.
type Meta struct {
	Date      string            `json:"date"`
	Command   string            `json:"command"`
	Machine   string            `json:"machine"`
	Kernel    string            `json:"kernel"`
	GoVersion string            `json:"go_version"`
	Versions  map[string]string `json:"versions"` // server → version
	Reps      int               `json:"reps"`
	CPUMethod string            `json:"cpu_method"`
	Labels    map[string]string `json:"labels,omitempty"` // workload → row label
	// IdleMethod says what the idle figure counts; empty in reports made
	// before the main process was left out (they count the whole cgroup).
	IdleMethod string   `json:"idle_method,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// Report is a whole run: every repetition and the medians.
type Report struct {
	Meta      Meta      `json:"meta"`
	Servers   []string  `json:"servers"` // column order; the first is the one ratios are about
	Results   []Result  `json:"results"`
	Summaries []Summary `json:"summaries"`
}

// NewReport summarizes results.
func NewReport(meta Meta, servers []string, rs []Result) *Report {
	return &Report{Meta: meta, Servers: servers, Results: rs, Summaries: Summarize(rs)}
}

// WriteJSON writes the report for scripts.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// find returns the summary of a server and workload.
func (r *Report) find(server, workload string) (Summary, bool) {
	for _, s := range r.Summaries {
		if s.Server == server && s.Workload == workload {
			return s, true
		}
	}
	return Summary{}, false
}

// Workloads lists the workload keys present, in run order (fan-out points
// by client count).
func (r *Report) Workloads() []string {
	seen := map[string]bool{}
	var ws []string
	for _, s := range r.Summaries {
		if !seen[s.Workload] {
			seen[s.Workload] = true
			ws = append(ws, s.Workload)
		}
	}
	rank := func(w string) (int, int) {
		base, n, _ := strings.Cut(w, "/")
		k, _ := strconv.Atoi(n)
		for i, a := range AllWorkloads {
			if a == base {
				return i, k
			}
		}
		return len(AllWorkloads), k
	}
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := ws[i], ws[j]
		ra, ka := rank(a)
		rb, kb := rank(b)
		if ra != rb {
			return ra < rb
		}
		return ka < kb
	})
	return ws
}

// Label is the row label of a workload.
func (r *Report) Label(w string) string {
	if l, ok := r.Meta.Labels[w]; ok {
		return l
	}
	unit := ""
	for _, s := range r.Summaries {
		if s.Workload == w {
			unit = s.Unit
			break
		}
	}
	if base, n, ok := strings.Cut(w, "/"); ok && base == WFanout {
		if n == "1" {
			return fmt.Sprintf("fan-out, 1 client, %s", unit)
		}
		return fmt.Sprintf("fan-out, %s clients, aggregate %s", n, unit)
	}
	return w + ", " + unit
}

// FormatValue prints a figure with precision that suits its size.
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "–"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func (r *Report) cell(server, w string) string {
	s, ok := r.find(server, w)
	if !ok {
		return "n/a"
	}
	if s.N == 0 && s.Unsupported {
		return "not supported"
	}
	if s.N == 0 {
		return "failed"
	}
	out := FormatValue(float64(s.Median))
	if s.Failed > 0 {
		out += fmt.Sprintf(" (%d/%d failed)", s.Failed, s.N+s.Failed)
	}
	return out
}

// mdEscape keeps a cell on its row.
func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}

// WriteMarkdown writes the result tables. The first server is the subject:
// the ratio columns are it divided by each other server.
func (r *Report) WriteMarkdown(w io.Writer) error {
	b := &strings.Builder{}
	ws := r.Workloads()
	subject := ""
	if len(r.Servers) > 0 {
		subject = r.Servers[0]
	}
	var peers []string
	for _, s := range r.Servers[min(1, len(r.Servers)):] {
		peers = append(peers, s)
	}
	// Headline table: medians and ratios.
	fmt.Fprintf(b, "| workload |")
	for _, s := range r.Servers {
		fmt.Fprintf(b, " %s |", mdEscape(s))
	}
	for _, p := range peers {
		fmt.Fprintf(b, " %s/%s |", mdEscape(subject), mdEscape(p))
	}
	b.WriteString("\n|---|")
	for range len(r.Servers) + len(peers) {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, wl := range ws {
		fmt.Fprintf(b, "| %s |", mdEscape(r.Label(wl)))
		for _, s := range r.Servers {
			fmt.Fprintf(b, " %s |", r.cell(s, wl))
		}
		for _, p := range peers {
			a, _ := r.find(subject, wl)
			c, _ := r.find(p, wl)
			ratio := math.NaN()
			if a.N > 0 && c.N > 0 {
				ratio = Ratio(float64(a.Median), float64(c.Median))
			}
			if math.IsNaN(ratio) {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(b, " %.2f× |", ratio)
			}
		}
		b.WriteString("\n")
	}

	// CPU: server cost per GiB, and the client's own load.
	var cpuRows []string
	for _, wl := range ws {
		for _, s := range r.Servers {
			if sm, ok := r.find(s, wl); ok && sm.N > 0 && sm.Unit == "MB/s" {
				cpuRows = append(cpuRows, wl)
				break
			}
		}
	}
	if len(cpuRows) > 0 {
		b.WriteString("\nCPU per GiB moved, server / client (seconds; medians). The client is this load generator; both share the machine's cores.\n\n| workload |")
		for _, s := range r.Servers {
			fmt.Fprintf(b, " %s |", mdEscape(s))
		}
		b.WriteString("\n|---|")
		for range r.Servers {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for _, wl := range cpuRows {
			fmt.Fprintf(b, "| %s |", mdEscape(r.Label(wl)))
			for _, s := range r.Servers {
				sm, ok := r.find(s, wl)
				if !ok || sm.N == 0 {
					b.WriteString(" n/a |")
					continue
				}
				fmt.Fprintf(b, " %s / %s |", FormatValue(float64(sm.ServerCPUPerGiB)), FormatValue(float64(sm.ClientCPUPerGiB)))
			}
			b.WriteString("\n")
		}
	}

	// Client CPU share for the rest, so a reader can tell the load
	// generator was not the limit.
	b.WriteString("\nCPU busy during the run, server / client (cores; 2.00 = both cores of a 2-core machine).\n\n| workload |")
	for _, s := range r.Servers {
		fmt.Fprintf(b, " %s |", mdEscape(s))
	}
	b.WriteString("\n|---|")
	for range r.Servers {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, wl := range ws {
		if wl == WIdle {
			continue // nothing runs: the CPU share is not meaningful
		}
		fmt.Fprintf(b, "| %s |", mdEscape(r.Label(wl)))
		for _, s := range r.Servers {
			sm, ok := r.find(s, wl)
			if !ok || sm.N == 0 {
				b.WriteString(" n/a |")
				continue
			}
			fmt.Fprintf(b, " %s / %s |", FormatValue(float64(sm.ServerCPUShare)), FormatValue(float64(sm.ClientCPUShare)))
		}
		b.WriteString("\n")
	}

	// Memory per idle session.
	var memRows []Summary
	for _, s := range r.Servers {
		if sm, ok := r.find(s, WIdle); ok && sm.N > 0 {
			memRows = append(memRows, sm)
		}
	}
	if len(memRows) > 0 {
		method := r.Meta.IdleMethod
		if method == "" {
			method = "growth of all the server's processes, main process included"
		}
		fmt.Fprintf(b, "\nMemory per idle logged-in session (%s; KiB, medians).\n\n", method)
		b.WriteString("| server | sessions | PSS/session | RSS/session |\n|---|---:|---:|---:|\n")
		for _, sm := range memRows {
			fmt.Fprintf(b, "| %s | %d | %s | %s |\n", mdEscape(sm.Server), sm.Clients, FormatValue(float64(sm.PSSPerSession)), FormatValue(float64(sm.RSSPerSession)))
		}
	}

	// Spread, so a reader sees the noise.
	b.WriteString("\nSpread over the repetitions (min–max).\n\n| workload |")
	for _, s := range r.Servers {
		fmt.Fprintf(b, " %s |", mdEscape(s))
	}
	b.WriteString("\n|---|")
	for range r.Servers {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, wl := range ws {
		fmt.Fprintf(b, "| %s |", mdEscape(r.Label(wl)))
		for _, s := range r.Servers {
			sm, ok := r.find(s, wl)
			if !ok || sm.N == 0 {
				b.WriteString(" n/a |")
				continue
			}
			fmt.Fprintf(b, " %s–%s (n=%d) |", FormatValue(float64(sm.Min)), FormatValue(float64(sm.Max)), sm.N)
		}
		b.WriteString("\n")
	}

	var fails []string
	for _, sm := range r.Summaries {
		if sm.Failed > 0 {
			fails = append(fails, fmt.Sprintf("- %s %s: %d failed; last error: %s", sm.Server, sm.Workload, sm.Failed, mdEscape(sm.LastErr)))
		}
	}
	if len(fails) > 0 {
		b.WriteString("\nFailures:\n\n" + strings.Join(fails, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Series is one line or one set of bars.
type Series struct {
	Name   string
	X      []float64
	Y      []float64 // NaN = no point
	Labels []string  // bar chart: group labels (len = len(Y))
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

// niceMax rounds up to 1, 2, 2.5 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

const svgW, svgH, padL, padR, padT, padB = 720, 420, 70, 150, 40, 60

func svgHeader(b *strings.Builder, title, ylabel string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
	fmt.Fprintf(b, `<text transform="translate(16,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padT+(svgH-padT-padB)/2, html.EscapeString(ylabel))
}

func yAxis(b *strings.Builder, ymax float64) {
	ph := float64(svgH - padT - padB)
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		y := float64(padT) + ph - ph*float64(i)/5
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", padL, svgW-padR, y, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padL-6, y+4, tick(v))
	}
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>`+"\n", padL, padL, padT, svgH-padB)
	fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>`+"\n", padL, svgW-padR, svgH-padB, svgH-padB)
}

func legend(b *strings.Builder, names []string) {
	for i, n := range names {
		y := padT + 10 + i*20
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", svgW-padR+12, y-10, palette[i%len(palette)])
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", svgW-padR+30, y, html.EscapeString(n))
	}
}

// tick labels an axis: whole numbers without decimals.
func tick(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return FormatValue(v)
}

// LineChartSVG draws y against x on a log2 x axis (client counts).
func LineChartSVG(title, xlabel, ylabel string, series []Series) string {
	b := &strings.Builder{}
	svgHeader(b, title, ylabel)
	ymax, xmin, xmax := 0.0, math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i, y := range s.Y {
			if !math.IsNaN(y) {
				ymax = math.Max(ymax, y)
				xmin = math.Min(xmin, s.X[i])
				xmax = math.Max(xmax, s.X[i])
			}
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 1, 2
	}
	if xmax <= xmin {
		xmax = xmin * 2
	}
	ymax = niceMax(ymax)
	yAxis(b, ymax)
	pw, ph := float64(svgW-padL-padR), float64(svgH-padT-padB)
	lx0, lx1 := math.Log2(xmin), math.Log2(xmax)
	px := func(x float64) float64 { return float64(padL) + pw*(math.Log2(x)-lx0)/(lx1-lx0) }
	py := func(y float64) float64 { return float64(padT) + ph - ph*y/ymax }
	for x := xmin; x <= xmax; x *= 2 {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), svgH-padB+16, tick(x))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", padL+(svgW-padL-padR)/2, svgH-padB+40, html.EscapeString(xlabel))
	var names []string
	for i, s := range series {
		names = append(names, s.Name)
		col := palette[i%len(palette)]
		var pts []string
		for j, y := range s.Y {
			if math.IsNaN(y) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[j]), py(y)))
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s</title></circle>`+"\n",
				px(s.X[j]), py(y), col, html.EscapeString(s.Name), FormatValue(y))
		}
		if len(pts) > 1 {
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), col)
		}
	}
	legend(b, names)
	b.WriteString("</svg>\n")
	return b.String()
}

// BarChartSVG draws grouped bars: one group per label, one bar per series.
func BarChartSVG(title, ylabel string, groups []string, series []Series) string {
	b := &strings.Builder{}
	svgHeader(b, title, ylabel)
	ymax := 0.0
	for _, s := range series {
		for _, y := range s.Y {
			if !math.IsNaN(y) {
				ymax = math.Max(ymax, y)
			}
		}
	}
	ymax = niceMax(ymax)
	yAxis(b, ymax)
	pw, ph := float64(svgW-padL-padR), float64(svgH-padT-padB)
	gw := pw / float64(max(1, len(groups)))
	bw := gw * 0.8 / float64(max(1, len(series)))
	var names []string
	for i, s := range series {
		names = append(names, s.Name)
		for g, y := range s.Y {
			if g >= len(groups) || math.IsNaN(y) {
				continue
			}
			h := ph * y / ymax
			x := float64(padL) + gw*float64(g) + gw*0.1 + bw*float64(i)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x, float64(padT)+ph-h, bw*0.92, h, palette[i%len(palette)], html.EscapeString(s.Name), html.EscapeString(groups[g]), FormatValue(y))
		}
	}
	for g, l := range groups {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", float64(padL)+gw*(float64(g)+0.5), svgH-padB+16, html.EscapeString(l))
	}
	legend(b, names)
	b.WriteString("</svg>\n")
	return b.String()
}

// FanoutSVG is throughput against clients, one line per server.
func (r *Report) FanoutSVG() string {
	var series []Series
	for _, srv := range r.Servers {
		s := Series{Name: srv}
		for _, wl := range r.Workloads() {
			base, n, ok := strings.Cut(wl, "/")
			if !ok || base != WFanout {
				continue
			}
			k, _ := strconv.Atoi(n)
			sm, found := r.find(srv, wl)
			y := math.NaN()
			if found && sm.N > 0 {
				y = float64(sm.Median)
			}
			s.X = append(s.X, float64(k))
			s.Y = append(s.Y, y)
		}
		series = append(series, s)
	}
	return LineChartSVG("Fan-out: N clients RETR the same image (aggregate, medians)", "clients", "MB/s", series)
}

// ThroughputSVG is per-server bars for the single-stream transfers.
func (r *Report) ThroughputSVG() string {
	groups := []string{}
	keys := []string{}
	short := map[string]string{WRetr: "RETR", WStor: "STOR", WFTPSRetr: "FTPS RETR"}
	for _, wl := range []string{WRetr, WStor, WFTPSRetr} {
		for _, s := range r.Summaries {
			if s.Workload == wl && s.N > 0 {
				groups = append(groups, short[wl])
				keys = append(keys, wl)
				break
			}
		}
	}
	return BarChartSVG("Single stream throughput (medians)", "MB/s", groups,
		r.barSeries(keys, func(sm Summary) float64 { return float64(sm.Median) }))
}

// barSeries is one series per server of value(summary) for each
// workload key, NaN where the server has none.
func (r *Report) barSeries(keys []string, value func(Summary) float64) []Series {
	var series []Series
	for _, srv := range r.Servers {
		s := Series{Name: srv}
		for _, k := range keys {
			sm, ok := r.find(srv, k)
			y := math.NaN()
			if ok && sm.N > 0 {
				y = value(sm)
			}
			s.Y = append(s.Y, y)
		}
		series = append(series, s)
	}
	return series
}

// CPUSVG is per-server bars of server CPU seconds per GiB.
func (r *Report) CPUSVG() string {
	var groups, keys []string
	short := map[string]string{WRetr: "RETR", WStor: "STOR", WFTPSRetr: "FTPS RETR"}
	for _, wl := range r.Workloads() {
		lbl, ok := short[wl]
		if !ok && strings.HasPrefix(wl, WFanout+"/32") {
			lbl, ok = "fan-out 32", true
		}
		if !ok {
			continue
		}
		for _, s := range r.Summaries {
			if s.Workload == wl && s.N > 0 && s.ServerCPUPerGiB.Known() {
				groups, keys = append(groups, lbl), append(keys, wl)
				break
			}
		}
	}
	return BarChartSVG("Server CPU per GiB moved (lower is better)", "CPU s / GiB", groups,
		r.barSeries(keys, func(sm Summary) float64 { return float64(sm.ServerCPUPerGiB) }))
}

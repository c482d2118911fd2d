package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

func sampleReport() *Report {
	var rs []Result
	for rep := 1; rep <= 3; rep++ {
		f := float64(rep)
		rs = append(rs,
			Result{Server: "sluice", Workload: WRetr, Unit: "MB/s", Rep: rep, Value: 3000 + f, Bytes: 2 << 30, Seconds: 0.7, ClientCPU: 0.3, ServerCPU: 0.5},
			Result{Server: "vsftpd", Workload: WRetr, Unit: "MB/s", Rep: rep, Value: 1500, Bytes: 2 << 30, Seconds: 1.4, ClientCPU: 0.3, ServerCPU: 0.6},
			Result{Server: "sluice", Workload: "fanout/1", Clients: 1, Unit: "MB/s", Rep: rep, Value: 2000, Bytes: 1 << 28, Seconds: 0.1, ServerCPU: 0.1},
			Result{Server: "sluice", Workload: "fanout/32", Clients: 32, Unit: "MB/s", Rep: rep, Value: 3500, Bytes: 8 << 30, Seconds: 2, ServerCPU: 2},
			Result{Server: "vsftpd", Workload: "fanout/32", Clients: 32, Unit: "MB/s", Rep: rep, Value: 3600, Bytes: 8 << 30, Seconds: 2, ServerCPU: 2},
			Result{Server: "sluice", Workload: WList, Unit: "s", Rep: rep, Value: 0.1, Seconds: 0.5, ServerCPU: 0.1},
			Result{Server: "vsftpd", Workload: WList, Unit: "s", Rep: rep, Value: 0.05, Seconds: 0.25, ServerCPU: 0.1},
			Result{Server: "vsftpd", Workload: WMLSD, Unit: "s", Rep: rep, Err: "MLSD: 500 Unknown command.", Unsupported: true},
			Result{Server: "vsftpd", Workload: WFTPSRetr, Unit: "MB/s", Rep: rep, Value: 400, Bytes: 2 << 30, Seconds: 5, ServerCPU: 5},
			Result{Server: "sluice", Workload: WIdle, Unit: "KiB", Rep: rep, Clients: 10, Value: 500, Mem: &Mem{PSSKiB: 5000, RSSKiB: 80000}, ServerCPU: -1},
		)
	}
	rs = append(rs, Result{Server: "vsftpd", Workload: WRetr, Unit: "MB/s", Rep: 4, Err: "RETR big.img: 550 <no|such> file"})
	return NewReport(Meta{Date: "2026-01-01", Command: "make bench", Reps: 3,
		Labels: map[string]string{WRetr: "RETR 2 GiB, MB/s"}}, []string{"sluice", "vsftpd"}, rs)
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| workload | sluice | vsftpd | sluice/vsftpd |",
		"| RETR 2 GiB, MB/s | 3002 | 1500 (1/4 failed) | 2.00× |",
		"| fan-out, 1 client, MB/s | 2000 | n/a | – |",
		"| fan-out, 32 clients, aggregate MB/s | 3500 | 3600 | 0.97× |",
		"| list, s | 0.100 | 0.050 | 2.00× |",
		"| mlsd, s | n/a | not supported | – |",
		"| sluice | 10 | 500 | 8000 |",       // PSS, RSS per session
		"RETR big.img: 550 <no\\|such> file", // a | would break the table
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table row has as many cells as its header.
	var cols int
	for _, l := range strings.Split(md, "\n") {
		if !strings.HasPrefix(l, "|") {
			cols = 0
			continue
		}
		n := strings.Count(strings.ReplaceAll(l, "\\|", ""), "|")
		if cols == 0 {
			cols = n
		} else if n != cols {
			t.Errorf("row has %d separators, header %d: %s", n, cols, l)
		}
	}
}

func TestJSON(t *testing.T) {
	r := sampleReport()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse: %v", err)
	}
	if len(back.Results) != len(r.Results) || len(back.Summaries) != len(r.Summaries) || back.Meta.Command != "make bench" {
		t.Errorf("round trip lost data: %d/%d results", len(back.Results), len(r.Results))
	}
	for _, s := range back.Summaries {
		if s.Server == "sluice" && s.Workload == WList && s.ServerCPUPerGiB.Known() {
			t.Errorf("listing moves no payload: CPU/GiB should be null, got %v", s.ServerCPUPerGiB)
		}
	}
}

// wellFormed parses an SVG with encoding/xml and returns its elements.
func wellFormed(t *testing.T, name, svg string) map[string]int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	d.Strict = true
	seen := map[string]int{}
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v\n%s", name, err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
				if se.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("%s: namespace %q", name, se.Name.Space)
				}
			}
			seen[se.Name.Local]++
		}
	}
	if root != "svg" {
		t.Errorf("%s: root element %q", name, root)
	}
	return seen
}

func TestSVG(t *testing.T) {
	r := sampleReport()
	f := wellFormed(t, "fanout", r.FanoutSVG())
	if f["polyline"] != 1 || f["circle"] != 3 { // sluice: 2 points; vsftpd: 1
		t.Errorf("fanout chart: %v", f)
	}
	tp := wellFormed(t, "throughput", r.ThroughputSVG())
	if tp["rect"] < 3 { // background + bars
		t.Errorf("throughput chart: %v", tp)
	}
	wellFormed(t, "cpu", r.CPUSVG())
	// Names with markup in them are escaped.
	s := BarChartSVG(`a<b & "c"`, "y", []string{"<g>"}, []Series{{Name: "s&t", Y: []float64{1}}})
	wellFormed(t, "escaped", s)
	// Empty and NaN-only data still draw.
	wellFormed(t, "empty", LineChartSVG("t", "x", "y", []Series{{Name: "n", X: []float64{1}, Y: []float64{math.NaN()}}}))
	wellFormed(t, "nobars", BarChartSVG("t", "y", nil, nil))
}

func TestFormatValue(t *testing.T) {
	for in, want := range map[float64]string{3590.4: "3590", 12.345: "12.3", 1.234: "1.23", 0.0601: "0.060", math.NaN(): "–"} {
		if got := FormatValue(in); got != want {
			t.Errorf("FormatValue(%v) = %q, want %q", in, got, want)
		}
	}
}

package bench

import (
	"encoding/json"
	"math"
	"testing"
)

func TestMedian(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{1, nan, 9, 5}, 5}, // NaN (an unknown figure) is ignored
		{[]float64{2, 2, 2, 100, 100}, 2},
	} {
		in := append([]float64(nil), c.in...)
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in { // the input is not reordered
			if !(in[i] == c.in[i] || math.IsNaN(in[i]) && math.IsNaN(c.in[i])) {
				t.Errorf("Median modified its input: %v", c.in)
			}
		}
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Median([]float64{nan})) {
		t.Error("Median of nothing must be NaN")
	}
}

func TestMinMaxRatio(t *testing.T) {
	lo, hi := MinMax([]float64{4, math.NaN(), -1, 7})
	if lo != -1 || hi != 7 {
		t.Errorf("MinMax = %v, %v", lo, hi)
	}
	if r := Ratio(3, 2); r != 1.5 {
		t.Errorf("Ratio(3,2) = %v", r)
	}
	for _, r := range []float64{Ratio(1, 0), Ratio(math.NaN(), 2), Ratio(2, math.NaN())} {
		if !math.IsNaN(r) {
			t.Errorf("undefined ratio = %v, want NaN", r)
		}
	}
	if got := CPUPerGiB(0.5, 2<<30); got != 0.25 {
		t.Errorf("CPUPerGiB = %v", got)
	}
	if !math.IsNaN(CPUPerGiB(-1, 1<<30)) || !math.IsNaN(CPUPerGiB(1, 0)) {
		t.Error("CPUPerGiB must be NaN when unknown")
	}
}

func TestSummarize(t *testing.T) {
	rs := []Result{
		{Server: "a", Workload: "retr", Unit: "MB/s", Value: 100, Bytes: 1 << 30, Seconds: 1, ClientCPU: 0.2, ServerCPU: 0.4},
		{Server: "b", Workload: "retr", Unit: "MB/s", Value: 50, Bytes: 1 << 30, Seconds: 2, ClientCPU: 0.2, ServerCPU: -1},
		{Server: "a", Workload: "retr", Unit: "MB/s", Value: 300, Bytes: 1 << 30, Seconds: 1, ClientCPU: 0.4, ServerCPU: 0.6},
		{Server: "a", Workload: "retr", Unit: "MB/s", Value: 200, Bytes: 2 << 30, Seconds: 1, ClientCPU: 0.2, ServerCPU: 0.2},
		{Server: "a", Workload: "retr", Unit: "MB/s", Err: "boom"},
		{Server: "a", Workload: "mlsd", Unit: "s", Err: "MLSD: 500 Unknown command", Unsupported: true},
		{Server: "a", Workload: "idle", Unit: "KiB", Clients: 10, Value: 400, Mem: &Mem{RSSKiB: 9000, PSSKiB: 4000}},
	}
	ss := Summarize(rs)
	if len(ss) != 4 || ss[0].Server != "a" || ss[1].Server != "b" {
		t.Fatalf("groups/order wrong: %+v", ss)
	}
	a := ss[0]
	if a.N != 3 || a.Failed != 1 || a.Median != 200 || a.Min != 100 || a.Max != 300 || a.LastErr != "boom" {
		t.Errorf("summary a: %+v", a)
	}
	// Server CPU per GiB: 0.4, 0.6, 0.1 → median 0.4.
	if math.Abs(float64(a.ServerCPUPerGiB)-0.4) > 1e-9 {
		t.Errorf("server CPU/GiB = %v, want 0.4", a.ServerCPUPerGiB)
	}
	if b := ss[1]; b.ServerCPUPerGiB.Known() || b.ServerCPUShare.Known() {
		t.Errorf("remote server has no CPU figure: %+v", b)
	}
	if m := ss[2]; !m.Unsupported || m.N != 0 || m.Failed != 0 {
		t.Errorf("unsupported: %+v", m)
	}
	if i := ss[3]; i.PSSPerSession != 400 || i.RSSPerSession != 900 {
		t.Errorf("idle per session: %+v", i)
	}
	// NaN must survive JSON as null and come back as NaN.
	out, err := json.Marshal(ss[1])
	if err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if back.ServerCPUPerGiB.Known() || back.Median != 50 {
		t.Errorf("JSON round trip: %s → %+v", out, back)
	}
}

func TestParseClients(t *testing.T) {
	got, err := ParseClients("1-256")
	if err != nil || len(got) != 9 || got[0] != 1 || got[8] != 256 {
		t.Errorf("1-256 → %v, %v", got, err)
	}
	got, err = ParseClients("3, 5,7")
	if err != nil || len(got) != 3 || got[2] != 7 {
		t.Errorf("3,5,7 → %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "x", "8-2", "-3"} {
		if _, err := ParseClients(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseReplies(t *testing.T) {
	if p, err := parseEPSV("Entering Extended Passive Mode (|||50012|)"); err != nil || p != 50012 {
		t.Errorf("EPSV: %d %v", p, err)
	}
	if p, err := parsePASV("Entering Passive Mode (127,0,0,1,195,80)."); err != nil || p != 195<<8|80 {
		t.Errorf("PASV: %d %v", p, err)
	}
	if p, err := parsePASV("Entering Passive Mode 127,0,0,1,4,1"); err != nil || p != 4<<8|1 {
		t.Errorf("PASV without parentheses: %d %v", p, err)
	}
	for _, bad := range []string{"(|||0|)", "(|||70000|)", "nothing", "(||50012|)"} {
		if _, err := parseEPSV(bad); err == nil {
			t.Errorf("EPSV %q accepted", bad)
		}
	}
	if _, err := parsePASV("(1,2,3,4,5)"); err == nil {
		t.Error("short PASV accepted")
	}
}

func TestParseTarget(t *testing.T) {
	tg, err := ParseTarget("ftp://u:p%40ss@127.0.0.1:2121/pub")
	if err != nil || tg.Addr != "127.0.0.1:2121" || tg.User != "u" || tg.Pass != "p@ss" || tg.TLS != TLSNone || tg.Path("x") != "pub/x" {
		t.Errorf("ftp: %+v %v", tg, err)
	}
	tg, err = ParseTarget("ftps://[::1]/")
	if err != nil || tg.Addr != "[::1]:990" || tg.TLS != TLSImplicit || tg.User != "anonymous" || tg.Path("x") != "x" {
		t.Errorf("ftps: %+v %v", tg, err)
	}
	tg, err = ParseTarget("ftpes://h:21")
	if err != nil || tg.TLS != TLSExplicit || tg.TLSConfig == nil || tg.TLSConfig.ServerName != "h" {
		t.Errorf("ftpes: %+v %v", tg, err)
	}
	for _, bad := range []string{"http://h/", "ftp:///x", "raw://h"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

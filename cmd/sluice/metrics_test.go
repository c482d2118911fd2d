package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape fetches /metrics and returns series → value.
func scrape(t *testing.T, url string) (map[string]float64, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	line := regexp.MustCompile(`^([a-z_]+(?:\{[^}]*\})?) (\S+)$`)
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "# HELP ") || strings.HasPrefix(l, "# TYPE ") {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a valid exposition line: %q", l)
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil && m[2] != "+Inf" {
			t.Fatalf("bad value in %q", l)
		}
		out[m[1]] = v
	}
	return out, string(body)
}

// TestMetricsMatchAuditLog: after a scripted mix of sessions, the metrics
// endpoint's counters equal what the audit log says, and promtool (when
// installed) accepts the exposition.
func TestMetricsMatchAuditLog(t *testing.T) {
	mport := freePort(t)
	s := startServer(t, serverOpts{extraTables: fmt.Sprintf("[metrics]\nlisten = \"127.0.0.1:%d\"\n", mport)})
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)

	os.WriteFile(filepath.Join(s.root, "dl.bin"), make([]byte, 12345), 0o644)
	for i := 0; i < 3; i++ {
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		d := k.epsvDial()
		k.cmd(fmt.Sprintf("STOR up%d.bin", i), 150)
		d.Write(make([]byte, 1000*(i+1)))
		d.Close()
		k.expect(226)
		d = k.epsvDial()
		k.cmd("RETR dl.bin", 150)
		io.Copy(io.Discard, d)
		d.Close()
		k.expect(226)
		k.cmd("SIZE missing.bin", 550)
		k.cmd("QUIT", 221)
	}
	for i := 0; i < 2; i++ {
		k := dialCtrl(t, s.addr())
		k.cmd("USER demo", 331)
		k.cmd("PASS nope", 530)
		k.cmd("QUIT", 221)
	}
	waitLog(t, s, `"event":"session.close"`, 6) // 5 sessions and the start-up probe

	got, body := scrape(t, url)
	// What the audit log says.
	var okLogins, failed, xfers, bytesIn, bytesOut float64
	for _, e := range auditEvents(s) {
		switch e["event"] {
		case "login.ok":
			okLogins++
		case "login.failed":
			failed++
		case "transfer":
			xfers++
			if e["direction"] == "in" {
				bytesIn += e["bytes"].(float64)
			} else {
				bytesOut += e["bytes"].(float64)
			}
		}
	}
	checks := []struct {
		series string
		want   float64
	}{
		{`sluice_logins_total{result="ok"}`, okLogins},
		{`sluice_logins_total{result="failed"}`, failed},
		{`sluice_transfer_bytes_total{account="demo",direction="in"}`, bytesIn},
		{`sluice_transfer_bytes_total{account="demo",direction="out"}`, bytesOut},
		{`sluice_transfers_total{account="demo",direction="in",result="ok"}`, 3},
		{`sluice_transfers_total{account="demo",direction="out",result="ok"}`, 3},
		{`sluice_transfer_duration_seconds_count{direction="in"}`, 3},
		{`sluice_sessions_opened_total{protocol="ftp"}`, 6},
		{`sluice_sessions{protocol="ftp",phase="post_auth"}`, 0},
	}
	if okLogins != 3 || failed != 2 || xfers != 6 || bytesIn != 6000 || bytesOut != 3*12345 {
		t.Fatalf("audit log: %v ok, %v failed, %v transfers, %v in, %v out", okLogins, failed, xfers, bytesIn, bytesOut)
	}
	for _, c := range checks {
		if v, ok := got[c.series]; !ok || v != c.want {
			t.Errorf("%s = %v (present %v), want %v", c.series, v, ok, c.want)
		}
	}
	if got[`sluice_worker_spawn_seconds_count`] < 6 {
		t.Errorf("worker spawn histogram counted %v starts", got[`sluice_worker_spawn_seconds_count`])
	}
	if t.Failed() {
		t.Logf("exposition:\n%s", body)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		f := filepath.Join(t.TempDir(), "metrics.txt")
		os.WriteFile(f, []byte(body), 0o644)
		out, err := runTool(t, 30*time.Second, "sh", "-c", promtool+" check metrics < "+f)
		if err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed (Debian package prometheus): checked the format with our own parser only")
	}
}

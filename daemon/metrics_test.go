package daemon

import (
	"strings"
	"testing"
	"time"
)

func TestMetricsExposition(t *testing.T) {
	m := newMetrics(2)
	m.transfer("alice", "in", 100, time.Second, true)
	m.transfer("bob", "out", 50, 2*time.Second, true)
	m.transfer("carol", "out", 7, time.Second, false) // third account: _other
	m.transfer("dave", "out", 3, time.Second, true)   // fourth: _other too
	m.transfer("alice", "sideways", 1, time.Second, true)
	m.hookRan("exec", true)
	m.hookRan("webhook", false)
	m.hookRan("webhook", false)
	m.login("ok")
	m.spawned(3 * time.Millisecond)
	var b strings.Builder
	m.write(&b, gauges{sessions: map[[2]string]int{{"ftp", "pre_auth"}: 1, {"ftp", "post_auth"}: 2, {"sftp", "post_auth"}: 1}, idleWorkers: 4, banned: 1})
	out := b.String()
	for _, want := range []string{
		`sluice_transfer_bytes_total{account="alice",direction="in"} 100`,
		`sluice_transfer_bytes_total{account="bob",direction="out"} 50`,
		`sluice_transfer_bytes_total{account="_other",direction="out"} 10`,
		`sluice_transfers_total{account="_other",direction="out",result="failed"} 1`,
		`sluice_transfer_duration_seconds_bucket{direction="out",le="1"} 2`,
		`sluice_transfer_duration_seconds_bucket{direction="out",le="+Inf"} 3`,
		`sluice_transfer_duration_seconds_count{direction="out"} 3`,
		`sluice_hook_runs_total{action="exec",result="ok"} 1`,
		`sluice_hook_runs_total{action="webhook",result="failed"} 2`,
		`sluice_sessions{protocol="ftp",phase="post_auth"} 2`,
		`sluice_sessions{protocol="sftp",phase="post_auth"} 1`,
		`sluice_worker_spawn_seconds_bucket{le="0.005"} 1`,
		`sluice_banned_addresses 1`,
		`sluice_workers_idle 4`,
		"# TYPE sluice_transfer_duration_seconds histogram",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Contains(out, "sideways") || strings.Contains(out, `account="carol"`) {
		t.Errorf("unbounded or invalid labels:\n%s", out)
	}
	if labels("a", `x"y\z`+"\n") != `{a="x\"y\\z\n"}` {
		t.Errorf("label escaping: %s", labels("a", `x"y\z`+"\n"))
	}
}

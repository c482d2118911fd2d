package daemon

import (
	"github.com/sluice-ftp/sluice/daemon/ipc"

	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// metrics holds the supervisor's counters and writes them in the
// Prometheus text exposition format (version 0.0.4). It is hand-written
// rather than prometheus/client_golang: a dozen series do not justify a
// dependency tree of that size in a binary that every session re-executes
// (worker start-up cost grows with the binary), and the format is small
// and stable.
//
// Everything is counted in the supervisor, from what it sees itself
// (accepts, logins, worker lives) and from the audit events workers send;
// the numbers therefore match the audit log by construction.
type metrics struct {
	mu          sync.Mutex
	maxAccounts int

	sessionsOpened  map[string]uint64 // protocol
	sessionsRefused map[string]uint64 // reason
	logins          map[string]uint64 // result
	workerKills     map[string]uint64 // reason class
	workerCrashes   uint64
	denials         map[string]uint64    // sandbox denials by mechanism (seccomp, landlock)
	hookRuns        map[[2]string]uint64 // action, result
	bytes           map[[2]string]uint64 // account, direction
	transfers       map[[3]string]uint64 // account, direction, result
	accounts        map[string]bool      // accounts with their own label
	xferDuration    map[string]*histogram
	spawnLatency    *histogram
}

// Histogram buckets: transfers from sub-second to hours; worker start-up
// from a millisecond to seconds.
var (
	transferBuckets = []float64{0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600}
	spawnBuckets    = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
)

type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative
	sum    float64
	n      uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i]++
	h.sum += v
	h.n++
}

func newMetrics(maxAccounts int) *metrics {
	return &metrics{
		maxAccounts:     maxAccounts,
		sessionsOpened:  map[string]uint64{},
		sessionsRefused: map[string]uint64{},
		logins:          map[string]uint64{},
		workerKills:     map[string]uint64{},
		denials:         map[string]uint64{"seccomp": 0, "landlock": 0},
		hookRuns:        map[[2]string]uint64{},
		bytes:           map[[2]string]uint64{},
		transfers:       map[[3]string]uint64{},
		accounts:        map[string]bool{},
		xferDuration:    map[string]*histogram{"in": newHistogram(transferBuckets), "out": newHistogram(transferBuckets)},
		spawnLatency:    newHistogram(spawnBuckets),
	}
}

func (m *metrics) sessionOpened(protocol string) {
	m.mu.Lock()
	m.sessionsOpened[protocol]++
	m.mu.Unlock()
}

func (m *metrics) sessionRefused(reason string) {
	m.mu.Lock()
	m.sessionsRefused[reason]++
	m.mu.Unlock()
}

func (m *metrics) login(result string) {
	m.mu.Lock()
	m.logins[result]++
	m.mu.Unlock()
}

func (m *metrics) workerKilled(reason string) {
	m.mu.Lock()
	m.workerKills[reason]++
	m.mu.Unlock()
}

func (m *metrics) workerCrashed() {
	m.mu.Lock()
	m.workerCrashes++
	m.mu.Unlock()
}

func (m *metrics) hookRan(action string, ok bool) {
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.mu.Lock()
	m.hookRuns[[2]string{action, result}]++
	m.mu.Unlock()
}

func (m *metrics) spawned(d time.Duration) {
	m.mu.Lock()
	m.spawnLatency.observe(d.Seconds())
	m.mu.Unlock()
}

// sandboxDenied counts one sandbox denial.
func (m *metrics) sandboxDenied(kind string) {
	m.mu.Lock()
	m.denials[kind]++
	m.mu.Unlock()
}

// transfer counts one finished transfer. ok is a 2xx final reply.
func (m *metrics) transfer(account, dir string, bytes int64, d time.Duration, ok bool) {
	if dir != "in" && dir != "out" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	label := account
	if !m.accounts[account] {
		if len(m.accounts) < m.maxAccounts {
			m.accounts[account] = true
		} else {
			label = "_other"
		}
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	if bytes > 0 {
		m.bytes[[2]string{label, dir}] += uint64(bytes)
	}
	m.transfers[[3]string{label, dir, result}]++
	m.xferDuration[dir].observe(d.Seconds())
}

// gauges are read from the supervisor at scrape time.
type gauges struct {
	sessions    map[[2]string]int // protocol, phase
	idleWorkers int
	banned      int
	// Accounting: the mode, and per account (at most max_accounts of
	// them, first by name) the counters and quota standing.
	accounting string
	accounts   []acctGauge
}

// acctGauge is one account's accounting figures at scrape time.
type acctGauge struct {
	name    string
	in, out uint64
	quota   *ipc.QuotaInfo
}

// write renders every series, sorted, so the output is stable.
func (m *metrics) write(w io.Writer, g gauges) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := &expo{w: w}
	p.family("sluice_sessions", "gauge", "Sessions now, by protocol and phase (pre_auth: connected, not logged in).")
	sk := make([][2]string, 0, len(g.sessions))
	for k := range g.sessions {
		sk = append(sk, k)
	}
	sort.Slice(sk, func(i, j int) bool { return sk[i][0]+"\x00"+sk[i][1] < sk[j][0]+"\x00"+sk[j][1] })
	for _, k := range sk {
		p.sample("sluice_sessions", labels("protocol", k[0], "phase", k[1]), float64(g.sessions[k]))
	}
	p.family("sluice_sessions_opened_total", "counter", "Connections handed to a worker.")
	for _, k := range sortedKeys(m.sessionsOpened) {
		p.sample("sluice_sessions_opened_total", labels("protocol", k), float64(m.sessionsOpened[k]))
	}
	p.family("sluice_sessions_refused_total", "counter", "Connections refused at accept, by reason.")
	for _, k := range sortedKeys(m.sessionsRefused) {
		p.sample("sluice_sessions_refused_total", labels("reason", k), float64(m.sessionsRefused[k]))
	}
	p.family("sluice_logins_total", "counter", "Login attempts, by result (ok, failed, banned, refused).")
	for _, k := range sortedKeys(m.logins) {
		p.sample("sluice_logins_total", labels("result", k), float64(m.logins[k]))
	}
	p.family("sluice_banned_addresses", "gauge", "Client addresses banned now.")
	p.sample("sluice_banned_addresses", "", float64(g.banned))
	p.family("sluice_transfer_bytes_total", "counter", "Payload bytes of finished transfers, by account and direction (in: upload).")
	bk := make([][2]string, 0, len(m.bytes))
	for k := range m.bytes {
		bk = append(bk, k)
	}
	sort.Slice(bk, func(i, j int) bool { return bk[i][0]+"\x00"+bk[i][1] < bk[j][0]+"\x00"+bk[j][1] })
	for _, k := range bk {
		p.sample("sluice_transfer_bytes_total", labels("account", k[0], "direction", k[1]), float64(m.bytes[k]))
	}
	p.family("sluice_transfers_total", "counter", "Finished transfers, by account, direction and result.")
	tk := make([][3]string, 0, len(m.transfers))
	for k := range m.transfers {
		tk = append(tk, k)
	}
	sort.Slice(tk, func(i, j int) bool { return strings.Join(tk[i][:], "\x00") < strings.Join(tk[j][:], "\x00") })
	for _, k := range tk {
		p.sample("sluice_transfers_total", labels("account", k[0], "direction", k[1], "result", k[2]), float64(m.transfers[k]))
	}
	p.family("sluice_transfer_duration_seconds", "histogram", "Duration of finished transfers.")
	for _, dir := range []string{"in", "out"} {
		p.histogram("sluice_transfer_duration_seconds", "direction", dir, m.xferDuration[dir])
	}
	p.family("sluice_worker_spawn_seconds", "histogram", "From starting a worker process to its Ready message.")
	p.histogram("sluice_worker_spawn_seconds", "", "", m.spawnLatency)
	p.family("sluice_workers_idle", "gauge", "Pre-started workers waiting for a connection.")
	p.sample("sluice_workers_idle", "", float64(g.idleWorkers))
	p.family("sluice_worker_kills_total", "counter", "Workers the supervisor killed, by reason (ipc_violation: broke the request table or sent malformed IPC).")
	for _, k := range sortedKeys(m.workerKills) {
		p.sample("sluice_worker_kills_total", labels("reason", k), float64(m.workerKills[k]))
	}
	p.family("sluice_worker_crashes_total", "counter", "Workers that died with a session and without saying goodbye.")
	p.sample("sluice_worker_crashes_total", "", float64(m.workerCrashes))
	p.family("sluice_sandbox_denials_total", "counter", "System calls (seccomp) and accesses (Landlock, when kernel audit is on) the sandbox refused to session workers, from the kernel's audit records.")
	for _, k := range sortedKeys(m.denials) {
		p.sample("sluice_sandbox_denials_total", labels("mechanism", k), float64(m.denials[k]))
	}
	p.family("sluice_accounting_mode", "gauge", "1 for the accounting mode in use: ebpf (kernel counters) or userspace (workers' reports).")
	p.sample("sluice_accounting_mode", labels("mode", g.accounting), 1)
	p.family("sluice_account_data_bytes_total", "counter", "Data payload bytes counted by the accounting layer, by account and direction (in: upload); kept across restarts.")
	for _, a := range g.accounts {
		p.sample("sluice_account_data_bytes_total", labels("account", a.name, "direction", "in"), float64(a.in))
		p.sample("sluice_account_data_bytes_total", labels("account", a.name, "direction", "out"), float64(a.out))
	}
	p.family("sluice_quota_used", "gauge", "Quota usage by account and quota: storage_bytes, storage_files, transfer_in_bytes, transfer_out_bytes (this period).")
	for _, a := range g.accounts {
		if q := a.quota; q != nil {
			eachQuota(q, func(kind string, used, _ int64) {
				p.sample("sluice_quota_used", labels("account", a.name, "quota", kind), float64(used))
			})
		}
	}
	p.family("sluice_quota_limit", "gauge", "Quota limits by account and quota (only quotas that are set).")
	for _, a := range g.accounts {
		if q := a.quota; q != nil {
			eachQuota(q, func(kind string, _, limit int64) {
				p.sample("sluice_quota_limit", labels("account", a.name, "quota", kind), float64(limit))
			})
		}
	}
	p.family("sluice_hook_runs_total", "counter", "Hook runs (exec or webhook), by result; retries count again.")
	hk := make([][2]string, 0, len(m.hookRuns))
	for k := range m.hookRuns {
		hk = append(hk, k)
	}
	sort.Slice(hk, func(i, j int) bool { return hk[i][0]+"\x00"+hk[i][1] < hk[j][0]+"\x00"+hk[j][1] })
	for _, k := range hk {
		p.sample("sluice_hook_runs_total", labels("action", k[0], "result", k[1]), float64(m.hookRuns[k]))
	}
}

// expo writes exposition lines.
type expo struct{ w io.Writer }

func (p *expo) family(name, typ, help string) {
	fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (p *expo) sample(name, lbls string, v float64) {
	fmt.Fprintf(p.w, "%s%s %s\n", name, lbls, formatFloat(v))
}

func (p *expo) histogram(name, lk, lv string, h *histogram) {
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		p.sample(name+"_bucket", labels(lk, lv, "le", formatFloat(b)), float64(cum))
	}
	cum += h.counts[len(h.bounds)]
	p.sample(name+"_bucket", labels(lk, lv, "le", "+Inf"), float64(cum))
	p.sample(name+"_sum", labels(lk, lv), h.sum)
	p.sample(name+"_count", labels(lk, lv), float64(h.n))
}

func formatFloat(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return fmt.Sprintf("%g", v)
}

// labels renders {k="v",...}; empty keys are skipped. Values are escaped
// as the format requires (account names are restricted by the config
// loader, but the escaping does not rely on it).
func labels(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1]))
		b.WriteByte('"')
	}
	if b.Len() == 0 {
		return ""
	}
	return "{" + b.String() + "}"
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// serveMetrics runs the endpoint until ctx ends. It serves GET /metrics
// only, with short timeouts: it is an operator's port, but the supervisor
// holds the secrets, so it gives a slow or hostile peer nothing to hold.
func (s *Server) serveMetrics(ctx context.Context, l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.metrics.write(w, s.gauges())
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		s.logs.Ops.Error().Err(err).Msg("metrics endpoint stopped")
	}
}

func (s *Server) gauges() gauges {
	g := gauges{sessions: map[[2]string]int{{"ftp", "pre_auth"}: 0, {"ftp", "post_auth"}: 0}, idleWorkers: len(s.idle)}
	s.mu.Lock()
	for w := range s.workers {
		w.mu.Lock()
		proto := listenerProtocol(w.sess.Listener)
		switch w.phase {
		case phasePreAuth:
			g.sessions[[2]string{proto, "pre_auth"}]++
		case phasePostAuth:
			g.sessions[[2]string{proto, "post_auth"}]++
		}
		w.mu.Unlock()
	}
	s.mu.Unlock()
	g.banned = s.auth.bannedCount()
	g.accounting = s.meter.mode
	cfg := s.config()
	names := make([]string, 0, len(cfg.Accounts))
	for i := range cfg.Accounts {
		names = append(names, cfg.Accounts[i].Name)
	}
	sort.Strings(names)
	for _, n := range names {
		if len(g.accounts) >= cfg.Metrics.MaxAccounts {
			break
		}
		acct := cfg.Account(n)
		c := s.meter.counters(n)
		a := acctGauge{name: n, in: c.BytesIn, out: c.BytesOut}
		if s.meter.usage.tracked(n) || acct.Limits.TransferQuotaIn != 0 || acct.Limits.TransferQuotaOut != 0 {
			q := s.quotaInfo(acct, nil)
			a.quota = &q
		}
		g.accounts = append(g.accounts, a)
	}
	return g
}

// eachQuota calls f for every quota of q that is set.
func eachQuota(q *ipc.QuotaInfo, f func(kind string, used, limit int64)) {
	if q.BytesLimit > 0 {
		f("storage_bytes", q.BytesUsed, q.BytesLimit)
	}
	if q.FilesLimit > 0 {
		f("storage_files", q.FilesUsed, q.FilesLimit)
	}
	if q.InLimit > 0 {
		f("transfer_in_bytes", q.InUsed, q.InLimit)
	}
	if q.OutLimit > 0 {
		f("transfer_out_bytes", q.OutUsed, q.OutLimit)
	}
}

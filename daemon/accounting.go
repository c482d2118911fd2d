package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-ftp/sluice/accounting"
	"github.com/sluice-ftp/sluice/bpf"
	"github.com/sluice-ftp/sluice/policy"
)

// meter is the supervisor's accounting: the byte counters of every
// account — counted by the kernel (package bpf) for FTP data connections
// when eBPF is available, from the workers' reports otherwise and always
// for SFTP, whose data shares the SSH connection with its control
// traffic — their persistence, the period marks of transfer quotas and
// the storage usage behind storage quotas. See docs/accounting.md.
type meter struct {
	log    zerolog.Logger
	mode   string // policy.AcctEBPF or policy.AcctUserspace
	reason string // why not eBPF ("" in eBPF mode)
	kern   *bpf.Accounting
	cgRoot string // cgroup the programs are attached to (eBPF mode)
	user   *accounting.Ledger
	path   string // state file: state_dir/accounting.json
	usage  *usageTracker

	mu       sync.Mutex
	inKernel map[string]bool // accounts with an acct-NAME cgroup registered in the maps
	// Rates over the last sample (sample, about once a second).
	lastSample time.Time
	lastCount  map[string]accounting.Counters
	rates      map[string][2]float64
	periods    map[string]periodMark
	warned     map[string]int // highest storage-quota warning level reported per account
	// handoff is the ledger when a binary upgrade began: the new
	// supervisor starts from it (accounting.json), and what this one
	// counts after it goes to a carry file the new one adds in.
	handoff map[string]accounting.Counters
}

// periodMark is where an account's transfer-quota period began: the
// period ("2026-11" or "2026-11-24", UTC) and the account's counters then.
type periodMark struct {
	Period string `json:"period"`
	In     uint64 `json:"in"`
	Out    uint64 `json:"out"`
}

// meterStateVersion is the format of accounting.json.
const meterStateVersion = 1

// meterState is accounting.json: the kernel's counters (eBPF mode), the
// user-space ledger's, and the transfer-quota periods. Keyed by account
// name: cgroup ids do not survive a reboot.
type meterState struct {
	Version int                            `json:"version"`
	Mode    string                         `json:"mode"`
	Time    time.Time                      `json:"time"`
	Kernel  map[string]accounting.Counters `json:"kernel"`
	User    map[string]accounting.Counters `json:"user"`
	Periods map[string]periodMark          `json:"periods"`
}

// newMeter loads the accounting the configuration asks for. In "auto"
// mode a failure to load eBPF is not fatal: the user-space ledger counts
// instead, and the log says so once, loudly.
func newMeter(cfg *policy.Config, log zerolog.Logger) (*meter, error) {
	m := &meter{
		log:      log,
		mode:     policy.AcctUserspace,
		user:     accounting.NewLedger(),
		path:     filepath.Join(cfg.Server.StateDir, "accounting.json"),
		inKernel: map[string]bool{},
		periods:  map[string]periodMark{},
		warned:   map[string]int{},
		usage:    newUsageTracker(log),
	}
	st, err := loadMeterState(m.path)
	if err != nil {
		// Refuse to start rather than begin again from zero: a corrupt
		// file needs a human (move it away to start afresh).
		return nil, fmt.Errorf("accounting state: %w (move the file away to start the counters from zero)", err)
	}
	switch cfg.Accounting.Mode {
	case policy.AcctUserspace:
		m.reason = "accounting.mode = \"userspace\""
	default:
		if err := m.loadKernel(cfg); err != nil {
			if cfg.Accounting.Mode == policy.AcctEBPF {
				return nil, fmt.Errorf("eBPF accounting (accounting.mode = \"ebpf\"): %w", err)
			}
			m.reason = err.Error()
		} else {
			m.mode = policy.AcctEBPF
		}
	}
	if m.kern != nil && st.Kernel != nil {
		if err := m.kern.Restore(accounting.Snapshot{Accounts: st.Kernel}); err != nil {
			log.Warn().Err(err).Msg("accounting: the pinned maps and the saved counters disagree; the maps win")
		}
	}
	if m.kern == nil && st.Kernel != nil {
		// Counted by the kernel before, by the ledger now: carry on.
		for name, c := range st.Kernel {
			u := st.User[name]
			u.BytesIn += c.BytesIn
			u.BytesOut += c.BytesOut
			u.ConnsTotal += c.ConnsTotal
			if st.User == nil {
				st.User = map[string]accounting.Counters{}
			}
			st.User[name] = u
		}
	}
	if st.User != nil {
		m.user.Restore(accounting.Snapshot{Accounts: st.User})
	}
	for n, p := range st.Periods {
		m.periods[n] = p
	}
	if m.mode == policy.AcctEBPF {
		log.Info().Str("cgroup", m.cgRoot).Str("pin_dir", m.kern.PinDir()).Bool("maps_reused", m.kern.Reused()).
			Msg("accounting: eBPF programs count every FTP data connection in the kernel")
	} else {
		// Once, loudly: an operator who expects kernel counting must see it.
		log.Warn().Str("reason", m.reason).
			Msg("ACCOUNTING IN USER SPACE: eBPF accounting is not in use; bytes are counted from the workers' reports, which a compromised worker could falsify")
	}
	m.register(cfg)
	m.mergeCarry()
	return m, nil
}

// loadKernel loads and attaches the eBPF programs.
func (m *meter) loadKernel(cfg *policy.Config) error {
	root := cfg.Accounting.Cgroup
	if root == "" {
		mnt := cgroup2Mount()
		if mnt == "" {
			return fmt.Errorf("%w: no cgroup v2 mount (looked at /sys/fs/cgroup/unified and /sys/fs/cgroup)", bpf.ErrUnavailable)
		}
		root = filepath.Join(mnt, "sluice")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not running as root", bpf.ErrUnavailable)
	}
	if self, err := ownCgroup(filepath.Dir(root)); err == nil && (self == root || strings.HasPrefix(self, root+"/")) {
		// Our own sockets (control connections, hook webhooks) would
		// count, and cgroup v2 forbids processes in a cgroup with children.
		return fmt.Errorf("the supervisor runs in %s, inside accounting.cgroup %s: choose another accounting.cgroup", self, root)
	}
	if _, err := bpf.MakeCgroup(root); err != nil {
		return fmt.Errorf("%w: %v", bpf.ErrUnavailable, err)
	}
	k, err := bpf.Load(bpf.Options{CgroupPath: root, PinDir: cfg.Accounting.PinDir, ReplaceIncompatible: true})
	if err != nil {
		return err
	}
	m.kern, m.cgRoot = k, root
	return nil
}

// cgroup2Mount finds the cgroup v2 hierarchy: /sys/fs/cgroup/unified on a
// hybrid host (this machine kind), /sys/fs/cgroup on a unified one.
func cgroup2Mount() string {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if bpf.IsCgroup2(p) {
			return p
		}
	}
	return ""
}

// ownCgroup returns the supervisor's cgroup v2 directory under mnt.
func ownCgroup(mnt string) (string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return filepath.Join(mnt, rest), nil
		}
	}
	return "", errors.New("no cgroup v2 line in /proc/self/cgroup")
}

// register makes every configured account known: a ledger entry always,
// and in eBPF mode its cgroup (acct-NAME) and map entry, with its rates.
// Called at start and on reload; idempotent.
func (m *meter) register(cfg *policy.Config) {
	if m.kern != nil {
		if err := m.kern.SetGlobalRate(accounting.Rates{In: uint64(cfg.Limits.UploadRate), Out: uint64(cfg.Limits.DownloadRate)}); err != nil {
			m.log.Warn().Err(err).Msg("accounting: cannot record the global rates in the limits map")
		}
	}
	m.user.SetGlobalRate(accounting.Rates{In: uint64(cfg.Limits.UploadRate), Out: uint64(cfg.Limits.DownloadRate)})
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		m.user.AddAccount(a.Name)
		r := accounting.Rates{In: uint64(a.Limits.UploadRate), Out: uint64(a.Limits.DownloadRate)}
		m.user.SetRate(a.Name, r)
		if m.kern == nil {
			continue
		}
		m.mu.Lock()
		known := m.inKernel[a.Name]
		m.mu.Unlock()
		if !known {
			dir := m.cgroupOf(a.Name)
			if _, err := bpf.MakeCgroup(dir); err != nil {
				m.log.Error().Str("account", a.Name).Err(err).Msg("accounting: cannot make the account's cgroup; its bytes are counted in user space")
				continue
			}
			if _, err := m.kern.AddAccount(a.Name, dir); err != nil {
				m.log.Error().Str("account", a.Name).Err(err).Msg("accounting: cannot register the account in the kernel maps; its bytes are counted in user space")
				continue
			}
			m.mu.Lock()
			m.inKernel[a.Name] = true
			m.mu.Unlock()
		}
		if err := m.kern.SetRate(a.Name, r); err != nil {
			m.log.Warn().Str("account", a.Name).Err(err).Msg("accounting: cannot record the account's rates in the limits map")
		}
	}
	m.usage.configure(cfg)
}

func (m *meter) cgroupOf(name string) string { return filepath.Join(m.cgRoot, "acct-"+name) }

// enter moves a worker that just logged in as name into the account's
// cgroup, before the AuthReply: every data socket it creates from then on
// is the account's, in the kernel. It reports whether the kernel counts
// the session; false means its bytes go to the ledger.
func (m *meter) enter(pid int, name string) bool {
	if m.kern == nil {
		return false
	}
	m.mu.Lock()
	ok := m.inKernel[name]
	m.mu.Unlock()
	if !ok {
		return false
	}
	// Writing a pid to cgroup.procs moves the whole process, every thread.
	if err := os.WriteFile(filepath.Join(m.cgroupOf(name), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		m.log.Error().Str("account", name).Int("pid", pid).Err(err).Msg("accounting: cannot move the worker into the account's cgroup; this session is counted in user space")
		return false
	}
	return true
}

// counters returns name's counters: the kernel's plus the ledger's.
func (m *meter) counters(name string) accounting.Counters {
	c, _ := m.user.Counters(name)
	if m.kern != nil {
		m.mu.Lock()
		ok := m.inKernel[name]
		m.mu.Unlock()
		if ok {
			if k, err := m.kern.Counters(name); err == nil {
				c = addCounters(c, k)
			}
		}
	}
	return c
}

// totals returns the counters over every account.
func (m *meter) totals() accounting.Counters {
	c := m.user.Totals()
	if m.kern != nil {
		if k, err := m.kern.Totals(); err == nil {
			c = addCounters(c, k)
		}
	}
	return c
}

func addCounters(a, b accounting.Counters) accounting.Counters {
	return accounting.Counters{
		BytesIn: a.BytesIn + b.BytesIn, BytesOut: a.BytesOut + b.BytesOut,
		Conns: a.Conns + b.Conns, ConnsIn: a.ConnsIn + b.ConnsIn, ConnsOut: a.ConnsOut + b.ConnsOut,
		ConnsTotal: a.ConnsTotal + b.ConnsTotal,
	}
}

// period returns the period id of t for a transfer-quota period kind.
func period(kind string, t time.Time) string {
	t = t.UTC()
	if kind == policy.PeriodDay {
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01")
}

// periodEnd is when the period containing t ends.
func periodEnd(kind string, t time.Time) time.Time {
	t = t.UTC()
	if kind == policy.PeriodDay {
		return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// periodUsage returns the bytes name moved in and out in the current
// period of kind, starting a new period (from the counters now) when the
// last one is over.
func (m *meter) periodUsage(name, kind string, now time.Time) (in, out int64) {
	c := m.counters(name)
	id := period(kind, now)
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.periods[name]
	if !ok || p.Period != id || p.In > c.BytesIn || p.Out > c.BytesOut {
		p = periodMark{Period: id, In: c.BytesIn, Out: c.BytesOut}
		m.periods[name] = p
	}
	return int64(c.BytesIn - p.In), int64(c.BytesOut - p.Out)
}

// rollPeriods starts new periods for the accounts with transfer quotas, so
// that a period's count starts at its first second even if no transfer
// asks then.
func (m *meter) rollPeriods(cfg *policy.Config, now time.Time) {
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if a.Limits.TransferQuotaIn != 0 || a.Limits.TransferQuotaOut != 0 {
			m.periodUsage(a.Name, a.Limits.TransferQuotaPeriod, now)
		}
	}
}

// save writes accounting.json (temp file, fsync, rename, directory fsync).
func (m *meter) save() error {
	st := meterState{Version: meterStateVersion, Mode: m.mode, Time: time.Now().UTC(), Periods: map[string]periodMark{}}
	if m.kern != nil {
		s, err := m.kern.Snapshot()
		if err != nil {
			return err
		}
		st.Kernel = s.Accounts
	}
	st.User = map[string]accounting.Counters{}
	for n, c := range m.user.Snapshot().Accounts {
		st.User[n] = c.Persistent()
	}
	m.mu.Lock()
	for n, p := range m.periods {
		st.Periods[n] = p
	}
	m.mu.Unlock()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.path), 0o700); err != nil {
		return err
	}
	return accounting.WriteFileAtomic(m.path, append(data, '\n'), 0o600)
}

// loadMeterState reads accounting.json; a missing file is a first start.
func loadMeterState(path string) (meterState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return meterState{}, nil
	}
	if err != nil {
		return meterState{}, err
	}
	var st meterState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return meterState{}, fmt.Errorf("%s: %w", path, err)
	}
	if st.Version != meterStateVersion {
		return meterState{}, fmt.Errorf("%s: version %d, want %d", path, st.Version, meterStateVersion)
	}
	return st, nil
}

// handOver prepares a binary upgrade: the state file is written for the
// new supervisor to start from, and this supervisor's later user-space
// counts (its sessions finish on it) will go to a carry file instead.
// The kernel's counters need nothing: both supervisors' programs share
// the pinned maps, and the per-socket state, so each byte counts once.
func (m *meter) handOver() {
	if err := m.save(); err != nil {
		m.log.Error().Err(err).Msg("accounting: saving the counters before the upgrade failed")
	}
	m.mu.Lock()
	m.handoff = m.user.Snapshot().Accounts
	m.mu.Unlock()
}

// handedOver reports whether a binary upgrade handed the state over.
func (m *meter) handedOver() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handoff != nil
}

// keep cancels handOver: the upgrade failed and this supervisor goes on.
func (m *meter) keep() {
	m.mu.Lock()
	m.handoff = nil
	m.mu.Unlock()
}

// carryPrefix names the files an old supervisor leaves after an upgrade.
const carryPrefix = "accounting.carry-"

// writeCarry writes what the ledger counted since handOver.
func (m *meter) writeCarry() error {
	m.mu.Lock()
	base := m.handoff
	m.mu.Unlock()
	carry := map[string]accounting.Counters{}
	for n, c := range m.user.Snapshot().Accounts {
		b := base[n]
		if c.BytesIn > b.BytesIn || c.BytesOut > b.BytesOut || c.ConnsTotal > b.ConnsTotal {
			carry[n] = accounting.Counters{BytesIn: c.BytesIn - b.BytesIn, BytesOut: c.BytesOut - b.BytesOut, ConnsTotal: c.ConnsTotal - b.ConnsTotal}
		}
	}
	if len(carry) == 0 {
		return nil
	}
	data, err := json.Marshal(carry)
	if err != nil {
		return err
	}
	return accounting.WriteFileAtomic(filepath.Join(filepath.Dir(m.path), fmt.Sprintf("%s%d.json", carryPrefix, os.Getpid())), data, 0o600)
}

// mergeCarry adds the carry files of finished old supervisors to the
// ledger, saves, and removes them.
func (m *meter) mergeCarry() {
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(m.path), carryPrefix+"*.json"))
	var merged []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var carry map[string]accounting.Counters
		if err := json.Unmarshal(data, &carry); err != nil {
			m.log.Error().Str("file", f).Err(err).Msg("accounting: unreadable carry file left as it is")
			continue
		}
		for n, c := range carry {
			m.user.AddAccount(n)
			m.user.Add(n, accounting.In, c.BytesIn)
			m.user.Add(n, accounting.Out, c.BytesOut)
		}
		merged = append(merged, f)
	}
	if len(merged) == 0 {
		return
	}
	if err := m.save(); err != nil {
		m.log.Error().Err(err).Msg("accounting: saving after merging carry files failed; they stay")
		return
	}
	for _, f := range merged {
		os.Remove(f)
	}
	m.log.Info().Strs("files", merged).Msg("accounting: counts of the previous supervisor's last sessions merged")
}

// close saves the counters and detaches the programs (the maps stay
// pinned, so a restart continues them). After a binary upgrade only the
// counts since the handover are written, for the new supervisor.
func (m *meter) close() {
	m.mu.Lock()
	upgraded := m.handoff != nil
	m.mu.Unlock()
	if upgraded {
		if err := m.writeCarry(); err != nil {
			m.log.Error().Err(err).Msg("accounting: writing the counts since the upgrade failed; they are lost")
		}
	} else if err := m.save(); err != nil {
		m.log.Error().Err(err).Str("file", m.path).Msg("accounting: saving the counters at shutdown failed")
	}
	if m.kern != nil {
		m.kern.Close()
	}
}

// sample measures every account's rate since the previous sample: one
// walk of the kernel's map and of the ledger, however many accounts.
func (m *meter) sample(now time.Time) {
	counts := m.user.All()
	if m.kern != nil {
		if all, err := m.kern.All(); err == nil {
			for n, k := range all {
				counts[n] = addCounters(counts[n], k)
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if dt := now.Sub(m.lastSample).Seconds(); !m.lastSample.IsZero() && dt > 0 {
		rates := make(map[string][2]float64, len(counts))
		for n, c := range counts {
			if p, ok := m.lastCount[n]; ok && c.BytesIn >= p.BytesIn && c.BytesOut >= p.BytesOut {
				rates[n] = [2]float64{float64(c.BytesIn-p.BytesIn) / dt, float64(c.BytesOut-p.BytesOut) / dt}
			}
		}
		m.rates = rates
	}
	m.lastSample, m.lastCount = now, counts
}

// rate returns name's rates in and out (bytes/s) over the last sample.
func (m *meter) rate(name string) (in, out float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rates[name]
	return r[0], r[1]
}

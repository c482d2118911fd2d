package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/accounting"
)

// Defaults for Options.
const (
	DefaultBPFFS  = "/sys/fs/bpf"
	DefaultPinDir = "/sys/fs/bpf/sluice"
)

// Names of the pinned maps under Options.PinDir.
const (
	PinAccounts = "accounts" // cgroup id → struct sluice_account (counters)
	PinLimits   = "limits"   // cgroup id → struct sluice_limits; key 0 = global
	PinTotals   = "totals"   // [0] → struct sluice_account over every socket
	PinSocks    = "socks"    // per-socket counting state (SK_STORAGE), shared across an upgrade
)

// MaxNameLen is the longest account name the map stores (char[32], NUL
// terminated).
const MaxNameLen = 31

// ErrUnknownAccount is returned for a name that was never registered.
var ErrUnknownAccount = errors.New("unknown account")

// Options configures Load.
type Options struct {
	// CgroupPath is the cgroup v2 directory the programs attach to: the
	// parent of the account cgroups, e.g. /sys/fs/cgroup/unified/sluice.
	// Sockets of every cgroup below it are seen; only those of registered
	// account cgroups are counted per account (all of them in totals).
	// The supervisor itself must not live below it.
	CgroupPath string
	// PinDir is where the maps are pinned (DefaultPinDir if empty). It must
	// be on bpffs; it is created with mode 0700.
	PinDir string
	// BPFFS is mounted (mode 0700) if it is not a bpffs already; only
	// used when PinDir is below it. DefaultBPFFS if empty.
	BPFFS string
	// ReplaceIncompatible: if maps pinned by an older sluice have another
	// layout, unpin them and start afresh (their counters then come only
	// from the snapshot file). Otherwise Load fails.
	ReplaceIncompatible bool
}

// Accounting is the loaded, attached eBPF accounting. Safe for concurrent
// use. Close detaches the programs; the maps stay pinned.
type Accounting struct {
	mu      sync.Mutex
	objs    acctObjects
	links   []link.Link
	pinDir  string
	reused  bool
	byName  map[string]uint64              // registered name → cgroup id
	pending map[string]accounting.Counters // restored, not yet registered
	closed  bool
}

// Probe reports whether Load could work with opts, without loading
// anything: nil, or an *UnavailableError (for `sluice policy check`).
func Probe(opts Options) error {
	opts.defaults()
	if err := checkEnv(&opts, false); err != nil {
		return err
	}
	if err := haveFeatures(); err != nil {
		return err
	}
	return nil
}

func (o *Options) defaults() {
	if o.PinDir == "" {
		o.PinDir = DefaultPinDir
	}
	if o.BPFFS == "" {
		o.BPFFS = DefaultBPFFS
	}
}

func checkEnv(o *Options, mount bool) error {
	if os.Geteuid() != 0 {
		return unavailable(NotRoot, fmt.Sprintf("euid %d", os.Geteuid()), nil)
	}
	if o.CgroupPath == "" {
		return errors.New("bpf: Options.CgroupPath is required")
	}
	if !IsCgroup2(o.CgroupPath) {
		return unavailable(NoCgroup2, o.CgroupPath+" is not a cgroup v2 directory", nil)
	}
	if mount {
		if err := ensureBPFFS(o.BPFFS, o.PinDir); err != nil {
			return err
		}
	}
	return nil
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

// ensureBPFFS mounts bpffs at root if pinDir is below it and nothing is
// mounted there yet (a fresh machine has /sys/fs/bpf unmounted), then
// creates pinDir, mode 0700: pinned maps obey file permissions, and only
// root may open them.
func ensureBPFFS(root, pinDir string) error {
	if rel, err := filepath.Rel(root, pinDir); err == nil && rel != ".." && !bytes.HasPrefix([]byte(rel), []byte("../")) {
		if !isBPFFS(root) {
			if err := os.MkdirAll(root, 0o700); err != nil {
				return unavailable(NoBPFFS, root, err)
			}
			if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
				return unavailable(NoBPFFS, "mount "+root, err)
			}
		}
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return unavailable(NoBPFFS, pinDir, err)
	}
	if !isBPFFS(pinDir) {
		return unavailable(NoBPFFS, pinDir+" is not on bpffs", nil)
	}
	return nil
}

func haveFeatures() error {
	// Memlock accounting of BPF memory moved to memcg in 5.11; on older
	// kernels lift RLIMIT_MEMLOCK. RemoveMemlock probes once and is a no-op
	// where it is not needed.
	if err := rlimit.RemoveMemlock(); err != nil {
		return unavailable(Kernel, "RLIMIT_MEMLOCK", err)
	}
	return nil
}

// Load loads the programs (or reuses the maps pinned in opts.PinDir by a
// previous run), pins the maps and attaches the programs to
// opts.CgroupPath.
//
// Links are not pinned: the programs detach when the process that loaded
// them exits. Workers die with the supervisor (Pdeathsig), so no session
// runs unaccounted while the daemon is down. The maps are pinned: after a
// restart — even after kill -9 — Load reuses them and every counter
// continues where it was (Reused reports it); after a reboot they are gone
// and Restore brings the counters back from the snapshot file. Live
// connection counts are reset to 0 on load (no connection of the previous
// run is alive).
//
// One daemon per PinDir: two running instances would share the maps.
func Load(opts Options) (*Accounting, error) {
	opts.defaults()
	if err := checkEnv(&opts, true); err != nil {
		return nil, err
	}
	if err := haveFeatures(); err != nil {
		return nil, err
	}
	a := &Accounting{
		pinDir:  opts.PinDir,
		byName:  map[string]uint64{},
		pending: map[string]accounting.Counters{},
	}
	_, err := os.Stat(filepath.Join(opts.PinDir, PinAccounts))
	a.reused = err == nil

	copts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: opts.PinDir}}
	err = loadAcctObjects(&a.objs, copts)
	if errors.Is(err, ebpf.ErrMapIncompatible) && opts.ReplaceIncompatible {
		if uerr := unpinAll(opts.PinDir); uerr != nil {
			return nil, fmt.Errorf("bpf: replacing incompatible maps: %w", uerr)
		}
		a.reused = false
		err = loadAcctObjects(&a.objs, copts)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		switch {
		case errors.As(err, &ve):
			return nil, fmt.Errorf("bpf: verifier: %+v", ve)
		case errors.Is(err, ebpf.ErrNotSupported):
			return nil, unavailable(Kernel, "loading programs", err)
		}
		return nil, fmt.Errorf("bpf: load: %w", err)
	}
	if err := a.init(); err != nil {
		a.objs.Close()
		return nil, err
	}
	for _, at := range []struct {
		prog *ebpf.Program
		typ  ebpf.AttachType
	}{
		// sock_ops first: it sets the exact per-socket bases.
		{a.objs.SluiceSockops, ebpf.AttachCGroupSockOps},
		{a.objs.SluiceIngress, ebpf.AttachCGroupInetIngress},
		{a.objs.SluiceEgress, ebpf.AttachCGroupInetEgress},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: opts.CgroupPath, Attach: at.typ, Program: at.prog})
		if err != nil {
			a.Close()
			if errors.Is(err, ebpf.ErrNotSupported) {
				return nil, unavailable(Kernel, "attaching to "+opts.CgroupPath, err)
			}
			return nil, fmt.Errorf("bpf: attach %s: %w", at.typ, err)
		}
		a.links = append(a.links, l)
	}
	return a, nil
}

// init rebuilds the name index from the (possibly reused) accounts map and
// zeroes the live connection counts.
func (a *Accounting) init() error {
	var (
		key uint64
		val acctSluiceAccount
	)
	fix := map[uint64]acctSluiceAccount{}
	it := a.objs.Accounts.Iterate()
	for it.Next(&key, &val) {
		name := cString(val.Name[:])
		if name != "" {
			a.byName[name] = key
		}
		if val.Conns|val.ConnsIn|val.ConnsOut != 0 {
			fix[key] = val
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("bpf: reading accounts: %w", err)
	}
	// Nothing is attached yet, so nothing adds concurrently.
	for k, v := range fix {
		v.Conns, v.ConnsIn, v.ConnsOut = 0, 0, 0
		if err := a.objs.Accounts.Update(k, v, ebpf.UpdateExist); err != nil {
			return fmt.Errorf("bpf: resetting live counts: %w", err)
		}
	}
	var t acctSluiceAccount
	if err := a.objs.Totals.Lookup(uint32(0), &t); err != nil {
		return fmt.Errorf("bpf: totals: %w", err)
	}
	t.Conns, t.ConnsIn, t.ConnsOut = 0, 0, 0
	copy(t.Name[:], []int8{'*'})
	return a.objs.Totals.Update(uint32(0), t, ebpf.UpdateExist)
}

// Mode names the accounting mode ("ebpf").
func (a *Accounting) Mode() string { return "ebpf" }

// Reused reports whether Load found the maps pinned by a previous run
// (counters continued) rather than creating them.
func (a *Accounting) Reused() bool { return a.reused }

// PinDir returns the directory of the pinned maps.
func (a *Accounting) PinDir() string { return a.pinDir }

// AddAccount registers the account name for the cgroup v2 directory
// cgroupPath (which must be below Options.CgroupPath to be seen) and
// returns the cgroup id. Counters restored for name start from the
// snapshot. If name was registered with another cgroup (the cgroup was
// re-created), its counters move to the new cgroup id. Registering the
// same pair twice is a no-op.
//
// Register before the first process enters the cgroup: bytes of a cgroup
// with no entry count only in totals.
func (a *Accounting) AddAccount(name, cgroupPath string) (uint64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	cgid, err := CgroupID(cgroupPath)
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return 0, errors.New("bpf: accounting closed")
	}
	var cur acctSluiceAccount
	if err := a.objs.Accounts.Lookup(cgid, &cur); err == nil {
		if other := cString(cur.Name[:]); other != name {
			return 0, fmt.Errorf("bpf: cgroup %s (id %d) already belongs to account %q", cgroupPath, cgid, other)
		}
		a.byName[name] = cgid
		return cgid, nil
	}
	val := acctSluiceAccount{}
	setName(&val, name)
	if old, ok := a.byName[name]; ok && old != cgid {
		var prev acctSluiceAccount
		if err := a.objs.Accounts.Lookup(old, &prev); err == nil {
			val.BytesIn, val.BytesOut, val.ConnsTotal = prev.BytesIn, prev.BytesOut, prev.ConnsTotal
		}
		var lim acctSluiceLimits
		if err := a.objs.Limits.Lookup(old, &lim); err == nil {
			if err := a.objs.Limits.Put(cgid, lim); err != nil {
				return 0, fmt.Errorf("bpf: moving limits: %w", err)
			}
		}
	} else if p, ok := a.pending[name]; ok {
		val.BytesIn, val.BytesOut, val.ConnsTotal = p.BytesIn, p.BytesOut, p.ConnsTotal
	}
	if err := a.objs.Accounts.Update(cgid, val, ebpf.UpdateNoExist); err != nil {
		return 0, fmt.Errorf("bpf: adding account %q: %w", name, err)
	}
	if old, ok := a.byName[name]; ok && old != cgid {
		// The counters live on under the new id; the old cgroup is gone.
		_ = a.objs.Accounts.Delete(old)
		_ = a.objs.Limits.Delete(old)
	}
	delete(a.pending, name)
	a.byName[name] = cgid
	return cgid, nil
}

// RemoveAccount forgets name and deletes its entries (its counters are
// lost: take a Snapshot first if they matter).
func (a *Accounting) RemoveAccount(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	cgid, ok := a.byName[name]
	if !ok {
		return fmt.Errorf("bpf: %q: %w", name, ErrUnknownAccount)
	}
	delete(a.byName, name)
	if err := a.objs.Accounts.Delete(cgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if err := a.objs.Limits.Delete(cgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// CgroupIDOf returns the cgroup id name is registered with.
func (a *Accounting) CgroupIDOf(name string) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cgid, ok := a.byName[name]
	if !ok {
		return 0, fmt.Errorf("bpf: %q: %w", name, ErrUnknownAccount)
	}
	return cgid, nil
}

// Counters returns name's counters, read from the map.
func (a *Accounting) Counters(name string) (accounting.Counters, error) {
	cgid, err := a.CgroupIDOf(name)
	if err != nil {
		return accounting.Counters{}, err
	}
	var v acctSluiceAccount
	if err := a.objs.Accounts.Lookup(cgid, &v); err != nil {
		return accounting.Counters{}, fmt.Errorf("bpf: counters of %q: %w", name, err)
	}
	return v.counters(), nil
}

// All returns the counters of every registered account.
func (a *Accounting) All() (map[string]accounting.Counters, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[string]accounting.Counters, len(a.byName))
	for name, cgid := range a.byName {
		var v acctSluiceAccount
		if err := a.objs.Accounts.Lookup(cgid, &v); err != nil {
			return nil, fmt.Errorf("bpf: counters of %q: %w", name, err)
		}
		m[name] = v.counters()
	}
	return m, nil
}

// Totals returns the counters summed over every socket below the attach
// cgroup, registered or not (since the maps were created).
func (a *Accounting) Totals() (accounting.Counters, error) {
	var v acctSluiceAccount
	if err := a.objs.Totals.Lookup(uint32(0), &v); err != nil {
		return accounting.Counters{}, fmt.Errorf("bpf: totals: %w", err)
	}
	return v.counters(), nil
}

// SetRate sets name's bandwidth limits (bytes per second, 0 = unlimited),
// shared by all of its connections.
func (a *Accounting) SetRate(name string, r accounting.Rates) error {
	cgid, err := a.CgroupIDOf(name)
	if err != nil {
		return err
	}
	return a.objs.Limits.Put(cgid, acctSluiceLimits{RateIn: r.In, RateOut: r.Out})
}

// SetGlobalRate sets the limits shared by every connection of every
// account (key 0 of the limits map).
func (a *Accounting) SetGlobalRate(r accounting.Rates) error {
	return a.objs.Limits.Put(uint64(0), acctSluiceLimits{RateIn: r.In, RateOut: r.Out})
}

// Snapshot returns the persistent counters of every account (registered,
// found in reused maps, or restored and not registered yet), for
// accounting.SaveSnapshot.
func (a *Accounting) Snapshot() (accounting.Snapshot, error) {
	all, err := a.All()
	if err != nil {
		return accounting.Snapshot{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := accounting.Snapshot{Version: accounting.SnapshotVersion, Mode: a.Mode(), Time: time.Now().UTC(), Accounts: map[string]accounting.Counters{}}
	for n, c := range a.pending {
		s.Accounts[n] = c.Persistent()
	}
	for n, c := range all {
		s.Accounts[n] = c.Persistent()
	}
	return s, nil
}

// Save writes Snapshot to path atomically (temp file, fsync, rename,
// directory fsync).
func (a *Accounting) Save(path string) error {
	s, err := a.Snapshot()
	if err != nil {
		return err
	}
	return accounting.SaveSnapshot(path, s)
}

// Restore takes the counters of a snapshot for accounts that are not in
// the maps: they apply when the account is registered (AddAccount). An
// account already in the maps (reused after a restart) keeps the map's
// counters, which are never older than a snapshot taken from them; if the
// snapshot is ahead of the map (the map was re-created after the account
// registered), Restore returns an error: call it before AddAccount.
func (a *Accounting) Restore(s accounting.Snapshot) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for name, c := range s.Accounts {
		cgid, ok := a.byName[name]
		if !ok {
			a.pending[name] = c.Persistent()
			continue
		}
		var v acctSluiceAccount
		if err := a.objs.Accounts.Lookup(cgid, &v); err != nil {
			errs = append(errs, fmt.Errorf("bpf: restore %q: %w", name, err))
			continue
		}
		if v.BytesIn < c.BytesIn || v.BytesOut < c.BytesOut {
			errs = append(errs, fmt.Errorf("bpf: restore %q: the map (in %d, out %d) is behind the snapshot (in %d, out %d); restore before AddAccount",
				name, v.BytesIn, v.BytesOut, c.BytesIn, c.BytesOut))
		}
	}
	return errors.Join(errs...)
}

// Close detaches the programs and closes the maps; the pinned maps stay.
func (a *Accounting) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, l := range a.links {
		errs = append(errs, l.Close())
	}
	a.links = nil
	errs = append(errs, a.objs.Close())
	return errors.Join(errs...)
}

// Unpin removes the pinned maps of pinDir and the directory (uninstall,
// tests). Counters not saved in a snapshot are lost.
func Unpin(pinDir string) error {
	if err := unpinAll(pinDir); err != nil {
		return err
	}
	if err := os.Remove(pinDir); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

func unpinAll(pinDir string) error {
	var errs []error
	for _, n := range []string{PinAccounts, PinLimits, PinTotals, PinSocks} {
		if err := os.Remove(filepath.Join(pinDir, n)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (v *acctSluiceAccount) counters() accounting.Counters {
	return accounting.Counters{
		BytesIn: v.BytesIn, BytesOut: v.BytesOut,
		Conns: v.Conns, ConnsIn: v.ConnsIn, ConnsOut: v.ConnsOut,
		ConnsTotal: v.ConnsTotal,
	}
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen || bytes.IndexByte([]byte(name), 0) >= 0 {
		return fmt.Errorf("bpf: account name %q: 1 to %d bytes, no NUL", name, MaxNameLen)
	}
	return nil
}

func setName(v *acctSluiceAccount, name string) {
	for i := 0; i < len(name) && i < MaxNameLen; i++ {
		v.Name[i] = int8(name[i])
	}
}

func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

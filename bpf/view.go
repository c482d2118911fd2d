package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/accounting"
)

// View is a read-only window on the maps for a worker: it computes the
// worker's share of its account's (and the global) rate from the limits
// and the live connection counts that the kernel maintains, and can read
// its account's counters. Every fd it holds was opened with BPF_F_RDONLY:
// map updates and deletes through it fail with EPERM, whatever the
// process's privileges, so a compromised worker can neither reset its
// counters nor charge someone else nor raise its own rate.
//
// The read-only fds do show every account's counters and rates (keyed by
// cgroup id, with names): the price of computing shares in the worker
// without an IPC round trip. See docs/accounting.md.
type View struct {
	accounts, limits, totals *ebpf.Map
	cgid                     uint64
}

var _ accounting.ShareSource = (*View)(nil)

// OpenView opens the maps pinned in pinDir read-only for the account with
// cgroup id cgid. Pins are mode 0600 root: the supervisor opens the view
// and passes Files() to the worker.
func OpenView(pinDir string, cgid uint64) (*View, error) {
	ro := &ebpf.LoadPinOptions{ReadOnly: true}
	v := &View{cgid: cgid}
	var err error
	if v.accounts, err = ebpf.LoadPinnedMap(filepath.Join(pinDir, PinAccounts), ro); err != nil {
		return nil, fmt.Errorf("bpf: view: %w", err)
	}
	if v.limits, err = ebpf.LoadPinnedMap(filepath.Join(pinDir, PinLimits), ro); err != nil {
		v.Close()
		return nil, fmt.Errorf("bpf: view: %w", err)
	}
	if v.totals, err = ebpf.LoadPinnedMap(filepath.Join(pinDir, PinTotals), ro); err != nil {
		v.Close()
		return nil, fmt.Errorf("bpf: view: %w", err)
	}
	return v, nil
}

// View opens a read-only view for the registered account name.
func (a *Accounting) View(name string) (*View, error) {
	cgid, err := a.CgroupIDOf(name)
	if err != nil {
		return nil, err
	}
	return OpenView(a.pinDir, cgid)
}

// NewViewFromFDs builds a View in the worker from the three fds received
// from the supervisor (in Files() order) and the account's cgroup id. The
// View owns the fds.
func NewViewFromFDs(accounts, limits, totals int, cgid uint64) (*View, error) {
	v := &View{cgid: cgid}
	var err error
	if v.accounts, err = ebpf.NewMapFromFD(accounts); err != nil {
		return nil, fmt.Errorf("bpf: view: %w", err)
	}
	if v.limits, err = ebpf.NewMapFromFD(limits); err != nil {
		v.Close()
		return nil, fmt.Errorf("bpf: view: %w", err)
	}
	if v.totals, err = ebpf.NewMapFromFD(totals); err != nil {
		v.Close()
		return nil, fmt.Errorf("bpf: view: %w", err)
	}
	return v, nil
}

// CgroupID returns the account's cgroup id.
func (v *View) CgroupID() uint64 { return v.cgid }

// Files returns duplicates of the read-only fds (accounts, limits,
// totals) for exec.Cmd.ExtraFiles or SCM_RIGHTS; the caller closes them.
func (v *View) Files() ([]*os.File, error) {
	var files []*os.File
	for _, m := range []*ebpf.Map{v.accounts, v.limits, v.totals} {
		// dup: the same read-only open file description.
		fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("bpf: view: dup: %w", err)
		}
		files = append(files, os.NewFile(uintptr(fd), "bpf-map:"+m.String()))
	}
	return files, nil
}

// Counters returns the account's counters.
func (v *View) Counters() (accounting.Counters, error) {
	var a acctSluiceAccount
	if err := v.accounts.Lookup(v.cgid, &a); err != nil {
		return accounting.Counters{}, fmt.Errorf("bpf: view: %w", err)
	}
	return a.counters(), nil
}

// Rates returns the account's configured limits (zero if none).
func (v *View) Rates() (accounting.Rates, error) {
	return lookupRates(v.limits, v.cgid)
}

func lookupRates(m *ebpf.Map, key uint64) (accounting.Rates, error) {
	var l acctSluiceLimits
	if err := m.Lookup(key, &l); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return accounting.Rates{}, nil
		}
		return accounting.Rates{}, fmt.Errorf("bpf: view: %w", err)
	}
	return accounting.Rates{In: l.RateIn, Out: l.RateOut}, nil
}

// Share implements accounting.ShareSource: the account's rate divided by
// its live connections in direction d, capped by the global rate divided
// by every live connection in d.
func (v *View) Share(d accounting.Direction) (uint64, error) {
	r, err := lookupRates(v.limits, v.cgid)
	if err != nil {
		return 0, err
	}
	g, err := lookupRates(v.limits, 0)
	if err != nil {
		return 0, err
	}
	var share uint64
	if rate := r.Get(d); rate != 0 {
		c, err := v.Counters()
		if err != nil {
			return 0, err
		}
		share = accounting.Share(rate, c.Live(d))
	}
	if rate := g.Get(d); rate != 0 {
		var t acctSluiceAccount
		if err := v.totals.Lookup(uint32(0), &t); err != nil {
			return 0, fmt.Errorf("bpf: view: %w", err)
		}
		share = accounting.MinRate(share, accounting.Share(rate, t.counters().Live(d)))
	}
	return share, nil
}

// Close closes the fds.
func (v *View) Close() error {
	var errs []error
	for _, m := range []*ebpf.Map{v.accounts, v.limits, v.totals} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

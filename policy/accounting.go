package policy

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// AccountingConfig is the [accounting] table: how the bytes of every
// account are counted, where the counters live, and how often they are
// saved. See docs/accounting.md.
type AccountingConfig struct {
	// Mode is "auto" (eBPF when it can be loaded, else user space, said
	// once and loudly), "ebpf" (refuse to start without it) or
	// "userspace".
	Mode string
	// Cgroup is the cgroup v2 directory the programs attach to and the
	// account cgroups (acct-NAME) are made in. "" finds the cgroup v2
	// mount (/sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on
	// a unified one) and uses its "sluice" child.
	Cgroup string
	// PinDir is the bpffs directory the maps are pinned in.
	PinDir string
	// SaveInterval is how often the counters are written to
	// state_dir/accounting.json (also at shutdown).
	SaveInterval time.Duration
}

// Accounting modes.
const (
	AcctAuto      = "auto"
	AcctEBPF      = "ebpf"
	AcctUserspace = "userspace"
)

// Quota periods for transfer quotas.
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
)

func defaultAccounting() AccountingConfig {
	return AccountingConfig{Mode: AcctAuto, PinDir: "/sys/fs/bpf/sluice", SaveInterval: time.Minute}
}

func (p *cfgParser) accounting(t *tomlTable, a *AccountingConfig) {
	if t.str("mode", &a.Mode) && !isOneOf(a.Mode, AcctAuto, AcctEBPF, AcctUserspace) {
		t.ps.add(t.key("mode"), "unknown mode %q (want auto, ebpf or userspace)", a.Mode)
	}
	if t.str("cgroup", &a.Cgroup) && a.Cgroup != "" {
		if !filepath.IsAbs(a.Cgroup) || filepath.Clean(a.Cgroup) != a.Cgroup {
			t.ps.add(t.key("cgroup"), "%q must be an absolute, clean path (or \"\" to find the cgroup v2 mount)", a.Cgroup)
		}
	}
	if t.str("pin_dir", &a.PinDir) {
		if !filepath.IsAbs(a.PinDir) || filepath.Clean(a.PinDir) != a.PinDir || a.PinDir == "/" {
			t.ps.add(t.key("pin_dir"), "%q must be an absolute, clean directory below a bpffs mount", a.PinDir)
		}
	}
	t.duration("save_interval", &a.SaveInterval, time.Second, 24*time.Hour)
}

// quotaWarnings reads limits.quota_warnings: percentages, ascending.
func quotaWarnings(t *tomlTable, dst *[]int) {
	v, ok := t.get("quota_warnings")
	if !ok {
		return
	}
	arr, ok := v.([]any)
	if !ok {
		t.wrongType("quota_warnings", "an array of percentages", v)
		return
	}
	out := []int{}
	for i, e := range arr {
		n, ok := e.(int64)
		if !ok || n < 1 || n > 99 {
			t.ps.add(fmt.Sprintf("%s[%d]", t.key("quota_warnings"), i), "must be a percentage from 1 to 99")
			return
		}
		out = append(out, int(n))
	}
	if len(out) > 8 {
		t.ps.add(t.key("quota_warnings"), "%d thresholds; at most 8", len(out))
		return
	}
	if !slices.IsSorted(out) || len(slices.Compact(slices.Clone(out))) != len(out) {
		t.ps.add(t.key("quota_warnings"), "must ascend without repeats, e.g. [80, 95]")
		return
	}
	*dst = out
}

package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Probe measures a server that runs on this machine: the CPU time and the
// memory of all its processes.
type Probe interface {
	// CPU is the cumulative CPU time (user + system) of the server.
	CPU() (time.Duration, error)
	// Memory sums RSS and PSS over the server's live processes.
	Memory() (Mem, error)
	// Describe says how the probe measures, for the report.
	Describe() string
}

// Mem is the memory of a set of processes, in KiB.
type Mem struct {
	RSSKiB int64 `json:"rss_kib"`
	PSSKiB int64 `json:"pss_kib"`
	Procs  int   `json:"procs"`
	// MainRSSKiB and MainPSSKiB are the part of the totals in the
	// server's main processes (those whose parent is outside the set:
	// the listener, sluice's supervisor). Their heap moves with garbage
	// collection by more than an idle session weighs, so per-session
	// figures leave them out.
	MainRSSKiB int64 `json:"main_rss_kib"`
	MainPSSKiB int64 `json:"main_pss_kib"`
}

// CgroupDir is where the harness makes one cgroup v2 per server. On this
// machine kind cgroup v2 is mounted beside v1 (hybrid), not at the root.
const CgroupRoot = "/sys/fs/cgroup/unified"

// CgroupProbe reads a cgroup v2 directory: cpu.stat's usage_usec counts
// every process that ever ran in it, including sessions a daemon forked
// and that were re-parented — which a /proc walk from the daemon's pid
// loses.
type CgroupProbe struct{ Dir string }

// CPU implements Probe.
func (p CgroupProbe) CPU() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(p.Dir, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("cgroup cpu: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cgroup cpu.stat %q: %w", l, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, errors.New("cgroup cpu.stat: no usage_usec")
}

// Pids lists the processes in the cgroup and in every cgroup below it (a
// server may move its sessions into child cgroups, as sluice's eBPF
// accounting does; cpu.stat counts those too).
func (p CgroupProbe) Pids() ([]int, error) {
	var pids []int
	err := filepath.WalkDir(p.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cgroup procs: %w", err)
	}
	return pids, nil
}

// Memory implements Probe.
func (p CgroupProbe) Memory() (Mem, error) {
	pids, err := p.Pids()
	if err != nil {
		return Mem{}, err
	}
	return memOf(pids), nil
}

// Describe implements Probe.
func (p CgroupProbe) Describe() string {
	return "cgroup v2 " + p.Dir + " (cpu.stat usage_usec; smaps_rollup of cgroup.procs)"
}

// TreeProbe walks /proc from one pid: the process and its live
// descendants. A daemon that double-forks its sessions (they are
// re-parented to init) escapes it; use a cgroup for those.
type TreeProbe struct{ Pid int }

// CPU implements Probe: utime+stime of the live tree plus cutime+cstime,
// which hold the children already reaped.
func (p TreeProbe) CPU() (time.Duration, error) {
	pids := treePids(p.Pid)
	if len(pids) == 0 {
		return 0, fmt.Errorf("process %d: not running", p.Pid)
	}
	var ticks int64
	for _, pid := range pids {
		f, err := statFields(pid)
		if err != nil || len(f) < 17 {
			continue
		}
		for _, i := range []int{13, 14, 15, 16} { // utime stime cutime cstime
			v, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += v
		}
	}
	// USER_HZ is 100 on every Linux ABI Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// Memory implements Probe.
func (p TreeProbe) Memory() (Mem, error) {
	pids := treePids(p.Pid)
	if len(pids) == 0 {
		return Mem{}, fmt.Errorf("process %d: not running", p.Pid)
	}
	return memOf(pids), nil
}

// Describe implements Probe.
func (p TreeProbe) Describe() string {
	return fmt.Sprintf("/proc tree of pid %d (re-parented sessions not counted)", p.Pid)
}

// statFields returns the fields of /proc/PID/stat with field 0 = pid; the
// command name, which may hold spaces, is skipped correctly.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	rest := strings.Fields(string(b[i+1:]))
	// Fields after the name start at index 2 (state).
	return append([]string{strconv.Itoa(pid), "comm"}, rest...), nil
}

func treePids(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	alive := false
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pid == root {
			alive = true
		}
		f, err := statFields(pid)
		if err != nil || len(f) < 4 {
			continue
		}
		pp, _ := strconv.Atoi(f[3])
		children[pp] = append(children[pp], pid)
	}
	if !alive {
		return nil
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func memOf(pids []int) Mem {
	var m Mem
	in := map[int]bool{}
	for _, pid := range pids {
		in[pid] = true
	}
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue // exited meanwhile
		}
		var rss, pss int64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			l := sc.Text()
			if v, ok := strings.CutPrefix(l, "Rss:"); ok {
				rss += kib(v)
			} else if v, ok := strings.CutPrefix(l, "Pss:"); ok {
				pss += kib(v)
			}
		}
		f.Close()
		m.RSSKiB += rss
		m.PSSKiB += pss
		m.Procs++
		if st, err := statFields(pid); err == nil && len(st) > 3 {
			if ppid, _ := strconv.Atoi(st[3]); !in[ppid] {
				m.MainRSSKiB += rss
				m.MainPSSKiB += pss
			}
		}
	}
	return m
}

func kib(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n
}

// ClientCPU is this process's own CPU time (user + system, all threads):
// what the load generator spent. A reader compares it with the server's.
func ClientCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Cgroup is a cgroup v2 directory the harness made for one server.
type Cgroup struct {
	Dir string
	fd  int
}

// NewCgroup creates CgroupRoot/name (removing a stale one left by a run
// that was killed) and opens it, so a child can be started inside with
// SysProcAttr{UseCgroupFD: true, CgroupFD: cg.FD()} — before it forks
// anything.
func NewCgroup(name string) (*Cgroup, error) {
	dir := filepath.Join(CgroupRoot, name)
	if _, err := os.Stat(dir); err == nil {
		killCgroup(dir)
		if err := removeCgroup(dir); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return &Cgroup{Dir: dir, fd: fd}, nil
}

// FD is the directory descriptor for SysProcAttr.CgroupFD.
func (c *Cgroup) FD() int { return c.fd }

// Probe measures what runs in the cgroup.
func (c *Cgroup) Probe() CgroupProbe { return CgroupProbe{Dir: c.Dir} }

// Destroy kills whatever still runs in the cgroup and removes it.
func (c *Cgroup) Destroy() error {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
	killCgroup(c.Dir)
	return removeCgroup(c.Dir)
}

func killCgroup(dir string) {
	// cgroup.kill (Linux 5.14) kills the whole tree at once, including
	// processes forked while it runs.
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err == nil {
		return
	}
	if pids, err := (CgroupProbe{Dir: dir}).Pids(); err == nil {
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func removeCgroup(dir string) error {
	// Children first (a server's own sub-cgroups).
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				removeCgroup(filepath.Join(dir, e.Name()))
			}
		}
	}
	// rmdir fails with EBUSY until the killed processes are gone.
	var err error
	for i := 0; i < 100; i++ {
		if err = unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// CgroupAvailable reports whether cgroup v2 directories can be made here.
func CgroupAvailable() bool {
	_, err := os.Stat(filepath.Join(CgroupRoot, "cgroup.procs"))
	return err == nil && unix.Access(CgroupRoot, unix.W_OK) == nil
}

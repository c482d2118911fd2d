package harness

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ftp/sluice/bench"
)

// DataSet is what every server serves, from one directory.
type DataSet struct {
	BigSize         int64 // big.img: retr, ftps-retr
	FanoutSize      int64 // fanout.img
	FanoutSmallSize int64 // fanout-small.img, above Config.FanoutBigMax clients
	SmallFiles      int   // small/: 4 KiB each
	ListEntries     int   // list/: empty files
}

// Names are the large files' names: their sizes are in them, so that
// bench-quick and bench can share one data directory without rewriting
// gigabytes each time they alternate.
func (d DataSet) Names() (big, fanout, fanoutSmall string) {
	tag := func(n int64) string { return strconv.FormatInt(n>>20, 10) + "M" }
	return "big-" + tag(d.BigSize) + ".img", "fanout-" + tag(d.FanoutSize) + ".img", "fanout-" + tag(d.FanoutSmallSize) + ".img"
}

// Make builds the data set under dir (reusing files of the right size from
// an earlier run), owned by uid:gid so every server's account can read
// them and write upload/, and reads the large files once so that they are
// in page cache before any server is measured.
func (d DataSet) Make(dir string, uid, gid int) error {
	for _, sub := range []string{"small", "list", "upload"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	big, fan, fanSmall := d.Names()
	for name, size := range map[string]int64{big: d.BigSize, fan: d.FanoutSize, fanSmall: d.FanoutSmallSize} {
		if size <= 0 {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err != nil || fi.Size() != size {
			os.Remove(p)
			f, err := bench.UploadSource(p, size)
			if err != nil {
				return fmt.Errorf("data set %s: %w", name, err)
			}
			f.Close()
		}
		if err := warm(p); err != nil {
			return err
		}
	}
	block := make([]byte, 4096)
	rand.Read(block)
	for i := 0; i < d.SmallFiles; i++ {
		p := filepath.Join(dir, "small", fmt.Sprintf("f%05d.bin", i))
		if fi, err := os.Stat(p); err == nil && fi.Size() == 4096 {
			continue
		}
		if err := os.WriteFile(p, block, 0o644); err != nil {
			return err
		}
	}
	for i := 0; i < d.ListEntries; i++ {
		p := filepath.Join(dir, "list", fmt.Sprintf("entry-%05d.dat", i))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return err
		}
	}
	// Leftovers of an interrupted stor.
	ups, _ := filepath.Glob(filepath.Join(dir, "upload", "*"))
	for _, u := range ups {
		os.Remove(u)
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func warm(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// Options configure a comparison run.
type Options struct {
	Quick   bool
	Reps    int
	Servers []string // any of sluice vsftpd proftpd pure-ftpd baseline
	Sluice  string   // path of the sluice binary
	Self    string   // path of the harness binary (for the baseline server)
	Peers   string   // where install-peers.sh unpacked the peers
	Data    string   // data set directory (the bench account's home)
	User    string
	Pass    string
	Data0   DataSet
	Cfg     bench.Config
	// PortBase is the first server's control port (the next servers get
	// the next ports); PasvBase the start of its passive range (each
	// server gets 600 ports, 1000 apart). Zero means 22021 and 30000.
	PortBase, PasvBase int
	// CgroupPrefix names the cgroups; empty means "sluice-bench-".
	CgroupPrefix string
	Command      string    // for the report
	Log          io.Writer // one line per measurement
	Stderr       io.Writer // progress (a terminal) or nil
}

// QuickOptions and FullOptions are `make bench-quick` and `make bench`.
func QuickOptions() Options {
	return Options{Quick: true, Reps: 2, Cfg: bench.QuickConfig(),
		Data0: DataSet{BigSize: 512 << 20, FanoutSize: 64 << 20, FanoutSmallSize: 32 << 20, SmallFiles: 500, ListEntries: 10000}}
}

// FullOptions is the complete set.
func FullOptions() Options {
	return Options{Reps: 5, Cfg: bench.DefaultConfig(),
		Data0: DataSet{BigSize: 2 << 30, FanoutSize: 256 << 20, FanoutSmallSize: 32 << 20, SmallFiles: 1000, ListEntries: 10000}}
}

// Run starts the servers, measures, stops everything (also on error or
// cancellation) and returns the report.
func Run(ctx context.Context, o Options) (*bench.Report, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the harness must run as root: the servers switch to the bench account, and it makes cgroups")
	}
	if !bench.CgroupAvailable() {
		return nil, fmt.Errorf("cgroup v2 is not writable at %s: server CPU could not be measured", bench.CgroupRoot)
	}
	work, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	env, err := NewEnv(o.Data, work, o.User, o.Pass)
	if err != nil {
		return nil, err
	}
	if o.CgroupPrefix != "" {
		env.CgroupPrefix = o.CgroupPrefix
	}
	logf := func(format string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", a...)
		}
	}
	logf("data set in %s", o.Data)
	if err := o.Data0.Make(o.Data, env.UID, env.GID); err != nil {
		return nil, fmt.Errorf("data set: %w", err)
	}
	o.Cfg.File, o.Cfg.FanoutFile, o.Cfg.FanoutSmallFile = o.Data0.Names()
	meta := bench.Meta{
		Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Command: o.Command,
		Machine: machine(), Kernel: kernel(), GoVersion: runtime.Version(),
		Versions: map[string]string{}, Reps: o.Reps,
		CPUMethod:  "one cgroup v2 per server under " + bench.CgroupRoot + " (cpu.stat usage_usec, which includes forked session processes); memory from /proc/PID/smaps_rollup of every process in the cgroup",
		Labels:     labels(o),
		IdleMethod: "growth of the server's session processes; the main process is left out",
	}
	var servers []*Server
	defer func() {
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				logf("stop %s: %v", s.Name, err)
			}
		}
	}()
	port, pasv := o.PortBase, o.PasvBase
	if port == 0 {
		port = 22021
	}
	if pasv == 0 {
		pasv = 30000
	}
	for i, name := range o.Servers {
		p := Ports{Control: port + i, PasvLow: pasv + 1000*i, PasvHigh: pasv + 1000*i + 599}
		var s *Server
		var err error
		switch name {
		case "sluice":
			s, err = env.StartSluice(o.Sluice, p)
		case "vsftpd":
			s, err = env.StartVsftpd(o.Peers, p)
		case "proftpd":
			s, err = env.StartProftpd(o.Peers, p)
		case "pure-ftpd":
			s, err = env.StartPureFtpd(o.Peers, p)
		case "baseline":
			s, err = env.StartBaseline(o.Self, p)
		default:
			err = fmt.Errorf("unknown server %q", name)
		}
		if err != nil {
			logf("%s: not measured: %v", name, err)
			meta.Notes = append(meta.Notes, fmt.Sprintf("%s: not measured: %v", name, err))
			continue
		}
		servers = append(servers, s)
		meta.Versions[s.Name] = s.Version
		meta.Notes = append(meta.Notes, s.Notes...)
		logf("%s %s: %s", s.Name, s.Version, strings.Replace(s.URL, ":"+o.Pass+"@", ":***@", 1))
	}
	if len(servers) == 0 {
		return nil, errors.New("no server started")
	}
	runners := make([]*bench.Runner, len(servers))
	var names []string
	for i, s := range servers {
		t, err := bench.ParseTarget(s.URL)
		if err != nil {
			return nil, err
		}
		t.Name = s.Name
		r := &bench.Runner{Target: t, Probe: s.Probe(), Cfg: o.Cfg, Progress: bench.NewProgress(o.Stderr)}
		if s.TLSURL != "" {
			tt, err := bench.ParseTarget(s.TLSURL)
			if err != nil {
				return nil, err
			}
			tt.Name = s.Name
			tt.TLSConfig.InsecureSkipVerify = true // our own self-signed certificate
			r.TLSTarget = tt
		}
		runners[i] = r
		names = append(names, s.Name)
	}
	// Repetitions are interleaved: rep 1 of every workload on every server,
	// then rep 2, so that a noisy minute hits every server alike.
	var results []bench.Result
	load0 := loadavg()
	start := time.Now()
	done := 0
reps:
	for rep := 1; rep <= o.Reps; rep++ {
		for _, w := range bench.AllWorkloads {
			for _, r := range runners {
				if ctx.Err() != nil {
					break reps
				}
				if !r.Applies(w) {
					continue
				}
				for _, res := range r.Run(ctx, w, rep) {
					results = append(results, res)
					line := fmt.Sprintf("[%5.0fs] rep %d %-10s %-14s %9s %-8s client CPU %.2fs server CPU %.2fs",
						time.Since(start).Seconds(), rep, res.Server, res.Workload, bench.FormatValue(res.Value), res.Unit, res.ClientCPU, res.ServerCPU)
					switch {
					case res.Unsupported:
						line += "  not supported: " + res.Err
					case res.Err != "":
						line += "  ERROR: " + res.Err
					}
					logf("%s", line)
				}
			}
		}
		done = rep
	}
	if ctx.Err() != nil {
		// Interrupted: keep what was measured in whole repetitions, and
		// say so; a partial repetition would favour the servers that
		// came first in it.
		if done == 0 {
			return nil, ctx.Err()
		}
		var kept []bench.Result
		for _, r := range results {
			if r.Rep <= done {
				kept = append(kept, r)
			}
		}
		results = kept
		meta.Notes = append(meta.Notes, fmt.Sprintf("interrupted: %d of %d repetitions completed; only those are reported", done, o.Reps))
		meta.Reps = done
	}
	meta.Notes = append(meta.Notes, fmt.Sprintf("measuring took %s; load average (1, 5, 15 min) before: %s, after: %s — anything above the harness's own ~2 means other work shared the machine and the figures are noisier",
		time.Since(start).Round(time.Second), load0, loadavg()))
	return bench.NewReport(meta, names, results), nil
}

func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func labels(o Options) map[string]string {
	l := map[string]string{
		bench.WRetr:     fmt.Sprintf("RETR %s, MB/s", size(o.Data0.BigSize)),
		bench.WFTPSRetr: fmt.Sprintf("FTPS RETR %s, MB/s", size(o.Data0.BigSize)),
		bench.WStor:     fmt.Sprintf("STOR %s, MB/s", size(o.Cfg.UploadSize)),
		bench.WLoginSeq: "logins/s, sequential",
		bench.WLoginPar: fmt.Sprintf("logins/s, %d parallel", o.Cfg.LoginParallel),
		bench.WSmall:    "4 KiB RETRs per second, one session",
		bench.WList:     fmt.Sprintf("LIST %d entries, s", o.Data0.ListEntries),
		bench.WMLSD:     fmt.Sprintf("MLSD %d entries, s", o.Data0.ListEntries),
		bench.WIdle:     fmt.Sprintf("PSS per idle session (%d sessions), KiB", o.Cfg.IdleSessions),
	}
	for _, n := range o.Cfg.Clients {
		sz := o.Data0.FanoutSize
		if n > o.Cfg.FanoutBigMax && o.Data0.FanoutSmallSize > 0 {
			sz = o.Data0.FanoutSmallSize
		}
		what := fmt.Sprintf("fan-out, %d clients × %s, aggregate MB/s", n, size(sz))
		if n == 1 {
			what = fmt.Sprintf("fan-out, 1 client × %s, MB/s", size(sz))
		}
		l[fmt.Sprintf("%s/%d", bench.WFanout, n)] = what
	}
	return l
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%s, %d cores%s", model, runtime.NumCPU(), mem)
}

func kernel() string {
	out, err := exec.Command("uname", "-srm").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Workload names, in the order a full run does them.
const (
	WRetr     = "retr"      // one session, RETR of the large file
	WStor     = "stor"      // one session, STOR of UploadSize bytes
	WFanout   = "fanout"    // N sessions RETR the same image at once
	WLoginSeq = "login-seq" // connect+USER+PASS+QUIT, one after another
	WLoginPar = "login-par" // the same, LoginParallel at a time
	WSmall    = "small"     // 4 KiB RETRs on one session
	WList     = "list"      // LIST of a 10 000-entry directory
	WMLSD     = "mlsd"      // MLSD of the same
	WIdle     = "idle"      // memory per idle, logged-in session
	WFTPSRetr = "ftps-retr" // RETR of the large file over explicit TLS
)

// AllWorkloads is every workload, in run order.
var AllWorkloads = []string{WRetr, WStor, WFanout, WLoginSeq, WLoginPar, WSmall, WList, WMLSD, WIdle, WFTPSRetr}

// Config says where a workload finds its files on the server and how hard
// it pushes. Paths are relative to the target's directory.
type Config struct {
	File       string // large file for retr and ftps-retr
	FanoutFile string // image the fan-out clients fetch
	// FanoutSmallFile, if set, replaces FanoutFile when more than
	// FanoutBigMax clients run, so that a 256-client point does not
	// move 64 GiB; reports say which size each point used.
	FanoutSmallFile string
	FanoutBigMax    int
	Clients         []int  // fan-out points
	SmallDir        string // directory of small files
	ListDir         string // directory of many entries
	UploadDir       string // where stor writes (and then deletes) its file
	UploadSize      int64
	// UploadSource is a local file (created if missing or short) that
	// stor sends with sendfile; keep it on tmpfs or in page cache.
	UploadSource  string
	LoginDuration time.Duration
	LoginParallel int
	SmallDuration time.Duration
	ListRuns      int
	IdleSessions  int
	// SetupParallel bounds how many sessions log in at once before a
	// fan-out or idle run (login is not what those measure).
	SetupParallel int
}

// DefaultConfig is a full run's settings.
func DefaultConfig() Config {
	return Config{
		File: "big.img", FanoutFile: "fanout.img", FanoutSmallFile: "fanout-small.img", FanoutBigMax: 32,
		// Fewer points than every power of two: `make bench` has 15
		// minutes for five repetitions of everything on five servers.
		Clients:  []int{1, 4, 16, 32, 64, 128, 256},
		SmallDir: "small", ListDir: "list", UploadDir: "upload", UploadSize: 2 << 30,
		LoginDuration: 2 * time.Second, LoginParallel: 8, SmallDuration: 2 * time.Second,
		ListRuns: 3, IdleSessions: 32, SetupParallel: 8,
	}
}

// QuickConfig is the reduced set of bench-quick and the integration test.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Clients = []int{1, 8, 32}
	c.UploadSize = 512 << 20
	c.LoginDuration, c.SmallDuration = time.Second, time.Second
	c.ListRuns, c.IdleSessions = 2, 16
	return c
}

// Runner runs workloads against one target.
type Runner struct {
	Target *Target
	// TLSTarget is the same server with explicit TLS, for ftps-retr;
	// nil skips that workload.
	TLSTarget *Target
	Probe     Probe     // nil when the server is not on this machine
	Progress  *Progress // nil for none
	Cfg       Config
}

// Applies reports whether a workload can run on this runner's target.
func (r *Runner) Applies(w string) bool {
	if r.Target.Raw {
		return w == WRetr || w == WFanout
	}
	if w == WFTPSRetr {
		return r.TLSTarget != nil
	}
	if w == WIdle {
		return r.Probe != nil
	}
	return true
}

// Run runs one repetition of a workload and returns its results (one per
// fan-out point for fanout).
func (r *Runner) Run(ctx context.Context, w string, rep int) []Result {
	switch w {
	case WFanout:
		var out []Result
		for _, n := range r.Cfg.Clients {
			file := r.Cfg.FanoutFile
			if r.Cfg.FanoutSmallFile != "" && r.Cfg.FanoutBigMax > 0 && n > r.Cfg.FanoutBigMax {
				file = r.Cfg.FanoutSmallFile
			}
			out = append(out, r.measure(ctx, fmt.Sprintf("%s/%d", w, n), n, rep, "MB/s", func(m *meter) error {
				return r.fanout(ctx, m, n, file)
			}))
			if ctx.Err() != nil {
				break
			}
		}
		return out
	case WRetr:
		return []Result{r.measure(ctx, w, 1, rep, "MB/s", func(m *meter) error { return r.retr(ctx, m, r.Target) })}
	case WFTPSRetr:
		return []Result{r.measure(ctx, w, 1, rep, "MB/s", func(m *meter) error { return r.retr(ctx, m, r.TLSTarget) })}
	case WStor:
		return []Result{r.measure(ctx, w, 1, rep, "MB/s", func(m *meter) error { return r.stor(ctx, m, rep) })}
	case WLoginSeq:
		return []Result{r.measure(ctx, w, 1, rep, "logins/s", func(m *meter) error { return r.logins(ctx, m, 1) })}
	case WLoginPar:
		p := r.Cfg.LoginParallel
		return []Result{r.measure(ctx, w, p, rep, "logins/s", func(m *meter) error { return r.logins(ctx, m, p) })}
	case WSmall:
		return []Result{r.measure(ctx, w, 1, rep, "files/s", func(m *meter) error { return r.small(ctx, m) })}
	case WList:
		return []Result{r.measure(ctx, w, 1, rep, "s", func(m *meter) error { return r.list(ctx, m, "LIST") })}
	case WMLSD:
		return []Result{r.measure(ctx, w, 1, rep, "s", func(m *meter) error { return r.list(ctx, m, "MLSD") })}
	case WIdle:
		return []Result{r.idle(ctx, rep)}
	}
	return []Result{{Server: r.Target.Name, Workload: w, Rep: rep, Err: "unknown workload", ServerCPU: -1}}
}

// meter is what a workload reports while it runs. The timed window is
// [start, stop]; workloads that need set-up first call start themselves.
type meter struct {
	bytes, ops atomic.Int64
	t0, t1     time.Time
	c0, s0     time.Duration
	c1, s1     time.Duration
	probe      Probe
	prog       *Progress
	started    bool
	value      func(m *meter) float64 // overrides the default value
	secs       float64                // overrides wall time (list)
}

func (m *meter) start() {
	if m.started {
		return
	}
	m.started = true
	m.c0 = ClientCPU()
	if m.probe != nil {
		m.s0, _ = m.probe.CPU()
	}
	m.t0 = time.Now()
}

func (m *meter) stop() {
	m.t1 = time.Now()
	m.c1 = ClientCPU()
	if m.probe != nil {
		m.s1, _ = m.probe.CPU()
	}
}

func (m *meter) add(n int64) {
	m.bytes.Add(n)
	if m.prog != nil {
		m.prog.Add(n)
	}
}

func (m *meter) op() {
	m.ops.Add(1)
	if m.prog != nil {
		m.prog.Add(1)
	}
}

// measure runs fn between CPU and clock readings and turns what it
// counted into a Result. fn may call m.start itself after its set-up.
func (r *Runner) measure(ctx context.Context, w string, clients, rep int, unit string, fn func(*meter) error) Result {
	m := &meter{probe: r.Probe, prog: r.Progress}
	res := Result{Server: r.Target.Name, Workload: w, Clients: clients, Rep: rep, Unit: unit, ServerCPU: -1}
	if r.Progress != nil {
		r.Progress.Begin(r.Target.Name+" "+w, r.expect(w, clients), unit)
	}
	err := fn(m)
	if !m.started {
		m.start()
	}
	if m.t1.IsZero() {
		m.stop()
	}
	if r.Progress != nil {
		r.Progress.End()
	}
	res.Bytes, res.Ops = m.bytes.Load(), m.ops.Load()
	res.Seconds = m.t1.Sub(m.t0).Seconds()
	if m.secs > 0 {
		res.Seconds = m.secs
	}
	res.ClientCPU = (m.c1 - m.c0).Seconds()
	if r.Probe != nil {
		res.ServerCPU = (m.s1 - m.s0).Seconds()
	}
	switch {
	case m.value != nil:
		res.Value = m.value(m)
	case unit == "MB/s" && res.Seconds > 0:
		res.Value = float64(res.Bytes) / 1e6 / res.Seconds
	case res.Seconds > 0:
		res.Value = float64(res.Ops) / res.Seconds
	}
	if err != nil {
		res.Err = err.Error()
		var re *ReplyError
		if errors.As(err, &re) && re.Code >= 500 && re.Code <= 504 && re.Code != 501 {
			res.Unsupported = true
		}
	}
	return res
}

// expect is the progress total: bytes for transfers (0 = unknown),
// seconds for timed workloads.
func (r *Runner) expect(w string, clients int) int64 {
	switch {
	case w == WStor:
		return r.Cfg.UploadSize
	case w == WLoginSeq || w == WLoginPar:
		return -int64(r.Cfg.LoginDuration)
	case w == WSmall:
		return -int64(r.Cfg.SmallDuration)
	}
	return 0
}

func (r *Runner) session(ctx context.Context, t *Target) (*Conn, error) {
	c, err := Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	if err := c.Login(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (r *Runner) retr(ctx context.Context, m *meter, t *Target) error {
	if t.Raw {
		var pipe *spliceBuf
		defer func() {
			if pipe != nil {
				pipe.close()
			}
		}()
		m.start()
		_, err := RawRetr(ctx, t, t.Path(r.Cfg.File), &pipe, m.add)
		m.stop()
		return err
	}
	c, err := r.session(ctx, t)
	if err != nil {
		return err
	}
	defer c.Quit()
	m.start()
	_, err = c.Retr(ctx, t.Path(r.Cfg.File), m.add)
	m.stop()
	return err
}

// UploadSource makes sure path holds at least size bytes of incompressible
// data and returns it open. The data is random so that no layer on the
// way can shortcut zeros.
func UploadSource(path string, size int64) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() >= size {
		return os.Open(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("upload source: %w", err)
	}
	block := make([]byte, 1<<20)
	if _, err := rand.Read(block); err != nil {
		f.Close()
		return nil, err
	}
	for off := int64(0); off < size; off += int64(len(block)) {
		// Vary each MiB a little so the file is not one block repeated.
		copy(block, strconv.FormatInt(off, 16))
		n := int64(len(block))
		if size-off < n {
			n = size - off
		}
		if _, err := f.Write(block[:n]); err != nil {
			f.Close()
			os.Remove(tmp)
			return nil, fmt.Errorf("upload source: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return os.Open(path)
}

func (r *Runner) stor(ctx context.Context, m *meter, rep int) error {
	src := r.Cfg.UploadSource
	if src == "" {
		dir := "/dev/shm"
		if _, err := os.Stat(dir); err != nil {
			dir = os.TempDir()
		}
		src = filepath.Join(dir, fmt.Sprintf("sluice-bench-upload-%d.bin", r.Cfg.UploadSize))
	}
	f, err := UploadSource(src, r.Cfg.UploadSize)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := r.session(ctx, r.Target)
	if err != nil {
		return err
	}
	defer c.Quit()
	name := r.Target.Path(fmt.Sprintf("%s/bench-%d-%d.bin", r.Cfg.UploadDir, os.Getpid(), rep))
	m.start()
	_, err = c.Stor(ctx, name, f, r.Cfg.UploadSize, m.add)
	m.stop()
	// Deleting is outside the timed window, and a failure to delete is
	// not a failed measurement (some servers or accounts cannot).
	_ = c.Delete(name)
	return err
}

// fanout logs n sessions in first (SetupParallel at a time), then starts
// every RETR at once: the figure is aggregate payload over the time from
// the start to the last byte.
func (r *Runner) fanout(ctx context.Context, m *meter, n int, file string) error {
	t := r.Target
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	if t.Raw {
		gate := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var pipe *spliceBuf
				defer func() {
					if pipe != nil {
						pipe.close()
					}
				}()
				<-gate
				if _, err := RawRetr(ctx, t, t.Path(file), &pipe, m.add); err != nil {
					fail(err)
				}
			}()
		}
		m.start()
		close(gate)
		wg.Wait()
		m.stop()
		return firstErr
	}
	conns, err := r.openSessions(ctx, n)
	defer func() {
		for _, c := range conns {
			c.Quit()
		}
	}()
	if err != nil {
		return err
	}
	gate := make(chan struct{})
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			if _, err := c.Retr(ctx, t.Path(file), m.add); err != nil {
				fail(err)
			}
		}()
	}
	m.start()
	close(gate)
	wg.Wait()
	m.stop()
	if firstErr != nil {
		return fmt.Errorf("%d clients: %w", n, firstErr)
	}
	return nil
}

// openSessions logs n sessions in, SetupParallel at a time.
func (r *Runner) openSessions(ctx context.Context, n int) ([]*Conn, error) {
	par := r.Cfg.SetupParallel
	if par < 1 {
		par = 1
	}
	conns := make([]*Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = r.session(ctx, r.Target)
		}()
	}
	wg.Wait()
	var ok []*Conn
	var err error
	for i, c := range conns {
		if c != nil {
			ok = append(ok, c)
		} else if err == nil {
			err = fmt.Errorf("session %d of %d: %w", i+1, n, errs[i])
		}
	}
	return ok, err
}

// logins runs connect+USER+PASS+QUIT loops on par workers for
// LoginDuration. Every step's reply is checked; a failed login fails the
// repetition (a server that refuses under load has not done the work).
func (r *Runner) logins(ctx context.Context, m *meter, par int) error {
	deadline := time.Now().Add(r.Cfg.LoginDuration)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	m.start()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := loginOnce(ctx, r.Target); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				m.op()
			}
		}()
	}
	wg.Wait()
	m.stop()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d logins failed, first: %v", n, n+m.ops.Load(), firstErr.Load())
	}
	return nil
}

func loginOnce(ctx context.Context, t *Target) error {
	c, err := Dial(ctx, t)
	if err != nil {
		return err
	}
	defer c.Close()
	code, _, err := c.Cmd("USER "+t.User, 230, 331)
	if err != nil {
		return err
	}
	if code == 331 {
		if _, _, err := c.cmdLog("PASS ****", "PASS "+t.Pass, 230); err != nil {
			return err
		}
	}
	_, _, err = c.Cmd("QUIT", 221)
	return err
}

// small lists SmallDir once, then RETRs its files one after another on one
// session (each with its own EPSV and data connection, as a client does)
// for SmallDuration.
func (r *Runner) small(ctx context.Context, m *meter) error {
	c, err := r.session(ctx, r.Target)
	if err != nil {
		return err
	}
	defer c.Quit()
	names, err := c.Names(ctx, r.Target.Path(r.Cfg.SmallDir))
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("small: directory is empty")
	}
	deadline := time.Now().Add(r.Cfg.SmallDuration)
	m.start()
	for i := 0; time.Now().Before(deadline); i++ {
		if ctx.Err() != nil {
			break
		}
		n, err := c.Retr(ctx, r.Target.Path(r.Cfg.SmallDir+"/"+names[i%len(names)]), nil)
		if err != nil {
			m.stop()
			return err
		}
		m.bytes.Add(n)
		m.op()
	}
	m.stop()
	return nil
}

// list times ListRuns listings of ListDir with verb (LIST or MLSD); the
// value is the median seconds per listing. A listing that does not have
// at least as many lines as the directory has entries fails (servers may
// cap listings).
func (r *Runner) list(ctx context.Context, m *meter, verb string) error {
	c, err := r.session(ctx, r.Target)
	if err != nil {
		return err
	}
	defer c.Quit()
	var secs []float64
	lines := 0
	m.start()
	for i := 0; i < max(1, r.Cfg.ListRuns); i++ {
		t0 := time.Now()
		n, l, err := c.List(ctx, verb, r.Target.Path(r.Cfg.ListDir))
		if err != nil {
			m.stop()
			return err // a 500 here is a server without the verb
		}
		secs = append(secs, time.Since(t0).Seconds())
		m.bytes.Add(n)
		m.op()
		lines = l
	}
	m.stop()
	med := Median(secs)
	m.value = func(*meter) float64 { return med }
	if lines < 2 {
		return fmt.Errorf("%s returned %d lines", verb, lines)
	}
	return nil
}

// idle opens IdleSessions logged-in sessions, waits for them to settle,
// and reports the growth of the server's memory per session (PSS is the
// headline: RSS counts shared pages once per process).
func (r *Runner) idle(ctx context.Context, rep int) Result {
	n := r.Cfg.IdleSessions
	res := Result{Server: r.Target.Name, Workload: WIdle, Clients: n, Rep: rep, Unit: "KiB", ServerCPU: -1}
	if r.Probe == nil {
		res.Err = "no server probe: memory cannot be measured remotely"
		return res
	}
	// Sessions of the previous workload may still be exiting, and a
	// pre-forking server may be refilling its pool: both would count as
	// memory of the idle sessions, or against them.
	m0, err := settle(r.Probe)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	t0 := time.Now()
	conns, err := r.openSessions(ctx, n)
	defer func() {
		for _, c := range conns {
			c.Quit()
		}
	}()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	m1, err := settle(r.Probe)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Seconds = time.Since(t0).Seconds()
	// Growth of the session processes only (see Mem.MainPSSKiB).
	d := Mem{
		RSSKiB: (m1.RSSKiB - m1.MainRSSKiB) - (m0.RSSKiB - m0.MainRSSKiB),
		PSSKiB: (m1.PSSKiB - m1.MainPSSKiB) - (m0.PSSKiB - m0.MainPSSKiB),
		Procs:  m1.Procs - m0.Procs, MainRSSKiB: m1.MainRSSKiB - m0.MainRSSKiB, MainPSSKiB: m1.MainPSSKiB - m0.MainPSSKiB,
	}
	res.Mem = &d
	res.Ops = int64(n)
	res.Value = float64(d.PSSKiB) / float64(n)
	return res
}

// settle waits until the server's process count has not changed for
// 700 ms (at most 10 s), then returns its memory.
func settle(p Probe) (Mem, error) {
	last, err := p.Memory()
	if err != nil {
		return last, err
	}
	stable := time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		m, err := p.Memory()
		if err != nil {
			return m, err
		}
		if m.Procs != last.Procs {
			stable = time.Now()
		}
		last = m
		if time.Since(stable) >= 700*time.Millisecond {
			break
		}
	}
	return last, nil
}

// ParseClients reads "1,2,4" or "1-256" (powers of two).
func ParseClients(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if a, b, ok := strings.Cut(part, "-"); ok {
			lo, e1 := strconv.Atoi(a)
			hi, e2 := strconv.Atoi(b)
			if e1 != nil || e2 != nil || lo < 1 || hi < lo {
				return nil, fmt.Errorf("clients %q: want N, N,M or LO-HI", s)
			}
			for n := lo; n <= hi; n *= 2 {
				out = append(out, n)
			}
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("clients %q: want N, N,M or LO-HI", s)
		}
		out = append(out, n)
	}
	return out, nil
}

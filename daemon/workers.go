package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/ftp"
	"github.com/sluice-ftp/sluice/policy"
)

// phase is where a worker is in its life. What it may ask the supervisor
// depends on it (requestTable).
type phase int

const (
	phaseSpawned  phase = iota // started, has not said Ready
	phaseIdle                  // in the pool, no connection yet
	phasePreAuth               // has a connection, nobody logged in
	phasePostAuth              // logged in as an account
	phaseClosed                // sent Close; only exit remains
)

func (p phase) String() string {
	return [...]string{"spawned", "idle", "pre-auth", "post-auth", "closed"}[p]
}

// request is one row of the supervisor's request table: a message type a
// worker may send, the phases in which it may, and how many times in a
// worker's life (0: no fixed bound). Everything not in the table is denied,
// and a denied request kills the worker: a well-behaved worker never sends
// one, so a worker that does is broken or compromised (OpenSSH's monitor
// works the same way).
type request struct {
	typ    ipc.Type
	phases []phase
	max    int
}

var requestTable = []request{
	{ipc.TReady, []phase{phaseSpawned}, 1},
	{ipc.TAuthRequest, []phase{phasePreAuth, phasePostAuth}, 0}, // bounded by max_login_attempts below
	{ipc.TEvent, []phase{phasePostAuth}, 0},
	{ipc.THookCheck, []phase{phasePostAuth}, 0}, // one at a time, at most maxHookChecks (hooks_wire.go)
	{ipc.TClose, []phase{phasePreAuth, phasePostAuth}, 1},
	// Handshakes: the control connection's (AUTH TLS, implicit TLS)
	// before login, data connections' after. Rate-limited per worker
	// (signRate in keys.go), not counted here.
	{ipc.TSign, []phase{phasePreAuth, phasePostAuth}, 0},
	// Metered sessions' transfers (quotas); handleMeter checks the rest.
	{ipc.TMeter, []phase{phasePostAuth}, 0},
}

// allowed checks a request against the table.
func allowed(t ipc.Type, p phase, count int) error {
	for _, r := range requestTable {
		if r.typ != t {
			continue
		}
		for _, rp := range r.phases {
			if rp == p {
				if r.max > 0 && count >= r.max {
					return fmt.Errorf("%s sent more than %d times", t, r.max)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not allowed in phase %s", t, p)
	}
	return fmt.Errorf("%s is never allowed from a worker", t)
}

// worker is the supervisor's handle on one worker process.
type worker struct {
	cmd    *exec.Cmd
	ipc    *ipc.Conn
	ready  chan struct{} // closed when the worker said Ready
	exited chan struct{} // closed when the process has been reaped
	gen    uint64        // config generation it was spawned for
	// started is when the exec began (worker_spawn_seconds).
	started time.Time
	// Running totals of the session's finished transfers (sluice status).
	bytesIn, bytesOut int64
	transfers         int
	lastPath          string
	current           *ftp.Event // the transfer in flight, from progress reports

	mu       sync.Mutex
	phase    phase
	counts   map[ipc.Type]int
	sess     sessionInfo
	summary  *ftp.Summary
	reason   string
	killWhy  string
	loggedIn string // account name while it holds a session slot
	opened   time.Time
	missing  []string // sandbox parts not enforced (Ready), require_sandbox = false only
	hookBusy bool     // a HookCheck is being answered
	tlsKeys  *tlsKeys // the FTPS key whose chain this worker was given
	sshKey   *sshKeys // the SSH host key, for an SFTP session
	signs    signBucket

	// Accounting (meter_wire.go), set at login.
	proto       string    // policy.ProtoFTP, ProtoFTPS or ProtoSFTP
	metered     bool      // rates or quotas apply: the worker sends Meter
	userCounted bool      // the kernel does not count it: the ledger does
	rates       ipc.Rates // the shares last sent
	xfers       map[uint64]*meterXfer
	ftpCounted  int64            // bytes of the running FTP transfer in the ledger
	sftpEnded   map[string]int64 // SFTP transfers ended, counted so far, by path
	denials     int              // sandbox denials the kernel logged for it
}

func (w *worker) pid() int { return w.cmd.Process.Pid }

// kill ends the worker with SIGKILL and records why (for the close log).
func (w *worker) kill(why string) {
	w.mu.Lock()
	if w.killWhy == "" {
		w.killWhy = why
	}
	w.mu.Unlock()
	w.cmd.Process.Kill()
}

// spawner starts workers from one OS thread that never exits: Pdeathsig
// is delivered when the *thread* that forked the child dies, not the
// process, and Go may retire idle threads (see PR_SET_PDEATHSIG in
// prctl(2) and golang/go#27505).
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

func newSpawner(n int) *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	for range n {
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			for r := range s.reqs {
				r.done <- r.cmd.Start()
			}
		}()
	}
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, done: done}
	return <-done
}

// spawnWorker starts `sluice worker` with its end of a fresh socketpair as
// fd 3. When the supervisor runs as root the worker starts as worker_uid
// with only CAP_SETUID and CAP_SETGID (ambient), which it needs to become
// the account's uid after login and then drops.
func (s *Server) spawnWorker() (*worker, error) {
	cfg := s.config()
	local, remote, err := ipc.Pair()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.exe, "worker")
	cmd.Args[0] = "sluice-worker"
	cmd.ExtraFiles = []*os.File{remote}
	cmd.Stderr = os.Stderr // a worker panic reaches the operator
	cmd.Dir = "/"
	// A minimal environment: nothing of the supervisor's leaks in.
	// multipathtcp=0: MPTCP sockets bypass Landlock's TCP rules (KERNEL-NOTES).
	cmd.Env = []string{"GODEBUG=multipathtcp=0", "PATH=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL,
		Setsid:    true, // no controlling terminal, own process group
	}
	if s.root {
		cmd.SysProcAttr.Credential = &syscall.Credential{
			Uid:    cfg.Server.WorkerUID,
			Gid:    cfg.Server.WorkerGID,
			Groups: []uint32{}, // explicit: no supplementary groups
		}
		cmd.SysProcAttr.AmbientCaps = policy.WorkerCaps
	}
	started := time.Now()
	err = s.spawner.start(cmd)
	remote.Close()
	if err != nil {
		local.Close()
		return nil, fmt.Errorf("start worker: %w", err)
	}
	w := &worker{
		cmd:       cmd,
		ipc:       local,
		ready:     make(chan struct{}),
		exited:    make(chan struct{}),
		gen:       s.generation.Load(),
		counts:    map[ipc.Type]int{},
		xfers:     map[uint64]*meterXfer{},
		sftpEnded: map[string]int64{},
		started:   started,
	}
	s.track(w)
	// The worker's first message from us: how to confine itself. It says
	// Ready only once confined.
	if err := s.sendConfine(w, cfg); err != nil {
		w.kill("confine failed: " + err.Error())
	}
	ipcDone := make(chan struct{})
	go func() {
		err := cmd.Wait()
		// The worker's last messages (Close) may still be queued on the
		// socket: let serveWorker drain them before the session is
		// written off. The peer end died with the process, so this ends
		// at EOF; the timeout only guards against a bug.
		select {
		case <-ipcDone:
		case <-time.After(2 * time.Second):
		}
		local.Close()
		close(w.exited)
		s.reaped(w, err)
	}()
	go func() {
		defer close(ipcDone)
		s.serveWorker(w)
	}()
	return w, nil
}

// serveWorker reads a worker's requests until it exits.
func (s *Server) serveWorker(w *worker) {
	for {
		m, files, err := w.ipc.Recv()
		if err != nil {
			if !ipc.IsClosed(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
				select {
				case <-w.exited:
				default:
					s.metrics.workerKilled("ipc_violation")
					w.kill("bad IPC message: " + err.Error())
				}
			}
			return
		}
		if len(files) > 0 {
			// Workers have no business sending descriptors upward.
			for _, f := range files {
				f.Close()
			}
			s.metrics.workerKilled("ipc_violation")
			w.kill("worker sent file descriptors")
			return
		}
		w.mu.Lock()
		p := w.phase
		err = allowed(m.Type(), p, w.counts[m.Type()])
		w.counts[m.Type()]++
		w.mu.Unlock()
		if err != nil {
			s.logs.Ops.Warn().Int("pid", w.pid()).Str("session", w.sess.ID).Err(err).Msg("worker broke the IPC protocol; killing it")
			s.metrics.workerKilled("ipc_violation")
			w.kill("denied request: " + err.Error())
			return
		}
		switch m := m.(type) {
		case ipc.Ready:
			s.metrics.spawned(time.Since(w.started))
			if len(m.Missing) > 0 && s.sandbox.require {
				s.logs.Ops.Error().Int("pid", w.pid()).Strs("not_enforced", m.Missing).Msg("worker could not confine itself; killing it")
				w.kill("sandbox incomplete")
				return
			}
			if len(m.Missing) > 16 {
				m.Missing = m.Missing[:16]
			}
			w.mu.Lock()
			w.phase = phaseIdle
			w.missing = m.Missing
			w.mu.Unlock()
			close(w.ready)
		case ipc.AuthRequest:
			if !s.handleAuth(w, m) {
				return
			}
		case ipc.Sign:
			if !s.handleSign(w, m) {
				return
			}
		case ipc.Meter:
			if !s.handleMeter(w, m) {
				return
			}
		case ipc.Event:
			if m.Kind == "progress" {
				// The running transfer, for sluice status only: not an
				// audit event.
				w.mu.Lock()
				ev := m.Event
				w.current = &ev
				w.mu.Unlock()
				s.countEvent(w, m.Event)
				continue
			}
			switch m.Kind {
			case "transfer":
				s.countEvent(w, m.Event)
			case "delete", "rename":
				s.fileEvent(w, m.Event)
			}
			w.mu.Lock()
			si := w.sess
			if m.Kind == "transfer" {
				// The transfer is over: its bytes join the session's
				// totals (sluice status) and it is no longer in flight.
				w.current = nil
				if m.Dir == "in" {
					w.bytesIn += m.Bytes
				} else {
					w.bytesOut += m.Bytes
				}
				w.transfers++
				w.lastPath = m.Path
			}
			w.mu.Unlock()
			s.logs.event(si, m.Event)
			if m.Kind == "transfer" {
				s.metrics.transfer(si.Account, m.Dir, m.Bytes, m.Duration, m.Code >= 200 && m.Code < 300)
			}
			if he, ok := sessionHookEvent(si, m.Event); ok {
				s.hooks.fire(he)
			}
		case ipc.HookCheck:
			if !s.handleHookCheck(w, m) {
				return
			}
		case ipc.Close:
			w.mu.Lock()
			w.phase = phaseClosed
			sum := m.Summary
			w.summary = &sum
			w.reason = m.Reason
			w.mu.Unlock()
		}
	}
}

// reaped runs when a worker process has exited: it frees the session's
// slots and writes the close line, whether the worker said goodbye or
// crashed (invariant 6: only its own session is affected).
func (s *Server) reaped(w *worker, waitErr error) {
	s.untrack(w)
	s.endMetered(w)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.loggedIn != "" {
		s.auth.release(w.loggedIn)
		w.loggedIn = ""
	}
	if w.sess.ID == "" {
		// Never had a session: an idle pool worker that was recycled,
		// or one that failed to start.
		if w.killWhy == "" && waitErr != nil && !s.stopping.Load() {
			s.logs.Ops.Warn().Int("pid", w.pid()).Err(waitErr).Msg("idle worker exited")
		}
		return
	}
	e := s.logs.Audit.Info().Str("event", "session.close").Str("session", w.sess.ID).
		Str("remote", w.sess.Remote).Int("pid", w.pid()).Float64("duration_s", time.Since(w.opened).Seconds())
	if w.sess.Account != "" {
		e = e.Str("account", w.sess.Account)
	}
	if w.summary != nil {
		e = e.Int64("bytes_in", w.summary.BytesIn).Int64("bytes_out", w.summary.BytesOut).
			Int("files_in", w.summary.FilesIn).Int("files_out", w.summary.FilesOut).
			Int("commands", w.summary.Commands).Int("last_code", w.summary.LastCode)
	}
	if w.reason != "" {
		e = e.Str("reason", w.reason)
	}
	if w.killWhy != "" {
		e = e.Str("killed", w.killWhy)
	}
	if waitErr != nil {
		e = e.Str("exit", waitErr.Error())
		if w.summary == nil && w.killWhy == "" {
			s.metrics.workerCrashed()
			s.logs.Ops.Warn().Str("session", w.sess.ID).Int("pid", w.pid()).Err(waitErr).Msg("worker died; its session is gone, the server goes on")
		}
	}
	e.Send()
	if w.sess.Account != "" {
		he := HookEvent{Event: "session-end", Account: w.sess.Account, Remote: w.sess.Remote, Session: w.sess.ID,
			DurationS: time.Since(w.opened).Seconds()}
		if sm := w.summary; sm != nil {
			he.BytesIn, he.BytesOut, he.FilesIn, he.FilesOut, he.Code = sm.BytesIn, sm.BytesOut, sm.FilesIn, sm.FilesOut, sm.LastCode
		}
		s.hooks.fire(he)
	}
	s.releaseConn(w.sess.Remote)
}

// endMetered closes the metered transfers a worker left open when it
// exited: their reservations are released and their live counts end. An
// upload cut short that way wrote bytes nobody reported, so the account's
// storage is counted again.
func (s *Server) endMetered(w *worker) {
	w.mu.Lock()
	xs := w.xfers
	w.xfers = nil
	name := w.loggedIn
	if name == "" {
		name = w.sess.Account
	}
	w.mu.Unlock()
	recount := false
	for _, x := range xs {
		if x.storage && x.reserved > 0 {
			s.meter.usage.add(x.real, 0, 0, -x.reserved)
		}
		if x.done != nil {
			x.done()
		}
		recount = recount || x.storage
	}
	if recount && name != "" {
		go s.meter.usage.rescan(name)
	}
}

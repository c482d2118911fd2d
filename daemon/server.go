// Package daemon is the supervisor: it binds the listeners, hands every
// accepted connection to a worker process, answers the workers' typed
// requests (authentication, audit events), and owns everything a worker
// must never hold: password hashes, the ban list, log files. It never
// reads a byte that a client sent (invariant 1): connections are passed
// to workers as file descriptors.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/datapath"
	"github.com/sluice-ftp/sluice/ftp"
	"github.com/sluice-ftp/sluice/policy"
)

// Server is the supervisor.
type Server struct {
	cfgPath    string // "" for the embedded default
	cfg        atomic.Pointer[policy.Config]
	generation atomic.Uint64
	logs       *Logs
	auth       *authBroker
	exe        string
	root       bool
	spawner    *spawner
	stopping   atomic.Bool
	sessionSeq atomic.Uint64
	sessionTag string
	metrics    *metrics
	started    time.Time
	exePath    string // the binary's path at start: what an upgrade runs
	// The metrics listener and its address, for a binary upgrade.
	metricsL    net.Listener
	metricsAddr string
	sandbox     sandboxState
	hooks       *hookRunner
	meter       *meter                  // byte counters, shares, quotas (accounting.go)
	tls         atomic.Pointer[tlsKeys] // nil when no listener offers FTPS
	ssh         atomic.Pointer[sshKeys] // nil when there is no SFTP listener

	mu        sync.Mutex
	listeners map[string]net.Listener
	workers   map[*worker]struct{}
	perIP     map[netip.Addr]int
	active    int // connections handed to workers and not yet closed
	idle      chan *worker
	refill    chan struct{}
	acceptWG  sync.WaitGroup
	handoffWG sync.WaitGroup // accepted connections not yet given to a worker
}

// Options configure New.
type Options struct {
	ConfigPath string // "" when cfg is the embedded default
	Stdout     io.Writer
	// Ready, if set, is called once the listeners are bound, with their
	// addresses (tests and `make run` print them).
	Ready func(addrs []string)
}

// New prepares a supervisor for cfg; Run starts it.
func New(cfg *policy.Config, o Options) (*Server, error) {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	logs, err := OpenLogs(logOptions(cfg), o.Stdout)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start workers: %w", err)
	}
	var tag [3]byte
	rand.Read(tag[:])
	s := &Server{
		cfgPath:    o.ConfigPath,
		logs:       logs,
		auth:       newAuthBroker(cfg),
		exe:        "/proc/self/exe",
		exePath:    exe,
		root:       policy.IsRoot(),
		spawner:    newSpawner(2),
		sessionTag: hex.EncodeToString(tag[:]),
		listeners:  map[string]net.Listener{},
		workers:    map[*worker]struct{}{},
		perIP:      map[netip.Addr]int{},
		refill:     make(chan struct{}, 1),
		metrics:    newMetrics(cfg.Metrics.MaxAccounts),
		started:    time.Now(),
	}
	s.cfg.Store(cfg)
	s.idle = make(chan *worker, 64)
	s.hooks = newHookRunner(s.config, s.root, logs)
	s.hooks.ran = s.metrics.hookRan
	return s, nil
}

func logOptions(cfg *policy.Config) LogOptions {
	return LogOptions{Audit: cfg.Log.Audit, Format: cfg.Log.Format, Level: cfg.Log.Level, Xferlog: cfg.Log.Xferlog}
}

func (s *Server) config() *policy.Config { return s.cfg.Load() }

// Run serves until ctx is cancelled (SIGTERM/SIGINT in cmd/sluice), then
// shuts down gracefully. SIGHUP reloads the configuration.
func (s *Server) Run(ctx context.Context, ready func(addrs []string)) error {
	defer s.logs.Close()
	cfg := s.config()
	log := s.logs.Ops
	if s.root {
		log.Info().Uint32("worker_uid", cfg.Server.WorkerUID).Msg("running as root: pre-login workers run as worker_uid, sessions as their account's uid")
	} else {
		log.Warn().Int("uid", os.Geteuid()).Msg("not running as root (developer mode): every session runs as this uid; no per-account uid switch")
	}
	for _, w := range cfg.Warnings() {
		log.Warn().Msg(w)
	}
	if err := s.prepareFolders(cfg); err != nil {
		return err
	}
	if err := s.initSandbox(cfg); err != nil {
		return err
	}
	defer s.closeSandbox()
	if err := s.loadKeys(cfg); err != nil {
		return err
	}
	// Signals are taken from here on, before the listeners exist: a
	// SIGHUP that arrives while starting (a client can already connect
	// once the socket listens) is handled after start-up instead of
	// killing the process (Go's default for an unhandled SIGHUP).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	m, err := newMeter(cfg, log)
	if err != nil {
		return err
	}
	s.meter = m
	defer m.close()
	stopRates := make(chan struct{})
	defer close(stopRates)
	go s.rateLoop(stopRates)
	if s.root {
		if err := WatchDenials(ctx, s.isWorker, s.sandboxDenied); err != nil {
			log.Warn().Err(err).Msg("cannot read the kernel log: sandbox denials are not counted (sluice_sandbox_denials_total)")
		}
	}
	var addrs []string
	for _, a := range listenerNames(cfg) {
		l, err := listen(listenerAddr(a))
		if err != nil {
			s.closeListeners()
			return err
		}
		s.listeners[a] = l
		addrs = append(addrs, l.Addr().String())
	}
	if ap := cfg.Metrics.Listen; ap.IsValid() {
		ml, ok := takeInherited("metrics:" + ap.String())
		if !ok {
			var err error
			if ml, err = listen(ap.String()); err != nil {
				s.closeListeners()
				return fmt.Errorf("metrics: %w", err)
			}
		}
		s.metricsL, s.metricsAddr = ml, ap.String()
		go s.serveMetrics(ctx, ml)
		log.Info().Str("listen", ml.Addr().String()).Msg("metrics at http://" + ml.Addr().String() + "/metrics")
	}
	if err := s.serveAdmin(ctx, cfg.Server.StateDir); err != nil {
		// sluice status will not work, but serving files does.
		log.Error().Err(err).Msg("no admin socket")
	}
	s.hooks.replay()
	defer s.hooks.close(2 * time.Second)
	go s.keepPool(ctx)
	for a, l := range s.listeners {
		s.acceptWG.Add(1)
		go s.acceptLoop(a, l)
	}
	log.Info().Strs("listen", addrs).Str("config", cfg.Source).Msg("sluice is serving FTP")
	if ready != nil {
		ready(addrs)
	}
	closeUnusedInherited()
	signalUpgradeReady()
	sd := newNotifier()
	if err := sd.ready("serving FTP on " + strings.Join(addrs, ", ")); err != nil {
		log.Warn().Err(err).Msg("systemd readiness notification failed")
	}
	var watchdog <-chan time.Time
	if sd.watchdog > 0 {
		t := time.NewTicker(sd.watchdog)
		defer t.Stop()
		watchdog = t.C
	}

	gc := time.NewTicker(time.Minute)
	defer gc.Stop()
	for {
		select {
		case <-ctx.Done():
			sd.stopping()
			return s.shutdown(s.config().Server.ShutdownGrace)
		case <-usr2:
			log.Info().Str("binary", s.exePath).Msg("binary upgrade: starting the new supervisor with our listeners")
			s.meter.handOver()
			pid, err := s.upgrade(sd)
			if err != nil {
				s.meter.keep()
				log.Error().Err(err).Msg("binary upgrade failed; still serving")
				continue
			}
			log.Info().Int("new_pid", pid).Msg("binary upgrade: the new supervisor serves; finishing our sessions")
			sd.send(fmt.Sprintf("MAINPID=%d", pid))
			// Transfers in progress finish however long they take; then
			// each session ends with 421 and its client reconnects to the
			// new supervisor.
			return s.shutdown(365 * 24 * time.Hour)
		case <-hup:
			s.reload()
			sd.status("serving FTP; configuration reloaded " + time.Now().Format(time.RFC3339))
		case <-usr1:
			// logrotate moved the files: write to new ones from now on.
			if err := s.logs.Reopen(); err != nil {
				log.Error().Err(err).Msg("log reopen failed; still writing to the old files")
			} else {
				log.Info().Msg("log files reopened")
			}
		case <-gc.C:
			s.auth.gc()
		case <-watchdog:
			// The ping comes from the supervisor's main loop, so a wedged
			// loop stops the pings and systemd restarts the service.
			sd.send("WATCHDOG=1")
		}
	}
}

// Listener names: an FTP listener is named by its address, an implicit
// FTPS one by "ftps://" and its address.
const (
	implicitPrefix = "ftps://"
	sftpPrefix     = "sftp://"
)

func listenerNames(cfg *policy.Config) []string {
	var names []string
	for _, ap := range cfg.FTP.Listen {
		names = append(names, ap.String())
	}
	for _, ap := range cfg.FTP.ImplicitListen {
		names = append(names, implicitPrefix+ap.String())
	}
	for _, ap := range cfg.SFTP.Listen {
		names = append(names, sftpPrefix+ap.String())
	}
	return names
}

func listenerAddr(name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, implicitPrefix), sftpPrefix)
}

// loadKeys loads (or, the first time, generates) the FTPS certificate
// when a listener offers FTPS, and logs its fingerprint.
func (s *Server) loadKeys(cfg *policy.Config) error {
	if len(cfg.SFTP.Listen) == 0 {
		s.ssh.Store(nil)
	} else {
		k, generated, err := loadSSHKeys(cfg)
		if err != nil {
			return err
		}
		s.ssh.Store(k)
		msg := "SSH host key loaded"
		if generated {
			msg = "generated an SSH host key (Ed25519)"
		}
		s.logs.Ops.Info().Str("key", k.source).Str("fingerprint", k.fingerprint).Msg(msg)
	}
	if !cfg.NeedsTLS() {
		s.tls.Store(nil)
		return nil
	}
	k, generated, err := loadTLSKeys(cfg)
	if err != nil {
		return err
	}
	s.tls.Store(k)
	e := s.logs.Ops.Info()
	if generated {
		e = s.logs.Ops.Warn()
	}
	msg := "FTPS certificate loaded"
	if generated {
		msg = "generated a self-signed FTPS certificate (set tls.cert_file and tls.key_file for a real one)"
	}
	e.Str("cert", k.source).Str("sha256", k.fingerprint).Msg(msg)
	return nil
}

// listen binds one FTP listener. MPTCP is off: Go 1.24+ listeners default
// to it, and MPTCP subflows bypass Landlock's TCP port rules.
func listen(addr string) (net.Listener, error) {
	if l, ok := takeInherited(addr); ok {
		return l, nil // handed over by the supervisor we replace
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, l := range s.listeners {
		l.Close()
		delete(s.listeners, a)
	}
}

// prepareFolders checks every account's storage directories. The embedded
// default creates its ./var/ftp (owned by the demo account's uid when run
// as root) so that `make run` needs nothing else; a configured server only
// warns about a missing directory: that account's logins fail until it
// exists, and the others are served.
func (s *Server) prepareFolders(cfg *policy.Config) error {
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		for _, f := range a.Folders {
			if _, err := os.Stat(f.Dir); err == nil {
				continue
			} else if !errors.Is(err, os.ErrNotExist) || s.cfgPath != "" {
				s.logs.Ops.Warn().Str("account", a.Name).Str("dir", f.Dir).Err(err).Msg("storage directory unavailable; logins to this account will fail")
				continue
			}
			if err := os.MkdirAll(f.Dir, 0o755); err != nil {
				return fmt.Errorf("create %s for account %s: %w", f.Dir, a.Name, err)
			}
			if s.root {
				if err := os.Chown(f.Dir, int(a.UID), int(a.GID)); err != nil {
					return fmt.Errorf("chown %s: %w", f.Dir, err)
				}
			}
			s.logs.Ops.Info().Str("dir", f.Dir).Str("account", a.Name).Msg("created storage directory")
		}
	}
	return nil
}

func (s *Server) acceptLoop(name string, l net.Listener) {
	defer s.acceptWG.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning.
			s.logs.Ops.Error().Err(err).Str("listener", name).Msg("accept failed")
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.handoffWG.Add(1)
		go func() {
			defer s.handoffWG.Done()
			s.handoff(name, c.(*net.TCPConn))
		}()
	}
}

// refuse writes a one-line reply and closes. Writing a fixed reply is not
// parsing client bytes; nothing is read.
func refuse(c net.Conn, line string) {
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, line+"\r\n")
	c.Close()
}

// handoff gives an accepted connection to a worker.
func (s *Server) handoff(listener string, c *net.TCPConn) {
	cfg := s.config()
	remote := c.RemoteAddr().String()
	ap, _ := netip.ParseAddrPort(remote)
	ip := ap.Addr().Unmap()
	if s.auth.banned(ip) {
		s.metrics.sessionRefused("banned")
		refuse(c, "421 Too many failed logins from your address; try again later.")
		return
	}
	if reason, label := s.admit(ip, cfg); reason != "" {
		s.logs.Audit.Info().Str("event", "session.refused").Str("remote", remote).Str("reason", reason).Send()
		s.metrics.sessionRefused(label)
		refuse(c, "421 "+reason)
		return
	}
	admitted := true
	defer func() {
		if admitted {
			s.releaseConn(remote)
		}
	}()
	// Keep Telnet Synch/urgent bytes (ABOR sent with MSG_OOB) in the
	// stream the worker reads.
	if err := datapath.SetOOBInline(c); err != nil {
		s.logs.Ops.Warn().Err(err).Msg("SO_OOBINLINE")
	}
	c.SetKeepAlive(true)

	w, err := s.acquire()
	if err != nil {
		s.logs.Ops.Error().Err(err).Msg("no worker for a new connection")
		s.metrics.sessionRefused("no_worker")
		refuse(c, "421 Service not available, try again later.")
		return
	}
	f, err := c.File()
	c.Close()
	if err != nil {
		w.kill("handoff failed")
		return
	}
	defer f.Close()
	id := fmt.Sprintf("%s-%d", s.sessionTag, s.sessionSeq.Add(1))
	start := ipc.Start{
		SessionID:  id,
		Listener:   listener,
		Remote:     remote,
		Local:      c.LocalAddr().String(),
		FTP:        ftpConfig(cfg),
		SwitchUser: s.root,
	}
	keys := s.tls.Load()
	var hostKey *sshKeys
	if strings.HasPrefix(listener, sftpPrefix) {
		hostKey = s.ssh.Load()
		start.Protocol = "sftp"
		start.SSHHostKey = hostKey.public
		start.FTP.TLS = policy.TLSOff // no FTPS chain for SSH sessions
		keys = nil
	}
	if strings.HasPrefix(listener, implicitPrefix) {
		start.FTP.Implicit = true
		start.FTP.TLS = policy.TLSRequired
	}
	if keys != nil && (start.FTP.Implicit || start.FTP.TLS != policy.TLSOff) {
		start.TLSChain = keys.chain
	} else {
		keys = nil
		start.FTP.TLS = policy.TLSOff
	}
	w.mu.Lock()
	w.tlsKeys = keys
	w.sshKey = hostKey
	w.phase = phasePreAuth
	w.sess = sessionInfo{ID: id, Remote: remote, Listener: listener}
	w.opened = time.Now()
	w.mu.Unlock()
	// Logged before the hand-off, so that it precedes every line of the
	// session (the worker may log in before this goroutine runs again).
	s.logs.Audit.Info().Str("event", "session.open").Str("session", id).Str("remote", remote).
		Str("listener", listener).Int("pid", w.pid()).Send()
	if err := w.ipc.Send(start, f); err != nil {
		w.mu.Lock()
		w.sess = sessionInfo{}
		w.mu.Unlock()
		w.kill("handoff failed: " + err.Error())
		s.logs.Audit.Info().Str("event", "session.close").Str("session", id).Str("remote", remote).
			Str("reason", "hand-off to the worker failed").Send()
		return
	}
	admitted = false // released by reaped() from now on
	s.metrics.sessionOpened(listenerProtocol(listener))
	w.mu.Lock()
	missing := w.missing
	w.mu.Unlock()
	if len(missing) > 0 {
		// require_sandbox = false: say so on every session.
		s.logs.Ops.Warn().Str("session", id).Int("pid", w.pid()).Strs("not_enforced", missing).
			Msg("session worker runs with an incomplete sandbox (require_sandbox = false)")
	}
}

// admit counts a new connection against the global and per-IP limits.
// It returns the reply text of a refusal and a short label for metrics,
// or "" when the connection is admitted.
func (s *Server) admit(ip netip.Addr, cfg *policy.Config) (reason, label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return "Server shutting down.", "shutdown"
	}
	if max := cfg.Limits.MaxSessions; max > 0 && s.active >= max {
		return "Too many connections; try again later.", "max_sessions"
	}
	if max := cfg.Limits.MaxSessionsPerIP; max > 0 && s.perIP[ip] >= max {
		return "Too many connections from your address.", "max_sessions_per_ip"
	}
	s.active++
	s.perIP[ip]++
	return "", ""
}

func (s *Server) releaseConn(remote string) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return
	}
	ip := ap.Addr().Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.perIP[ip] > 1 {
		s.perIP[ip]--
	} else {
		delete(s.perIP, ip)
	}
}

func ftpConfig(cfg *policy.Config) ftp.Config {
	return ftp.Config{
		Banner:           cfg.Server.Banner,
		PassivePortMin:   cfg.FTP.PassivePortMin,
		PassivePortMax:   cfg.FTP.PassivePortMax,
		PassiveAddress:   passiveAddress(cfg),
		AllowActive:      cfg.FTP.Active,
		AllowPassive:     cfg.FTP.Passive,
		LoginTimeout:     cfg.Limits.LoginTimeout,
		IdleTimeout:      cfg.Limits.IdleTimeout,
		DataTimeout:      cfg.Limits.DataTimeout,
		MaxLoginAttempts: cfg.Limits.MaxLoginAttempts,
		LogCommands:      cfg.Log.Commands,
		TLS:              cfg.FTP.TLS,
		VerifyOnRetr:     cfg.FTP.VerifyOnRetr,
	}
}

// acquire takes a ready worker from the pool, or starts one when the pool
// is empty (a burst larger than the pool pays for the exec).
func (s *Server) acquire() (*worker, error) {
	defer s.poke()
	for {
		select {
		case w := <-s.idle:
			select {
			case <-w.exited:
				continue
			default:
			}
			if w.gen != s.generation.Load() {
				w.kill("recycled after reload")
				continue
			}
			return w, nil
		default:
		}
		w, err := s.spawnWorker()
		if err != nil {
			return nil, err
		}
		select {
		case <-w.ready:
			return w, nil
		case <-w.exited:
			return nil, fmt.Errorf("worker %d exited during start-up", w.pid())
		case <-time.After(10 * time.Second):
			w.kill("start-up timeout")
			return nil, fmt.Errorf("worker %d did not become ready in 10s", w.pid())
		}
	}
}

func (s *Server) poke() {
	select {
	case s.refill <- struct{}{}:
	default:
	}
}

// keepPool keeps worker_pool idle workers started and ready, so that
// accept-to-greeting does not pay for an exec. Workers are started in
// parallel: an exec of the binary costs milliseconds of CPU on its own
// (measured in BenchmarkLoginStorm), and a serial refill would make that
// latency the ceiling of the login rate rather than the CPU.
func (s *Server) keepPool(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var pending atomic.Int64
	for {
		want := s.config().Server.WorkerPool
		for !s.stopping.Load() && len(s.idle)+int(pending.Load()) < want {
			pending.Add(1)
			go func() {
				defer func() {
					pending.Add(-1)
					s.poke()
				}()
				w, err := s.spawnWorker()
				if err != nil {
					s.logs.Ops.Error().Err(err).Msg("cannot start a pool worker")
					time.Sleep(time.Second)
					return
				}
				select {
				case <-w.ready:
					select {
					case s.idle <- w:
					default:
						w.kill("pool full")
					}
				case <-w.exited:
				case <-time.After(10 * time.Second):
					w.kill("start-up timeout")
				case <-ctx.Done():
					w.kill("shutdown")
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.refill:
		case <-t.C:
		}
	}
}

func (s *Server) track(w *worker) {
	s.mu.Lock()
	s.workers[w] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(w *worker) {
	s.mu.Lock()
	delete(s.workers, w)
	s.mu.Unlock()
}

// handleAuth answers one AuthRequest. It returns false if the worker was
// killed.
func (s *Server) handleAuth(w *worker, m ipc.AuthRequest) bool {
	cfg := s.config()
	w.mu.Lock()
	si := w.sess
	n := w.counts[ipc.TAuthRequest]
	prev := w.loggedIn
	w.mu.Unlock()
	if max := cfg.Limits.MaxLoginAttempts + 2; n > max {
		w.kill(fmt.Sprintf("more than %d login attempts on one connection", max))
		return false
	}
	ap, _ := netip.ParseAddrPort(si.Remote)
	ip := ap.Addr().Unmap()
	if prev != "" {
		// REIN and a new login: the old slot is given back first, the
		// worker keeps its uid, so only the same account can succeed
		// (the worker checks; the supervisor logs).
		s.auth.release(prev)
		w.mu.Lock()
		w.loggedIn = ""
		w.mu.Unlock()
	}
	var res authResult
	var keyFP string
	switch m.Method {
	case "", "password":
		res = s.auth.check(ip, m.User, m.Pass, sessionProtocol(si, m))
	case "publickey":
		keyFP = keyFingerprint(m.PublicKey)
		res = s.auth.checkKey(ip, m.User, m.PublicKey, m.Check)
		if m.Check {
			// The SSH query: may this key log in? No login, no slot.
			ok := res.account != nil
			if !ok {
				s.logs.Audit.Info().Str("event", "login.failed").Str("session", si.ID).Str("remote", si.Remote).
					Str("user", m.User).Str("method", "publickey").Str("key_sha256", keyFP).Int("code", res.code).Bool("banned", res.banned).Send()
				if res.banned && res.failed {
					s.logs.Audit.Warn().Str("event", "ban").Str("remote", ip.String()).Float64("for_s", cfg.Limits.BanDuration.Seconds()).Send()
				}
			}
			return s.replyAuth(w, ipc.AuthReply{OK: ok, Code: res.code, Msg: res.msg, Banned: res.banned})
		}
	default:
		w.kill("unknown auth method")
		return false
	}
	if res.account == nil {
		if res.failed {
			// Delay the failure before answering (but not the success):
			// brute force gets slow, real users do not notice.
			time.Sleep(cfg.Limits.FailDelay)
		}
		s.logs.Audit.Info().Str("event", "login.failed").Str("session", si.ID).Str("remote", si.Remote).
			Str("user", m.User).Int("code", res.code).Bool("banned", res.banned).Send()
		switch {
		case res.banned:
			s.metrics.login("banned")
		case res.failed:
			s.metrics.login("failed")
		default:
			s.metrics.login("refused") // e.g. the account's session limit
		}
		s.hooks.fire(HookEvent{Event: "login-failed", Account: m.User, Groups: []string{}, Remote: si.Remote, Session: si.ID, Code: res.code})
		if res.banned && res.failed {
			s.logs.Audit.Warn().Str("event", "ban").Str("remote", ip.String()).Float64("for_s", cfg.Limits.BanDuration.Seconds()).Send()
			s.hooks.fire(HookEvent{Event: "ban", Remote: ip.String(), Session: si.ID})
		}
		return s.replyAuth(w, ipc.AuthReply{Code: res.code, Msg: res.msg, Banned: res.banned})
	}
	acct := res.account
	if acct.TLS == policy.TLSRequired && !m.TLS {
		s.auth.release(acct.Name)
		s.logs.Audit.Info().Str("event", "login.failed").Str("session", si.ID).Str("remote", si.Remote).
			Str("user", m.User).Str("reason", "account requires TLS").Send()
		return s.replyAuth(w, ipc.AuthReply{Code: 530, Msg: "This account requires TLS: use AUTH TLS (or implicit FTPS) and log in again."})
	}
	if !s.preLogin(si, acct.Name) {
		s.auth.release(acct.Name)
		s.logs.Audit.Info().Str("event", "login.failed").Str("session", si.ID).Str("remote", si.Remote).
			Str("user", m.User).Str("reason", "pre-login hook").Send()
		return s.replyAuth(w, ipc.AuthReply{Code: 530, Msg: "Login refused by server policy."})
	}
	reply := ipc.AuthReply{OK: true, Account: acct.Name, UID: acct.UID, GID: acct.GID, Home: "/",
		Gates:      s.hooks.gates(acct.Name, acct.Groups),
		RequireTLS: acct.TLS == policy.TLSRequired || (acct.Limits.RequireTLS != nil && *acct.Limits.RequireTLS),
		TLSReuse:   acct.TLSReuse}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, fo := range acct.Folders {
		// Opened by the supervisor and passed as an fd: the worker needs no
		// path-based access to anything, and every path it resolves is
		// beneath one of these (invariant 4).
		d, err := os.OpenFile(fo.Dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			s.auth.release(acct.Name)
			s.logs.Ops.Error().Str("account", acct.Name).Err(err).Msg("cannot open storage directory")
			s.logs.Audit.Info().Str("event", "login.failed").Str("session", si.ID).Str("remote", si.Remote).
				Str("user", m.User).Str("reason", "storage unavailable").Send()
			s.metrics.login("refused")
			return s.replyAuth(w, ipc.AuthReply{Code: 530, Msg: "Storage for this account is unavailable; contact the administrator."})
		}
		files = append(files, d)
		reply.Folders = append(reply.Folders, ipc.Folder{Path: fo.Path, Dir: fo.Dir, Rights: uint16(fo.Rights)})
	}
	spec, layer2, err := s.postLoginSandbox(acct, files)
	if err != nil {
		s.auth.release(acct.Name)
		s.logs.Ops.Error().Str("account", acct.Name).Err(err).Msg("cannot build the session's Landlock layer; login refused (require_sandbox = true)")
		return s.replyAuth(w, ipc.AuthReply{Code: 530, Msg: "Session sandbox unavailable; contact the administrator."})
	}
	reply.Sandbox = spec
	if layer2 != nil {
		reply.Landlock = true
		files = append(files, layer2) // closed by the deferred loop above
	}
	// Into the account's cgroup before the reply: the data sockets the
	// worker opens from now on are the account's in the kernel's counters.
	proto := sessionProtocol(si, m)
	kernel := s.meter.enter(w.pid(), acct.Name)
	reply.Metered = metered(cfg, acct)
	var rates ipc.Rates
	if reply.Metered {
		rates = s.sessionRates(cfg, acct)
		reply.Rates = &rates
	}
	w.mu.Lock()
	w.loggedIn = acct.Name
	w.sess.Account = acct.Name
	w.phase = phasePostAuth
	w.proto = proto
	w.metered = reply.Metered
	w.userCounted = !kernel || proto == policy.ProtoSFTP
	w.rates = rates
	si = w.sess
	w.mu.Unlock()
	s.metrics.login("ok")
	ev := s.logs.Audit.Info().Str("event", "login.ok").Str("session", si.ID).Str("remote", si.Remote).
		Str("account", acct.Name).Uint32("uid", acct.UID)
	if m.Method == "publickey" {
		ev = ev.Str("method", "publickey").Str("key_sha256", keyFP)
	} else if m.Method == "password" {
		ev = ev.Str("method", "password")
	}
	if m.TLS {
		ev = ev.Bool("encrypted", true)
	}
	ev.Send()
	s.hooks.fire(HookEvent{Event: "login", Account: acct.Name, Remote: si.Remote, Session: si.ID})
	return s.replyAuth(w, reply, files...)
}

func (s *Server) replyAuth(w *worker, r ipc.AuthReply, files ...*os.File) bool {
	if err := w.ipc.Send(r, files...); err != nil {
		w.kill("auth reply failed: " + err.Error())
		return false
	}
	return true
}

// reload re-reads the configuration (SIGHUP). A bad file is refused as a
// whole and the running configuration stays; sessions go on either way.
func (s *Server) reload() {
	var cfg *policy.Config
	var err error
	if s.cfgPath == "" {
		cfg = policy.Default()
	} else {
		cfg, err = policy.Load(s.cfgPath)
	}
	if err != nil {
		s.logs.Ops.Error().Err(err).Msg("reload refused: configuration invalid; keeping the running one")
		return
	}
	old := s.config()
	s.cfg.Store(cfg)
	s.generation.Add(1)
	s.auth.reload(cfg)
	s.meter.register(cfg)
	if err := s.loadKeys(cfg); err != nil {
		s.logs.Ops.Error().Err(err).Msg("reload: FTPS certificate unusable; keeping the previous one")
	}
	if err := s.prepareFolders(cfg); err != nil {
		s.logs.Ops.Error().Err(err).Msg("reload: storage")
	}
	if err := s.rebuildLayer1(cfg); err != nil {
		s.logs.Ops.Error().Err(err).Msg("reload: worker sandbox")
	}
	s.updateListeners(old, cfg)
	// Idle workers were started for the old configuration: recycle them.
	for {
		select {
		case w := <-s.idle:
			w.kill("recycled after reload")
			continue
		default:
		}
		break
	}
	s.poke()
	s.logs.Ops.Info().Str("config", cfg.Source).Int("accounts", len(cfg.Accounts)).Msg("configuration reloaded; new sessions use it")
}

func (s *Server) updateListeners(old, cfg *policy.Config) {
	want := map[string]bool{}
	for _, a := range listenerNames(cfg) {
		want[a] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, l := range s.listeners {
		if !want[a] {
			l.Close()
			delete(s.listeners, a)
			s.logs.Ops.Info().Str("listen", a).Msg("listener closed by reload")
		}
	}
	for a := range want {
		if _, ok := s.listeners[a]; ok {
			continue
		}
		l, err := listen(listenerAddr(a))
		if err != nil {
			s.logs.Ops.Error().Err(err).Msg("reload: new listener")
			continue
		}
		s.listeners[a] = l
		s.acceptWG.Add(1)
		go s.acceptLoop(a, l)
		s.logs.Ops.Info().Str("listen", l.Addr().String()).Msg("listener added by reload")
	}
}

// shutdown stops accepting, asks every session to finish (transfers may
// run on until shutdown_grace), then kills what is left.
func (s *Server) shutdown(grace time.Duration) error {
	s.stopping.Store(true)
	s.closeListeners()
	if s.metricsL != nil {
		s.metricsL.Close()
	}
	s.acceptWG.Wait()
	s.handoffWG.Wait()
	deadline := time.Now().Add(grace)
	s.logs.Ops.Info().Float64("grace_s", grace.Seconds()).Msg("shutting down: no new connections; sessions finish their transfers")
	s.mu.Lock()
	var all []*worker
	for w := range s.workers {
		all = append(all, w)
	}
	s.mu.Unlock()
	for _, w := range all {
		w.mu.Lock()
		p := w.phase
		w.mu.Unlock()
		if p == phasePreAuth || p == phasePostAuth {
			w.ipc.Send(ipc.Shutdown{Deadline: deadline})
		} else {
			w.kill("shutdown")
		}
	}
	for _, w := range all {
		select {
		case <-w.exited:
		case <-time.After(time.Until(deadline)):
			w.kill("shutdown grace expired")
			<-w.exited
		}
	}
	s.logs.Ops.Info().Msg("stopped")
	return nil
}

func passiveAddress(cfg *policy.Config) string {
	if cfg.FTP.PassiveAddress.IsValid() {
		return cfg.FTP.PassiveAddress.String()
	}
	return ""
}

// sessionProtocol names how a session came in, for the roles' protocols
// limit: its listener's protocol, refined by what the login shows (an SSH
// auth method is SFTP; TLS on an FTP listener is explicit FTPS — the
// worker's word: the supervisor never sees the bytes).
func sessionProtocol(si sessionInfo, m ipc.AuthRequest) string {
	p := listenerProtocol(si.Listener)
	switch {
	case p != policy.ProtoFTP:
	case m.Method != "":
		p = policy.ProtoSFTP
	case m.TLS:
		p = policy.ProtoFTPS
	}
	return p
}

// listenerProtocol names a session's protocol from its listener, as the
// supervisor knows it at accept: sftp, ftps (implicit), or ftp (which an
// AUTH TLS may turn into FTPS later, out of the supervisor's sight).
func listenerProtocol(listener string) string {
	switch {
	case strings.HasPrefix(listener, sftpPrefix):
		return policy.ProtoSFTP
	case strings.HasPrefix(listener, implicitPrefix):
		return policy.ProtoFTPS
	}
	return policy.ProtoFTP
}

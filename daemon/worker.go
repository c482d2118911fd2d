package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ftp/sluice/accounting"
	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/datapath"
	"github.com/sluice-ftp/sluice/ftp"
	"github.com/sluice-ftp/sluice/policy"
)

// WorkerFD is the descriptor on which a worker finds its IPC socket
// (ExtraFiles[0]).
const WorkerFD = 3

// RunWorker is `sluice worker`: one session in its own process. It returns
// the process exit status.
//
// Order matters and is the security design: the worker says Ready, waits
// for a connection, serves the protocol; it learns who it is only from the
// supervisor's AuthReply, then drops to that uid/gid and verifies the drop
// before it touches a single file (it never opens a path: it gets directory
// fds and resolves beneath them).
func RunWorker() int {
	f := os.NewFile(WorkerFD, "ipc")
	if f == nil {
		fmt.Fprintln(os.Stderr, "sluice worker: no IPC socket on fd 3; this command is started by `sluice serve`")
		return 2
	}
	conn, err := ipc.FromFile(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice worker:", err)
		return 2
	}
	// Before confinement (filter 2 has no prctl): every thread, not only
	// the main one the init function named, is "sluice-worker" rather
	// than "exe" in ps -L, perf and the kernel's audit records.
	_ = policy.NameAllThreads("sluice-worker")
	missing, code := confineWorker(conn)
	if code >= 0 {
		return code
	}
	if err := conn.Send(ipc.Ready{PID: os.Getpid(), Missing: missing}); err != nil {
		return 1
	}
	m, files, err := conn.Recv()
	if err != nil {
		return 0 // recycled or supervisor gone before any session
	}
	start, ok := m.(ipc.Start)
	if !ok || len(files) != 1 {
		for _, f := range files {
			f.Close()
		}
		if _, shut := m.(ipc.Shutdown); shut {
			return 0
		}
		fmt.Fprintf(os.Stderr, "sluice worker: expected a connection, got %s with %d fds\n", m.Type(), len(files))
		return 1
	}
	nc, err := net.FileConn(files[0])
	files[0].Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice worker: client connection:", err)
		return 1
	}
	w := &workerSession{ipc: conn, start: start, replies: make(chan authReply, 1), verdicts: make(chan ipc.HookVerdict, 1),
		signReplies: make(chan ipc.SignReply, 1), grants: make(chan ipc.Grant, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.readSupervisor(cancel)

	if start.Protocol == "sftp" {
		sum, err := w.serveSSH(ctx, nc)
		reason := "quit"
		if err != nil {
			reason = err.Error()
		}
		conn.Send(ipc.Close{Summary: sum, Reason: reason})
		nc.Close()
		if w.tree != nil {
			w.tree.Close()
		}
		return 0
	}
	sess := ftp.NewSession(nc, start.FTP, w, w)
	w.sess = sess
	if len(start.TLSChain) > 0 {
		tc, err := w.tlsConfig(start.TLSChain)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sluice worker:", err)
			nc.Close()
			return 1
		}
		sess.SetTLS(tc)
	}
	err = sess.Serve(ctx)
	reason := "quit"
	if err != nil {
		reason = err.Error()
	}
	conn.Send(ipc.Close{Summary: sess.Summary(), Reason: reason})
	nc.Close()
	if w.tree != nil {
		w.tree.Close()
	}
	return 0
}

// confineWorker waits for the supervisor's Confine message and applies the
// pre-login sandbox (policy.ConfinePreLogin) before the worker says Ready,
// and so before it is given a client connection. It returns the exit code
// to end with, or -1 to go on.
func confineWorker(conn *ipc.Conn) ([]string, int) {
	m, files, err := conn.Recv()
	if err != nil {
		return nil, 0 // recycled or supervisor gone before any session
	}
	c, ok := m.(ipc.Confine)
	if !ok || len(files) > 1 {
		for _, f := range files {
			f.Close()
		}
		if _, shut := m.(ipc.Shutdown); shut {
			return nil, 0
		}
		fmt.Fprintf(os.Stderr, "sluice worker: expected confine, got %s with %d fds\n", m.Type(), len(files))
		return nil, 1
	}
	var ruleset *os.File
	if len(files) == 1 {
		ruleset = files[0]
		defer ruleset.Close()
	}
	missing, err := confinePreLogin(c.Spec, ruleset)
	if err != nil {
		// Fail closed: never serve a client unconfined when the
		// configuration requires the sandbox.
		fmt.Fprintln(os.Stderr, "sluice worker:", err)
		return nil, 4
	}
	return missing, -1
}

// confinePreLogin is the worker's pre-login confinement.
func confinePreLogin(spec policy.ConfineSpec, ruleset *os.File) ([]string, error) {
	warmUp()
	return policy.ConfinePreLogin(spec, ruleset)
}

// warmUp does, before confinement, the lazy one-time work of the Go
// runtime and standard library that reads files the sandbox then forbids:
// the local time zone (/etc/localtime) and package net's listen backlog
// (/proc/sys/net/core/somaxconn, read on the first Listen).
func warmUp() {
	_ = time.Now().Local()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	if l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
}

type authReply struct {
	r     ipc.AuthReply
	files []*os.File
}

// workerSession is the worker's side of the supervisor protocol: it is the
// ftp session's Authenticator and EventSink.
type workerSession struct {
	ipc      *ipc.Conn
	start    ipc.Start
	replies  chan authReply
	verdicts chan ipc.HookVerdict
	gateMu   sync.Mutex
	loggedIn atomic.Bool
	mu       sync.Mutex
	account  string
	uid, gid uint32
	tree     *datapath.Tree

	sess        *ftp.Session
	sshAcct     *ftp.Account // the SFTP session's login
	signMu      sync.Mutex
	signReplies chan ipc.SignReply

	// Accounting: the shares the supervisor pushes (Rates), and the
	// Meter exchange, one at a time (worker_meter.go).
	shares  accounting.ShareBox
	meterMu sync.Mutex
	grants  chan ipc.Grant
	meterID atomic.Uint64
}

// readSupervisor dispatches what the supervisor sends during the session:
// auth replies to the waiting Login, Shutdown to the session's context.
// If the supervisor goes away the session ends (the kernel would also
// kill us through Pdeathsig).
func (w *workerSession) readSupervisor(cancel context.CancelFunc) {
	for {
		m, files, err := w.ipc.Recv()
		if err != nil {
			cancel()
			return
		}
		switch m := m.(type) {
		case ipc.AuthReply:
			w.replies <- authReply{r: m, files: files}
		case ipc.HookVerdict:
			select {
			case w.verdicts <- m:
			default: // nobody asked: ignore
			}
		case ipc.Shutdown:
			cancel()
		case ipc.SignReply:
			select {
			case w.signReplies <- m:
			default: // nobody asked: drop
			}
		case ipc.Rates:
			w.shares.Set(accounting.In, m.In)
			w.shares.Set(accounting.Out, m.Out)
		case ipc.Grant:
			select {
			case w.grants <- m:
			default: // nobody asked: drop
			}
		default:
			for _, f := range files {
				f.Close()
			}
		}
	}
}

// Login implements ftp.Authenticator by asking the supervisor.
func (w *workerSession) Login(ctx context.Context, user, pass string) (*ftp.Account, error) {
	secure := w.sess != nil && w.sess.Secure()
	return w.login(ctx, ipc.AuthRequest{User: user, Pass: pass, TLS: secure})
}

// login sends an AuthRequest and, on success, becomes the account.
func (w *workerSession) login(ctx context.Context, req ipc.AuthRequest) (*ftp.Account, error) {
	if err := w.ipc.Send(req); err != nil {
		return nil, fmt.Errorf("ask supervisor: %w", err)
	}
	var ar authReply
	select {
	case ar = <-w.replies:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := ar.r
	if !r.OK {
		for _, f := range ar.files {
			f.Close()
		}
		switch {
		case r.Banned:
			return nil, &ftp.RefusedError{Code: 421, Msg: r.Msg, Err: ftp.ErrBanned}
		case r.Code == 530 && r.Msg == "Login incorrect.":
			return nil, ftp.ErrBadLogin
		default:
			return nil, &ftp.RefusedError{Code: r.Code, Msg: r.Msg, Err: ftp.ErrLoginRefused}
		}
	}
	dirs := ar.files
	var layer2 *os.File
	if r.Landlock && len(dirs) > 0 {
		layer2 = dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		defer layer2.Close()
	}
	if len(dirs) != len(r.Folders) {
		for _, f := range dirs {
			f.Close()
		}
		return nil, fmt.Errorf("supervisor sent %d directories for %d folders", len(dirs), len(r.Folders))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ar.files = dirs
	first := w.account == ""
	if w.account != "" && (r.Account != w.account || r.UID != w.uid || r.GID != w.gid) {
		for _, f := range ar.files {
			f.Close()
		}
		return nil, &ftp.RefusedError{Code: 530, Msg: "REIN cannot switch accounts: reconnect to log in as another user.", Err: ftp.ErrLoginRefused}
	}
	if err := w.enterAccount(r, layer2, first); err != nil {
		// Fail closed: a worker that could not drop privileges or
		// confine itself must not serve a single file.
		fmt.Fprintln(os.Stderr, "sluice worker:", err)
		os.Exit(3)
	}
	mounts := make([]datapath.Mount, len(r.Folders))
	for i, fo := range r.Folders {
		mounts[i] = datapath.Mount{Path: fo.Path, Dir: ar.files[i], Rights: datapath.Rights(fo.Rights)}
	}
	tree, err := datapath.NewTree(mounts)
	if err != nil {
		return nil, &ftp.RefusedError{Code: 530, Msg: "Account storage is misconfigured.", Err: ftp.ErrLoginRefused}
	}
	if w.tree != nil {
		w.tree.Close()
	}
	w.tree = tree
	w.loggedIn.Store(true)
	acct := &ftp.Account{Name: r.Account, FS: tree, Home: r.Home, RequireTLS: r.RequireTLS, TLSReuse: r.TLSReuse}
	if len(r.Gates) > 0 {
		gates := r.Gates
		acct.Gate = func(ctx context.Context, op, path string) error { return w.gate(ctx, gates, op, path) }
	}
	if r.Metered {
		if r.Rates != nil {
			w.shares.Set(accounting.In, r.Rates.In)
			w.shares.Set(accounting.Out, r.Rates.Out)
		}
		acct.Pacer = w.pacer
		acct.Meter = workerMeter{w}
	}
	return acct, nil
}

// errVetoed: a pre-hook refused the operation.
var errVetoed = errors.New("refused by a pre-hook")

// gate asks the supervisor to run the pre-hooks of op (only for the ops
// the AuthReply listed) and waits for the verdict.
func (w *workerSession) gate(ctx context.Context, gates []string, op, path string) error {
	if !slices.Contains(gates, op) {
		return nil
	}
	w.gateMu.Lock()
	defer w.gateMu.Unlock()
	select {
	case <-w.verdicts: // stale: its asker gave up
	default:
	}
	if err := w.ipc.Send(ipc.HookCheck{Op: op, Path: path}); err != nil {
		return err
	}
	select {
	case v := <-w.verdicts:
		if !v.OK {
			return errVetoed
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enterAccount is the login transition: become the account (uid/gid, no
// groups, no capabilities, verified), then enter its Landlock layer 2 and
// the narrower seccomp filter — before the first file is touched. On REIN
// (same account) the sandbox is already in place and could not be applied
// again anyway (filter 2 forbids landlock and seccomp calls).
func (w *workerSession) enterAccount(r ipc.AuthReply, layer2 *os.File, first bool) error {
	if err := w.becomeAccount(r); err != nil {
		return fmt.Errorf("privilege drop failed: %w", err)
	}
	if first && r.Sandbox != nil {
		if _, err := policy.ConfinePostLogin(*r.Sandbox, layer2); err != nil {
			return fmt.Errorf("post-login sandbox failed: %w", err)
		}
	}
	return nil
}

// becomeAccount switches to the account's uid/gid on the first login. A
// later login on the same connection (REIN) can only be the same account:
// the uid can no longer change.
func (w *workerSession) becomeAccount(r ipc.AuthReply) error {
	if w.account != "" {
		if w.start.SwitchUser {
			return policy.VerifyDropped(r.UID, r.GID)
		}
		return nil
	}
	if w.start.SwitchUser {
		if err := policy.DropPrivileges(r.UID, r.GID); err != nil {
			return err
		}
	}
	w.account, w.uid, w.gid = r.Account, r.UID, r.GID
	return nil
}

// Emit implements ftp.EventSink. Before login nothing is forwarded: the
// supervisor's request table allows events only post-login.
func (w *workerSession) Emit(ev ftp.Event) {
	if !w.loggedIn.Load() {
		return
	}
	w.ipc.Send(ipc.Event{Event: ev})
}

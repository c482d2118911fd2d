package bpf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/accounting"
)

// The tests re-exec the test binary as a helper process started directly
// in an account's cgroup (clone3 CLONE_INTO_CGROUP via
// SysProcAttr.UseCgroupFD): its sockets belong to that cgroup, like a
// worker's data sockets.
const helperEnv = "SLUICE_BPF_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := runHelper(mode, strings.Fields(os.Getenv(helperEnv+"_ARGS"))); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const cgroupRoot = "/sys/fs/cgroup/unified"

// env is one test's loaded accounting: a private parent cgroup, pin dir
// and snapshot dir, all removed at cleanup.
type env struct {
	t       *testing.T
	parent  string
	pinDir  string
	acct    *Accounting
	cgroups []string
}

var envSeq struct {
	sync.Mutex
	n int
}

func requireBPF(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs, creates cgroups and pins maps")
	}
	if !IsCgroup2(cgroupRoot) {
		t.Skipf("needs cgroup v2 at %s", cgroupRoot)
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireBPF(t)
	envSeq.Lock()
	envSeq.n++
	n := envSeq.n
	envSeq.Unlock()
	e := &env{
		t:      t,
		parent: filepath.Join(cgroupRoot, fmt.Sprintf("sluice-test-%d-%d", os.Getpid(), n)),
		pinDir: filepath.Join(DefaultBPFFS, fmt.Sprintf("sluice-test-%d-%d", os.Getpid(), n)),
	}
	if _, err := MakeCgroup(e.parent); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	e.load()
	return e
}

func (e *env) load() {
	e.t.Helper()
	a, err := Load(Options{CgroupPath: e.parent, PinDir: e.pinDir})
	if errors.Is(err, ErrUnavailable) {
		e.t.Skip(err)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.acct = a
}

func (e *env) cleanup() {
	if e.acct != nil {
		e.acct.Close()
	}
	Unpin(e.pinDir)
	for i := len(e.cgroups) - 1; i >= 0; i-- {
		removeCgroupRetry(e.cgroups[i])
	}
	removeCgroupRetry(e.parent)
}

// removeCgroupRetry waits for exited helpers to leave the cgroup (a
// zombie reaped a moment ago may still be listed).
func removeCgroupRetry(path string) {
	for i := 0; i < 50; i++ {
		if err := RemoveCgroup(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// account creates parent/acct-NAME and registers it.
func (e *env) account(name string) string {
	e.t.Helper()
	path := filepath.Join(e.parent, "acct-"+name)
	if _, err := MakeCgroup(path); err != nil {
		e.t.Fatal(err)
	}
	e.cgroups = append(e.cgroups, path)
	if _, err := e.acct.AddAccount(name, path); err != nil {
		e.t.Fatal(err)
	}
	return path
}

func (e *env) counters(name string) accounting.Counters {
	e.t.Helper()
	c, err := e.acct.Counters(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// helper starts the test binary in cgroup cg running mode with args.
type helper struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr strings.Builder
}

func startHelper(t testing.TB, cg string, cred *syscall.Credential, extra []*os.File, mode string, args ...string) *helper {
	t.Helper()
	h := &helper{}
	exe := os.Args[0]
	if cred != nil {
		exe = worldExecutable(t)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperEnv+"_ARGS="+strings.Join(args, " "), "GODEBUG=multipathtcp=0")
	cmd.ExtraFiles = extra
	cmd.Stderr = &h.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if cg != "" {
		f, err := os.Open(cg)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(f.Fd())
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdout = bufio.NewReader(out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.cmd = cmd
	return h
}

// line reads the helper's next output line.
func (h *helper) line(t testing.TB) string {
	t.Helper()
	s, err := h.stdout.ReadString('\n')
	if err != nil {
		h.cmd.Wait()
		t.Fatalf("helper output: %v (stderr: %s)", err, h.stderr.String())
	}
	return strings.TrimSpace(s)
}

func (h *helper) wait(t testing.TB) {
	t.Helper()
	io.Copy(io.Discard, h.stdout)
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v (stderr: %s)", err, h.stderr.String())
	}
}

func listenTCP(network string) (*net.TCPListener, error) {
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return l.(*net.TCPListener), nil
}

func dialTCP(network, addr string) (*net.TCPConn, error) {
	d := net.Dialer{}
	d.SetMultipathTCP(false)
	c, err := d.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// sparse returns an open sparse file of n bytes (zeros from page cache,
// no disk I/O) for sendfile.
func sparse(n int64) (*os.File, error) {
	f, err := os.CreateTemp("", "sluice-bpf-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	if err := f.Truncate(n); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sendN sends n bytes with sendfile (TCPConn.ReadFrom(*os.File)).
func sendN(c *net.TCPConn, n int64) (int64, error) {
	f, err := sparse(n)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return c.ReadFrom(f)
}

// recvAll splices everything to /dev/null (os.File.ReadFrom(conn)).
func recvAll(c *net.TCPConn) (int64, error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	return null.ReadFrom(c)
}

// runHelper is the child side. Modes:
//
//	dial-send NET ADDR N STREAMS     connect STREAMS times, send N bytes on each
//	dial-recv NET ADDR STREAMS       connect STREAMS times, receive to EOF
//	listen-send NET N                listen, print the address, accept one, send N
//	listen-recv NET                  listen, print the address, accept one, receive
//	paced-send NET ADDR STREAMS SECONDS PINDIR CGID  (see pace_test.go)
//	ro-update                        try to update the map on fd 3
//
// Each prints the bytes moved per stream, one line each.
func runHelper(mode string, args []string) error {
	switch mode {
	case "dial-send", "dial-recv":
		network, addr := args[0], args[1]
		var n int64
		streams := 1
		if mode == "dial-send" {
			n, _ = strconv.ParseInt(args[2], 10, 64)
			streams, _ = strconv.Atoi(args[3])
		} else {
			streams, _ = strconv.Atoi(args[2])
		}
		return parallel(streams, func(int) (int64, error) {
			c, err := dialTCP(network, addr)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			if mode == "dial-send" {
				return sendN(c, n)
			}
			return recvAll(c)
		})
	case "listen-send", "listen-recv":
		l, err := listenTCP(args[0])
		if err != nil {
			return err
		}
		fmt.Println(l.Addr().String())
		c, err := l.AcceptTCP()
		l.Close()
		if err != nil {
			return err
		}
		defer c.Close()
		var m int64
		if mode == "listen-send" {
			n, _ := strconv.ParseInt(args[1], 10, 64)
			m, err = sendN(c, n)
		} else {
			m, err = recvAll(c)
		}
		fmt.Println(m)
		return err
	case "paced":
		return pacedSendHelper(args)
	case "ro-update":
		return roUpdateHelper(args)
	case "fd-send":
		return fdSendHelper(args)
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

func parallel(streams int, f func(i int) (int64, error)) error {
	res := make([]int64, streams)
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = f(i)
		}()
	}
	wg.Wait()
	for i := range streams {
		fmt.Println(res[i])
	}
	return errors.Join(errs...)
}

// worldExecutable copies the test binary where an unprivileged helper can
// execute it (go test builds it in a 0700 directory).
func worldExecutable(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-bpf-exe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bpf.test")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

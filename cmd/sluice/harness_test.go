package main

// Integration tests: they build the real binary (CGO_ENABLED=0, as shipped),
// start it on loopback ports the test picks, and drive it with real
// clients (curl, lftp, wget, rclone, Python ftplib) and raw FTP. A client
// that is not installed makes its test skip and say so; .ci/run installs
// them all.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/sluice-ftp/sluice/bpf"
	"github.com/sluice-ftp/sluice/policy"
)

var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.Exit(1)
	}
	// The binary sits in a private temp dir; workers run as an
	// unprivileged uid and must be able to exec it.
	os.Chmod(dir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// isRoot reports whether the tests can exercise the uid switch.
func isRoot() bool { return os.Geteuid() == 0 }

// sessionUID is the uid sessions run as: the account's in root mode, ours
// in developer mode.
const accountUID = 65534

// freePort asks the kernel for a free TCP port on loopback.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeRange finds n consecutive ports free on both 127.0.0.1 and ::1.
func freeRange(t testing.TB, n int) (int, int) {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + int(randUint32()%30000)
		ok := true
		var ls []net.Listener
		for p := base; p < base+n && ok; p++ {
			for _, h := range []string{"127.0.0.1", "::1"} {
				l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(p)))
				if err != nil {
					ok = false
					break
				}
				ls = append(ls, l)
			}
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base, base + n - 1
		}
	}
	t.Fatal("no free passive port range")
	return 0, 0
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// server is one running sluice.
type server struct {
	t       testing.TB
	cmd     *exec.Cmd
	dir     string // test's scratch dir
	cfgPath string
	root    string // demo's storage dir
	port    int
	log     *syncBuffer
	done    chan struct{}
	// The server's own eBPF accounting cgroup and pin directory ("" when
	// not root: user-space accounting).
	cgroup, pinDir string
	bin            string // the binary it runs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serverOpts tweak the generated configuration.
type serverOpts struct {
	extraServer   string // lines appended to [server]
	extraFTP      string // lines appended to [ftp]
	limits        string // lines appended to [limits]
	extraAccounts string // whole [[account]] blocks appended
	extraTables   string // whole tables ([metrics] …) before the accounts
	audit         string // log.audit; "" means stdout
	ipv6          bool   // also listen on [::1]
	// bin: the binary to run ("" = the one built for the tests).
	bin string
	// accounting: lines of [accounting]. As root every server gets a
	// cgroup and a pin directory of its own (removed when it stops),
	// so that parallel tests never share counters.
	accounting string
}

var demoHash = sync.OnceValue(func() string {
	h, err := policy.HashPassword("demo")
	if err != nil {
		panic(err)
	}
	return h
})

// hashFor hashes a test password.
func hashFor(t testing.TB, pw string) string {
	h, err := policy.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// makeStorage creates a storage dir the account's uid can write.
func makeStorage(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if isRoot() {
		if err := os.Chown(dir, accountUID, accountUID); err != nil {
			t.Fatal(err)
		}
	}
}

func startServer(t testing.TB, o serverOpts) *server {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	s := &server{t: t, dir: dir, root: filepath.Join(dir, "ftp"), port: freePort(t), log: &syncBuffer{}, done: make(chan struct{})}
	makeStorage(t, s.root)
	pmin, pmax := freeRange(t, 30)
	listen := fmt.Sprintf(`"127.0.0.1:%d"`, s.port)
	if o.ipv6 {
		listen += fmt.Sprintf(`, "[::1]:%d"`, s.port)
	}
	cfg := fmt.Sprintf(`
[server]
state_dir = %q
shutdown_grace = "5s"
%s

[log]
audit = %q
format = "json"
commands = true
xferlog = %q

[ftp]
listen = [%s]
passive_ports = "%d-%d"
%s

[limits]
login_timeout = "20s"
idle_timeout = "60s"
data_timeout = "10s"
fail_delay = "10ms"
%s

%s

[accounting]
%s

[[account]]
name = "demo"
password = %q
uid = %d
gid = %d
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
%s
`, filepath.Join(dir, "state"), serverLines(o), auditDest(o), filepath.Join(dir, "xferlog"), listen, pmin, pmax, o.extraFTP, o.limits, o.extraTables,
		s.accountingLines(o), demoHash(), accountUID, accountUID, s.root, o.extraAccounts)
	s.cfgPath = filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.bin = sluiceBin
	if o.bin != "" {
		s.bin = o.bin
	}
	s.launch()
	t.Cleanup(s.stop)
	return s
}

// restart stops the server with SIGTERM and starts it again on the same
// configuration, state directory and accounting maps.
func (s *server) restart() {
	s.t.Helper()
	s.stop()
	s.launch()
}

// launch starts the server process and waits until it listens.
func (s *server) launch() {
	t := s.t
	t.Helper()
	s.done = make(chan struct{})
	serving := strings.Count(s.log.String(), "sluice is serving")
	s.cmd = exec.Command(s.bin, "serve", "--config", s.cfgPath)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := s.done
	go func() { s.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-s.done:
			t.Fatalf("sluice exited during start-up:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice did not listen within 15s:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Listening is not serving yet: wait for the end of start-up (admin
	// socket, signal handlers), which tests rely on.
	for strings.Count(s.log.String(), "sluice is serving") <= serving {
		select {
		case <-s.done:
			t.Fatalf("sluice exited during start-up:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice did not finish starting within 15s:\n%s", s.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *server) url(path string) string {
	return fmt.Sprintf("ftp://demo:demo@127.0.0.1:%d/%s", s.port, strings.TrimPrefix(path, "/"))
}

// stop sends SIGTERM and waits; on failure the server log is shown.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		s.t.Errorf("sluice did not stop within 15s of SIGTERM")
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.log.String())
	}
}

// writeRandom creates a file of n random bytes and returns its sha256.
func writeRandom(t testing.TB, path string, n int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// needTool skips the test when a client is not installed.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (.ci/run installs it): skipping", name)
	}
	return p
}

// runTool runs a client with a timeout and returns its combined output.
func runTool(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "LC_ALL=C.UTF-8")
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("%s timed out after %s", name, timeout)
	}
}

// ctrl is a raw FTP control connection for exact-reply tests.
type ctrl struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialCtrl(t testing.TB, addr string) *ctrl {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	k := &ctrl{t: t, c: c, r: bufio.NewReader(c)}
	k.expect(220)
	return k
}

// reply reads one (possibly multi-line) reply.
func (k *ctrl) reply() (int, string) {
	k.t.Helper()
	k.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	var all strings.Builder
	line, err := k.r.ReadString('\n')
	if err != nil {
		k.t.Fatalf("read reply: %v (so far %q)", err, line)
	}
	all.WriteString(line)
	if len(line) < 4 {
		k.t.Fatalf("short reply line %q", line)
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil {
		k.t.Fatalf("bad reply line %q", line)
	}
	if line[3] == '-' {
		end := line[:3] + " "
		for {
			l, err := k.r.ReadString('\n')
			if err != nil {
				k.t.Fatalf("read multi-line reply: %v", err)
			}
			all.WriteString(l)
			if strings.HasPrefix(l, end) {
				break
			}
		}
	}
	return code, all.String()
}

func (k *ctrl) expect(code int) string {
	k.t.Helper()
	got, text := k.reply()
	if got != code {
		k.t.Fatalf("want %d, got %q", code, text)
	}
	return text
}

func (k *ctrl) send(line string) {
	k.t.Helper()
	k.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(k.c, line+"\r\n"); err != nil {
		k.t.Fatalf("send %q: %v", line, err)
	}
}

// cmd sends a command and checks the reply code.
func (k *ctrl) cmd(line string, code int) string {
	k.t.Helper()
	k.send(line)
	return k.expect(code)
}

func (k *ctrl) login(user, pass string) {
	k.t.Helper()
	k.cmd("USER "+user, 331)
	k.cmd("PASS "+pass, 230)
}

func serverLines(o serverOpts) string {
	if o.extraServer != "" {
		return o.extraServer
	}
	return "worker_pool = 2"
}

func auditDest(o serverOpts) string {
	if o.audit != "" {
		return o.audit
	}
	return "stdout"
}

// accountingLines gives the server its own eBPF cgroup and pin directory
// when it can have them (root, cgroup v2), and removes them after it
// stops; o.accounting is added.
func (s *server) accountingLines(o serverOpts) string {
	lines := o.accounting
	if os.Geteuid() != 0 || !bpf.IsCgroup2(cgroupV2Root) || strings.Contains(lines, "cgroup =") {
		return lines
	}
	tag := fmt.Sprintf("sluice-test-%d-%s", os.Getpid(), filepath.Base(s.dir))
	s.cgroup = filepath.Join(cgroupV2Root, tag)
	s.pinDir = filepath.Join("/sys/fs/bpf", tag)
	s.t.Cleanup(func() {
		// After stop (cleanups run last-in first-out): no process is
		// left in the account cgroups.
		entries, _ := os.ReadDir(s.cgroup)
		for _, e := range entries {
			if e.IsDir() {
				os.Remove(filepath.Join(s.cgroup, e.Name()))
			}
		}
		os.Remove(s.cgroup)
		bpf.Unpin(s.pinDir)
	})
	return fmt.Sprintf("cgroup = %q\npin_dir = %q\n%s", s.cgroup, s.pinDir, lines)
}

// cgroupV2Root is the cgroup v2 mount of this machine kind (hybrid).
const cgroupV2Root = "/sys/fs/cgroup/unified"

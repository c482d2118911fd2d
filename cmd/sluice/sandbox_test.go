package main

// Adversarial tests of the worker sandbox (issue 4): the confinement seen
// from /proc, break-out attempts from inside the exact worker policy, and
// protocol attacks against the running server. The ones that need root
// (uid switch, /proc of other uids) skip elsewhere and say so; CI runs
// them as root.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/daemon"
	"github.com/sluice-ftp/sluice/policy"
)

func needRoot(t testing.TB, what string) {
	t.Helper()
	if !isRoot() {
		t.Skipf("needs root (CI runs as root): %s", what)
	}
}

// taskStatuses reads /proc/PID/task/*/status: every thread of a process.
func taskStatuses(t testing.TB, pid int) map[string]map[string]string {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, d := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, d.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		st := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				st[k] = strings.TrimSpace(v)
			}
		}
		out[d.Name()] = st
	}
	if len(out) == 0 {
		t.Fatalf("no task of pid %d", pid)
	}
	return out
}

// sessionPID returns the worker pid of the n-th session.open in the log.
func sessionPIDs(s *server) []int {
	var pids []int
	for _, e := range auditEvents(s) {
		if e["event"] == "session.open" {
			pids = append(pids, int(e["pid"].(float64)))
		}
	}
	return pids
}

// TestWorkerConfinementFromProc inspects live workers, every thread: before
// login NoNewPrivs 1, Seccomp 2 with one filter, only CAP_SETUID+CAP_SETGID;
// after login two filters, no capability at all, the account's ids, no
// supplementary groups.
func TestWorkerConfinementFromProc(t *testing.T) {
	needRoot(t, "reading /proc of workers running under other uids, and the uid switch")
	s := startServer(t, serverOpts{})
	pre := dialCtrl(t, s.addr())
	post := dialCtrl(t, s.addr())
	post.login("demo", "demo")
	post.cmd("PWD", 257)
	pre.cmd("NOOP", 200)
	waitLog(t, s, `"event":"session.open"`, 3) // the harness's start-up probe, pre, post
	pids := workerPIDs(t, s)
	if len(pids) != 1 {
		t.Fatalf("want one logged-in session, got %v", pids)
	}
	var postPID int
	for _, p := range pids {
		postPID = p
	}
	prePID := 0
	for _, p := range sessionPIDs(s) {
		if p != postPID {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err == nil {
				prePID = p
			}
		}
	}
	if prePID == 0 {
		t.Fatal("no live pre-login worker found")
	}
	check := func(pid int, want map[string]string) {
		t.Helper()
		for tid, st := range taskStatuses(t, pid) {
			for k, v := range want {
				if st[k] != v {
					t.Errorf("worker %d thread %s: %s = %q, want %q", pid, tid, k, st[k], v)
				}
			}
		}
	}
	zero := "0000000000000000"
	ids := fmt.Sprintf("%d\t%d\t%d\t%d", accountUID, accountUID, accountUID, accountUID)
	check(prePID, map[string]string{
		"NoNewPrivs": "1", "Seccomp": "2", "Seccomp_filters": "1",
		// Ambient capabilities must also be inheritable.
		"CapEff": "00000000000000c0", "CapPrm": "00000000000000c0", "CapInh": "00000000000000c0", "CapAmb": "00000000000000c0",
		"Uid": ids, "Gid": ids, "Groups": "",
	})
	check(postPID, map[string]string{
		"NoNewPrivs": "1", "Seccomp": "2", "Seccomp_filters": "2",
		"CapEff": zero, "CapPrm": zero, "CapInh": zero, "CapAmb": zero,
		"Uid": ids, "Gid": ids, "Groups": "",
	})
	// Landlock shows in /proc only indirectly; the self-test below and
	// TestSandboxedSessionStillWorks cover it.
}

// selftestEnv makes the test binary, re-executed, run sandboxSelftest
// instead of the tests: it confines itself as a worker
// (daemon.ConfineAsWorker, the worker's own code) and tries to break out.
const selftestEnv = "SLUICE_SANDBOX_SELFTEST"

func init() {
	if cfg := os.Getenv(selftestEnv); cfg != "" {
		os.Exit(sandboxSelftest(cfg))
	}
}

// attempt is one break-out try, as reported by the self-test.
type attempt struct {
	Name   string `json:"name"`
	Errno  string `json:"errno"` // "" when the call succeeded
	TID    int    `json:"tid"`
	Fresh  bool   `json:"fresh"` // ran on a thread created after confinement
	Expect string `json:"expect"`
}

func sandboxSelftest(cfgPath string) int {
	runtime.LockOSThread() // keep main on its own thread: attempts run elsewhere
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	before := map[int]bool{}
	for _, d := range tasks {
		n, _ := strconv.Atoi(d.Name())
		before[n] = true
	}
	other := os.Getenv("SLUICE_SELFTEST_OTHER") // a file of another account
	ro := os.Getenv("SLUICE_SELFTEST_RO")       // a read-only folder of this account
	_ = os.Getenv("SLUICE_SELFTEST_RW")         // the writable folder: reached through its fd
	allowedPort, _ := strconv.Atoi(os.Getenv("SLUICE_SELFTEST_PASSIVE"))
	allowedPortMax, _ := strconv.Atoi(os.Getenv("SLUICE_SELFTEST_PASSIVE_MAX"))
	blockedPort, _ := strconv.Atoi(os.Getenv("SLUICE_SELFTEST_BLOCKED"))
	ppid := os.Getppid() // getppid is not in the worker's allow-list
	dirs, err := daemon.ConfineAsWorker(cfg, "demo")
	if err != nil || len(dirs) != 2 {
		fmt.Println("ERROR", err)
		return 1
	}
	rwFD, roFD := int(dirs[0].Fd()), int(dirs[1].Fd()) // folders "/" and "/ro", in config order
	// Retire every thread that existed before confinement and is idle, so
	// that the attempts run on threads born inside the sandbox (a
	// goroutine that exits while locked takes its thread with it).
	for range len(before) + 4 {
		done := make(chan struct{})
		go func() { runtime.LockOSThread(); close(done) }()
		<-done
	}
	type try struct {
		name, expect string
		fn           func() error
	}
	sock := func(domain, typ, proto int) error {
		fd, err := unix.Socket(domain, typ, proto)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	openFile := func(p string, flags int) error {
		fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	// beneath opens as the worker does: relative to a folder's fd.
	beneath := func(dirfd int, name string, flags int) error {
		how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		if flags&unix.O_CREAT != 0 {
			how.Mode = 0o644
		}
		fd, err := unix.Openat2(dirfd, name, how)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	tcp := func(port int, bind bool) error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
		if bind {
			return unix.Bind(fd, sa)
		}
		return unix.Connect(fd, sa)
	}
	tries := []try{
		{"open /etc/shadow", "EACCES", func() error { return openFile("/etc/shadow", unix.O_RDONLY) }},
		{"open /etc/passwd", "EACCES", func() error { return openFile("/etc/passwd", unix.O_RDONLY) }},
		{"open another account's file", "EACCES", func() error { return openFile(other, unix.O_RDONLY) }},
		{"create in a read-only folder", "EACCES", func() error { return beneath(roFD, "new.txt", unix.O_WRONLY|unix.O_CREAT) }},
		{"write a file of a read-only folder", "EACCES", func() error { return beneath(roFD, "ro.txt", unix.O_WRONLY) }},
		{"create in a read-only folder by path", "EACCES", func() error { return openFile(filepath.Join(ro, "new.txt"), unix.O_WRONLY|unix.O_CREAT) }},
		{"mkdir in a read-only folder", "EACCES", func() error { return unix.Mkdirat(roFD, "d", 0o755) }},
		{"unlink in a read-only folder", "EACCES", func() error { return unix.Unlinkat(roFD, "ro.txt", 0) }},
		{"execve /bin/sh", "EPERM", func() error { return unix.Exec("/bin/sh", []string{"sh", "-c", "id"}, nil) }},
		{"ptrace attach to the parent", "EPERM", func() error { return unix.PtraceAttach(ppid) }},
		{"mount tmpfs", "EPERM", func() error { return unix.Mount("none", "/mnt", "tmpfs", 0, "") }},
		{"setuid(0)", "EPERM", func() error {
			_, _, e := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)
			return errnoErr(e)
		}},
		{"setresuid(0,0,0)", "EPERM", func() error {
			_, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0)
			return errnoErr(e)
		}},
		{"socket(AF_PACKET)", "EPERM", func() error { return sock(unix.AF_PACKET, unix.SOCK_RAW, 0) }},
		{"socket(AF_NETLINK)", "EPERM", func() error { return sock(unix.AF_NETLINK, unix.SOCK_RAW, 0) }},
		{"socket(AF_UNIX)", "EPERM", func() error { return sock(unix.AF_UNIX, unix.SOCK_STREAM, 0) }},
		{"socket(IPPROTO_MPTCP)", "EPERM", func() error { return sock(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP) }},
		{"bpf(BPF_PROG_LOAD)", "EPERM", func() error {
			var attr [128]byte
			_, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr))
			return errnoErr(e)
		}},
		{"bpf(BPF_OBJ_GET) of the pinned accounting map", "EPERM", func() error {
			path, _ := unix.BytePtrFromString("/sys/fs/bpf/sluice/accounts")
			var attr [16]byte
			*(*uintptr)(unsafe.Pointer(&attr[0])) = uintptr(unsafe.Pointer(path))
			_, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr))
			runtime.KeepAlive(path)
			return errnoErr(e)
		}},
		{"connect to a blocked port", "EACCES", func() error { return tcp(blockedPort, false) }},
		{"bind outside the passive range", "EACCES", func() error { return tcp(blockedPort, true) }},
		{"kill the parent", "EPERM", func() error { return unix.Kill(ppid, 0) }},
		{"unshare(CLONE_NEWUSER)", "EPERM", func() error { return unix.Unshare(unix.CLONE_NEWUSER) }},
		{"keyctl", "EPERM", func() error {
			_, _, e := unix.Syscall(unix.SYS_KEYCTL, 0, 0, 0)
			return errnoErr(e)
		}},
		{"userfaultfd", "EPERM", func() error {
			_, _, e := unix.Syscall(unix.SYS_USERFAULTFD, 0, 0, 0)
			return errnoErr(e)
		}},
		{"perf_event_open", "EPERM", func() error {
			_, _, e := unix.Syscall6(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0, 0)
			return errnoErr(e)
		}},
		{"io_uring_setup", "EPERM", func() error {
			var p [120]byte
			_, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&p[0])), 0)
			return errnoErr(e)
		}},
		{"prctl(PR_SET_DUMPABLE)", "EPERM", func() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0) }},
		{"landlock_create_ruleset", "EPERM", func() error {
			_, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1)
			return errnoErr(e)
		}},
		{"mmap PROT_EXEC", "EPERM", func() error {
			b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err == nil {
				unix.Munmap(b)
			}
			return err
		}},
		// Controls: what the account may do still works, so the denials
		// above are the policy and not a blanket refusal.
		{"read a read-only folder's file (control)", "", func() error { return beneath(roFD, "ro.txt", unix.O_RDONLY) }},
		{"read it by path (control)", "", func() error { return openFile(filepath.Join(ro, "ro.txt"), unix.O_RDONLY) }},
		{"create in the writable folder (control)", "", func() error { return beneath(rwFD, "ok.txt", unix.O_WRONLY|unix.O_CREAT) }},
		{"mkdir in the writable folder (control)", "", func() error { return unix.Mkdirat(rwFD, "okdir", 0o755) }},
		{"bind a passive port (control)", "", func() error {
			// The range is the policy; a port another test holds right
			// now is EADDRINUSE, which the kernel reports only after
			// Landlock allowed the bind: try the next one.
			var err error
			for p := allowedPort; p <= allowedPortMax; p++ {
				if err = tcp(p, true); err != unix.EADDRINUSE {
					return err
				}
			}
			return err
		}},
	}
	results := make([]attempt, len(tries))
	var wg sync.WaitGroup
	for i, tr := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			tid := unix.Gettid()
			err := tr.fn()
			a := attempt{Name: tr.name, TID: tid, Fresh: !before[tid], Expect: tr.expect}
			if err != nil {
				if e, ok := err.(syscall.Errno); ok {
					a.Errno = unix.ErrnoName(e)
				} else {
					a.Errno = err.Error()
				}
			}
			results[i] = a
		}()
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(results)
	return 0
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// TestSandboxSelftest runs the exact worker policy (pre-login layer, uid
// switch, post-login layer) in a child process, which then tries to break
// out from several goroutines on fresh locked threads.
func TestSandboxSelftest(t *testing.T) {
	needRoot(t, "the self-test switches to the account's uid like a worker")
	dir := t.TempDir()
	// Traversable by the account's uid, so that a refusal below is the
	// sandbox's and not the file permissions'.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	rw, ro, other := filepath.Join(dir, "rw"), filepath.Join(dir, "ro"), filepath.Join(dir, "other")
	for _, d := range []string{rw, ro, other} {
		makeStorage(t, d)
	}
	os.WriteFile(filepath.Join(ro, "ro.txt"), []byte("read me\n"), 0o666)
	os.Chown(filepath.Join(ro, "ro.txt"), accountUID, accountUID)
	secret := filepath.Join(other, "secret.txt")
	os.WriteFile(secret, []byte("other's\n"), 0o644)
	pmin, pmax := freeRange(t, 3)
	blocked := freePort(t)
	cfg := fmt.Sprintf(`
[server]
state_dir = %q
[log]
audit = "stdout"
[ftp]
listen = ["127.0.0.1:%d"]
passive_ports = "%d-%d"
active = false
[[account]]
name = "demo"
password = %q
uid = %d
gid = %d
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
  [[account.folder]]
  path = "/ro"
  dir = %q
  rights = ["list", "read"]
[[account]]
name = "other"
password = %q
uid = %d
gid = %d
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, filepath.Join(dir, "state"), freePort(t), pmin, pmax, demoHash(), accountUID, accountUID, rw, ro,
		demoHash(), accountUID, accountUID, other)
	cfgPath := filepath.Join(dir, "sluice.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), selftestEnv+"="+cfgPath, "GODEBUG=multipathtcp=0",
		"SLUICE_SELFTEST_OTHER="+secret, "SLUICE_SELFTEST_RO="+ro, "SLUICE_SELFTEST_RW="+rw,
		"SLUICE_SELFTEST_PASSIVE="+strconv.Itoa(pmin), "SLUICE_SELFTEST_PASSIVE_MAX="+strconv.Itoa(pmax), "SLUICE_SELFTEST_BLOCKED="+strconv.Itoa(blocked))
	// The supervisor's kernel-log watcher (sluice_sandbox_denials_total)
	// must see this child's seccomp denials.
	var childPID atomic.Int64
	var denied atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchErr := daemon.WatchDenials(ctx, func(pid int) bool { return int64(pid) == childPID.Load() }, func(d daemon.Denial) {
		if d.Kind == "seccomp" && strings.HasPrefix(d.Detail, "syscall=") {
			denied.Add(1)
		}
	})
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	err := cmd.Start()
	if err == nil {
		childPID.Store(int64(cmd.Process.Pid))
		err = cmd.Wait()
	}
	out := outBuf.Bytes()
	if strings.Contains(string(out), "AllThreadsSyscall") || strings.Contains(string(out), "operation not supported") {
		t.Skipf("test binary built with cgo (run with CGO_ENABLED=0, as make test does): %s", out)
	}
	if err != nil {
		t.Fatalf("self-test: %v\n%s", err, out)
	}
	var results []attempt
	line := out[strings.LastIndex(strings.TrimSpace(string(out)), "\n")+1:]
	if err := json.Unmarshal(line, &results); err != nil {
		t.Fatalf("self-test output: %v\n%s", err, out)
	}
	threads := map[int]bool{}
	for _, r := range results {
		threads[r.TID] = true
		if r.Errno != r.Expect {
			t.Errorf("%s: got %q, want %q", r.Name, orOK(r.Errno), orOK(r.Expect))
		}
		if !r.Fresh {
			t.Errorf("%s ran on thread %d, which existed before confinement", r.Name, r.TID)
		}
	}
	if len(threads) < 4 {
		t.Errorf("attempts ran on only %d threads", len(threads))
	}
	t.Logf("%d attempts on %d fresh threads", len(results), len(threads))
	if watchErr != nil {
		t.Errorf("cannot watch the kernel log: %v", watchErr)
	} else {
		// The kernel prints the records after the syscalls return.
		for i := 0; i < 50 && denied.Load() == 0; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if denied.Load() == 0 {
			t.Errorf("no seccomp denial of the self-test process %d seen in the kernel log", childPID.Load())
		}
		t.Logf("kernel log: %d seccomp denials of the self-test process", denied.Load())
	}
	if b, _ := os.ReadFile(secret); string(b) != "other's\n" {
		t.Errorf("another account's file changed: %q", b)
	}
}

func orOK(s string) string {
	if s == "" {
		return "success"
	}
	return s
}

// TestProtocolAttacks: hostile input on the control connection, against a
// server whose other account must come out unharmed.
func TestProtocolAttacks(t *testing.T) {
	otherDir := filepath.Join(t.TempDir(), "other")
	makeStorage(t, otherDir)
	os.Chmod(filepath.Dir(otherDir), 0o755)
	secret := filepath.Join(otherDir, "precious.bin")
	sum := writeRandom(t, secret, 1<<20)
	s := startServer(t, serverOpts{
		extraAccounts: fmt.Sprintf(`
[[account]]
name = "other"
password = %q
uid = %d
gid = %d
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, demoHash(), accountUID, accountUID, otherDir),
	})
	os.WriteFile(filepath.Join(s.root, "mine.txt"), []byte("mine\n"), 0o644)
	// A short login_timeout for the slowloris case, through a reload (the
	// harness fixes it at 20s).
	b, _ := os.ReadFile(s.cfgPath)
	os.WriteFile(s.cfgPath, []byte(strings.Replace(string(b), `login_timeout = "20s"`, `login_timeout = "3s"`, 1)), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, s, "configuration reloaded", 1)

	t.Run("before login", func(t *testing.T) {
		k := dialCtrl(t, s.addr())
		for _, c := range []string{"LIST", "RETR mine.txt", "STOR x", "CWD /", "MKD x", "DELE mine.txt",
			"SITE CHMOD 777 mine.txt", "PASV", "EPSV", "PORT 127,0,0,1,200,1", "SIZE mine.txt", "RNFR mine.txt", "STAT /"} {
			k.cmd(c, 530)
		}
	})
	t.Run("traversal", func(t *testing.T) {
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		for _, c := range []string{
			`SIZE ..\..\..\etc\passwd`, `SIZE ..\\..\\etc\\passwd`, "SIZE %2e%2e/%2e%2e/etc/passwd",
			"SIZE /etc/passwd", "SIZE //etc/passwd", "SIZE ../other/precious.bin", "SIZE ....//....//etc/passwd",
			"SIZE /../../../etc/shadow", "SIZE mine.txt\x00/../../etc/passwd", "SIZE \xc0\xae\xc0\xae/etc/passwd",
			"SIZE \xe0\x80\xae\xe0\x80\xae/etc/passwd", "CWD \xc0\xae\xc0\xae", "RETR ../../../../etc/shadow",
			"DELE ../other/precious.bin", "RNFR /../other/precious.bin",
		} {
			k.send(c)
			if code, text := k.reply(); code < 500 {
				t.Errorf("%q: got %q, want a refusal", c, text)
			}
		}
		k.cmd("SIZE mine.txt", 213) // the session is still fine
	})
	t.Run("SITE", func(t *testing.T) {
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		for _, c := range []string{"SITE EXEC /bin/sh -c id", "SITE CPFR mine.txt", "SITE SYMLINK /etc/passwd x",
			"SITE UMASK 000", "SITE CHMOD 4755 mine.txt", "SITE ZZZZ"} {
			k.send(c)
			if code, text := k.reply(); code < 500 {
				t.Errorf("%q: got %q, want a refusal", c, text)
			}
		}
	})
	t.Run("100 KB line", func(t *testing.T) {
		c, err := net.Dial("tcp", s.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		r.ReadString('\n')
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go c.Write([]byte("USER " + strings.Repeat("A", 100<<10) + "\r\n"))
		line, _ := r.ReadString('\n')
		if strings.HasPrefix(line, "331") || strings.HasPrefix(line, "2") {
			t.Errorf("a 100 KB line got %q", line)
		}
	})
	t.Run("10000 pipelined", func(t *testing.T) {
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		go io.WriteString(k.c, strings.Repeat("NOOP\r\n", 10000))
		for i := 0; i < 10000; i++ {
			k.expect(200)
		}
		k.cmd("SIZE mine.txt", 213)
	})
	t.Run("slowloris", func(t *testing.T) {
		var conns []net.Conn
		for i := 0; i < 10; i++ {
			c, err := net.Dial("tcp", s.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("US"))
			conns = append(conns, c)
		}
		// Meanwhile a normal login works.
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		// login_timeout (3s) closes the dribblers.
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Errorf("slow connection not closed by login_timeout: %v", err)
			}
		}
	})
	t.Run("symlink swapped during RETR", func(t *testing.T) {
		big := filepath.Join(s.root, "big.bin")
		want := writeRandom(t, big, 32<<20)
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		k.cmd("TYPE I", 200)
		text := k.cmd("EPSV", 229)
		i := strings.Index(text, "(|||")
		port, _ := strconv.Atoi(strings.TrimSuffix(text[i+4:strings.Index(text, "|)")], "|"))
		d, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		k.cmd("RETR big.bin", 150)
		buf := make([]byte, 1<<16)
		io.ReadFull(d, buf) // the transfer is under way: swap the name
		os.Rename(big, big+".orig")
		os.Symlink("/etc/shadow", big)
		rest, _ := io.ReadAll(d)
		d.Close()
		k.expect(226)
		got := sha256Bytes(append(buf, rest...))
		if got != want {
			t.Errorf("the transfer under way changed content after the swap")
		}
		for _, target := range []string{"/etc/shadow", "../../../../etc/shadow", otherDir + "/precious.bin"} {
			os.Remove(big)
			os.Symlink(target, big)
			k.send("SIZE big.bin")
			if code, text := k.reply(); code < 500 {
				t.Errorf("symlink to %s: SIZE got %q", target, text)
			}
		}
	})
	t.Run("500 parallel connections", func(t *testing.T) {
		var greeted, refused atomic.Int64
		var wg sync.WaitGroup
		conns := make([]net.Conn, 500)
		defer func() {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
		}()
		for i := 0; i < 500; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", s.addr(), 10*time.Second)
				if err != nil {
					return
				}
				conns[i] = c // all stay open until every one has its answer
				c.SetDeadline(time.Now().Add(15 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				switch {
				case strings.HasPrefix(line, "220"):
					greeted.Add(1)
				case strings.HasPrefix(line, "421"):
					refused.Add(1)
				}
			}()
		}
		wg.Wait()
		for i, c := range conns {
			if c != nil {
				c.Close()
				conns[i] = nil
			}
		}
		// max_sessions_per_ip defaults to 20 (the harness leaves it).
		if greeted.Load() > 20 {
			t.Errorf("%d connections greeted from one address; the per-IP limit is 20", greeted.Load())
		}
		t.Logf("500 connections: %d greeted, %d refused", greeted.Load(), refused.Load())
		time.Sleep(500 * time.Millisecond)
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.Dial("tcp", s.addr())
			if err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "220") || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		k.cmd("SIZE mine.txt", 213)
	})
	select {
	case <-s.done:
		t.Fatalf("the server died:\n%s", s.log.String())
	default:
	}
	if got := sha256File(t, secret); got != sum {
		t.Errorf("another account's file was damaged")
	}
}

func sha256Bytes(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// retrOnce downloads name over EPSV and discards it (splicing into
// /dev/null, so the client is not the bottleneck). It returns the bytes
// and the time from RETR to 226.
func retrOnce(t testing.TB, s *server, name string) (int64, time.Duration) {
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	k.cmd("TYPE I", 200)
	text := k.cmd("EPSV", 229)
	i := strings.Index(text, "(|||")
	port, _ := strconv.Atoi(strings.TrimSuffix(text[i+4:strings.Index(text, "|)")], "|"))
	d, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	start := time.Now()
	k.send("RETR " + name)
	k.expect(150)
	n, err := io.Copy(null, d)
	if err != nil {
		t.Fatal(err)
	}
	k.expect(226)
	return n, time.Since(start)
}

// BenchmarkSandboxRETR compares a 2 GiB RETR from a sandboxed worker with
// one from an unconfined worker (require_sandbox = false and
// SLUICE_UNSAFE_NO_SANDBOX=1), in the same run, alternating:
//
//	go test -run '^$' -bench SandboxRETR -benchtime 3x ./cmd/sluice/
func BenchmarkSandboxRETR(b *testing.B) {
	on := startServer(b, serverOpts{})
	b.Setenv(daemon.UnsafeNoSandboxEnv, "1")
	off := startServer(b, serverOpts{extraServer: "worker_pool = 2\nrequire_sandbox = false"})
	os.Unsetenv(daemon.UnsafeNoSandboxEnv)
	// 2 GiB of incompressible data, in the page cache, shared by both.
	block := make([]byte, 1<<20)
	if _, err := io.ReadFull(randReader{}, block); err != nil {
		b.Fatal(err)
	}
	big := filepath.Join(on.root, "2g.bin")
	f, err := os.Create(big)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 2048; i++ {
		f.Write(block)
	}
	f.Close()
	os.Chmod(big, 0o644)
	if err := os.Link(big, filepath.Join(off.root, "2g.bin")); err != nil {
		b.Fatal(err)
	}
	retrOnce(b, on, "2g.bin") // warm the page cache
	var tOn, tOff time.Duration
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n, d := retrOnce(b, on, "2g.bin")
		tOn += d
		_, d = retrOnce(b, off, "2g.bin")
		tOff += d
		bytes += n
	}
	gib := float64(bytes) / (1 << 30)
	b.ReportMetric(gib/tOn.Seconds(), "GiB/s-sandbox")
	b.ReportMetric(gib/tOff.Seconds(), "GiB/s-nosandbox")
	b.ReportMetric(tOff.Seconds()/tOn.Seconds(), "ratio")
	if !strings.Contains(off.log.String(), "incomplete sandbox") {
		b.Errorf("the unconfined server did not warn on its sessions")
	}
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) { return rand.Read(p) }

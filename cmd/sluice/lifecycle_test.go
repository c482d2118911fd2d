package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// epsvDial opens a passive data connection with EPSV.
func (k *ctrl) epsvDial() net.Conn {
	k.t.Helper()
	text := k.cmd("EPSV", 229)
	i := strings.Index(text, "(|||")
	j := strings.Index(text, "|)")
	port, err := strconv.Atoi(text[i+4 : j])
	if err != nil {
		k.t.Fatalf("bad EPSV reply %q", text)
	}
	host, _, _ := net.SplitHostPort(k.c.RemoteAddr().String())
	d, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		k.t.Fatal(err)
	}
	return d
}

// TestGracefulShutdown: SIGTERM stops new connections but lets a running
// download finish with the right bytes.
func TestGracefulShutdown(t *testing.T) {
	s := startServer(t, serverOpts{})
	want := writeRandom(t, filepath.Join(s.root, "g.bin"), 64<<20)
	if isRoot() {
		os.Chown(filepath.Join(s.root, "g.bin"), accountUID, accountUID)
	}
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	k.cmd("TYPE I", 200)
	d := k.epsvDial()
	k.cmd("RETR g.bin", 150)
	// Read a little, then ask the server to stop mid-transfer.
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(d, buf); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	// No new connections.
	if c, err := net.DialTimeout("tcp", s.addr(), time.Second); err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line := make([]byte, 64)
		n, _ := c.Read(line)
		c.Close()
		if strings.HasPrefix(string(line[:n]), "220") {
			t.Fatalf("a new connection was greeted after SIGTERM: %q", line[:n])
		}
	}
	f, _ := os.CreateTemp(t.TempDir(), "g")
	f.Write(buf)
	if _, err := io.Copy(f, d); err != nil {
		t.Fatalf("download cut by shutdown: %v", err)
	}
	d.Close()
	f.Close()
	if got := sha256File(t, f.Name()); got != want {
		t.Fatalf("download finished with sha256 %s, want %s", got, want)
	}
	k.expect(226)
	code, text := k.reply()
	if code != 421 {
		t.Fatalf("after the transfer, got %q; want 421 (server shutting down)", text)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not exit after its last session ended")
	}
}

// TestUserCommands: `sluice user add/passwd/list/del` edit the config,
// and a running server applies them on SIGHUP.
func TestUserCommands(t *testing.T) {
	s := startServer(t, serverOpts{})
	dir := filepath.Join(s.dir, "bob")
	makeStorage(t, dir)
	user := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(sluiceBin, append([]string{"user"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sluice user %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	before, _ := os.ReadFile(s.cfgPath)
	user("builder\n", "add", "bob", "--config", s.cfgPath, "--dir", dir, "--rights", "list,read,write",
		"--uid", fmt.Sprint(accountUID), "--gid", fmt.Sprint(accountUID), "--password-stdin")
	after, _ := os.ReadFile(s.cfgPath)
	if !strings.HasPrefix(string(after), string(before)) {
		t.Errorf("user add changed the existing part of the file")
	}
	if out := user("", "list", "--config", s.cfgPath); !strings.Contains(out, "bob") || !strings.Contains(out, "demo") {
		t.Fatalf("user list:\n%s", out)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, s, "configuration reloaded", 1)
	k := dialCtrl(t, s.addr())
	k.login("bob", "builder")
	k.cmd("DELE x", 550) // no delete right

	user("carpenter\n", "passwd", "bob", "--config", s.cfgPath, "--password-stdin")
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, s, "configuration reloaded", 2)
	k = dialCtrl(t, s.addr())
	k.cmd("USER bob", 331)
	k.cmd("PASS builder", 530) // the cache was dropped with the old password
	k.cmd("USER bob", 331)
	k.cmd("PASS carpenter", 230)

	user("", "del", "bob", "--config", s.cfgPath)
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, s, "configuration reloaded", 3)
	k = dialCtrl(t, s.addr())
	k.cmd("USER bob", 331)
	k.cmd("PASS carpenter", 530)
	if got, _ := os.ReadFile(s.cfgPath); strings.TrimRight(string(got), "\n") != strings.TrimRight(string(before), "\n") {
		t.Errorf("add then del did not restore the file:\n%s", got)
	}

	// Bad input is refused with a clear message and changes nothing.
	cmd := exec.Command(sluiceBin, "user", "add", "demo", "--config", s.cfgPath, "--dir", dir, "--password-stdin")
	cmd.Stdin = strings.NewReader("x\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "demo") {
		t.Fatalf("adding a duplicate account: %v\n%s", err, out)
	}
}

// waitLog waits until the server log holds n occurrences of text.
func waitLog(t testing.TB, s *server, text string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(s.log.String(), text) < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d× %q in the log:\n%s", n, text, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeveloperMode: started as an ordinary user, the server works and
// says once that there is no uid switch. Needs root to become that user.
func TestDeveloperMode(t *testing.T) {
	if !isRoot() {
		t.Skip("this test starts sluice as uid 65534 and needs root for that; the whole suite running as non-root exercises developer mode anyway")
	}
	dir := t.TempDir()
	// The unprivileged server must reach its config: open up the test's
	// temp dirs (t.TempDir makes them 0700).
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	root := filepath.Join(dir, "ftp")
	makeStorage(t, root)
	port := freePort(t)
	pmin, pmax := freeRange(t, 10)
	cfg := fmt.Sprintf(`
[server]
worker_pool = 1
[log]
format = "json"
[ftp]
listen = ["127.0.0.1:%d"]
passive_ports = "%d-%d"
[[account]]
name = "demo"
password = %q
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, port, pmin, pmax, demoHash(), root)
	cfgPath := filepath.Join(dir, "sluice.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	log := &syncBuffer{}
	cmd := exec.Command(sluiceBin, "serve", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: accountUID, Gid: accountUID, Groups: []uint32{}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("developer-mode server did not listen:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	k := dialCtrl(t, addr)
	k.login("demo", "demo")
	d := k.epsvDial()
	k.cmd("STOR dev.txt", 150)
	d.Write([]byte("developer mode\n"))
	d.Close()
	k.expect(226)
	if got, _ := os.ReadFile(filepath.Join(root, "dev.txt")); string(got) != "developer mode\n" {
		t.Fatalf("stored %q", got)
	}
	if n := strings.Count(log.String(), "developer mode"); n != 1 {
		t.Errorf("the log mentions developer mode %d times, want once:\n%s", n, log.String())
	}
}

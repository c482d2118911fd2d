package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// auditEvents parses the JSON lines of the server log.
func auditEvents(s *server) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// workerPIDs maps each logged-in session's id to its worker pid, from
// the audit log.
func workerPIDs(t testing.TB, s *server) map[string]int {
	opened := map[string]int{}
	out := map[string]int{}
	for _, e := range auditEvents(s) {
		switch e["event"] {
		case "session.open":
			opened[e["session"].(string)] = int(e["pid"].(float64))
		case "login.ok":
			id := e["session"].(string)
			out[id] = opened[id]
		}
	}
	return out
}

// procStatus returns the fields of /proc/PID/status.
func procStatus(t testing.TB, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// TestSessionsAreSeparateProcesses: every logged-in session is its own
// process, with the account's uid when run as root, and kill -9 of one
// worker leaves the others (and the server) working.
func TestSessionsAreSeparateProcesses(t *testing.T) {
	s := startServer(t, serverOpts{})
	a := dialCtrl(t, s.addr())
	a.login("demo", "demo")
	b := dialCtrl(t, s.addr())
	b.login("demo", "demo")
	time.Sleep(100 * time.Millisecond) // the session.open lines are written after the handoff
	pids := workerPIDs(t, s)
	if len(pids) != 2 {
		t.Fatalf("want 2 sessions in the audit log, got %v", pids)
	}
	seen := map[int]bool{}
	for id, pid := range pids {
		if pid == s.cmd.Process.Pid || seen[pid] {
			t.Fatalf("session %s served by pid %d: not its own process", id, pid)
		}
		seen[pid] = true
		// Every thread is named, not only the main one.
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/comm", pid))
		for _, c := range tasks {
			if b, _ := os.ReadFile(c); strings.TrimSpace(string(b)) != "sluice-worker" {
				t.Errorf("%s = %q, want sluice-worker", c, b)
			}
		}
		st := procStatus(t, pid)
		if isRoot() {
			want := fmt.Sprintf("%d\t%d\t%d\t%d", accountUID, accountUID, accountUID, accountUID)
			if st["Uid"] != want || st["Gid"] != want {
				t.Errorf("worker %d: Uid %q Gid %q, want %q", pid, st["Uid"], st["Gid"], want)
			}
			if st["Groups"] != "" {
				t.Errorf("worker %d has supplementary groups %q", pid, st["Groups"])
			}
			if st["CapEff"] != "0000000000000000" || st["CapPrm"] != "0000000000000000" || st["CapAmb"] != "0000000000000000" {
				t.Errorf("worker %d keeps capabilities: eff %s prm %s amb %s", pid, st["CapEff"], st["CapPrm"], st["CapAmb"])
			}
		} else {
			t.Log("not root: the uid switch is not exercised (run as root, as CI does)")
		}
	}
	// Kill one worker; the other session and new logins are unaffected.
	var victim int
	for _, pid := range pids {
		victim = pid
		break
	}
	syscall.Kill(victim, syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	c := dialCtrl(t, s.addr())
	c.login("demo", "demo")
	c.cmd("PWD", 257)
	if !strings.Contains(s.log.String(), "worker died") {
		t.Errorf("the supervisor did not log the killed worker")
	}
	// Exactly one of a and b must still answer.
	alive := 0
	for _, k := range []*ctrl{a, b} {
		k.c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(k.c, "NOOP\r\n"); err != nil {
			continue
		}
		if line, err := k.r.ReadString('\n'); err == nil && strings.HasPrefix(line, "200") {
			alive++
		}
	}
	if alive != 1 {
		t.Fatalf("%d sessions alive after killing one of two, want 1", alive)
	}
}

// TestEscapesRefused: traversal, a symlink to /etc, and FTP bounce.
func TestEscapesRefused(t *testing.T) {
	s := startServer(t, serverOpts{})
	if err := os.Symlink("/etc", filepath.Join(s.root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(s.root, "passwd")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(s.root, "sub"), 0o755)
	if isRoot() {
		os.Chown(filepath.Join(s.root, "sub"), accountUID, accountUID)
	}
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	k.cmd("TYPE I", 200)
	for _, c := range []string{
		"RETR ../../etc/passwd",
		"RETR /../etc/passwd",
		"SIZE ../../../../etc/passwd",
		"CWD /../..",
		"CWD ..",
		"CWD etc",
		"SIZE etc/passwd",
		"SIZE passwd",
		"MDTM /etc/passwd",
		"DELE ../outside",
		"MKD ../x",
		"RNFR ../../etc/hosts",
	} {
		k.send(c)
		code, text := k.reply()
		if code < 500 {
			t.Errorf("%s: got %q, want refusal", c, text)
		}
	}
	k.cmd("CWD sub", 250)
	k.cmd("CWD ../..", 550)
	k.cmd("PWD", 257)

	// FTP bounce: PORT/EPRT only to the client's own address, port >= 1024.
	for _, c := range []string{
		"PORT 127,0,0,2,195,80",
		"PORT 127,0,0,1,0,80",
		"PORT 10,0,0,1,195,80",
		"EPRT |1|127.0.0.2|50000|",
		"EPRT |1|127.0.0.1|80|",
		"EPRT |2|::1|50000|",
	} {
		k.send(c)
		code, text := k.reply()
		if code < 500 {
			t.Errorf("%s: got %q, want refusal", c, text)
		}
	}
	// The supervisor is still fine and the account's files are intact.
	k.cmd("NOOP", 200)
}

// TestPassiveFromOtherAddressRefused: a data connection to our passive
// port from 127.0.0.2 is not accepted as the session's data connection.
func TestPassiveFromOtherAddressRefused(t *testing.T) {
	s := startServer(t, serverOpts{})
	os.WriteFile(filepath.Join(s.root, "secret.txt"), []byte("only for demo\n"), 0o644)
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	text := k.cmd("EPSV", 229)
	i := strings.Index(text, "(|||")
	port, _ := strconv.Atoi(strings.TrimSuffix(text[i+4:strings.Index(text, "|)")], "|"))
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	thief, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	defer thief.Close()
	k.send("RETR secret.txt")
	thief.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	n, _ := thief.Read(buf)
	if n > 0 {
		t.Fatalf("a connection from 127.0.0.2 received %q", buf[:n])
	}
	// The real client can still take the transfer.
	real, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
	if err != nil {
		t.Fatalf("dial from the client's address: %v", err)
	}
	defer real.Close()
	k.expect(150)
	real.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 100)
	n, _ = real.Read(got)
	if string(got[:n]) != "only for demo\n" {
		t.Fatalf("real client got %q", got[:n])
	}
	k.expect(226)
}

// TestLoginLimitsAndBan: failed logins are answered 530, then the address
// is banned (421 at connect), and the per-IP connection limit holds.
func TestLoginLimitsAndBan(t *testing.T) {
	s := startServer(t, serverOpts{limits: "ban_after_failures = 4\nmax_login_attempts = 3\nmax_sessions_per_ip = 3\nban_duration = \"1h\""})
	k := dialCtrl(t, s.addr())
	for i := 0; i < 3; i++ {
		k.cmd("USER demo", 331)
		k.send("PASS wrong")
		code, text := k.reply()
		if i < 2 && code != 530 {
			t.Fatalf("attempt %d: %q", i, text)
		}
		if i == 2 && code != 530 && code != 421 {
			t.Fatalf("attempt %d: %q", i, text)
		}
	}
	// The connection was closed after max_login_attempts.
	k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := k.r.ReadString('\n'); err == nil && !strings.HasPrefix(line, "421") {
		t.Fatalf("after 3 failures got %q, want 421 or close", line)
	}

	// Per-IP limit: 3 connections are fine, the 4th is refused. (Wait
	// until the start-up probe and the session above are reaped.)
	waitLog(t, s, `"event":"session.close"`, 2)
	var open []*ctrl
	for i := 0; i < 3; i++ {
		open = append(open, dialCtrl(t, s.addr()))
	}
	c, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(line, "421") {
		t.Fatalf("4th connection from one IP got %q, want 421", line)
	}
	for _, o := range open {
		o.c.Close()
	}
	// Their slots are free once the workers are reaped: the start-up
	// probe, the banned-attempts session and these three.
	waitLog(t, s, `"event":"session.close"`, 5)

	// One more failure reaches ban_after_failures: banned at connect time,
	// even with the right password.
	k = dialCtrl(t, s.addr())
	k.cmd("USER demo", 331)
	k.send("PASS wrong")
	code, text := k.reply()
	if code != 421 {
		t.Fatalf("4th failure: %q, want 421 (ban)", text)
	}
	c, err = net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	line, _ = bufio.NewReader(c).ReadString('\n')
	c.Close()
	if !strings.HasPrefix(line, "421") {
		t.Fatalf("banned address got %q at connect, want 421", line)
	}
	if !strings.Contains(s.log.String(), `"event":"ban"`) {
		t.Errorf("no ban event in the audit log")
	}
	if strings.Contains(s.log.String(), "wrong") {
		t.Errorf("a password appears in the log")
	}
}

// TestReloadAddsAccount: SIGHUP reloads accounts; sessions go on.
func TestReloadAddsAccount(t *testing.T) {
	s := startServer(t, serverOpts{})
	old := dialCtrl(t, s.addr())
	old.login("demo", "demo")
	k := dialCtrl(t, s.addr())
	k.cmd("USER alice", 331)
	k.cmd("PASS wonderland", 530)

	dir := filepath.Join(s.dir, "alice")
	makeStorage(t, dir)
	f, _ := os.OpenFile(s.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, `
[[account]]
name = "alice"
password = %q
uid = %d
gid = %d
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["list", "read"]
`, hashFor(t, "wonderland"), accountUID, accountUID, dir)
	f.Close()
	s.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.log.String(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	k = dialCtrl(t, s.addr())
	k.login("alice", "wonderland")
	k.cmd("MKD nope", 550) // read-only account
	old.cmd("NOOP", 200)   // the old session went on

	// A broken file is refused as a whole; the running config stays.
	os.WriteFile(s.cfgPath, []byte("[ftp]\nlisten = 5\n"), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	k = dialCtrl(t, s.addr())
	k.login("alice", "wonderland")
}

// TestCheckRejectsBadConfig: serve --check names the offending key.
func TestCheckRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[ftp]\nlisten = [\"127.0.0.1:2121\"]\npassive_ports = \"60000-50000\"\nlisen = 1\n"), 0o600)
	out, err := runTool(t, 30*time.Second, sluiceBin, "serve", "--check", "--config", bad)
	if err == nil {
		t.Fatalf("--check accepted a bad config:\n%s", out)
	}
	for _, want := range []string{"passive_ports", "lisen"} {
		if !strings.Contains(out, want) {
			t.Errorf("--check output does not name %q:\n%s", want, out)
		}
	}
	out, err = runTool(t, 30*time.Second, sluiceBin, "serve", "--check")
	if err != nil || !strings.Contains(out, "configuration OK") {
		t.Fatalf("--check of the embedded default: %v\n%s", err, out)
	}
}

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/daemon"
	"github.com/sluice-ftp/sluice/policy"
)

// stor uploads data as name; it returns the final reply code.
func stor(t testing.TB, k *ctrl, name string, data []byte) int {
	t.Helper()
	dc := k.epsvDial()
	k.send("STOR " + name)
	code, _ := k.reply()
	if code != 150 {
		dc.Close()
		return code
	}
	dc.Write(data)
	dc.Close()
	code, _ = k.reply()
	return code
}

// dataCmd runs a command that needs a data connection (LIST, RETR) and
// returns its first reply code and what came over the connection.
func dataCmd(t testing.TB, k *ctrl, line string) (int, string) {
	t.Helper()
	dc := k.epsvDial()
	defer dc.Close()
	k.send(line)
	code, _ := k.reply()
	if code != 150 && code != 125 {
		return code, ""
	}
	dc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(dc)
	code, _ = k.reply()
	return code, string(b)
}

func rolesServer(t *testing.T, extra string, o serverOpts) (*server, string) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	logs, partners, shared := filepath.Join(dir, "logs"), filepath.Join(dir, "partners"), filepath.Join(dir, "shared")
	for _, d := range []string{logs, filepath.Join(partners, "acme"), filepath.Join(partners, "globex"), shared} {
		makeStorage(t, d)
	}
	os.Chmod(partners, 0o755)
	os.WriteFile(filepath.Join(logs, "old.log"), []byte("old\n"), 0o644)
	os.WriteFile(filepath.Join(partners, "globex", "secret.txt"), []byte("globex only\n"), 0o644)
	o.extraAccounts = fmt.Sprintf(`
[[group]]
name = "branches"
roles = ["dropbox"]
  [[group.folder]]
  path = "/"
  dir = %q

[[group]]
name = "partners"
roles = ["partner"]
  [[group.folder]]
  path = "/shared"
  dir = %q
  role = "reader"

[[account]]
name = "paris"
password = %q
uid = %d
gid = %d
groups = ["branches"]

[[account]]
name = "acme"
password = %q
uid = %d
gid = %d
groups = ["partners"]
  [[account.folder]]
  path = "/"
  dir = %q
%s`, logs, shared, demoHash(), accountUID, accountUID, demoHash(), accountUID, accountUID, filepath.Join(partners, "acme"), extra) + o.extraAccounts
	return startServer(t, o), dir
}

// TestDropboxRole: a dropbox account can STOR new files, but not LIST,
// RETR or overwrite; a partner stays inside its folder.
func TestDropboxRole(t *testing.T) {
	s, dir := rolesServer(t, "", serverOpts{})
	k := dialCtrl(t, s.addr())
	k.login("paris", "demo")
	if code := stor(t, k, "today.log", []byte("line 1\nline 2\n")); code != 226 {
		t.Fatalf("STOR: %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "logs", "today.log")); string(b) != "line 1\nline 2\n" {
		t.Errorf("stored %q", b)
	}
	if code, _ := dataCmd(t, k, "LIST"); code != 550 {
		t.Errorf("LIST: %d, want 550", code)
	}
	k.cmd("NLST", 550)
	if code, _ := dataCmd(t, k, "RETR old.log"); code != 550 {
		t.Errorf("RETR: %d, want 550", code)
	}
	k.cmd("SIZE old.log", 550)
	if code := stor(t, k, "old.log", []byte("clobbered")); code != 550 {
		t.Errorf("STOR over an existing file: %d, want 550", code)
	}
	dc := k.epsvDial()
	k.send("APPE old.log")
	if code, _ := k.reply(); code != 550 {
		t.Errorf("APPE onto an existing file: %d, want 550", code)
	}
	dc.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "logs", "old.log")); string(b) != "old\n" {
		t.Errorf("old.log changed: %q", b)
	}
	k.cmd("DELE old.log", 550)
	k.cmd("QUIT", 221)

	p := dialCtrl(t, s.addr())
	p.login("acme", "demo")
	if code := stor(t, p, "order.csv", []byte("1,2\n")); code != 226 {
		t.Errorf("partner STOR: %d", code)
	}
	if code, body := dataCmd(t, p, "RETR order.csv"); code != 226 || body != "1,2\n" {
		t.Errorf("partner RETR: %d %q", code, body)
	}
	for _, bad := range []string{"../globex/secret.txt", "/../globex/secret.txt", "/shared/../../globex/secret.txt"} {
		if code, body := dataCmd(t, p, "RETR "+bad); code == 226 || strings.Contains(body, "globex") {
			t.Errorf("partner read %s: %d %q", bad, code, body)
		}
	}
	if code := stor(t, p, "/shared/x", []byte("x")); code != 550 {
		t.Errorf("partner wrote into the shared reader folder: %d", code)
	}
	p.cmd("QUIT", 221)

	// policy show prints the resolved roles.
	out, err := exec.Command(sluiceBin, "policy", "show", "--config", s.cfgPath, "--account", "paris").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "roles:         dropbox") || !strings.Contains(string(out), "member of:     branches") {
		t.Errorf("policy show: %v\n%s", err, out)
	}
}

// dropboxSelftestEnv: the test binary, re-executed, confines itself as a
// dropbox account's worker and tries to read.
const dropboxSelftestEnv = "SLUICE_DROPBOX_SELFTEST"

func init() {
	if cfg := os.Getenv(dropboxSelftestEnv); cfg != "" {
		os.Exit(dropboxSelftest(cfg))
	}
}

func dropboxSelftest(cfgPath string) int {
	cfg, err := policy.Load(cfgPath)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	dirs, err := daemon.ConfineAsWorker(cfg, "paris")
	if err != nil || len(dirs) != 1 {
		fmt.Println("ERROR", err, len(dirs))
		return 1
	}
	fd := int(dirs[0].Fd())
	open := func(name string, flags int) string {
		how := &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS, Mode: 0o644}
		if flags&unix.O_CREAT == 0 {
			how.Mode = 0
		}
		f, err := unix.Openat2(fd, name, how)
		if err != nil {
			return err.(syscall.Errno).Error()
		}
		unix.Close(f)
		return "ok"
	}
	res := map[string]string{
		"read file":   open("old.log", unix.O_RDONLY),
		"rdwr file":   open("old.log", unix.O_RDWR),
		"read dir":    open(".", unix.O_RDONLY|unix.O_DIRECTORY),
		"create file": open("new.log", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL),
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return 0
}

// TestDropboxWorkerCannotRead: the dropbox account's Landlock layer has
// neither read_file nor read_dir: the worker's kernel refuses reads.
func TestDropboxWorkerCannotRead(t *testing.T) {
	needRoot(t, "the self-test switches to the account's uid like a worker")
	s, _ := rolesServer(t, "", serverOpts{})
	s.stop()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dropboxSelftestEnv+"="+s.cfgPath, "GODEBUG=multipathtcp=0")
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "AllThreadsSyscall") {
		t.Skipf("test binary built with cgo: %s", out)
	}
	if err != nil {
		t.Fatalf("self-test: %v\n%s", err, out)
	}
	var res map[string]string
	line := out[strings.LastIndex(strings.TrimSpace(string(out)), "\n")+1:]
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]string{"read file": "permission denied", "rdwr file": "permission denied", "read dir": "permission denied", "create file": "ok"}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("%s: %s, want %s", k, res[k], v)
		}
	}
}

// TestGroupChangeOnSIGHUP: moving an account to another group applies to
// new sessions after SIGHUP.
func TestGroupChangeOnSIGHUP(t *testing.T) {
	s, dir := rolesServer(t, "", serverOpts{})
	k := dialCtrl(t, s.addr())
	k.login("paris", "demo")
	if code, _ := dataCmd(t, k, "LIST"); code != 550 {
		t.Fatalf("dropbox LIST: %d", code)
	}
	cfg, _ := os.ReadFile(s.cfgPath)
	// paris becomes a reader of the same folder.
	ncfg := strings.Replace(string(cfg), `groups = ["branches"]`, `groups = ["readers"]`, 1) + fmt.Sprintf(`
[[group]]
name = "readers"
roles = ["reader"]
  [[group.folder]]
  path = "/"
  dir = %q
`, filepath.Join(dir, "logs"))
	if err := os.WriteFile(s.cfgPath, []byte(ncfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := dialCtrl(t, s.addr())
		n.login("paris", "demo")
		code, body := dataCmd(t, n, "RETR old.log")
		n.cmd("QUIT", 221)
		if code == 226 && body == "old\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP paris still cannot read (%d)", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The running session keeps what it had.
	if code, _ := dataCmd(t, k, "LIST"); code != 550 {
		t.Errorf("old session LIST after reload: %d", code)
	}
}

// hookScript writes an executable script into a directory the hook user
// can traverse.
func hookScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func hookDir(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	out := filepath.Join(dir, "out")
	makeStorage(t, out) // writable by the hook user (accountUID)
	return dir, out
}

func hooksTable(extra string) string {
	return fmt.Sprintf("\n[hooks]\nuid = %d\ngid = %d\nconcurrency = 2\ntimeout = \"20s\"\nretry_base = \"200ms\"\n%s\n", accountUID, accountUID, extra)
}

// TestUploadHook: an upload-complete hook gets the final name (one
// argument, even with shell metacharacters, quotes and newlines), the size
// and the XXH64, once; nothing else runs.
func TestUploadHook(t *testing.T) {
	hd, out := hookDir(t)
	script := hookScript(t, hd, "record.sh", `out=`+out+`
i=$(date +%s%N)
printf '%s' "$1" > "$out/$i.path"
printf '%s %s %s' "$2" "$3" "$#" > "$out/$i.meta"
printf '%s' "$SLUICE_PATH" > "$out/$i.env"
cat > "$out/$i.json"
`)
	hooks := hooksTable("") + fmt.Sprintf(`
[[hook]]
name = "rec"
events = ["upload"]
command = [%q, "{path}", "{size}", "{xxh64}"]
`, script)
	s := startServer(t, serverOpts{extraAccounts: hooks})
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	// FTP paths cannot carry CR/LF; TestHookArgvIntact (daemon) covers
	// newlines.
	name := "a; touch pwned $(touch pwned) `touch pwned` 'q\" \\ |&>x *"
	data := []byte("hello hooks\n")
	if code := stor(t, k, name, data); code != 226 {
		t.Fatalf("STOR: %d", code)
	}
	// An aborted upload (partial) fires nothing.
	dc := k.epsvDial()
	k.send("STOR partial.bin")
	k.expect(150)
	dc.Write([]byte("half"))
	time.Sleep(100 * time.Millisecond)
	k.send("ABOR")
	k.expect(426)
	k.expect(226)
	dc.Close()
	k.cmd("QUIT", 221)
	waitLog(t, s, `"event":"hook.run"`, 1)
	time.Sleep(500 * time.Millisecond)
	paths, _ := filepath.Glob(filepath.Join(out, "*.path"))
	if len(paths) != 1 {
		t.Fatalf("hook ran %d times, want once:\n%s", len(paths), s.log.String())
	}
	got, _ := os.ReadFile(paths[0])
	if string(got) != "/"+name {
		t.Errorf("hook got path %q, want %q", got, "/"+name)
	}
	meta, _ := os.ReadFile(strings.TrimSuffix(paths[0], ".path") + ".meta")
	want := fmt.Sprintf("%d %016x 3", len(data), xxhash.Sum64(data))
	if string(meta) != want {
		t.Errorf("hook got size/xxh64/argc %q, want %q", meta, want)
	}
	env, _ := os.ReadFile(strings.TrimSuffix(paths[0], ".path") + ".env")
	if string(env) != "/"+name {
		t.Errorf("SLUICE_PATH = %q", env)
	}
	var ev map[string]any
	js, _ := os.ReadFile(strings.TrimSuffix(paths[0], ".path") + ".json")
	if err := json.Unmarshal(js, &ev); err != nil || ev["path"] != "/"+name || ev["event"] != "upload" {
		t.Errorf("stdin JSON %s (%v)", js, err)
	}
	if _, err := os.Stat("/pwned"); err == nil {
		t.Errorf("a shell ran the file name")
	}
}

// TestPreUploadVeto: a pre-upload hook that exits non-zero refuses STOR
// with 550 and no file appears; a slow post hook does not hold transfers.
func TestPreUploadVetoAndSlowHook(t *testing.T) {
	hd, _ := hookDir(t)
	veto := hookScript(t, hd, "veto.sh", `case "$1" in *.exe) exit 1;; esac; exit 0`+"\n")
	slow := hookScript(t, hd, "slow.sh", "sleep 3\n")
	hooks := hooksTable("") + fmt.Sprintf(`
[[hook]]
name = "no-exe"
events = ["pre-upload"]
command = [%q, "{path}"]

[[hook]]
name = "slow"
events = ["upload"]
command = [%q]

[[hook]]
name = "no-secrets"
events = ["pre-download"]
glob = "*.secret"
command = ["/bin/false"]

[[hook]]
name = "no-ghost"
events = ["pre-login"]
accounts = ["ghost"]
command = ["/bin/false"]

[[account]]
name = "ghost"
password = %q
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["list"]
`, veto, slow, demoHash(), t.TempDir())
	s := startServer(t, serverOpts{extraAccounts: hooks})
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	dc := k.epsvDial()
	k.send("STOR evil.exe")
	code, text := k.reply()
	dc.Close()
	if code != 550 || !strings.Contains(text, "policy") {
		t.Errorf("vetoed STOR: %d %s", code, text)
	}
	if _, err := os.Stat(filepath.Join(s.root, "evil.exe")); err == nil {
		t.Error("vetoed file exists")
	}
	start := time.Now()
	for i := range 4 {
		if code := stor(t, k, fmt.Sprintf("ok%d.txt", i), []byte("fine")); code != 226 {
			t.Fatalf("STOR ok%d: %d", i, code)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("4 uploads took %s with a 3 s post hook: transfers waited for hooks", d)
	}
	os.WriteFile(filepath.Join(s.root, "x.secret"), []byte("s"), 0o644)
	if code, _ := dataCmd(t, k, "RETR x.secret"); code != 550 {
		t.Errorf("vetoed RETR: %d", code)
	}
	if code, body := dataCmd(t, k, "RETR ok0.txt"); code != 226 || body != "fine" {
		t.Errorf("RETR ok0.txt: %d %q", code, body)
	}
	k.cmd("QUIT", 221)
	g := dialCtrl(t, s.addr())
	g.cmd("USER ghost", 331)
	if text := g.cmd("PASS demo", 530); !strings.Contains(text, "refused by server policy") {
		t.Errorf("pre-login veto: %q", text)
	}
	waitLog(t, s, `"event":"hook.veto"`, 3)
}

// TestWebhookSignedAndQueued: events reach a webhook receiver, HMAC-signed;
// events queued while the receiver was down are delivered after a restart.
func TestWebhookSignedAndQueued(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	port := freePort(t)
	hooks := hooksTable(`retry_max = 1000`) + fmt.Sprintf(`
[[hook]]
name = "feed"
events = ["upload", "login"]
url = "http://127.0.0.1:%d/hook"
secret = %q
timeout = "2s"
`, port, secret)
	// Receiver down: the upload's event is queued.
	s := startServer(t, serverOpts{extraAccounts: hooks})
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	if code := stor(t, k, "queued.bin", []byte("queued")); code != 226 {
		t.Fatal(code)
	}
	k.cmd("QUIT", 221)
	waitLog(t, s, `"status":"no response"`, 2)
	s.stop()
	queued, _ := filepath.Glob(filepath.Join(s.dir, "state", "hooks", "*.json"))
	if len(queued) < 2 {
		t.Fatalf("queue holds %d events after stop, want ≥ 2 (login, upload)", len(queued))
	}

	var mu sync.Mutex
	var got []map[string]any
	srv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Sluice-Timestamp")
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts + "."))
		m.Write(body)
		if r.Header.Get("X-Sluice-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			w.WriteHeader(401)
			return
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	})}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	// Restart on the same configuration and state directory.
	s2 := &server{t: t, dir: s.dir, root: s.root, port: s.port, cfgPath: s.cfgPath, log: &syncBuffer{}, done: make(chan struct{})}
	s2.cmd = exec.Command(sluiceBin, "serve", "--config", s2.cfgPath)
	s2.cmd.Stdout, s2.cmd.Stderr = s2.log, s2.log
	s2.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s2.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s2.cmd.Wait(); close(s2.done) }()
	t.Cleanup(s2.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		var uploads int
		for _, ev := range got {
			if ev["event"] == "upload" && ev["path"] == "/queued.bin" {
				uploads++
			}
		}
		mu.Unlock()
		if uploads == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued upload event not delivered after restart (got %v):\n%s", got, s2.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A live event, signed, too.
	for {
		c, err := net.DialTimeout("tcp", s2.addr(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	k2 := dialCtrl(t, s2.addr())
	k2.login("demo", "demo")
	if code := stor(t, k2, "live.bin", []byte("live")); code != 226 {
		t.Fatal(code)
	}
	k2.cmd("QUIT", 221)
	deadline = time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, ev := range got {
			if ev["path"] == "/live.bin" && ev["xxh64"] == fmt.Sprintf("%016x", xxhash.Sum64String("live")) {
				n++
			}
		}
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("live upload event not delivered: %v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if left, _ := filepath.Glob(filepath.Join(s.dir, "state", "hooks", "*.json")); len(left) != 0 {
		t.Errorf("queue not emptied: %v", left)
	}
}

// TestRoleLoginLimits: a role's time window and protocol list are enforced
// at login, with a clear reply.
func TestRoleLoginLimits(t *testing.T) {
	now := time.Now()
	// A one-hour window that is certainly not now.
	later := now.Add(3 * time.Hour)
	win := fmt.Sprintf("%02d:00-%02d:00", later.Hour(), (later.Hour()+1)%24)
	extra := fmt.Sprintf(`
[[role]]
name = "nightly"
rights = ["list", "read"]
time_windows = [%q]

[[role]]
name = "sftp-only"
rights = ["list", "read"]
protocols = ["sftp"]

[[account]]
name = "night"
password = %q
roles = ["nightly"]
  [[account.folder]]
  path = "/"
  dir = %q

[[account]]
name = "tlsonly"
password = %q
roles = ["sftp-only"]
  [[account.folder]]
  path = "/"
  dir = %q
`, win, demoHash(), t.TempDir(), demoHash(), t.TempDir())
	s := startServer(t, serverOpts{extraAccounts: extra})
	for user, want := range map[string]string{"night": "not allowed at this time", "tlsonly": "may not log in over plain FTP"} {
		k := dialCtrl(t, s.addr())
		k.cmd("USER "+user, 331)
		text := k.cmd("PASS demo", 530)
		if !strings.Contains(text, want) {
			t.Errorf("%s: %q, want …%s…", user, text, want)
		}
		k.cmd("QUIT", 221)
	}
}

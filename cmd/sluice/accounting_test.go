package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/accounting"
	"github.com/sluice-ftp/sluice/bpf"
	"github.com/sluice-ftp/sluice/daemon"
)

// zeros is an endless source of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// upload sends n bytes to name with STOR (EPSV, binary) and returns the
// final reply.
func (k *ctrl) upload(verb, name string, n int64) (int, string) {
	k.t.Helper()
	k.cmd("TYPE I", 200)
	d := k.epsvDial()
	k.send(verb + " " + name)
	if code, text := k.reply(); code != 150 {
		d.Close()
		return code, text // refused before the transfer
	}
	_, err := io.CopyN(d, zeros{}, n)
	d.Close()
	code, text := k.reply()
	if err != nil && code == 226 {
		k.t.Fatalf("upload of %s: %v, yet %q", name, err, text)
	}
	return code, text
}

// download reads name with RETR and returns the bytes received and the
// final reply.
func (k *ctrl) download(name string) (int64, int, string) {
	k.t.Helper()
	k.cmd("TYPE I", 200)
	d := k.epsvDial()
	k.send("RETR " + name)
	code, text := k.reply()
	if code != 150 {
		d.Close()
		return 0, code, text
	}
	n, _ := io.Copy(io.Discard, d)
	d.Close()
	code, text = k.reply()
	return n, code, text
}

// adminStatus runs `sluice status --json`.
func adminStatus(t *testing.T, s *server) daemon.AdminResponse {
	t.Helper()
	out, err := runTool(t, 30*time.Second, sluiceBin, "status", "--config", s.cfgPath, "--json")
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var r daemon.AdminResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return r
}

func accountStatus(t *testing.T, s *server, name string) daemon.AccountStatus {
	t.Helper()
	for _, a := range adminStatus(t, s).Accounts {
		if a.Account == name {
			return a
		}
	}
	t.Fatalf("account %s not in sluice status", name)
	return daemon.AccountStatus{}
}

// kernelCounters reads the account's entry of the server's pinned
// accounts map, as bpftool would.
func kernelCounters(t *testing.T, s *server, name string) accounting.Counters {
	t.Helper()
	cgid, err := bpf.CgroupID(filepath.Join(s.cgroup, "acct-"+name))
	if err != nil {
		t.Fatal(err)
	}
	v, err := bpf.OpenView(s.pinDir, cgid)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c, err := v.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitCounters polls until the account's counters reach want (bytes in
// are counted when our ACK leaves, a delayed ACK later) or 5 s pass.
func waitCounters(t *testing.T, s *server, name string, in, out uint64) accounting.Counters {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := kernelCounters(t, s, name)
		if (c.BytesIn >= in && c.BytesOut >= out) || time.Now().After(deadline) {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAccountingExact: after a 1 GiB RETR and a 1 GiB STOR, the kernel's
// counters for the account equal the file sizes to the byte (control
// traffic is not counted), sluice status shows them, and they survive a
// restart of the daemon and a kill -9 of it (pinned maps, saved state).
func TestAccountingExact(t *testing.T) {
	needRoot(t, "eBPF accounting loads programs and makes cgroups")
	if !bpf.IsCgroup2(cgroupV2Root) {
		t.Skipf("no cgroup v2 at %s", cgroupV2Root)
	}
	s := startServer(t, serverOpts{ipv6: true})
	const size = 1 << 30
	f, err := os.Create(filepath.Join(s.root, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	os.Chown(filepath.Join(s.root, "big.bin"), accountUID, accountUID)

	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	k.cmd("NOOP", 200)
	k.cmd("PWD", 257)
	n, code, text := k.download("big.bin")
	if code != 226 || n != size {
		t.Fatalf("RETR: %d bytes, %q", n, text)
	}
	if code, text := k.upload("STOR", "up.bin", size); code != 226 {
		t.Fatalf("STOR: %q", text)
	}
	c := waitCounters(t, s, "demo", size, size)
	if c.BytesIn != size || c.BytesOut != size {
		t.Fatalf("kernel counters: in %d, out %d; want %d each (the data bytes, nothing else)", c.BytesIn, c.BytesOut, size)
	}
	if c.ConnsTotal != 2 {
		t.Errorf("data connections counted: %d, want 2", c.ConnsTotal)
	}
	st := adminStatus(t, s)
	if st.Server.Accounting != "ebpf" {
		t.Fatalf("accounting mode %q (%s), want ebpf", st.Server.Accounting, st.Server.AccountingNote)
	}
	a := accountStatus(t, s, "demo")
	if a.TotalIn != size || a.TotalOut != size {
		t.Errorf("status: total in %d, out %d", a.TotalIn, a.TotalOut)
	}
	// Over IPv6 too (BIG TCP packets over 64 KiB carry a Hop-by-Hop
	// header the programs skip): 100 MB each way, to the byte.
	k6 := dialCtrl(t, fmt.Sprintf("[::1]:%d", s.port))
	k6.login("demo", "demo")
	f6 := filepath.Join(s.root, "v6.bin")
	os.WriteFile(f6, make([]byte, 100_000_000), 0o644)
	os.Chown(f6, accountUID, accountUID)
	if n, code, text := k6.download("v6.bin"); code != 226 || n != 100_000_000 {
		t.Fatalf("RETR over IPv6: %d, %q", n, text)
	}
	if code, text := k6.upload("STOR", "v6up.bin", 100_000_000); code != 226 {
		t.Fatalf("STOR over IPv6: %q", text)
	}
	c = waitCounters(t, s, "demo", size+100_000_000, size+100_000_000)
	if c.BytesIn != size+100_000_000 || c.BytesOut != size+100_000_000 {
		t.Fatalf("after 100 MB each way over IPv6: in %d, out %d", c.BytesIn, c.BytesOut)
	}
	k6.c.Close()
	const total = size + 100_000_000
	if bt, err := exec.LookPath("bpftool"); err == nil {
		out, err := exec.Command(bt, "map", "dump", "pinned", filepath.Join(s.pinDir, "accounts")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"bytes_out": 1173741824`) || !strings.Contains(string(out), `"name": "demo"`) {
			t.Errorf("bpftool map dump: %v\n%s", err, out)
		}
	}

	// A restart keeps every counter: the maps are pinned, and the state
	// file has them too.
	k.c.Close()
	s.restart()
	if a := accountStatus(t, s, "demo"); a.TotalIn != total || a.TotalOut != total {
		t.Errorf("after a restart: total in %d, out %d", a.TotalIn, a.TotalOut)
	}
	// So does kill -9: nothing to save, the maps hold the counts.
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.launch()
	k = dialCtrl(t, s.addr())
	k.login("demo", "demo")
	if code, text := k.upload("STOR", "small.bin", 1000); code != 226 {
		t.Fatalf("STOR after kill -9: %q", text)
	}
	c = waitCounters(t, s, "demo", total+1000, total)
	if c.BytesIn != total+1000 || c.BytesOut != total {
		t.Errorf("after kill -9 and a 1000-byte upload: in %d, out %d", c.BytesIn, c.BytesOut)
	}
	// The state file carries the same figures at shutdown.
	k.c.Close()
	s.stop()
	data, err := os.ReadFile(filepath.Join(s.dir, "state", "accounting.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Kernel map[string]accounting.Counters `json:"kernel"`
	}
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	if got := saved.Kernel["demo"]; got.BytesIn != total+1000 || got.BytesOut != total {
		t.Errorf("accounting.json: %+v", got)
	}
}

// quotaAccount is an account with a folder of its own in a new directory
// and the given limits; it returns the [[account]] block and the
// directory.
func quotaAccount(t *testing.T, name, limits string) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	makeStorage(t, dir)
	return fmt.Sprintf(`
[[account]]
name = %q
password = %q
uid = %d
gid = %d
%s
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, name, demoHash(), accountUID, accountUID, limits, dir), dir
}

// TestStorageQuota: an upload over the storage quota stops at the limit
// with 552, leaves its bytes in a resumable partial (never committed), and
// usage then equals the quota; warnings come with the 226 past 80%; AVBL
// and SITE QUOTA report it; a restart counts the same; a file quota
// refuses the file too many.
func TestStorageQuota(t *testing.T) {
	acct, qdir := quotaAccount(t, "quota", "quota_bytes = 10000000\nquota_files = 3")
	s := startServer(t, serverOpts{extraAccounts: acct})

	k := dialCtrl(t, s.addr())
	k.login("quota", "demo")
	if got := k.cmd("AVBL", 213); !strings.Contains(got, "10000000") {
		t.Fatalf("AVBL on an empty account: %q", got)
	}
	code, text := k.upload("STOR", "a.bin", 8_500_000)
	if code != 226 || !strings.Contains(text, "Quota warning: 85%") {
		t.Fatalf("8.5 MB upload: want 226 with a quota warning, got %q", text)
	}
	if got := k.cmd("AVBL", 213); !strings.Contains(got, "1500000") {
		t.Fatalf("AVBL after 8.5 MB: %q", got)
	}
	if got := k.cmd("SITE QUOTA", 200); !strings.Contains(got, "Storage: 8.5 MB of 10.0 MB used (85%)") || !strings.Contains(got, "Files: 1 of 3 used") {
		t.Fatalf("SITE QUOTA: %q", got)
	}
	code, text = k.upload("STOR", "b.bin", 2_000_000)
	if code != 552 || !strings.Contains(text, "Storage quota exceeded") {
		t.Fatalf("upload over the quota: want 552, got %q", text)
	}
	if got := k.cmd("AVBL", 213); !strings.HasPrefix(got, "213 0") {
		t.Fatalf("AVBL at the quota: %q", got)
	}
	if _, err := os.Stat(filepath.Join(qdir, "b.bin")); err == nil {
		t.Fatal("the upload over the quota was committed")
	}
	fi, err := os.Stat(filepath.Join(qdir, ".sluice-partial.b.bin"))
	if err != nil || fi.Size() != 1_500_000 {
		t.Fatalf("the partial should hold exactly the 1500000 bytes that fit: %v %v", fi, err)
	}
	var warned, exceeded bool
	for _, e := range auditEvents(s) {
		switch e["event"] {
		case "quota.warning":
			warned = e["account"] == "quota" && e["threshold"] == float64(80)
		case "quota.exceeded":
			exceeded = e["account"] == "quota" && e["code"] == float64(552)
		}
	}
	if !warned || !exceeded {
		t.Errorf("audit log: quota.warning %v, quota.exceeded %v", warned, exceeded)
	}
	if a := accountStatus(t, s, "quota"); a.Quota == nil || a.Quota.BytesUsed != 10_000_000 || a.Quota.BytesLimit != 10_000_000 {
		t.Errorf("status quota: %+v", a.Quota)
	}

	// The usage after a restart is counted from the disk: the same.
	k.c.Close()
	s.restart()
	k = dialCtrl(t, s.addr())
	k.login("quota", "demo")
	if got := k.cmd("AVBL", 213); !strings.HasPrefix(got, "213 0") {
		t.Fatalf("AVBL after a restart: %q", got)
	}
	k.cmd("DELE a.bin", 250)
	if got := k.cmd("AVBL", 213); !strings.Contains(got, "8500000") {
		t.Fatalf("AVBL after DELE: %q", got)
	}
	// Files: the partial is one; two more fit, the fourth does not.
	for _, n := range []string{"c.bin", "d.bin"} {
		if code, text := k.upload("STOR", n, 10); code != 226 {
			t.Fatalf("STOR %s: %q", n, text)
		}
	}
	if code, text := k.upload("STOR", "e.bin", 10); code != 552 || !strings.Contains(text, "File quota exceeded") {
		t.Fatalf("a file over the file quota: %q", text)
	}
	// Resuming the partial: the 500 kB that fit now complete it.
	k.cmd("REST 1500000", 350)
	if code, text := k.upload("STOR", "b.bin", 500_000); code != 226 {
		t.Fatalf("resume of the partial: %q", text)
	}
	if fi, err := os.Stat(filepath.Join(qdir, "b.bin")); err != nil || fi.Size() != 2_000_000 {
		t.Fatalf("resumed file: %v %v", fi, err)
	}
}

// TestTransferQuota: a download quota per day stops a download at the
// quota with 451 and refuses the next with 550, saying when it resets;
// uploads have their own quota.
func TestTransferQuota(t *testing.T) {
	acct, dir := quotaAccount(t, "metered", "transfer_quota_out = 5000000\ntransfer_quota_in = 1000000\ntransfer_quota_period = \"day\"")
	s := startServer(t, serverOpts{extraAccounts: acct})
	f := filepath.Join(dir, "three.bin")
	os.WriteFile(f, make([]byte, 3_000_000), 0o644)
	os.Chown(f, accountUID, accountUID)

	k := dialCtrl(t, s.addr())
	k.login("metered", "demo")
	if n, code, text := k.download("three.bin"); code != 226 || n != 3_000_000 {
		t.Fatalf("first download: %d bytes, %q", n, text)
	}
	n, code, text := k.download("three.bin")
	if code != 451 || n != 2_000_000 || !strings.Contains(text, "Download quota reached") {
		t.Fatalf("second download: want exactly the 2000000 bytes left, then 451; got %d bytes, %q", n, text)
	}
	n, code, text = k.download("three.bin")
	if code != 550 || n != 0 || !strings.Contains(text, "resets at") {
		t.Fatalf("third download: want 550 before any byte; got %d bytes, %q", n, text)
	}
	if got := k.cmd("SITE QUOTA", 200); !strings.Contains(got, "Downloaded this day: 5.0 MB of 5.0 MB used (100%)") {
		t.Errorf("SITE QUOTA: %q", got)
	}
	if code, text := k.upload("STOR", "up.bin", 1_500_000); code != 552 || !strings.Contains(text, "Upload quota reached") {
		t.Fatalf("upload over the upload quota: %q", text)
	}
	if fi, err := os.Stat(filepath.Join(dir, ".sluice-partial.up.bin")); err != nil || fi.Size() != 1_000_000 {
		t.Errorf("partial of the refused upload: %v %v", fi, err)
	}
}

// TestWorkerHoldsNoAccountingMap: no logged-in worker holds a BPF map or
// program descriptor, the pins are root's alone, and the sandbox refuses
// the bpf() syscall outright (TestSandboxSelftest tries it): a worker
// cannot update, reset or read the counters.
func TestWorkerHoldsNoAccountingMap(t *testing.T) {
	needRoot(t, "eBPF accounting")
	if !bpf.IsCgroup2(cgroupV2Root) {
		t.Skipf("no cgroup v2 at %s", cgroupV2Root)
	}
	acct, _ := quotaAccount(t, "limited", "download_rate = 50000000\nquota_bytes = 1000000000")
	s := startServer(t, serverOpts{extraAccounts: acct})
	k := dialCtrl(t, s.addr())
	k.login("limited", "demo")
	k.upload("STOR", "x.bin", 100)
	time.Sleep(100 * time.Millisecond)
	pids := workerPIDs(t, s)
	if len(pids) != 1 {
		t.Fatalf("sessions: %v", pids)
	}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
		for _, fd := range fds {
			info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
			if strings.Contains(string(info), "map_type:") || strings.Contains(string(info), "prog_type:") {
				t.Errorf("worker %d fd %s is a BPF object:\n%s", pid, fd.Name(), info)
			}
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if !strings.Contains(string(cg), filepath.Base(s.cgroup)+"/acct-limited") {
			t.Errorf("worker %d is not in the account's cgroup: %s", pid, cg)
		}
	}
	for _, m := range []string{bpf.PinAccounts, bpf.PinLimits, bpf.PinTotals, bpf.PinSocks} {
		fi, err := os.Stat(filepath.Join(s.pinDir, m))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm()&0o077 != 0 || st.Uid != 0 {
			t.Errorf("pin %s: mode %v uid %d", m, fi.Mode(), st.Uid)
		}
	}
}

// TestBandwidthShared: two sessions of an account limited to 50 MB/s
// download together at 50 MB/s ±10%, four sessions too, while an
// unlimited account beside them is not slowed; uploads likewise. Timing:
// run alone (make test-timing, SLUICE_TIMING=1).
func TestBandwidthShared(t *testing.T) {
	if os.Getenv("SLUICE_TIMING") == "" {
		t.Skip("a timing test: run alone with SLUICE_TIMING=1 (make test-timing)")
	}
	const rate = 50_000_000
	acct, dir := quotaAccount(t, "slow", fmt.Sprintf("download_rate = %d\nupload_rate = %d", rate, rate))
	s := startServer(t, serverOpts{extraAccounts: acct})
	for _, d := range []string{dir, s.root} {
		f, err := os.Create(filepath.Join(d, "big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(8 << 30)
		f.Close()
	}
	const warm, window = 500 * time.Millisecond, 3 * time.Second
	// run moves data in n sessions of user for warm+window and returns
	// the bytes per second moved during the window.
	var phase atomic.Int32
	run := func(user string, n int, up bool, res *float64, wg *sync.WaitGroup) {
		defer wg.Done()
		ph := phase.Add(1)
		var mu sync.Mutex
		var total int64
		var inner sync.WaitGroup
		start := time.Now()
		for i := 0; i < n; i++ {
			inner.Add(1)
			go func(i int) {
				defer inner.Done()
				k := dialCtrl(t, s.addr())
				k.login(user, "demo")
				k.cmd("TYPE I", 200)
				d := k.epsvDial()
				defer d.Close()
				buf := make([]byte, 256<<10)
				if up {
					k.send(fmt.Sprintf("STOR up-%d-%d.bin", ph, i))
				} else {
					k.send("RETR big.bin")
				}
				k.expect(150)
				var counted int64
				for {
					el := time.Since(start)
					if el > warm+window {
						break
					}
					d.SetDeadline(start.Add(warm + window))
					var m int
					var err error
					if up {
						m, err = d.Write(buf)
					} else {
						m, err = d.Read(buf)
					}
					if time.Since(start) > warm {
						counted += int64(m)
					}
					if err != nil {
						break
					}
				}
				mu.Lock()
				total += counted
				mu.Unlock()
			}(i)
		}
		inner.Wait()
		*res = float64(total) / window.Seconds()
	}
	for _, up := range []bool{false, true} {
		for _, n := range []int{2, 4} {
			var limited, free float64
			var wg sync.WaitGroup
			wg.Add(2)
			go run("slow", n, up, &limited, &wg)
			go run("demo", 1, up, &free, &wg)
			// sluice status shows the account's current rate (over the
			// last second of counters) while it runs.
			time.Sleep(warm + window/2)
			a := accountStatus(t, s, "slow")
			wg.Wait()
			// Uploads are paced by reading: until the sockets' receive
			// buffers are full the kernel takes (and counts) more than the
			// pace, so only a download's shown rate is the pace.
			if !up && (a.RateOut < 0.7*rate || a.RateOut > 1.3*rate) {
				t.Errorf("%d download sessions: sluice status showed %.1f MB/s for the limited account", n, a.RateOut/1e6)
			}
			if up && a.RateIn <= 0 {
				t.Errorf("%d upload sessions: sluice status showed no rate for the limited account", n)
			}
			t.Logf("upload=%v, %d sessions: limited account %.1f MB/s, unlimited one beside it %.1f MB/s", up, n, limited/1e6, free/1e6)
			if limited < 0.9*rate || limited > 1.1*rate {
				t.Errorf("upload=%v, %d sessions: %.1f MB/s, want 50 ±10%%", up, n, limited/1e6)
			}
			if free < 2*rate {
				t.Errorf("upload=%v: the unlimited account got %.1f MB/s beside the limited one", up, free/1e6)
			}
		}
	}
}

// TestAccountingUserspace: with mode = "userspace" the counters come from
// the workers' byte counts, sluice status and policy check say so, and a
// restart keeps them (accounting.json).
func TestAccountingUserspace(t *testing.T) {
	s := startServer(t, serverOpts{accounting: `mode = "userspace"`})
	if !strings.Contains(s.log.String(), "ACCOUNTING IN USER SPACE") {
		t.Errorf("no loud warning about user-space accounting in the log")
	}
	f := filepath.Join(s.root, "ten.bin")
	os.WriteFile(f, make([]byte, 10_000_000), 0o644)
	os.Chown(f, accountUID, accountUID)
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	if n, code, text := k.download("ten.bin"); code != 226 || n != 10_000_000 {
		t.Fatalf("RETR: %d, %q", n, text)
	}
	if code, text := k.upload("STOR", "five.bin", 5_000_000); code != 226 {
		t.Fatalf("STOR: %q", text)
	}
	time.Sleep(100 * time.Millisecond) // the transfer events reach the supervisor
	st := adminStatus(t, s)
	if st.Server.Accounting != "userspace" {
		t.Errorf("status: accounting %q", st.Server.Accounting)
	}
	if a := accountStatus(t, s, "demo"); a.TotalIn != 5_000_000 || a.TotalOut != 10_000_000 {
		t.Errorf("status: in %d out %d", a.TotalIn, a.TotalOut)
	}
	out, _ := runTool(t, 30*time.Second, sluiceBin, "policy", "check", "--config", s.cfgPath)
	if !strings.Contains(out, `Accounting (accounting.mode = "userspace"): user space`) || !strings.Contains(out, "The running daemon counts in mode: userspace") {
		t.Errorf("policy check:\n%s", out)
	}
	k.c.Close()
	s.restart()
	if a := accountStatus(t, s, "demo"); a.TotalIn != 5_000_000 || a.TotalOut != 10_000_000 {
		t.Errorf("after a restart: in %d out %d", a.TotalIn, a.TotalOut)
	}
}

// TestSFTPQuotaAndCounting: SFTP bytes are counted (in user space: the
// SSH connection carries control and data together) and an SFTP upload
// over the storage quota fails, leaving the partial uncommitted.
func TestSFTPQuotaAndCounting(t *testing.T) {
	sftpBin := needTool(t, "sftp")
	s := startSFTP(t, serverOpts{})
	// The keyed account gets a quota through a reload.
	cfg, _ := os.ReadFile(s.cfgPath)
	cfg = []byte(strings.Replace(string(cfg), `name = "keyed"`, "name = \"keyed\"\nquota_bytes = 3000000", 1))
	os.WriteFile(s.cfgPath, cfg, 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, s.server, "configuration reloaded", 1)
	local := t.TempDir()
	two, four := filepath.Join(local, "two.bin"), filepath.Join(local, "four.bin")
	writeRandom(t, two, 2_000_000)
	writeRandom(t, four, 4_000_000)
	batch := filepath.Join(local, "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("put %s two.bin\nget two.bin %s/back.bin\n", two, local)), 0o644)
	args := append(sshOpts(s.sftpPort), "-i", s.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-b", batch, "keyed@127.0.0.1")
	if out, err := runTool(t, time.Minute, sftpBin, args...); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	os.WriteFile(batch, []byte(fmt.Sprintf("put %s four.bin\n", four)), 0o644)
	out, err := runTool(t, time.Minute, sftpBin, args...)
	if err == nil {
		t.Fatalf("an SFTP upload over the quota succeeded:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(s.keyRoot, "four.bin")); err == nil {
		t.Error("the upload over the quota was committed")
	}
	time.Sleep(200 * time.Millisecond)
	a := accountStatus(t, s.server, "keyed")
	if a.TotalOut != 2_000_000 || a.TotalIn < 3_000_000 {
		t.Errorf("SFTP counted in %d (want ≥ 3000000: 2000000 + what fit of the refused one), out %d (want 2000000)", a.TotalIn, a.TotalOut)
	}
	if a.Quota == nil || a.Quota.BytesUsed != 3_000_000 {
		t.Errorf("usage after the refused upload: %+v, want exactly the quota", a.Quota)
	}
}

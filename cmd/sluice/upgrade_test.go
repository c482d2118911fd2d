package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/daemon"
)

// TestBinaryUpgrade: during a download, SIGUSR2 starts a new supervisor on
// the same listening sockets; the download finishes on its old worker
// with the right bytes, new logins reach the new supervisor, and the old
// one exits when its last session has ended.
func TestBinaryUpgrade(t *testing.T) {
	s := startServer(t, serverOpts{})
	size := int64(256 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	want := writeRandom(t, filepath.Join(s.root, "image.iso"), size)
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	d := k.epsvDial()
	k.cmd("RETR image.iso", 150)
	f, _ := os.CreateTemp(t.TempDir(), "dl")
	if _, err := io.CopyN(f, d, 1<<20); err != nil {
		t.Fatal(err)
	}

	// Connect again and again through the switch: every connection must
	// be greeted, by the old supervisor or the new one.
	stop := make(chan struct{})
	probes := make(chan string, 1)
	go func() {
		n, bad := 0, ""
		for {
			select {
			case <-stop:
				probes <- fmt.Sprintf("%d connections%s", n, bad)
				return
			default:
			}
			c, err := net.DialTimeout("tcp", s.addr(), 5*time.Second)
			if err != nil {
				bad += "; dial: " + err.Error()
				continue
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "QUIT\r\n")
			c.Close()
			n++
			if !strings.HasPrefix(line, "220") {
				bad += fmt.Sprintf("; greeted with %q (%v)", line, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	oldPID := s.cmd.Process.Pid
	if out, err := runTool(t, 30*time.Second, sluiceBin, "reload", "--binary", "--config", s.cfgPath); err != nil {
		t.Fatalf("sluice reload --binary: %v\n%s", err, out)
	}
	waitLog(t, s, "the new supervisor serves", 1)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	if r := <-probes; strings.Contains(r, ";") {
		t.Errorf("connections during the switch: %s", r)
	} else {
		t.Logf("during the switch: %s, all greeted", r)
	}
	m := regexp.MustCompile(`"new_pid":(\d+)`).FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("no new_pid in the log:\n%s", s.log.String())
	}
	newPID, _ := strconv.Atoi(m[1])
	t.Cleanup(func() {
		syscall.Kill(newPID, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(newPID, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	})

	// A new login is served by the new supervisor.
	n := dialCtrl(t, s.addr())
	n.login("demo", "demo")
	out, err := runTool(t, 30*time.Second, sluiceBin, "status", "--json", "--config", s.cfgPath)
	if err != nil {
		t.Fatalf("status after upgrade: %v\n%s", err, out)
	}
	var st daemon.AdminResponse
	json.Unmarshal([]byte(out), &st)
	if st.Server == nil || st.Server.PID != newPID || st.Server.PID == oldPID {
		t.Errorf("status answered by %+v, want the new supervisor %d", st.Server, newPID)
	}
	n.cmd("QUIT", 221)

	// The download in progress finishes on its old worker.
	if _, err := io.Copy(f, d); err != nil {
		t.Fatalf("download cut by the upgrade: %v", err)
	}
	d.Close()
	f.Close()
	if got := sha256File(t, f.Name()); got != want {
		t.Fatalf("download after upgrade: sha256 %s, want %s", got, want)
	}
	k.expect(226)
	if code, text := k.reply(); code != 421 {
		t.Errorf("after its transfer the old session got %q, want 421", text)
	}
	// (s.done would wait for the new supervisor too: it inherited the
	// same stdout pipe. Watch the old pid instead.)
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(oldPID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the old supervisor did not exit after its last session")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The download ran while both supervisors' programs were attached: the
	// shared per-socket state counts each byte once.
	if s.pinDir != "" {
		if c := waitCounters(t, s, "demo", 0, uint64(size)); c.BytesOut != uint64(size) {
			t.Errorf("kernel counted %d bytes out for a %d-byte download across the upgrade", c.BytesOut, size)
		}
	}
	// The new one still serves.
	n = dialCtrl(t, s.addr())
	n.login("demo", "demo")
}

// TestWorkersFromOwnBinary: a supervisor whose binary is replaced on disk
// (a package upgrade before the reload) still starts its workers from its
// own binary (/proc/self/exe), so sessions keep working until the binary
// upgrade, and never run a half-written file.
func TestWorkersFromOwnBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sluice")
	data, err := os.ReadFile(sluiceBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOpts{bin: bin, extraServer: "worker_pool = 0"})
	// What a package manager does: a new file renamed over the path. Here
	// it is not even a program.
	tmp := bin + ".new"
	os.WriteFile(tmp, []byte("#!/bin/false\n"), 0o755)
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		k := dialCtrl(t, s.addr())
		k.login("demo", "demo")
		k.cmd("PWD", 257)
		k.cmd("QUIT", 221)
	}
	for _, pid := range workerPIDs(t, s) {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && !strings.HasSuffix(exe, "(deleted)") {
			t.Errorf("worker %d runs %s, want the supervisor's (deleted) binary", pid, exe)
		}
	}
}

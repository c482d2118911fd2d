package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/daemon"
)

// TestAdminCommands: sluice status shows live sessions, kick ends one
// (the client reads 421), ban refuses an address at connect.
func TestAdminCommands(t *testing.T) {
	s := startServer(t, serverOpts{})
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo")
	pre := dialCtrl(t, s.addr()) // connected, not logged in

	out, err := runTool(t, 30*time.Second, sluiceBin, "status", "--config", s.cfgPath, "--json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st daemon.AdminResponse
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var id string
	phases := map[string]int{}
	for _, ss := range st.Sessions {
		phases[ss.Phase]++
		if ss.Account == "demo" {
			id = ss.ID
		}
	}
	if phases["post-auth"] != 1 || phases["pre-auth"] != 1 || id == "" {
		t.Fatalf("status sessions: %+v", st.Sessions)
	}
	if len(st.Accounts) != 1 || st.Accounts[0].Sessions != 1 {
		t.Errorf("status accounts: %+v", st.Accounts)
	}
	human, _ := runTool(t, 30*time.Second, sluiceBin, "status", "--config", s.cfgPath)
	if !strings.Contains(human, id) || !strings.Contains(human, "ACCOUNT") {
		t.Errorf("human status:\n%s", human)
	}

	// A download in flight shows with its progress and rate.
	os.WriteFile(filepath.Join(s.root, "slow.bin"), make([]byte, 8<<20), 0o644)
	d := k.epsvDial()
	k.cmd("RETR slow.bin", 150)
	d.Read(make([]byte, 64<<10)) // then stop reading: the transfer stalls mid-way
	var cur *daemon.Transfer
	for deadline := time.Now().Add(10 * time.Second); cur == nil && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ := runTool(t, 30*time.Second, sluiceBin, "status", "--config", s.cfgPath, "--json")
		var st daemon.AdminResponse
		json.Unmarshal([]byte(out), &st)
		for _, ss := range st.Sessions {
			if ss.ID == id && ss.Current != nil {
				cur = ss.Current
			}
		}
	}
	if cur == nil || cur.Command != "RETR" || cur.Path != "/slow.bin" || cur.Size != 8<<20 || cur.Bytes <= 0 || cur.Bytes > cur.Size || cur.Rate <= 0 {
		t.Fatalf("transfer in flight in status: %+v", cur)
	}
	if human, _ := runTool(t, 30*time.Second, sluiceBin, "status", "--config", s.cfgPath); !strings.Contains(human, "of 8.0 MiB") {
		t.Errorf("human status lacks the running transfer:\n%s", human)
	}
	d.Close()
	k.expect(426)

	if out, err := runTool(t, 30*time.Second, sluiceBin, "kick", id, "--config", s.cfgPath); err != nil || !strings.Contains(out, "kicked 1") {
		t.Fatalf("kick: %v\n%s", err, out)
	}
	k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := k.r.ReadString('\n')
	if !strings.HasPrefix(line, "421") {
		t.Errorf("kicked session read %q, want 421", line)
	}
	pre.cmd("NOOP", 200) // the other session goes on

	if out, err := runTool(t, 30*time.Second, sluiceBin, "ban", "127.0.0.1", "--for", "1h", "--config", s.cfgPath); err != nil {
		t.Fatalf("ban: %v\n%s", err, out)
	}
	c, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if l, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(l, "421") {
		t.Errorf("banned address greeted with %q", l)
	}
	// Only root (or the server's own uid) may talk to the socket.
	if fi, err := os.Stat(filepath.Join(s.dir, "state", daemon.AdminSocket)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode: %v %v", fi, err)
	}
}

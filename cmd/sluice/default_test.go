package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEmbeddedDefault is `make run`: `sluice serve` with no config serves
// ./var/ftp on 127.0.0.1:2121 and [::1]:2121 for demo/demo, creates the
// directory (owned by 65534 when root) and says how to connect. It needs
// port 2121 on both loopbacks, so it skips when they are taken.
func TestEmbeddedDefault(t *testing.T) {
	for _, a := range []string{"127.0.0.1:2121", "[::1]:2121"} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Skipf("%s is in use (%v): the embedded default needs it; skipping", a, err)
		}
		l.Close()
	}
	curl := needTool(t, "curl")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	log := &syncBuffer{}
	cmd := exec.Command(sluiceBin, "serve")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
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
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "curl ftp://demo:demo@127.0.0.1:2121/") {
		if time.Now().After(deadline) {
			t.Fatalf("no connection instructions printed:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	root := filepath.Join(dir, "var", "ftp")
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatalf("./var/ftp not created: %v", err)
	}
	if isRoot() && fi.Sys().(*syscall.Stat_t).Uid != accountUID {
		t.Errorf("./var/ftp owned by uid %d, want %d", fi.Sys().(*syscall.Stat_t).Uid, accountUID)
	}
	src := filepath.Join(t.TempDir(), "hello.txt")
	os.WriteFile(src, []byte("hello from make run\n"), 0o644)
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		url := "ftp://demo:demo@" + host + ":2121/hello.txt"
		if out, err := runTool(t, time.Minute, curl, "-sS", "--fail", "-T", src, url); err != nil {
			t.Fatalf("upload to %s: %v\n%s", host, err, out)
		}
		out, err := runTool(t, time.Minute, curl, "-sS", "--fail", url)
		if err != nil || out != "hello from make run\n" {
			t.Fatalf("download from %s: %v %q", host, err, out)
		}
	}
	if !strings.Contains(log.String(), "loopback only") {
		t.Errorf("the log does not say the demo account is loopback only")
	}
}

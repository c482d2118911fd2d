package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLogRotationLosesNothing: sessions transfer while the audit log and
// the xferlog are rotated (rename + SIGUSR1) again and again; every event
// ends up whole in one of the files.
func TestLogRotationLosesNothing(t *testing.T) {
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.json")
	s := startServer(t, serverOpts{audit: audit})
	os.WriteFile(filepath.Join(s.root, "f.bin"), make([]byte, 4096), 0o644)
	const sessions, perSession = 12, 5
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := dialCtrl(t, s.addr())
			k.login("demo", "demo")
			for j := 0; j < perSession; j++ {
				d := k.epsvDial()
				k.cmd("RETR f.bin", 150)
				buf := make([]byte, 8192)
				for {
					if _, err := d.Read(buf); err != nil {
						break
					}
				}
				d.Close()
				k.expect(226)
			}
			k.cmd("QUIT", 221)
		}()
	}
	rotations := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-time.After(30 * time.Millisecond):
			rotations++
			os.Rename(audit, fmt.Sprintf("%s.%d", audit, rotations))
			os.Rename(filepath.Join(s.dir, "xferlog"), fmt.Sprintf("%s.%d", filepath.Join(s.dir, "xferlog"), rotations))
			s.cmd.Process.Signal(syscall.SIGUSR1)
		}
	}
	waitLog(t, s, "log files reopened", 1)
	var files []string
	var counts map[string]int
	// session.close is written when the supervisor reaps each worker,
	// which can trail the client's QUIT: wait for all of them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ = filepath.Glob(audit + "*")
		counts = countEvents(t, files)
		if counts["session.close"] >= sessions+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	xfiles, _ := filepath.Glob(filepath.Join(s.dir, "xferlog") + "*")
	xlines := 0
	for _, f := range xfiles {
		b, _ := os.ReadFile(f)
		for _, c := range b {
			if c == '\n' {
				xlines++
			}
		}
	}
	t.Logf("%d rotations over %d audit files", rotations, len(files))
	if rotations < 2 {
		t.Fatalf("only %d rotations happened during the transfers", rotations)
	}
	if counts["transfer"] != sessions*perSession || counts["login.ok"] != sessions {
		t.Errorf("audit events across the rotated files: %v; want %d transfers and %d logins", counts, sessions*perSession, sessions)
	}
	if counts["session.close"] != sessions+1 { // and the start-up probe
		t.Errorf("%d session.close lines, want %d", counts["session.close"], sessions+1)
	}
	if xlines != sessions*perSession {
		t.Errorf("xferlog lines across the rotated files: %d, want %d", xlines, sessions*perSession)
	}
}

// countEvents counts audit events by kind across files, failing on any
// line that is not one whole JSON object.
func countEvents(t *testing.T, files []string) map[string]int {
	counts := map[string]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("%s: broken line %q", filepath.Base(f), sc.Text())
				continue
			}
			counts[fmt.Sprint(m["event"])]++
		}
		fh.Close()
	}
	return counts
}

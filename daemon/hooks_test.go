package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-ftp/sluice/policy"
)

// TestHookArgvIntact: a path with shell metacharacters, quotes and
// newlines reaches the program as one argument (and in SLUICE_PATH), and
// nothing else runs.
func TestHookArgvIntact(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	os.Chmod(filepath.Dir(dir), 0o755)
	script := filepath.Join(dir, "h.sh")
	out := filepath.Join(dir, "out")
	os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s' \"$#\" > "+out+".argc\nprintf '%s' \"$1\" > "+out+".arg\nprintf '%s' \"$SLUICE_PATH\" > "+out+".env\n"), 0o755)
	canary := filepath.Join(dir, "pwned")
	name := "/x\n; touch " + canary + " $(touch " + canary + ") `touch " + canary + "` 'q\" \\ | & > *\n"
	cfg := &policy.Config{Hooks: policy.HooksConfig{UID: 65534, GID: 65534, Concurrency: 1, Timeout: 5 * time.Second}}
	hk := policy.Hook{Name: "h", Events: []string{"upload"}, Command: []string{script, "{path}"}}
	nop := zerolog.New(io.Discard)
	h := &hookRunner{root: os.Geteuid() == 0, audit: nop, ops: nop, cfg: func() *policy.Config { return cfg }, sem: make(chan struct{}, 1)}
	if _, err := h.exec(context.Background(), cfg, &hk, &HookEvent{Event: "upload", Path: name}); err != nil {
		t.Fatal(err)
	}
	for suffix, want := range map[string]string{".argc": "1", ".arg": name, ".env": name} {
		b, _ := os.ReadFile(out + suffix)
		if string(b) != want {
			t.Errorf("%s = %q, want %q", suffix, b, want)
		}
	}
	if _, err := os.Stat(canary); err == nil {
		t.Error("the path ran as shell code")
	}
}

func TestHookTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	os.Chmod(filepath.Dir(dir), 0o755)
	script := filepath.Join(dir, "slow.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nsleep 30 &\nsleep 30\n"), 0o755)
	cfg := &policy.Config{Hooks: policy.HooksConfig{UID: 65534, GID: 65534, Concurrency: 1, Timeout: 300 * time.Millisecond}}
	hk := policy.Hook{Name: "slow", Events: []string{"pre-upload"}, Command: []string{script}}
	cfg.HookList = []policy.Hook{hk}
	nop := zerolog.New(io.Discard)
	h := &hookRunner{root: os.Geteuid() == 0, audit: nop, ops: nop, cfg: func() *policy.Config { return cfg }, sem: make(chan struct{}, 1)}
	start := time.Now()
	ok, name := h.check(context.Background(), HookEvent{Event: "pre-upload", Path: "/a"})
	if ok || name != "slow" {
		t.Errorf("a timed-out pre hook allowed the operation")
	}
	if d := time.Since(start); d > 5*time.Second || d < 300*time.Millisecond {
		t.Errorf("took %s", d)
	}
	if strings.Contains(SignWebhook("k", "1", []byte("b")), " ") {
		t.Error("signature")
	}
}

package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	sluice "github.com/sluice-ftp/sluice"
)

// TestManPages: sluice.toml(5) documents every key of the example config
// (it is generated from it), sluice(8) every command of --help, and man
// renders both without complaint.
func TestManPages(t *testing.T) {
	var page5, page8, errb bytes.Buffer
	if code := cmdMan([]string{"sluice.toml.5"}, &page5, &errb); code != 0 {
		t.Fatalf("man 5: %d %s", code, errb.String())
	}
	if code := cmdMan([]string{"sluice.8"}, &page8, &errb); code != 0 {
		t.Fatalf("man 8: %d %s", code, errb.String())
	}
	keys := regexp.MustCompile(`(?m)^\s*([a-z_]+)\s*=`).FindAllStringSubmatch(sluice.ExampleConfig, -1)
	if len(keys) < 20 {
		t.Fatalf("found only %d keys in the example", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(page5.String(), ".B "+strings.ReplaceAll(k[1], "-", `\-`)+"\n") {
			t.Errorf("sluice.toml(5) lacks key %s", k[1])
		}
	}
	for _, l := range strings.Split(usage, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "sluice" {
			if !strings.Contains(page8.String(), ".B sluice "+f[1]) {
				t.Errorf("sluice(8) lacks %q", "sluice "+f[1])
			}
		}
	}
	man, err := exec.LookPath("man")
	if err != nil {
		t.Skip("man is not installed: roff not rendered")
	}
	for name, page := range map[string]*bytes.Buffer{"sluice.8": &page8, "sluice.toml.5": &page5} {
		cmd := exec.Command(man, "--warnings", "-l", "-")
		cmd.Stdin = bytes.NewReader(page.Bytes())
		cmd.Env = []string{"MANWIDTH=80", "LC_ALL=C.UTF-8", "PATH=/usr/bin:/bin"}
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l %s: %v\n%s", name, err, stderr.String())
		}
	}
}

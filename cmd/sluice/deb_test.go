package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDebianPackage builds the package with `make deb`'s script, checks
// what it installs, and starts the unit's ExecStart line from the unpacked
// files (no systemd here) with the packaged config, moved to a test port:
// the demo account must be served.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a package: skipped in -short")
	}
	needTool(t, "dpkg-deb")
	needTool(t, "make")
	out := t.TempDir()
	cmd := exec.Command("sh", "dist/mkdeb.sh", out)
	cmd.Dir = "../.."
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mkdeb: %v\n%s", err, b)
	}
	deb := strings.TrimSpace(string(b[strings.LastIndexByte(strings.TrimSpace(string(b)), '\n')+1:]))
	if !filepath.IsAbs(deb) {
		deb = filepath.Join(out, filepath.Base(deb))
	}
	contents, err := exec.Command("dpkg-deb", "--contents", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --contents: %v\n%s", err, contents)
	}
	for _, want := range []string{"./usr/bin/sluice", "./usr/lib/systemd/system/sluice.service",
		"./usr/lib/tmpfiles.d/sluice.conf", "./etc/sluice/sluice.toml", "./usr/share/doc/sluice/sluice.example.toml",
		"./usr/share/man/man8/sluice.8.gz", "./usr/share/man/man5/sluice.toml.5.gz", "./usr/lib/sysusers.d/sluice.conf"} {
		if !strings.Contains(string(contents), want) {
			t.Errorf("package lacks %s:\n%s", want, contents)
		}
	}
	if !regexp.MustCompile(`(?m)^-rw------- root/root .* ./etc/sluice/sluice.toml$`).Match(contents) {
		t.Errorf("the packaged config (password hashes) is not root-only 0600:\n%s", contents)
	}
	info, _ := exec.Command("dpkg-deb", "--info", deb).CombinedOutput()
	if !strings.Contains(string(info), "conffiles") || !strings.Contains(string(info), "Package: sluice") {
		t.Errorf("control data:\n%s", info)
	}

	root := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
	}
	// Workers run as 65534 and must reach the unpacked binary.
	os.Chmod(filepath.Dir(root), 0o755)
	os.Chmod(root, 0o755)
	unit, _ := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/sluice.service"))
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindSubmatch(unit)
	if m == nil || string(m[1]) != "/usr/bin/sluice serve --config /etc/sluice/sluice.toml" {
		t.Fatalf("unexpected ExecStart in the unit:\n%s", unit)
	}
	if !strings.Contains(string(unit), "Type=notify") {
		t.Errorf("the unit is not Type=notify")
	}
	// The packaged config on a port of our own and a storage dir of the test.
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/sluice/sluice.toml"))
	port := freePort(t)
	storage := filepath.Join(root, "srv/sluice/demo")
	makeStorage(t, storage)
	text := strings.NewReplacer(
		`listen = ["127.0.0.1:21", "[::1]:21"]`, fmt.Sprintf(`listen = ["127.0.0.1:%d"]`, port),
		`"/srv/sluice/demo"`, fmt.Sprintf("%q", storage),
		`"/var/lib/sluice"`, fmt.Sprintf("%q", filepath.Join(root, "var/lib/sluice")),
		`"/var/log/sluice/xferlog"`, fmt.Sprintf("%q", filepath.Join(root, "xferlog")),
		// The package's postinst creates the user; this test does not
		// install the package.
		`worker_user = "sluice"`, `worker_user = "nobody"`,
	).Replace(string(cfg))
	cfgPath := filepath.Join(root, "etc/sluice/sluice.toml")
	os.WriteFile(cfgPath, []byte(text), 0o600)
	log := &syncBuffer{}
	srv := exec.Command(filepath.Join(root, "usr/bin/sluice"), "serve", "--config", cfgPath)
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "sluice is serving FTP") {
		if time.Now().After(deadline) {
			t.Fatalf("the packaged server did not start:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	k := dialCtrl(t, addr)
	k.login("demo", "demo")
	k.cmd("PWD", 257)
}

package harness

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/bench"
)

// TestQuickAgainstSluice is bench-quick in miniature against a sluice built
// from this tree: it starts the server in a cgroup, runs every workload
// that applies once, writes the page, the charts and the JSON, and checks
// that nothing failed and that the harness cleaned up after itself.
func TestQuickAgainstSluice(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test (builds and runs sluice)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: sluice switches to the account's uid, and the harness makes cgroups")
	}
	if !bench.CgroupAvailable() {
		t.Skip("no writable cgroup v2 at " + bench.CgroupRoot)
	}
	tmp := t.TempDir()
	// Workers exec the binary as an unprivileged uid: the directories on
	// its path must be searchable (t.TempDir makes them 0700).
	for d := tmp; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(tmp, "sluice")
	build := exec.Command("go", "build", "-o", bin, "github.com/sluice-ftp/sluice/cmd/sluice")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sluice: %v\n%s", err, out)
	}
	o := QuickOptions()
	o.Reps = 1
	o.Servers = []string{"sluice"}
	o.Sluice = bin
	o.Data = filepath.Join(tmp, "data")
	// sluice's accounts are its own (argon2id in its config), so any
	// non-root system uid does; nobody exists everywhere.
	o.User, o.Pass = "nobody", "bench-pass"
	// Own ports and cgroup name, so that a `make bench` or another test
	// run on the machine at the same time is left alone: a free control
	// port from the kernel, and a passive range derived from it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	o.PortBase, o.PasvBase = port, 20000+(port%40)*1000
	o.CgroupPrefix = fmt.Sprintf("sluice-bench-test-%d-", os.Getpid())
	o.Data0 = DataSet{BigSize: 64 << 20, FanoutSize: 16 << 20, FanoutSmallSize: 8 << 20, SmallFiles: 50, ListEntries: 10000}
	o.Cfg.Clients, o.Cfg.FanoutBigMax = []int{1, 8}, 4
	o.Cfg.UploadSize = 64 << 20
	o.Cfg.UploadSource = filepath.Join(tmp, "upload-src.bin")
	o.Cfg.LoginDuration, o.Cfg.SmallDuration = 500*time.Millisecond, 500*time.Millisecond
	o.Cfg.ListRuns, o.Cfg.IdleSessions = 1, 8
	o.Command = "go test ./bench/harness"
	var log strings.Builder
	o.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())

	want := []string{bench.WRetr, bench.WStor, "fanout/1", "fanout/8", bench.WLoginSeq, bench.WLoginPar, bench.WSmall, bench.WList, bench.WMLSD, bench.WIdle}
	got := map[string]bench.Summary{}
	for _, s := range r.Summaries {
		got[s.Workload] = s
	}
	for _, w := range want {
		s, ok := got[w]
		if !ok || s.N != 1 || s.Failed != 0 || float64(s.Median) <= 0 {
			t.Errorf("%s: %+v", w, s)
		}
	}
	if s := got[bench.WRetr]; !s.ServerCPUPerGiB.Known() || float64(s.ServerCPUPerGiB) <= 0 {
		t.Errorf("server CPU not measured through the cgroup: %+v", s)
	}
	if s := got[bench.WIdle]; float64(s.PSSPerSession) <= 0 {
		t.Errorf("no memory per session: %+v", s)
	}
	// sluice offers explicit FTPS with the peers' certificate.
	if s, ok := got[bench.WFTPSRetr]; !ok || s.N != 1 || s.Failed != 0 || float64(s.Median) <= 0 {
		t.Errorf("ftps-retr against sluice: %+v", s)
	}

	page := filepath.Join(tmp, "docs", "benchmarks.md")
	if err := WriteDocs(r, page); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(page)
	for _, s := range []string{"| workload | sluice |", "go test ./bench/harness", "Kernel:", "RETR 64 MiB, MB/s"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("page lacks %q", s)
		}
	}
	for _, c := range chartFiles {
		b, err := os.ReadFile(filepath.Join(tmp, "docs", c))
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(strings.NewReader(string(b)))
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
		}
	}
	// Everything the harness started is gone: no cgroup left behind.
	if _, err := os.Stat(filepath.Join(bench.CgroupRoot, o.CgroupPrefix+"sluice")); !os.IsNotExist(err) {
		t.Errorf("cgroup left behind: %v", err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// BenchmarkRETRvsSendfile alternates, in one loop, a raw sendfile of the
// page-cached file over loopback (no FTP: the baseline) and a RETR of the
// same file through the daemon, with the same receiver (splice to
// /dev/null), and reports the ratio of the medians. Alternating keeps the
// machine's drift out of the ratio; -benchtime sets the pairs.
// SLUICE_BENCH_ACCOUNTING, if set, is put in the server's [accounting]
// table (e.g. mode = "userspace" to leave the eBPF programs out).
//
//	go test -run '^$' -bench RETRvsSendfile -benchtime 9x ./cmd/sluice/
func BenchmarkRETRvsSendfile(b *testing.B) {
	n := benchBytes()
	s := startServer(b, serverOpts{accounting: os.Getenv("SLUICE_BENCH_ACCOUNTING")})
	src := filepath.Join(s.root, "image.bin")
	makeBenchFile(b, src, n)
	null := devNull(b)
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	k := dialCtrl(b, s.addr())
	k.login("demo", "demo")
	k.cmd("TYPE I", 200)
	pids := workerPids(s)
	server := []int{s.cmd.Process.Pid, pids[len(pids)-1]}

	raw := func() float64 { return rawSendfile(b, f, n, null) }
	var cpu cpuPerGiB
	retr := func() float64 {
		start := time.Now()
		d := k.epsvDial()
		before := procCPU(server...)
		k.cmd("RETR image.bin", 150)
		res, err := datapath.Receive(null, d, false)
		d.Close()
		k.expect(226)
		cpu.cpu += procCPU(server...) - before
		cpu.bytes += res.Bytes
		if err != nil || res.Bytes != n {
			b.Fatalf("RETR: %v %d", err, res.Bytes)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	var rs, fs []float64
	i := 0
	for b.Loop() {
		// ABBA: neither side always goes first.
		if i%2 == 0 {
			rs = append(rs, raw())
			fs = append(fs, retr())
		} else {
			fs = append(fs, retr())
			rs = append(rs, raw())
		}
		i++
	}
	slices.Sort(rs)
	slices.Sort(fs)
	b.ReportMetric(rs[len(rs)/2]/1e6, "raw-MB/s")
	b.ReportMetric(fs[len(fs)/2]/1e6, "RETR-MB/s")
	b.ReportMetric(fs[len(fs)/2]/rs[len(rs)/2], "RETR/raw")
	cpu.report(b)
}

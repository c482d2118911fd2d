package main

import (
	"path/filepath"
	"testing"
)

// BenchmarkAccounting: 2 GiB RETR and STOR (SLUICE_BENCH_MB) through
// the daemon with the eBPF counting programs attached, beside the same
// with user-space accounting (no programs), to check the target:
// with counting on and no limit, throughput ≥ 95% of without. Run with
// -count 5 or more.
//
//	go test -run '^$' -bench Accounting -count 5 ./cmd/sluice/
func BenchmarkAccounting(b *testing.B) {
	needRoot(b, "eBPF accounting")
	n := benchBytes()
	for _, mode := range []string{"ebpf", "userspace"} {
		b.Run(mode, func(b *testing.B) {
			s := startServer(b, serverOpts{accounting: `mode = "` + mode + `"`})
			src := filepath.Join(s.root, "image.bin")
			makeBenchFile(b, src, n)
			null := devNull(b)
			k := dialCtrl(b, s.addr())
			k.login("demo", "demo")
			k.cmd("TYPE I", 200)
			pids := workerPids(s)
			server := []int{s.cmd.Process.Pid, pids[len(pids)-1]}
			b.Run("RETR", func(b *testing.B) { benchPlainRETR(b, k, "image.bin", n, null, server) })
			b.Run("STOR", func(b *testing.B) { benchPlainSTOR(b, k, s, src, n, server) })
		})
	}
}

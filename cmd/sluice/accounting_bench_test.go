package main

import (
	"path/filepath"
	"testing"
)

// BenchmarkAccountingRETR: 2 GiB RETR (SLUICE_BENCH_BYTES) through the
// daemon with the eBPF counting programs attached, beside the same with
// user-space accounting (no programs), to check the target: with
// counting on and no limit, throughput ≥ 95% of without. Run with -count
// 5 or more: the sub-benchmarks alternate, so drift in the machine's load
// hits both.
//
//	go test -run '^$' -bench AccountingRETR -count 5 ./cmd/sluice/
func BenchmarkAccountingRETR(b *testing.B) {
	needRoot(b, "eBPF accounting")
	n := benchBytes()
	for _, mode := range []string{"ebpf", "userspace"} {
		b.Run(mode, func(b *testing.B) {
			s := startServer(b, serverOpts{accounting: `mode = "` + mode + `"`})
			makeBenchFile(b, filepath.Join(s.root, "image.bin"), n)
			null := devNull(b)
			k := dialCtrl(b, s.addr())
			k.login("demo", "demo")
			k.cmd("TYPE I", 200)
			pids := workerPids(s)
			server := []int{s.cmd.Process.Pid, pids[len(pids)-1]}
			benchPlainRETR(b, k, "image.bin", n, null, server)
		})
	}
}

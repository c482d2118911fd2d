package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-ftp/sluice/datapath"
)

// BenchmarkAccounting: 2 GiB RETR and STOR (SLUICE_BENCH_BYTES) through
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
			b.Run("STOR", func(b *testing.B) {
				b.SetBytes(n)
				var c cpuPerGiB
				f, _ := os.Open(src)
				defer f.Close()
				for b.Loop() {
					b.StopTimer()
					os.Remove(filepath.Join(s.root, "up.bin"))
					b.StartTimer()
					d := k.epsvDial()
					before := procCPU(server...)
					k.cmd("STOR up.bin", 150)
					res, err := datapath.Send(d, f, 0, false)
					d.Close()
					k.expect(226)
					c.cpu += procCPU(server...) - before
					c.bytes += res.Bytes
					if err != nil || res.Bytes != n {
						b.Fatalf("%v %d", err, res.Bytes)
					}
				}
				c.report(b)
			})
		})
	}
}

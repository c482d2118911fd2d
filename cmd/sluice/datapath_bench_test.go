package main

// End-to-end data-path benchmarks (issue 5): the real server, a Go client
// that splices to /dev/null (downloads) or sendfiles from the page cache
// (uploads), and a raw sendfile-over-loopback baseline in the same run.
//
//	go test -run '^$' -bench DataPath -benchtime 3x ./cmd/sluice/
//
// SLUICE_BENCH_MB sets the file size (default 2048). Besides MB/s each
// reports server-cpu-s/GiB: user+system time of the supervisor and the
// session's worker (from /proc/PID/stat, the worker's pid from the audit
// log's session.open), per GiB moved.

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

func benchBytes() int64 {
	if v, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_MB")); err == nil && v > 0 {
		return int64(v) << 20
	}
	return 2 << 30
}

// makeBenchFile writes n bytes (a random 4 MiB block repeated) and reads
// it once, so that it sits in the page cache.
func makeBenchFile(b *testing.B, p string, n int64) {
	block := make([]byte, 4<<20)
	rand.Read(block)
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	for w := int64(0); w < n; w += int64(len(block)) {
		if _, err := f.Write(block[:min(int64(len(block)), n-w)]); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	if isRoot() {
		os.Chown(p, accountUID, accountUID)
	}
	f, _ = os.Open(p)
	io.Copy(io.Discard, f)
	f.Close()
}

// procCPU is the user+system time of pids, from /proc/PID/stat.
func procCPU(pids ...int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// After "pid (comm) ": state is field 3, utime 14, stime 15.
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

type cpuPerGiB struct {
	cpu   time.Duration
	bytes int64
}

func (c *cpuPerGiB) report(b *testing.B) {
	if c.bytes > 0 {
		b.ReportMetric(c.cpu.Seconds()/(float64(c.bytes)/(1<<30)), "server-cpu-s/GiB")
	}
}

func devNull(b *testing.B) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

func BenchmarkDataPath(b *testing.B) {
	n := benchBytes()
	s := startServer(b, serverOpts{})
	src := filepath.Join(s.root, "image.bin")
	makeBenchFile(b, src, n)
	null := devNull(b)

	// Baseline: sendfile from the same page-cached file over loopback,
	// no FTP, same receiver.
	b.Run("raw-sendfile", func(b *testing.B) {
		b.SetBytes(n)
		f, _ := os.Open(src)
		defer f.Close()
		for b.Loop() {
			rawSendfile(b, f, n, null)
		}
	})

	k := dialCtrl(b, s.addr())
	k.login("demo", "demo")
	k.cmd("TYPE I", 200)
	pids := workerPids(s)
	worker := pids[len(pids)-1]
	server := []int{s.cmd.Process.Pid, worker}

	b.Run("RETR", func(b *testing.B) { benchPlainRETR(b, k, "image.bin", n, null, server) })

	b.Run("STOR", func(b *testing.B) { benchPlainSTOR(b, k, s, src, n, server) })
}

// rawSendfile is the baseline: n bytes of f sent with sendfile over a
// loopback connection in this process, received by splice into null. It
// returns the rate in bytes per second.
func rawSendfile(b *testing.B, f *os.File, n int64, null *os.File) float64 {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		_, err = datapath.Send(c, f, 0, false)
		c.Close()
		done <- err
	}()
	c, _ := net.Dial("tcp", ln.Addr().String())
	res, _ := datapath.Receive(null, c, false)
	c.Close()
	if err := <-done; err != nil || res.Bytes != n {
		b.Fatalf("raw sendfile: %v %d", err, res.Bytes)
	}
	return float64(n) / time.Since(start).Seconds()
}

// benchPlainSTOR uploads src (n bytes) as up.bin over plain FTP on k
// once per iteration, sent with sendfile, and reports the server CPU per
// GiB.
func benchPlainSTOR(b *testing.B, k *ctrl, s *server, src string, n int64, server []int) {
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
}

// benchPlainRETR downloads name over plain FTP on k into null (splice, so
// the client is not the limit) once per iteration, and reports the server
// CPU (the pids in server) per GiB.
func benchPlainRETR(b *testing.B, k *ctrl, name string, n int64, null *os.File, server []int) {
	b.SetBytes(n)
	var c cpuPerGiB
	for b.Loop() {
		d := k.epsvDial()
		before := procCPU(server...)
		k.cmd("RETR "+name, 150)
		res, err := datapath.Receive(null, d, false)
		d.Close()
		k.expect(226)
		c.cpu += procCPU(server...) - before
		c.bytes += res.Bytes
		if err != nil || res.Bytes != n {
			b.Fatalf("%v %d", err, res.Bytes)
		}
	}
	c.report(b)
}

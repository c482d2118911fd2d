package datapath

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Benchmarks move a 64 MiB page-cached file over loopback TCP. Each reports
// MB/s (b.SetBytes) next to baselines in the same run:
//
//	iocopy32k  io.CopyBuffer with 32 KiB, ReadFrom/WriteTo hidden (the
//	           naive server)
//	goreadfrom Go's own zero-copy (TCPConn.ReadFrom(*os.File) → sendfile;
//	           File.ReadFrom(*TCPConn) → splice)
//
// The far end always uses a zero-copy path too (splice to /dev/null, or
// sendfile from a file), so that it is not the bottleneck: on two cores
// the peer shares the machine. Run:
//
//	go test -run '^$' -bench . -benchtime 20x ./datapath
//
// Besides MB/s each reports cpu-ms/op: user+system CPU of the whole process
// (both ends) per 64 MiB. The far end is the same for every mover of a
// benchmark, so the differences are the mover's own cost — on loopback
// the MB/s column mostly measures the far end, the cpu column does not.
// SLUICE_BENCH_MB overrides the file size.
var benchSize = int64(64 << 20)

func init() {
	if v, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_MB")); err == nil && v > 0 {
		benchSize = int64(v) << 20
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter sums CPU time only while the benchmark timer runs.
type cpuMeter struct {
	total time.Duration
	start time.Duration
}

func (m *cpuMeter) on()  { m.start = cpuTime() }
func (m *cpuMeter) off() { m.total += cpuTime() - m.start }
func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(m.total.Milliseconds())/float64(b.N), "cpu-ms/op")
}

type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }

func benchSource(b *testing.B) *os.File {
	src := tempFile(b, randomBytes(int(benchSize), 42))
	io.Copy(io.Discard, src) // warm the page cache
	src.Seek(0, io.SeekStart)
	return src
}

func BenchmarkSend(b *testing.B) {
	src := benchSource(b)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	movers := []struct {
		name string
		send func(dst *net.TCPConn) error
	}{
		{"sendfile", func(dst *net.TCPConn) error { _, err := Send(dst, src, 0, false); return err }},
		{"copy256k", func(dst *net.TCPConn) error { _, err := Send(wrapConn{Conn: dst}, src, 0, false); return err }},
		{"goreadfrom", func(dst *net.TCPConn) error {
			_, err := dst.ReadFrom(io.NewSectionReader(src, 0, benchSize))
			return err
		}},
		{"iocopy32k", func(dst *net.TCPConn) error {
			_, err := io.CopyBuffer(onlyWriter{dst}, io.NewSectionReader(src, 0, benchSize), make([]byte, 32<<10))
			return err
		}},
	}
	for _, m := range movers {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			var cpu cpuMeter
			for b.Loop() {
				b.StopTimer()
				server, client := tcpPair(b, false)
				done := make(chan Result, 1)
				go func() {
					res, _ := Receive(devnull, client, false)
					done <- res
				}()
				b.StartTimer()
				cpu.on()
				if err := m.send(server); err != nil {
					b.Fatal(err)
				}
				server.Close()
				res := <-done
				cpu.off()
				if res.Bytes != benchSize {
					b.Fatalf("receiver got %d bytes", res.Bytes)
				}
			}
			cpu.report(b)
		})
	}
}

func BenchmarkReceive(b *testing.B) {
	src := benchSource(b)
	dst, err := os.Create(filepath.Join(b.TempDir(), "upload"))
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	movers := []struct {
		name string
		recv func(src *net.TCPConn) error
	}{
		{"splice", func(c *net.TCPConn) error { _, err := Receive(dst, c, false); return err }},
		{"copy256k", func(c *net.TCPConn) error { _, err := Receive(dst, wrapConn{Conn: c}, false); return err }},
		{"goreadfrom", func(c *net.TCPConn) error { _, err := dst.ReadFrom(c); return err }},
		{"iocopy32k", func(c *net.TCPConn) error {
			_, err := io.CopyBuffer(onlyWriter{dst}, onlyReader{c}, make([]byte, 32<<10))
			return err
		}},
	}
	for _, m := range movers {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			var cpu cpuMeter
			for b.Loop() {
				b.StopTimer()
				// A fresh upload each time: new pages, not overwrites.
				if err := dst.Truncate(0); err != nil {
					b.Fatal(err)
				}
				dst.Seek(0, io.SeekStart)
				server, client := tcpPair(b, false)
				go func() {
					Send(client, src, 0, false)
					client.CloseWrite()
				}()
				b.StartTimer()
				cpu.on()
				if err := m.recv(server); err != nil {
					b.Fatal(err)
				}
				cpu.off()
				b.StopTimer()
				if fi, _ := dst.Stat(); fi.Size() != benchSize {
					b.Fatalf("file has %d bytes", fi.Size())
				}
				b.StartTimer()
			}
			cpu.report(b)
		})
	}
}

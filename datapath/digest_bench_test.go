package datapath

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkUploadDigest chooses how STOR follows its bytes with XXH64:
// the plain splice loop (no digest), then the same loop with the digest
// computed by re-reading the range just written from the page cache in a
// second goroutine (async, the default), in the loop itself (serial), or
// from a tee(2) copy of the pipe (tee). Same sender, same file system.
//
//	SLUICE_BENCH_MB=2048 go test -run '^$' -bench UploadDigest -benchtime 3x ./datapath
func BenchmarkUploadDigest(b *testing.B) {
	src := benchSource(b)
	dir := b.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := NewTree([]Mount{{Path: "/", Dir: d, Rights: RightsAll}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	modes := []struct {
		name string
		mode hashMode
		hash bool
	}{
		{"splice-nodigest", 0, false},
		{"readwrite-256k-nodigest", -1, false},
		{"splice+async-pread-xxh64", hashAsync, true},
		{"splice+serial-pread-xxh64", hashSerial, true},
		{"tee+xxh64", hashTee, true},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(benchSize)
			var cpu cpuMeter
			for b.Loop() {
				b.StopTimer()
				os.Remove(filepath.Join(dir, "up"))
				u, err := tr.BeginUpload("/up", UploadStore, 0)
				if err != nil {
					b.Fatal(err)
				}
				server, client := tcpPair(b, false)
				go func() {
					Send(client, src, 0, false)
					client.CloseWrite()
				}()
				b.StartTimer()
				cpu.on()
				if m.hash {
					_, err = u.receive(server, Options{}, m.mode)
				} else if m.mode < 0 {
					// The copy mover, as vsftpd does it (read/write).
					_, err = ReceiveWith(u.f, wrapConn{Conn: server}, Options{})
					u.base = benchSize
				} else {
					_, err = ReceiveWith(u.f, server, Options{})
					u.base = benchSize
				}
				if err == nil && m.hash {
					_, err = u.Commit()
				}
				cpu.off()
				if err != nil {
					b.Fatal(err)
				}
				if !m.hash {
					u.Abort()
				}
			}
			cpu.report(b)
		})
	}
}

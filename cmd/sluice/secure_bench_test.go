package main

// Secure-mode benchmarks (issue 7): FTPS RETR/STOR next to plain FTP in
// the same run, and sequential FTPS logins.
//
//	SLUICE_BENCH_MB=2048 go test -run '^$' -bench Secure -benchtime 3x ./cmd/sluice/
//	go test -run '^$' -bench FTPSLogin -benchtime 500x ./cmd/sluice/
//
// server-cpu-s/GiB is the user+system time of the supervisor and the
// session's worker per GiB moved (procCPU). The client (Go crypto/tls, or
// a splice to /dev/null for plain FTP) runs on the same two cores.

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func BenchmarkSecureRETR(b *testing.B) {
	n := benchBytes()
	s, _, _ := startFTPS(b, "optional", "")
	src := filepath.Join(s.root, "image.bin")
	makeBenchFile(b, src, n)
	null := devNull(b)

	plain := dialCtrl(b, s.addr())
	plain.login("demo", "demo")
	plain.cmd("TYPE I", 200)
	cache := tls.NewLRUClientSessionCache(8)
	sec := dialFTPS(b, s.addr(), clientTLS(tls.VersionTLS13, cache))
	sec.login("demo", "demo")
	sec.cmd("TYPE I", 200)
	sec.cmd("PBSZ 0", 200)
	sec.cmd("PROT P", 200)
	pids := workerPids(s)
	if len(pids) < 2 {
		b.Fatalf("worker pids %v", pids)
	}
	plainSrv := []int{s.cmd.Process.Pid, pids[len(pids)-2]}
	secSrv := []int{s.cmd.Process.Pid, pids[len(pids)-1]}

	b.Run("FTP-RETR", func(b *testing.B) { benchPlainRETR(b, plain, "image.bin", n, null, plainSrv) })
	b.Run("FTPS-RETR", func(b *testing.B) {
		b.SetBytes(n)
		var c cpuPerGiB
		buf := make([]byte, 1<<20)
		for b.Loop() {
			d := sec.epsvDial()
			before := procCPU(secSrv...)
			sec.cmd("RETR image.bin", 150)
			tc := tls.Client(d, clientTLS(tls.VersionTLS13, cache))
			got, err := io.CopyBuffer(null, struct{ io.Reader }{tc}, buf)
			tc.Close()
			sec.expect(226)
			c.cpu += procCPU(secSrv...) - before
			c.bytes += got
			if err != nil || got != n || !tc.ConnectionState().DidResume {
				b.Fatalf("%v %d", err, got)
			}
		}
		c.report(b)
	})
	b.Run("FTPS-STOR", func(b *testing.B) {
		b.SetBytes(n)
		var c cpuPerGiB
		f, _ := os.Open(src)
		defer f.Close()
		buf := make([]byte, 1<<20)
		for b.Loop() {
			b.StopTimer()
			os.Remove(filepath.Join(s.root, "up.bin"))
			f.Seek(0, 0)
			b.StartTimer()
			d := sec.epsvDial()
			before := procCPU(secSrv...)
			sec.cmd("STOR up.bin", 150)
			tc := tls.Client(d, clientTLS(tls.VersionTLS13, cache))
			got, err := io.CopyBuffer(struct{ io.Writer }{tc}, struct{ io.Reader }{f}, buf)
			tc.Close()
			sec.expect(226)
			c.cpu += procCPU(secSrv...) - before
			c.bytes += got
			if err != nil || got != n {
				b.Fatalf("%v %d", err, got)
			}
		}
		c.report(b)
	})
}

// BenchmarkFTPSLogin: one client, one login after the other: connect,
// AUTH TLS (a full handshake, signed by the supervisor over IPC),
// USER/PASS, QUIT; and plain FTP logins as the baseline. Every login
// takes a pre-started worker process; SLUICE_BENCH_POOL sets worker_pool.
func BenchmarkFTPSLogin(b *testing.B) {
	s, _, _ := startFTPS(b, "optional", os.Getenv("SLUICE_BENCH_POOL"))
	// The same sequential logins over plain FTP: the baseline (a login
	// costs a worker process either way).
	b.Run("FTP", func(b *testing.B) {
		for b.Loop() {
			k := dialCtrl(b, s.addr())
			k.login("demo", "demo")
			k.cmd("QUIT", 221)
			k.c.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	})
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		b.Run(tls.VersionName(v), func(b *testing.B) {
			for b.Loop() {
				k := dialFTPS(b, s.addr(), clientTLS(v, nil))
				k.login("demo", "demo")
				k.cmd("QUIT", 221)
				k.c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
		})
	}
}

// treeCPU is the user+system time of pid and of its reaped children
// (utime, stime, cutime, cstime): a whole session, whose processes have
// exited, is counted once they are reaped.
func treeCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100
}

// BenchmarkSFTP: OpenSSH's sftp client downloads (to /dev/null) and
// uploads the same page-cached file from sluice and from OpenSSH's sshd +
// sftp-server (if installed: Debian openssh-server), in the same run,
// with the same cipher (aes128-gcm@openssh.com). server-cpu-s/GiB counts
// the whole server side of each session (supervisor and worker; sshd's
// listener, session processes and sftp-server), reaped.
func BenchmarkSFTP(b *testing.B) {
	sftpBin := needTool(b, "sftp")
	n := benchBytes()
	s := startSFTP(b, serverOpts{})
	src := filepath.Join(s.keyRoot, "image.bin")
	makeBenchFile(b, src, n)
	type target struct {
		name, user string
		port, pid  int
		dir        string
	}
	targets := []target{{"sluice", "keyed", s.sftpPort, s.cmd.Process.Pid, "/"}}
	if sshd, err := exec.LookPath("sshd"); err == nil && isRoot() {
		if port, pid := startSSHD(b, sshd, s.key); pid > 0 {
			targets = append(targets, target{"openssh", "root", port, pid, s.keyRoot + "/"})
		}
	} else {
		b.Logf("sshd not available (needs root and Debian openssh-server): no OpenSSH baseline")
	}
	run := func(b *testing.B, t target, cmds string) {
		batch := filepath.Join(b.TempDir(), "batch")
		os.WriteFile(batch, []byte(cmds), 0o644)
		args := append(sshOpts(t.port), "-i", s.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
			"-c", "aes128-gcm@openssh.com", "-b", batch, t.user+"@127.0.0.1")
		if out, err := exec.Command(sftpBin, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", t.name, err, out)
		}
	}
	for _, t := range targets {
		b.Run(t.name+"-RETR", func(b *testing.B) {
			b.SetBytes(n)
			var c cpuPerGiB
			for b.Loop() {
				before := treeCPU(t.pid)
				run(b, t, "get "+t.dir+"image.bin /dev/null\n")
				time.Sleep(300 * time.Millisecond) // let the session's processes be reaped
				c.cpu += treeCPU(t.pid) - before
				c.bytes += n
			}
			c.report(b)
		})
		b.Run(t.name+"-STOR", func(b *testing.B) {
			b.SetBytes(n)
			var c cpuPerGiB
			for b.Loop() {
				before := treeCPU(t.pid)
				run(b, t, "put "+src+" "+t.dir+"up-"+t.name+".bin\n")
				time.Sleep(300 * time.Millisecond)
				c.cpu += treeCPU(t.pid) - before
				c.bytes += n
			}
			c.report(b)
		})
	}
}

// startSSHD runs OpenSSH's sshd on a free loopback port with its own host
// key, accepting the test key for any user, with sftp-server.
func startSSHD(b *testing.B, sshd, clientKey string) (int, int) {
	dir := b.TempDir()
	os.MkdirAll("/run/sshd", 0o755)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host")).CombinedOutput(); err != nil {
		b.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(clientKey + ".pub")
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	port := freePort(b)
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s/host
AuthorizedKeysFile %s/authorized_keys
PidFile %s/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
`, port, dir, dir, dir)
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600)
	cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	if err := cmd.Start(); err != nil {
		b.Logf("sshd: %v", err)
		return 0, 0
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return port, cmd.Process.Pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Logf("sshd did not listen")
	return 0, 0
}

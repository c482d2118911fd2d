// Package harness runs the comparison behind `make bench`: it builds one
// data set, starts sluice and the peers that are installed (vsftpd,
// proftpd, pure-ftpd, unpacked side by side by bench/install-peers.sh) and
// a raw sendfile baseline on loopback, each in its own cgroup, runs the
// workloads of package bench with repetitions interleaved across servers,
// and writes the report.
package harness

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-ftp/sluice/bench"
	"golang.org/x/crypto/argon2"
)

// Server is one server under test, running.
type Server struct {
	Name    string
	Version string
	URL     string // ftp://user:pass@127.0.0.1:port (raw://… for the baseline)
	TLSURL  string // ftpes://… when the server offers AUTH TLS, else ""
	Notes   []string
	cg      *bench.Cgroup
	cmd     *exec.Cmd
	done    chan error
	logPath string
}

// Probe measures the server's cgroup.
func (s *Server) Probe() bench.Probe { return s.cg.Probe() }

// Stop ends the server and everything it forked, and removes its cgroup.
// It is safe to call more than once.
func (s *Server) Stop() error {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(3 * time.Second):
		}
		s.cmd = nil
	}
	if s.cg != nil {
		err := s.cg.Destroy()
		s.cg = nil
		return err
	}
	return nil
}

// Env is what every server shares: the data set, the account, the TLS
// certificate, and a scratch directory for configs and logs.
type Env struct {
	Data     string // the data set; the account's home
	Work     string // configs, logs, pid files (removed by the caller)
	User     string // system account the peers authenticate (PAM / shadow)
	Pass     string
	UID, GID int
	CertFile string
	KeyFile  string
	// CgroupPrefix names the servers' cgroups (prefix + server name).
	CgroupPrefix string
}

// NewEnv looks the account up and writes a self-signed certificate.
func NewEnv(data, work, userName, pass string) (*Env, error) {
	u, err := user.Lookup(userName)
	if err != nil {
		return nil, fmt.Errorf("account %s (run bench/install-peers.sh): %w", userName, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	e := &Env{Data: data, Work: work, User: userName, Pass: pass, UID: uid, GID: gid, CgroupPrefix: "sluice-bench-",
		CertFile: filepath.Join(work, "cert.pem"), KeyFile: filepath.Join(work, "key.pem")}
	return e, e.writeCert()
}

// writeCert makes an RSA-2048 self-signed certificate: RSA because every
// peer's configuration accepts it under the same directive name.
func (e *Env) writeCert() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	kb := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return os.WriteFile(e.KeyFile, kb, 0o600)
}

// Ports: each server gets a control port and 600 passive ports; pure-ftpd
// allows at most half its passive range as clients, and the fan-out goes
// to 256.
type Ports struct {
	Control  int
	PasvLow  int
	PasvHigh int
}

func (e *Env) url(scheme string, p Ports) string {
	return fmt.Sprintf("%s://%s:%s@127.0.0.1:%d/", scheme, e.User, e.Pass, p.Control)
}

// start runs argv in a fresh cgroup (CLONE_INTO_CGROUP, so even the first
// fork of the daemon is inside) and waits until it greets on its port.
func (e *Env) start(s *Server, argv []string, port int, greet bool) error {
	cg, err := bench.NewCgroup(e.CgroupPrefix + s.Name)
	if err != nil {
		return err
	}
	s.cg = cg
	s.logPath = filepath.Join(e.Work, s.Name+".out")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = e.Work
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		UseCgroupFD: true, CgroupFD: cg.FD(),
		// If the harness dies, the daemon goes with it; its forked
		// sessions are killed through the cgroup on the next run.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.Stop()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	logf.Close()
	s.cmd = cmd
	s.done = make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := probePort(port, greet)
		if err == nil {
			return nil
		}
		select {
		case werr := <-s.done:
			s.cmd = nil
			s.Stop()
			return fmt.Errorf("%s exited at start (%v): %s", s.Name, werr, tail(s.logPath))
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("%s not ready on port %d: %v: %s", s.Name, port, err, tail(s.logPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func probePort(port int, greet bool) error {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if !greet {
		return nil
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	return s
}

// StartSluice writes a minimal configuration (one account on the data set,
// loopback, limits out of the way) and runs `sluice serve`.
func (e *Env) StartSluice(bin string, p Ports) (*Server, error) {
	hash, err := hashPassword(e.Pass)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.Work, "sluice")
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`# Generated by sluice's bench harness.
[server]
name = "sluice-bench"
state_dir = %q
shutdown_grace = "1s"

[log]
audit = %q
level = "warn"

[ftp]
listen = ["127.0.0.1:%d"]
passive_ports = "%d-%d"
# Explicit FTPS with the peers' certificate (RSA-2048).
tls = "optional"

[tls]
cert_file = %q
key_file = %q

[limits]
max_sessions = 2000
max_sessions_per_ip = 2000
ban_after_failures = 0

# eBPF accounting as by default, with the account cgroups inside the
# server's own cgroup, so that its CPU and memory include the sessions.
[accounting]
cgroup = %q
pin_dir = "/sys/fs/bpf/sluice-bench"

[[account]]
name = %q
password = %q
uid = %d
gid = %d
# As the peers are configured (vsftpd require_ssl_reuse=NO, proftpd
# NoSessionReuseRequired): data connections need not resume the
# control connection's TLS session.
tls_reuse = false
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, filepath.Join(dir, "state"), filepath.Join(dir, "audit.log"), p.Control, p.PasvLow, p.PasvHigh,
		e.CertFile, e.KeyFile,
		filepath.Join(bench.CgroupRoot, e.CgroupPrefix+"sluice", "accounts"),
		e.User, hash, e.UID, e.GID, e.Data)
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	s := &Server{Name: "sluice", URL: e.url("ftp", p), TLSURL: e.url("ftpes", p), Version: binVersion(bin)}
	s.Notes = append(s.Notes, "sluice: defaults (eBPF accounting on, no limits) except limits raised (max_sessions, max_sessions_per_ip = 2000) and banning off; explicit FTPS with the peers' certificate and tls_reuse = false, as the peers are configured",
		"sluice logins: argon2id is verified once, then the supervisor's 5-minute credential cache answers, so the login rate measures its accept → worker (one process per session) → cache path; the peers check a SHA-512 crypt hash on every login")
	return s, e.start(s, []string{bin, "serve", "--config", path}, p.Control, true)
}

// hashPassword makes the argon2id PHC string sluice's accounts hold, with
// the parameters of policy.HashPassword (m=19 MiB, t=2, p=1, 16-byte salt,
// 32-byte key). It is not imported from policy so that the harness does
// not link the server's packages; the config loader checks the string at
// start-up, so a drift would show at once.
func hashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, 2, 19456, 1, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=19456,t=2,p=1$%s$%s", b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

func binVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "sluice "))
}

// peerVersion reads the version of package pkg from the versions file
// install-peers.sh wrote.
func peerVersion(peerDir, pkg string) string {
	b, err := os.ReadFile(filepath.Join(peerDir, "versions"))
	if err != nil {
		return "unknown"
	}
	var cur string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Package: "); ok {
			cur = v
		} else if v, ok := strings.CutPrefix(l, "Version: "); ok && cur == pkg {
			return pkg + " " + v + " (Debian)"
		}
	}
	return "unknown"
}

// ErrNotInstalled says a peer's binary is not where install-peers.sh puts it.
var ErrNotInstalled = errors.New("not installed")

func peerBin(peers, name, rel string) (string, string, error) {
	dir := filepath.Join(peers, name)
	bin := filepath.Join(dir, "root", rel)
	if _, err := os.Stat(bin); err != nil {
		return "", "", fmt.Errorf("%s: %w (%s missing; run bench/install-peers.sh)", name, ErrNotInstalled, bin)
	}
	return dir, bin, nil
}

// StartVsftpd runs vsftpd standalone with local users through PAM.
func (e *Env) StartVsftpd(peers string, p Ports) (*Server, error) {
	dir, bin, err := peerBin(peers, "vsftpd", "usr/sbin/vsftpd")
	if err != nil {
		return nil, err
	}
	w := filepath.Join(e.Work, "vsftpd")
	empty := filepath.Join(w, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# Generated by sluice's bench harness.
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=%d
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
pam_service_name=sluice-bench
nopriv_user=nobody
secure_chroot_dir=%s
pasv_enable=YES
pasv_min_port=%d
pasv_max_port=%d
max_clients=0
max_per_ip=0
dirmessage_enable=NO
xferlog_enable=NO
seccomp_sandbox=NO
ssl_enable=YES
rsa_cert_file=%s
rsa_private_key_file=%s
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=NO
ssl_ciphers=HIGH
`, p.Control, empty, p.PasvLow, p.PasvHigh, e.CertFile, e.KeyFile)
	path := filepath.Join(w, "vsftpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	s := &Server{Name: "vsftpd", URL: e.url("ftp", p), TLSURL: e.url("ftpes", p), Version: peerVersion(dir, "vsftpd")}
	s.Notes = append(s.Notes, "vsftpd: seccomp_sandbox=NO for the comparison (its seccomp sandbox is known to kill TLS sessions on this kernel), require_ssl_reuse=NO; local user through PAM (pam_unix)")
	return s, e.start(s, []string{bin, path}, p.Control, true)
}

// StartProftpd runs proftpd in the foreground with mod_auth_unix and
// mod_tls.
func (e *Env) StartProftpd(peers string, p Ports) (*Server, error) {
	dir, bin, err := peerBin(peers, "proftpd", "usr/sbin/proftpd")
	if err != nil {
		return nil, err
	}
	w := filepath.Join(e.Work, "proftpd")
	if err := os.MkdirAll(w, 0o755); err != nil {
		return nil, err
	}
	tlsBlock := ""
	if _, err := os.Stat(filepath.Join(dir, "root/usr/lib/proftpd/mod_tls.so")); err == nil {
		tlsBlock = fmt.Sprintf(`LoadModule mod_tls.c
<IfModule mod_tls.c>
  TLSEngine on
  TLSProtocol TLSv1.2 TLSv1.3
  TLSRSACertificateFile %s
  TLSRSACertificateKeyFile %s
  TLSRequired off
  TLSVerifyClient off
  TLSOptions NoSessionReuseRequired
</IfModule>
`, e.CertFile, e.KeyFile)
	}
	conf := fmt.Sprintf(`# Generated by sluice's bench harness.
ServerName "bench"
ServerType standalone
DefaultServer on
Port %d
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User nobody
Group nogroup
Umask 022
MaxInstances 2000
PassivePorts %d %d
AllowOverwrite on
RequireValidShell off
UseReverseDNS off
WtmpLog off
ControlsEngine off
ScoreboardFile %s/proftpd.scoreboard
PidFile %s/proftpd.pid
SystemLog %s/proftpd.log
TransferLog NONE
ModulePath %s/root/usr/lib/proftpd
<IfModule mod_auth_pam.c>
  AuthPAM off
</IfModule>
AuthOrder mod_auth_unix.c
<IfModule mod_delay.c>
  DelayEngine off
</IfModule>
%s`, p.Control, p.PasvLow, p.PasvHigh, w, w, w, dir, tlsBlock)
	path := filepath.Join(w, "proftpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	s := &Server{Name: "proftpd", URL: e.url("ftp", p), Version: peerVersion(dir, "proftpd-core")}
	if tlsBlock != "" {
		s.TLSURL = e.url("ftpes", p)
	}
	s.Notes = append(s.Notes, "proftpd: DelayEngine off (mod_delay pads every login to hide timing), MaxInstances 2000, mod_auth_unix, mod_tls with NoSessionReuseRequired")
	return s, e.start(s, []string{bin, "-n", "-c", path}, p.Control, true)
}

// StartPureFtpd runs pure-ftpd with unix (shadow) authentication.
func (e *Env) StartPureFtpd(peers string, p Ports) (*Server, error) {
	dir, bin, err := peerBin(peers, "pure-ftpd", "usr/sbin/pure-ftpd")
	if err != nil {
		return nil, err
	}
	// pure-ftpd refuses more clients than half its passive range.
	maxc := (p.PasvHigh - p.PasvLow + 1) / 2
	argv := []string{bin,
		"-S", fmt.Sprintf("127.0.0.1,%d", p.Control),
		"-p", fmt.Sprintf("%d:%d", p.PasvLow, p.PasvHigh),
		"-c", strconv.Itoa(maxc), "-C", strconv.Itoa(maxc),
		"-l", "unix", "-E", "-H", "-4",
		"-Y", "1", "-2", e.CertFile + "," + e.KeyFile,
	}
	s := &Server{Name: "pure-ftpd", URL: e.url("ftp", p), TLSURL: e.url("ftpes", p), Version: peerVersion(dir, "pure-ftpd")}
	s.Notes = append(s.Notes, fmt.Sprintf("pure-ftpd: -c %d -C %d (it caps clients at half the passive range), unix authentication, -Y 1 (TLS optional)", maxc, maxc))
	return s, e.start(s, argv, p.Control, true)
}

// StartBaseline runs the harness binary itself as a raw sendfile server
// (ServeRaw) on the data set: the physical ceiling of this machine's
// loopback.
func (e *Env) StartBaseline(self string, p Ports) (*Server, error) {
	s := &Server{Name: "baseline", URL: fmt.Sprintf("raw://127.0.0.1:%d/", p.Control), Version: "Go sendfile, " + runtime.Version()}
	s.Notes = append(s.Notes, "baseline: not FTP; the client sends a file name and gets the file through Go's TCPConn.ReadFrom (sendfile) — the ceiling for RETR and fan-out on this machine")
	return s, e.start(s, []string{self, "-serve-raw", fmt.Sprintf("127.0.0.1:%d", p.Control), e.Data}, p.Control, false)
}

// ServeRaw is the baseline server: a connection names a file of dir in one
// line, receives it through sendfile, and is closed.
func ServeRaw(addr, dir string) error {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReaderSize(c, 512).ReadString('\n')
			if err != nil {
				return
			}
			name := filepath.Clean("/" + strings.TrimSpace(line))
			f, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				return
			}
			defer f.Close()
			// TCPConn.ReadFrom(*os.File) is Go's sendfile: the
			// baseline is what a Go server gets for free.
			io.Copy(c.(*net.TCPConn), f)
		}()
	}
}

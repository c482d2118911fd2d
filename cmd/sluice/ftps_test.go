package main

// FTPS (issue 7): explicit (AUTH TLS) and implicit, with real clients and
// with Go's crypto/tls for the exact protocol checks (session reuse on
// data connections, TLS 1.2 and 1.3).

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ftpsOpts is a server with explicit FTPS (mode) and an implicit listener,
// and a second account, "py", that does not require session reuse.
func startFTPS(t testing.TB, mode string, pool ...string) (*server, int, string) {
	t.Helper()
	implicit := freePort(t)
	pyDir := filepath.Join(t.TempDir(), "py")
	makeStorage(t, pyDir)
	var extraServer string
	if len(pool) > 0 && pool[0] != "" {
		extraServer = "worker_pool = " + pool[0]
	}
	s := startServer(t, serverOpts{
		extraServer: extraServer,
		extraFTP:    fmt.Sprintf("tls = %q\nimplicit_listen = [\"127.0.0.1:%d\"]", mode, implicit),
		extraAccounts: fmt.Sprintf(`
[[account]]
name = "py"
password = %q
uid = %d
gid = %d
tls_reuse = false
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, demoHash(), accountUID, accountUID, pyDir),
	})
	return s, implicit, pyDir
}

// ftpsCtrl is a control connection that switched to TLS.
type ftpsCtrl struct {
	*ctrl
	tc *tls.Conn
}

func clientTLS(version uint16, cache tls.ClientSessionCache) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // self-signed test certificate
		ServerName:         "localhost",
		MinVersion:         version,
		MaxVersion:         version,
		ClientSessionCache: cache,
	}
}

func dialFTPS(t testing.TB, addr string, cfg *tls.Config) *ftpsCtrl {
	t.Helper()
	k := dialCtrl(t, addr)
	k.cmd("AUTH TLS", 234)
	tc := tls.Client(k.c, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("control handshake: %v", err)
	}
	k.c = tc
	k.r = bufio.NewReader(tc)
	return &ftpsCtrl{ctrl: k, tc: tc}
}

var epsvRE = regexp.MustCompile(`\(\|\|\|(\d+)\|\)`)

// retrTLS downloads name over a PROT P data connection made with cfg and
// returns the final reply code and the bytes.
func (k *ftpsCtrl) retrTLS(name string, cfg *tls.Config) (int, []byte, bool) {
	k.t.Helper()
	m := epsvRE.FindStringSubmatch(k.cmd("EPSV", 229))
	port, _ := strconv.Atoi(m[1])
	dc, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		k.t.Fatal(err)
	}
	defer dc.Close()
	k.send("RETR " + name)
	k.expect(150)
	tc := tls.Client(dc, cfg)
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	var data []byte
	resumed := false
	if err := tc.Handshake(); err == nil {
		resumed = tc.ConnectionState().DidResume
		data, _ = io.ReadAll(tc)
	}
	code, _ := k.reply()
	return code, data, resumed
}

// TestFTPSSessionReuse checks the data-connection binding with TLS 1.2 and
// 1.3: a data connection that resumes the control session is accepted; a
// full handshake, or a resumption of another control session's ticket, is
// refused with 522 for an account that requires reuse; the "py" account
// (tls_reuse = false) is served without resumption.
func TestFTPSSessionReuse(t *testing.T) {
	s, _, pyDir := startFTPS(t, "required")
	if err := os.WriteFile(filepath.Join(s.root, "f.txt"), []byte("hello over TLS\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(s.root, "f.txt"), accountUID, accountUID)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			cache := tls.NewLRUClientSessionCache(8)
			k := dialFTPS(t, s.addr(), clientTLS(v, cache))
			if st := k.tc.ConnectionState(); st.Version != v {
				t.Fatalf("negotiated %x", st.Version)
			}
			k.login("demo", "demo")
			k.cmd("RETR f.txt", 521) // no PROT P yet
			k.cmd("PBSZ 0", 200)
			k.cmd("PROT C", 534) // tls = "required"
			k.cmd("PROT P", 200)
			k.cmd("CCC", 534)
			code, data, resumed := k.retrTLS("f.txt", clientTLS(v, cache))
			if code != 226 || string(data) != "hello over TLS\n" || !resumed {
				t.Fatalf("resumed data connection: code %d, resumed %v, data %q", code, resumed, data)
			}
			// Again: TLS 1.3 clients use the tickets the data connection
			// issued too.
			if code, _, resumed := k.retrTLS("f.txt", clientTLS(v, cache)); code != 226 || !resumed {
				t.Fatalf("second data connection: code %d, resumed %v", code, resumed)
			}
			// A full handshake (no session): refused.
			code, data, _ = k.retrTLS("f.txt", clientTLS(v, nil))
			if code != 522 || len(data) != 0 {
				t.Fatalf("full handshake on the data connection: code %d, %d bytes", code, len(data))
			}
			// Another control session's ticket: refused.
			other := tls.NewLRUClientSessionCache(8)
			k2 := dialFTPS(t, s.addr(), clientTLS(v, other))
			k2.login("demo", "demo")
			if code, _, resumed := k.retrTLS("f.txt", clientTLS(v, other)); code != 522 || resumed {
				t.Fatalf("foreign ticket: code %d, resumed %v", code, resumed)
			}
			// The py account does not require reuse.
			k3 := dialFTPS(t, s.addr(), clientTLS(v, nil))
			k3.login("py", "demo")
			os.WriteFile(filepath.Join(pyDir, "g.txt"), []byte("py"), 0o644)
			k3.cmd("PBSZ 0", 200)
			k3.cmd("PROT P", 200)
			if code, data, resumed := k3.retrTLS("g.txt", clientTLS(v, nil)); code != 226 || string(data) != "py" || resumed {
				t.Fatalf("relaxed account: code %d, resumed %v, data %q", code, resumed, data)
			}
		})
	}
	// USER before AUTH TLS on a required listener.
	k := dialCtrl(t, s.addr())
	if txt := k.cmd("USER demo", 530); !strings.Contains(txt, "AUTH TLS") {
		t.Errorf("USER before AUTH: %q", txt)
	}
	if txt := k.cmd("FEAT", 211); !strings.Contains(txt, " AUTH TLS\r\n") || !strings.Contains(txt, " PROT\r\n") {
		t.Errorf("FEAT: %q", txt)
	}
}

// TestFTPSAccountRequired: an account with tls = "required" cannot log in
// over plain FTP on an optional listener.
func TestFTPSAccountRequired(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sec")
	makeStorage(t, dir)
	s := startServer(t, serverOpts{
		extraFTP: `tls = "optional"`,
		extraAccounts: fmt.Sprintf(`
[[account]]
name = "sec"
password = %q
uid = %d
gid = %d
tls = "required"
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, demoHash(), accountUID, accountUID, dir),
	})
	k := dialCtrl(t, s.addr())
	k.login("demo", "demo") // optional: plain FTP still works
	k2 := dialCtrl(t, s.addr())
	k2.cmd("USER sec", 331)
	if txt := k2.cmd("PASS demo", 530); !strings.Contains(txt, "requires TLS") {
		t.Errorf("plain login to a TLS account: %q", txt)
	}
	k3 := dialFTPS(t, s.addr(), clientTLS(tls.VersionTLS13, nil))
	k3.login("sec", "demo")
	k3.cmd("LIST", 521)
}

// TestFTPSClients round-trips a 100 MiB file with curl (explicit and
// implicit), lftp and Python's ftplib.FTP_TLS.
func TestFTPSClients(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB transfers")
	}
	s, implicit, _ := startFTPS(t, "required")
	local := t.TempDir()
	src := filepath.Join(local, "src.bin")
	sum := writeRandom(t, src, 100<<20)

	t.Run("curl", func(t *testing.T) {
		curl := needTool(t, "curl")
		out, err := runTool(t, 3*time.Minute, curl, "-sS", "--ssl-reqd", "-k", "-T", src, s.url("curl.bin"))
		if err != nil {
			t.Fatalf("curl upload: %v\n%s", err, out)
		}
		if got := sha256File(t, filepath.Join(s.root, "curl.bin")); got != sum {
			t.Fatalf("uploaded sha256 %s, want %s", got, sum)
		}
		back := filepath.Join(local, "curl.back")
		out, err = runTool(t, 3*time.Minute, curl, "-sS", "--ssl-reqd", "-k", "-o", back, s.url("curl.bin"))
		if err != nil || sha256File(t, back) != sum {
			t.Fatalf("curl download: %v\n%s", err, out)
		}
	})
	t.Run("curl-implicit", func(t *testing.T) {
		curl := needTool(t, "curl")
		u := fmt.Sprintf("ftps://demo:demo@127.0.0.1:%d/", implicit)
		out, err := runTool(t, 3*time.Minute, curl, "-sS", "-k", "-T", src, u+"implicit.bin")
		if err != nil {
			t.Fatalf("curl ftps:// upload: %v\n%s", err, out)
		}
		back := filepath.Join(local, "implicit.back")
		out, err = runTool(t, 3*time.Minute, curl, "-sS", "-k", "-o", back, u+"implicit.bin")
		if err != nil || sha256File(t, back) != sum || sha256File(t, filepath.Join(s.root, "implicit.bin")) != sum {
			t.Fatalf("curl ftps:// download: %v\n%s", err, out)
		}
	})
	t.Run("lftp", func(t *testing.T) {
		lftp := needTool(t, "lftp")
		back := filepath.Join(local, "lftp.back")
		script := fmt.Sprintf("set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no; set net:max-retries 1; "+
			"open -u demo,demo ftp://127.0.0.1:%d; put %s -o lftp.bin; get lftp.bin -o %s; bye", s.port, src, back)
		out, err := runTool(t, 3*time.Minute, lftp, "-c", script)
		if err != nil || sha256File(t, back) != sum || sha256File(t, filepath.Join(s.root, "lftp.bin")) != sum {
			t.Fatalf("lftp: %v\n%s", err, out)
		}
	})
	t.Run("python", func(t *testing.T) {
		py := needTool(t, "python3")
		script := `
import ftplib, ssl, sys, hashlib
host, port, src, want = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
# demo requires session reuse, which ftplib does not do: refused, by name.
f = ftplib.FTP_TLS(context=ctx); f.connect(host, port, timeout=30); f.login("demo", "demo"); f.prot_p()
try:
    f.retrlines("LIST")
    raise SystemExit("LIST without session reuse was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("522") and "tls_reuse" in str(e), e
f.quit()
# py relaxes it (tls_reuse = false).
f = ftplib.FTP_TLS(context=ctx); f.connect(host, port, timeout=30); f.login("py", "demo"); f.prot_p()
with open(src, "rb") as fh:
    f.storbinary("STOR py.bin", fh, blocksize=1 << 20)
h = hashlib.sha256()
f.retrbinary("RETR py.bin", h.update, blocksize=1 << 20)
assert h.hexdigest() == want, h.hexdigest()
f.quit()
print("ftps ok")
`
		out, err := runTool(t, 3*time.Minute, py, "-c", script, "127.0.0.1", fmt.Sprint(s.port), src, sum)
		if err != nil || !strings.Contains(out, "ftps ok") {
			t.Fatalf("python FTP_TLS: %v\n%s", err, out)
		}
	})
}

// TestOpenSSLStartTLS drives the control connection with `openssl
// s_client -starttls ftp` and the PROT P data connections with a second
// s_client that resumes the first one's session (-sess_out/-sess_in), so
// that session reuse is honoured: a 100 MiB upload and download.
func TestOpenSSLStartTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB transfers")
	}
	openssl := needTool(t, "openssl")
	s, _, _ := startFTPS(t, "required")
	local := t.TempDir()
	src := filepath.Join(local, "src.bin")
	sum := writeRandom(t, src, 100<<20)
	sess := filepath.Join(local, "sess.pem")

	ctl := exec.Command(openssl, "s_client", "-starttls", "ftp", "-connect", s.addr(), "-quiet", "-nocommands", "-ign_eof", "-sess_out", sess)
	in, err := ctl.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := ctl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ctl.Stderr = io.Discard
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ctl.Process.Kill(); ctl.Wait() }()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(outp)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(code string) string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("s_client ended waiting for %s", code)
				}
				if strings.HasPrefix(l, code+" ") {
					return l
				}
				if len(l) >= 4 && l[3] == ' ' && l[0] >= '1' && l[0] <= '5' {
					t.Fatalf("want %s, got %q", code, l)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("timeout waiting for %s", code)
			}
		}
	}
	send := func(line, code string) string {
		t.Helper()
		io.WriteString(in, line+"\r\n")
		return expect(code)
	}
	send("USER demo", "331")
	send("PASS demo", "230")
	send("PBSZ 0", "200")
	send("PROT P", "200")
	send("TYPE I", "200")
	data := func(cmd string, stdin io.Reader, stdout io.Writer) {
		t.Helper()
		m := epsvRE.FindStringSubmatch(send("EPSV", "229"))
		io.WriteString(in, cmd+"\r\n")
		expect("150")
		dc := exec.Command(openssl, "s_client", "-connect", "127.0.0.1:"+m[1], "-quiet", "-nocommands", "-sess_in", sess)
		var errb bytes.Buffer
		dc.Stdin, dc.Stdout, dc.Stderr = stdin, stdout, &errb
		if stdin == nil {
			dc.Stdin = strings.NewReader("") // nothing to send; -quiet keeps reading to the server's close
		} else {
			dc.Args = append(dc.Args, "-no_ign_eof") // close (close_notify) at the end of the file
		}
		if err := dc.Run(); err != nil {
			t.Logf("data s_client: %v: %s", err, errb.String())
		}
		expect("226")
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	data("STOR ossl.bin", f, io.Discard)
	f.Close()
	if got := sha256File(t, filepath.Join(s.root, "ossl.bin")); got != sum {
		t.Fatalf("uploaded sha256 %s, want %s", got, sum)
	}
	back, err := os.Create(filepath.Join(local, "back.bin"))
	if err != nil {
		t.Fatal(err)
	}
	data("RETR ossl.bin", nil, back)
	back.Close()
	if got := sha256File(t, back.Name()); got != sum {
		t.Fatalf("downloaded sha256 %s, want %s", got, sum)
	}
	send("QUIT", "221")
}

// TestFTPSKeyNotInWorker checks invariant 5 for the FTPS key: after a TLS
// handshake and a login, no worker has the key file open or mapped, and
// the private scalar is nowhere in a worker's memory. Root only (reading
// another uid's /proc/PID/mem).
func TestFTPSKeyNotInWorker(t *testing.T) {
	if !isRoot() {
		t.Skip("needs root to read the workers' /proc/PID/mem")
	}
	s, implicit, _ := startFTPS(t, "required")
	k := dialFTPS(t, s.addr(), clientTLS(tls.VersionTLS12, nil))
	k.login("demo", "demo")
	ic, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", implicit), clientTLS(tls.VersionTLS13, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	keyFile := filepath.Join(s.dir, "state", "ftps-selfsigned.key")
	pemBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	d, err := key.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(filepath.Join(s.dir, "state", "ftps-selfsigned.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cblock, _ := pem.Decode(certPEM)
	leaf := cblock.Bytes
	if n := countInMemory(t, s.cmd.Process.Pid, d); n == 0 {
		t.Logf("note: the scalar was not found in the supervisor's memory either (the scan is best effort)")
	}
	workers := childPIDs(t, s.cmd.Process.Pid)
	if len(workers) < 2 {
		t.Fatalf("found %d workers", len(workers))
	}
	withCert := 0
	defer func() {
		if withCert < 2 {
			t.Errorf("the certificate was found in %d workers' memory, want the 2 with TLS sessions: the scan does not work", withCert)
		}
	}()
	for _, pid := range workers {
		maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if bytes.Contains(maps, []byte("ftps-selfsigned")) {
			t.Errorf("worker %d maps the key file", pid)
		}
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); strings.Contains(l, "ftps-selfsigned") || strings.Contains(l, "/state") {
				t.Errorf("worker %d has %s open", pid, l)
			}
		}
		if countInMemory(t, pid, leaf[:64]) > 0 {
			withCert++ // a worker with a TLS session: the scan does read its memory
		}
		if n := countInMemory(t, pid, d); n > 0 {
			t.Errorf("worker %d holds the private key in memory (%d copies)", pid, n)
		}
	}
}

// childPIDs lists the supervisor's child processes.
func childPIDs(t testing.TB, parent int) []int {
	t.Helper()
	var pids []int
	ents, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[1] == strconv.Itoa(parent) {
			pid, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(e, "/proc/"), "/stat"))
			pids = append(pids, pid)
		}
	}
	return pids
}

// countInMemory counts occurrences of needle in the readable private and
// anonymous mappings of pid.
func countInMemory(t testing.TB, pid int, needle []byte) int {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	n := 0
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1][0] != 'r' || (len(f) >= 6 && strings.HasPrefix(f[5], "[v")) {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		b, _ := strconv.ParseUint(hi, 16, 64)
		if b-a > 1<<30 {
			continue
		}
		buf := make([]byte, b-a)
		m, _ := mem.ReadAt(buf, int64(a))
		n += bytes.Count(buf[:m], needle)
	}
	return n
}

package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileOwner returns the uid owning path.
func fileOwner(t testing.TB, path string) uint32 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// TestCurlRoundTrip moves a 100 MiB file up and down with curl in every
// data connection mode, over IPv4 and IPv6, and compares sha256 sums.
func TestCurlRoundTrip(t *testing.T) {
	curl := needTool(t, "curl")
	s := startServer(t, serverOpts{ipv6: true})
	src := filepath.Join(t.TempDir(), "big.bin")
	size := int64(100 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	want := writeRandom(t, src, size)
	modes := []struct {
		name string
		host string
		args []string
	}{
		{"epsv", "127.0.0.1", nil},
		{"pasv", "127.0.0.1", []string{"--disable-epsv"}},
		{"active", "127.0.0.1", []string{"-P", "-"}},
		{"active-eprt", "127.0.0.1", []string{"-P", "-", "--disable-eprt"}},
		{"ipv6-epsv", "[::1]", nil},
		{"ipv6-active", "[::1]", []string{"-P", "-"}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			name := "up-" + m.name + ".bin"
			url := fmt.Sprintf("ftp://demo:demo@%s:%d/%s", m.host, s.port, name)
			args := append([]string{"-sS", "--fail", "-T", src, url}, m.args...)
			if out, err := runTool(t, 2*time.Minute, curl, args...); err != nil {
				t.Fatalf("curl upload: %v\n%s", err, out)
			}
			if got := sha256File(t, filepath.Join(s.root, name)); got != want {
				t.Fatalf("stored file sha256 %s, want %s", got, want)
			}
			if isRoot() {
				if uid := fileOwner(t, filepath.Join(s.root, name)); uid != accountUID {
					t.Errorf("uploaded file owned by uid %d, want the account's %d", uid, accountUID)
				}
			}
			dst := filepath.Join(t.TempDir(), "down.bin")
			args = append([]string{"-sS", "--fail", "-o", dst, url}, m.args...)
			if out, err := runTool(t, 2*time.Minute, curl, args...); err != nil {
				t.Fatalf("curl download: %v\n%s", err, out)
			}
			if got := sha256File(t, dst); got != want {
				t.Fatalf("downloaded sha256 %s, want %s", got, want)
			}
		})
	}
	// The transfers are in the audit log and the xferlog.
	if !strings.Contains(s.log.String(), `"event":"transfer"`) {
		t.Errorf("no transfer event in the audit log")
	}
	xl, _ := os.ReadFile(filepath.Join(s.dir, "xferlog"))
	if !strings.Contains(string(xl), "up-epsv.bin b _ i r demo ftp 0 * c") {
		t.Errorf("xferlog lacks the upload line:\n%s", xl)
	}
}

// makeTree builds a directory tree with subdirectories and UTF-8 names.
func makeTree(t testing.TB, root string) map[string]string {
	t.Helper()
	files := map[string]int64{
		"readme.txt":                 100,
		"données/été.txt":            5000,
		"données/sous dossier/ü.bin": 70000,
		"日本語/ファイル.dat":               123456,
		"deep/a/b/c/d/leaf.bin":      1,
		"spaces in name/x y z.txt":   42,
		"empty.bin":                  0,
		"deep/a/sibling/emoji-🚀.txt": 777,
	}
	sums := map[string]string{}
	for rel, n := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		sums[rel] = writeRandom(t, p, n)
	}
	return sums
}

// treeSums returns relative path → sha256 for every regular file.
func treeSums(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out[rel] = sha256File(t, p)
		}
		return nil
	})
	return out
}

func sameTree(t testing.TB, want, got map[string]string) {
	t.Helper()
	var problems []string
	for k, v := range want {
		if got[k] != v {
			problems = append(problems, fmt.Sprintf("%s: got %q want %q", k, got[k], v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, "unexpected "+k)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(problems, "\n"))
	}
}

// TestLftpMirror round-trips a tree with subdirectories and UTF-8 names
// with lftp's mirror -R and mirror.
func TestLftpMirror(t *testing.T) {
	lftp := needTool(t, "lftp")
	s := startServer(t, serverOpts{})
	local := t.TempDir()
	want := makeTree(t, local)
	back := t.TempDir()
	script := fmt.Sprintf(`set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; set ftp:ssl-allow no;
open -u demo,demo -p %d 127.0.0.1;
mirror -R --verbose %s /tree;
mirror --verbose /tree %s/tree;
bye`, s.port, local, back)
	out, err := runTool(t, 2*time.Minute, lftp, "-c", script)
	if err != nil {
		t.Fatalf("lftp: %v\n%s", err, out)
	}
	sameTree(t, want, treeSums(t, filepath.Join(s.root, "tree")))
	sameTree(t, want, treeSums(t, filepath.Join(back, "tree")))
}

// TestPythonFtplib drives MLSD, REST, APPE, RNFR/RNTO, SIZE and ABOR with
// Python's ftplib.
func TestPythonFtplib(t *testing.T) {
	py := needTool(t, "python3")
	s := startServer(t, serverOpts{})
	script := `
import ftplib, io, sys, hashlib, os
host, port = sys.argv[1], int(sys.argv[2])
f = ftplib.FTP()
f.connect(host, port, timeout=20)
f.login("demo", "demo")
f.mkd("py")
f.cwd("py")
data = os.urandom(300000)
f.storbinary("STOR a.bin", io.BytesIO(data[:100000]))
f.storbinary("APPE a.bin", io.BytesIO(data[100000:]))
assert f.size("a.bin") == 300000, f.size("a.bin")
facts = dict(f.mlsd())
assert facts["a.bin"]["type"] == "file", facts
assert facts["a.bin"]["size"] == "300000", facts
assert "modify" in facts["a.bin"] and "perm" in facts["a.bin"], facts
buf = io.BytesIO()
f.retrbinary("RETR a.bin", buf.write, rest=123456)
assert buf.getvalue() == data[123456:], "REST+RETR returned the wrong bytes"
# REST + STOR continues an upload in place.
f.storbinary("STOR b.bin", io.BytesIO(data[:50000]))
f.storbinary("STOR b.bin", io.BytesIO(data[50000:]), rest=50000)
buf = io.BytesIO(); f.retrbinary("RETR b.bin", buf.write)
assert buf.getvalue() == data, "REST+STOR did not continue the file"
f.rename("a.bin", "c.bin")
names = f.nlst()
assert "c.bin" in names and "a.bin" not in names, names
f.delete("b.bin")
# ABOR in the middle of a download (ftplib sends it with MSG_OOB).
f.storbinary("STOR big.bin", io.BytesIO(os.urandom(64 << 20)))
conn = f.transfercmd("RETR big.bin")
conn.recv(65536)
resp = f.abort()
if resp.startswith("426"):
    # RFC 959 4.1.3: 426 ends the transfer, then 226 answers ABOR;
    # ftplib's abort() returns after the first reply.
    resp = f.getresp()
assert resp[:3] in ("225", "226"), resp
conn.close()
assert f.voidcmd("NOOP").startswith("200")
f.cwd("/")
f.quit()
print("ftplib ok")
`
	out, err := runTool(t, 2*time.Minute, py, "-c", script, "127.0.0.1", fmt.Sprint(s.port))
	if err != nil || !strings.Contains(out, "ftplib ok") {
		t.Fatalf("python ftplib: %v\n%s", err, out)
	}
}

// TestWget downloads with wget (passive by default).
func TestWget(t *testing.T) {
	wget := needTool(t, "wget")
	s := startServer(t, serverOpts{})
	want := writeRandom(t, filepath.Join(s.root, "w.bin"), 3<<20)
	if isRoot() {
		os.Chown(filepath.Join(s.root, "w.bin"), accountUID, accountUID)
	}
	dst := filepath.Join(t.TempDir(), "w.bin")
	if out, err := runTool(t, time.Minute, wget, "-q", "-O", dst, s.url("w.bin")); err != nil {
		t.Fatalf("wget: %v\n%s", err, out)
	}
	if got := sha256File(t, dst); got != want {
		t.Fatalf("wget sha256 %s want %s", got, want)
	}
}

// TestRclone copies a tree up and back with rclone's FTP backend.
func TestRclone(t *testing.T) {
	rclone := needTool(t, "rclone")
	s := startServer(t, serverOpts{})
	obscured, err := runTool(t, 30*time.Second, rclone, "obscure", "demo")
	if err != nil {
		t.Fatalf("rclone obscure: %v %s", err, obscured)
	}
	remote := fmt.Sprintf(":ftp,host=127.0.0.1,port=%d,user=demo,pass=%s:", s.port, strings.TrimSpace(obscured))
	local := t.TempDir()
	want := makeTree(t, local)
	if out, err := runTool(t, 2*time.Minute, rclone, "copy", local, remote+"rc"); err != nil {
		t.Fatalf("rclone copy up: %v\n%s", err, out)
	}
	back := t.TempDir()
	if out, err := runTool(t, 2*time.Minute, rclone, "copy", remote+"rc", back); err != nil {
		t.Fatalf("rclone copy down: %v\n%s", err, out)
	}
	sameTree(t, want, treeSums(t, back))
}

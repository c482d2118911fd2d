package main

// SFTP (issue 7) with real clients: OpenSSH sftp and scp (which speaks
// SFTP since OpenSSH 9.0), rclone's sftp backend and lftp's sftp://.

import (
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sftpServer is a server with an SFTP listener, the demo account (password
// "demo") and the public key of a fresh client key pair.
type sftpServer struct {
	*server
	sftpPort int
	key      string // client private key file
	keyRoot  string // storage of the account "keyed"
}

func startSFTP(t testing.TB, o serverOpts) *sftpServer {
	t.Helper()
	keygen := needTool(t, "ssh-keygen")
	kdir := t.TempDir()
	key := filepath.Join(kdir, "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	keyRoot := filepath.Join(t.TempDir(), "keyed")
	makeStorage(t, keyRoot)
	o.extraFTP += fmt.Sprintf("\n[sftp]\nlisten = [\"127.0.0.1:%d\"]\n", port)
	o.extraAccounts += fmt.Sprintf(`
[[account]]
name = "keyed"
password = %q
uid = %d
gid = %d
authorized_keys = [%q]
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
`, hashFor(t, "not-used-here"), accountUID, accountUID, strings.TrimSpace(string(pub)), keyRoot)
	s := startServer(t, o)
	// startServer waits for the FTP listener; the SSH one is bound right
	// after it.
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &sftpServer{server: s, sftpPort: port, key: key, keyRoot: keyRoot}
}

func sshOpts(port int) []string {
	return []string{"-P", fmt.Sprint(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"}
}

// TestSFTPOpenSSH: sftp -b with a public key and with a password,
// scp of a file and of a tree.
func TestSFTPOpenSSH(t *testing.T) {
	sftpBin := needTool(t, "sftp")
	scpBin := needTool(t, "scp")
	s := startSFTP(t, serverOpts{})
	local := t.TempDir()
	src := filepath.Join(local, "src.bin")
	sum := writeRandom(t, src, 32<<20)
	tree := makeTree(t, filepath.Join(local, "tree"))
	back := filepath.Join(local, "back")
	os.MkdirAll(back, 0o755)

	batch := filepath.Join(local, "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf(`put %s big.bin
mkdir dir
rename big.bin dir/big.bin
put -r %s tree
get dir/big.bin %s/big.bin
get -r tree %s/tree
ls -l dir
rm dir/big.bin
rmdir dir
`, src, filepath.Join(local, "tree"), back, back)), 0o644)
	args := append(sshOpts(s.sftpPort), "-i", s.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-b", batch, "keyed@127.0.0.1")
	out, err := runTool(t, 2*time.Minute, sftpBin, args...)
	if err != nil {
		t.Fatalf("sftp -b (publickey): %v\n%s", err, out)
	}
	if got := sha256File(t, filepath.Join(back, "big.bin")); got != sum {
		t.Errorf("sftp round trip: sha256 %s, want %s", got, sum)
	}
	sameTree(t, tree, treeSums(t, filepath.Join(s.keyRoot, "tree")))
	sameTree(t, tree, treeSums(t, filepath.Join(back, "tree")))
	if _, err := os.Stat(filepath.Join(s.keyRoot, "dir")); !os.IsNotExist(err) {
		t.Errorf("rmdir over sftp: %v", err)
	}
	if !strings.Contains(s.log.String(), `"method":"publickey"`) || !strings.Contains(s.log.String(), `"key_sha256":"SHA256:`) {
		t.Errorf("no publickey login.ok with the key's fingerprint in the audit log")
	}
	if !strings.Contains(s.log.String(), `"command":"SFTP-WRITE"`) || !strings.Contains(s.log.String(), "xxh64=") {
		t.Errorf("no SFTP transfer event with its digest in the audit log")
	}

	// Password authentication (demo/demo) through SSH_ASKPASS.
	askpass := filepath.Join(local, "askpass.sh")
	os.WriteFile(askpass, []byte("#!/bin/sh\necho demo\n"), 0o755)
	cmd := exec.Command(scpBin, append(sshOpts(s.sftpPort), "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1",
		src, "demo@127.0.0.1:scp.bin")...)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "HOME="+local)
	cmd.Stdin = nil
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scp (password): %v\n%s", err, out)
	}
	if got := sha256File(t, filepath.Join(s.root, "scp.bin")); got != sum {
		t.Errorf("scp upload: sha256 %s, want %s", got, sum)
	}
	// scp -r of a tree, down again, with the key.
	out, err = runTool(t, time.Minute, scpBin, append(sshOpts(s.sftpPort), "-i", s.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-r", "keyed@127.0.0.1:tree", filepath.Join(back, "scptree"))...)
	if err != nil {
		t.Fatalf("scp -r: %v\n%s", err, out)
	}
	sameTree(t, tree, treeSums(t, filepath.Join(back, "scptree")))
	// Legacy scp (-O, a remote command) is refused: SFTP only.
	out, err = runTool(t, time.Minute, scpBin, append(sshOpts(s.sftpPort), "-O", "-i", s.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		src, "keyed@127.0.0.1:legacy.bin")...)
	if err == nil {
		t.Errorf("legacy scp (exec) was accepted:\n%s", out)
	}
}

// TestSFTPRefused: a wrong key and a wrong password are refused and
// counted toward the ban.
func TestSFTPRefused(t *testing.T) {
	sftpBin := needTool(t, "sftp")
	keygen := needTool(t, "ssh-keygen")
	s := startSFTP(t, serverOpts{limits: "ban_after_failures = 3\nban_window = \"1m\"\nban_duration = \"1m\""})
	local := t.TempDir()
	wrong := filepath.Join(local, "wrong")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", wrong).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	batch := filepath.Join(local, "batch")
	os.WriteFile(batch, []byte("ls\n"), 0o644)
	// A wrong key: refused.
	out, err := runTool(t, time.Minute, sftpBin, append(sshOpts(s.sftpPort), "-i", wrong, "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-b", batch, "keyed@127.0.0.1")...)
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("wrong key: %v\n%s", err, out)
	}
	// Wrong passwords (scp: sftp -b would not ask for a password).
	scpBin := needTool(t, "scp")
	askpass := filepath.Join(local, "askpass.sh")
	os.WriteFile(askpass, []byte("#!/bin/sh\necho wrong\n"), 0o755)
	for i := 0; i < 2; i++ {
		cmd := exec.Command(scpBin, append(sshOpts(s.sftpPort), "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1",
			batch, "demo@127.0.0.1:x")...)
		cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "HOME="+local)
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Fatalf("wrong password accepted:\n%s", out)
		}
	}
	log := s.log.String()
	if n := strings.Count(log, `"event":"login.failed"`); n < 3 {
		t.Errorf("%d failed logins logged, want 3", n)
	}
	if !strings.Contains(log, `"event":"ban"`) {
		t.Fatalf("three failures did not ban the address:\n%s", log)
	}
	// Banned: even the right key is refused now.
	out, err = runTool(t, time.Minute, sftpBin, append(sshOpts(s.sftpPort), "-i", s.key, "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes", "-b", batch, "keyed@127.0.0.1")...)
	if err == nil {
		t.Fatalf("banned address logged in:\n%s", out)
	}
}

// TestSFTPRcloneLftp: rclone's sftp backend and lftp's sftp:// (through
// ssh with the key) copy a tree up and down.
func TestSFTPRcloneLftp(t *testing.T) {
	s := startSFTP(t, serverOpts{})
	local := t.TempDir()
	tree := makeTree(t, filepath.Join(local, "tree"))
	t.Run("rclone", func(t *testing.T) {
		rclone := needTool(t, "rclone")
		remote := fmt.Sprintf(":sftp,host=127.0.0.1,port=%d,user=keyed,key_file=%s,shell_type=none", s.sftpPort, s.key)
		out, err := runTool(t, 2*time.Minute, rclone, "copy", filepath.Join(local, "tree"), remote+":rtree")
		if err != nil {
			t.Fatalf("rclone up: %v\n%s", err, out)
		}
		sameTree(t, tree, treeSums(t, filepath.Join(s.keyRoot, "rtree")))
		back := filepath.Join(local, "rback")
		out, err = runTool(t, 2*time.Minute, rclone, "copy", remote+":rtree", back)
		if err != nil {
			t.Fatalf("rclone down: %v\n%s", err, out)
		}
		sameTree(t, tree, treeSums(t, back))
	})
	t.Run("lftp", func(t *testing.T) {
		lftp := needTool(t, "lftp")
		needTool(t, "ssh")
		back := filepath.Join(local, "lback")
		prog := fmt.Sprintf("ssh -a -x -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR", s.key)
		script := fmt.Sprintf("set sftp:connect-program %q; set net:max-retries 1; open -u keyed, sftp://127.0.0.1:%d; mirror -R %s ltree; mirror ltree %s; bye",
			prog, s.sftpPort, filepath.Join(local, "tree"), back)
		out, err := runTool(t, 2*time.Minute, lftp, "-c", script)
		if err != nil {
			t.Fatalf("lftp sftp: %v\n%s", err, out)
		}
		sameTree(t, tree, treeSums(t, filepath.Join(s.keyRoot, "ltree")))
		sameTree(t, tree, treeSums(t, back))
	})
}

// TestSFTPHostKeyNotInWorker: the SSH host key stays in the supervisor;
// a worker that ran a key exchange holds neither the key file nor the key.
func TestSFTPHostKeyNotInWorker(t *testing.T) {
	if !isRoot() {
		t.Skip("needs root to read the workers' /proc/PID/mem")
	}
	s := startSFTP(t, serverOpts{})
	cc, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.sftpPort), &ssh.ClientConfig{
		User:            "demo",
		Auth:            []ssh.AuthMethod{ssh.Password("demo")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	data, err := os.ReadFile(filepath.Join(s.dir, "state", "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	seed := raw.(*ed25519.PrivateKey).Seed()
	pub := []byte(raw.(*ed25519.PrivateKey).Public().(ed25519.PublicKey))
	found := 0
	for _, pid := range childPIDs(t, s.cmd.Process.Pid) {
		maps, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if strings.Contains(string(maps), "ssh_host") {
			t.Errorf("worker %d maps the host key file", pid)
		}
		if countInMemory(t, pid, pub) > 0 {
			found++
		}
		if n := countInMemory(t, pid, seed); n > 0 {
			t.Errorf("worker %d holds the host key's seed (%d copies)", pid, n)
		}
	}
	if found == 0 {
		t.Errorf("the public host key is in no worker's memory: the scan does not work")
	}
}

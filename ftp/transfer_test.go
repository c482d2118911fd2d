package ftp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestShutdownDuringTransfer(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.cmd("STOR up.bin", 150)
	io.WriteString(d, "first part ")
	time.Sleep(50 * time.Millisecond)
	s.cancel()
	time.Sleep(50 * time.Millisecond)
	c.cmd("NOOP", 200) // still served during the transfer
	io.WriteString(d, "second part")
	d.Close()
	c.expect(226)
	c.expect(421)
	c.expectClosed()
	if got := s.readFile("up.bin"); got != "first part second part" {
		t.Errorf("file = %q", got)
	}
	if r := s.waitResult(); !errors.Is(r.err, ErrShutdown) || r.sum.FilesIn != 1 {
		t.Errorf("result %+v", r)
	}
}

func TestPipelinedBehindTransfer(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("small", "tiny file")
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.sendRaw("TYPE I\r\nRETR small\r\nPWD\r\nSYST\r\nMKD newdir\r\n")
	c.expect(200)
	c.expect(150)
	b, _ := io.ReadAll(d)
	c.expect(226)
	c.expect(257)
	c.expect(215)
	c.expect(257)
	if string(b) != "tiny file" {
		t.Errorf("data %q", b)
	}
}

func TestAbortDownloadWithTelnetSynch(t *testing.T) {
	s := newTestServer(t, nil)
	big := filepath.Join(s.dir, "big.bin")
	f, _ := os.Create(big)
	f.Truncate(1 << 30) // sparse: 1 GiB the client never reads
	f.Close()
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.cmd("RETR big.bin", 150)
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(d, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the mover block on a full socket
	c.sendRaw("\xff\xf4\xff\xf2ABOR\r\n")
	if got := c.expect(426); got != "Connection closed; transfer aborted." {
		t.Errorf("ABOR: %q", got)
	}
	if got := c.expect(226); got != "ABOR successful." {
		t.Errorf("ABOR: %q", got)
	}
	c.cmd("NOOP", 200)
	c.quit()
	r := s.waitResult()
	tr := s.events.kind("transfer")
	if len(tr) != 1 || tr[0].Code != 426 || tr[0].Dir != "out" || tr[0].Path != "/big.bin" {
		t.Errorf("transfer events %+v", tr)
	}
	if r.sum.FilesOut != 0 || r.sum.BytesOut < 1000 {
		t.Errorf("summary %+v", r.sum)
	}
}

func TestAbortUploadAndStat(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.cmd("STOR part.bin", 150)
	io.WriteString(d, strings.Repeat("x", 1000))
	waitFor(t, func() bool {
		fi, err := os.Stat(filepath.Join(s.dir, "part.bin"))
		return err == nil && fi.Size() == 1000
	})
	st := c.cmd("STAT", 213)
	if !strings.Contains(st, "STOR /part.bin: 1000 bytes moved so far") {
		t.Errorf("STAT during transfer: %q", st)
	}
	c.cmd("NOOP", 200)
	c.send("PWD") // queued behind the transfer
	c.sendRaw("\xff\xf4\xff\xf2ABOR\r\n")
	c.expect(426)
	c.expect(226)
	c.expect(257)
}

func TestABORRacingCompletion(t *testing.T) {
	// ABOR after the data is all sent but (maybe) before the 226: the
	// client gets a 226 or 426 and then the ABOR's 226, nothing else.
	s := newTestServer(t, nil)
	s.writeFile("small", "tiny")
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.cmd("RETR small", 150)
	io.ReadAll(d)
	c.sendRaw("ABOR\r\n")
	code, _ := c.read()
	switch code {
	case 226:
		// Either the transfer's 226 followed by ABOR's 226, or (if the
		// transfer had finished) 226 then 225.
		code2, _ := c.read()
		if code2 != 226 && code2 != 225 {
			t.Errorf("second reply %d", code2)
		}
	case 426:
		c.expect(226)
	default:
		t.Errorf("reply %d", code)
	}
	c.cmd("NOOP", 200)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestUploadStall(t *testing.T) {
	s := newTestServer(t, func(s *testServer) { s.cfg.DataTimeout = 300 * time.Millisecond })
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.cmd("STOR stalled", 150)
	io.WriteString(d, "some")
	if got := c.expect(426); got != "Data connection stalled; transfer aborted." {
		t.Errorf("stall: %q", got)
	}
	c.cmd("NOOP", 200)
}

func TestStoreAndRetrieve(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	content := strings.Repeat("binary\x00\xff\r\n data ", 5000)
	if msg := c.stor("STOR", "b.bin", content); msg != "Opening BINARY mode data connection for b.bin." {
		t.Errorf("150 = %q", msg)
	}
	if got := s.readFile("b.bin"); got != content {
		t.Error("stored content differs")
	}
	d := c.epsv()
	if msg := c.cmd("RETR b.bin", 150); msg != fmt.Sprintf("Opening BINARY mode data connection for b.bin (%d bytes).", len(content)) {
		t.Errorf("150 = %q", msg)
	}
	b, _ := io.ReadAll(d)
	c.expect(226)
	if string(b) != content {
		t.Error("retrieved content differs")
	}
	// STOR truncates.
	c.stor("STOR", "b.bin", "short")
	if got := s.readFile("b.bin"); got != "short" {
		t.Errorf("after STOR: %q", got)
	}
	c.cmd("RETR /", 425) // no data setup: checked before the file
	c.cmd("EPSV", 229)
	c.cmd("RETR /", 550)
	c.cmd("RETR nope", 550)
	c.cmd("STOR /", 550)
}

func TestASCIIMode(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	c.cmd("TYPE A", 200)
	if msg := c.stor("STOR", "t.txt", "line1\r\nline2\r\nbare\rcr\r\n"); !strings.Contains(msg, "ASCII") {
		t.Errorf("150 = %q", msg)
	}
	if got := s.readFile("t.txt"); got != "line1\nline2\nbare\rcr\n" {
		t.Errorf("stored %q", got)
	}
	if got := c.retr("t.txt"); got != "line1\r\nline2\r\nbare\rcr\r\n" {
		t.Errorf("retrieved %q", got)
	}
	c.cmd("REST 5", 501)
	c.cmd("REST 0", 350)
	c.cmd("TYPE I", 200)
	c.cmd("REST 5", 350)
	c.cmd("TYPE A", 200)
	c.cmd("EPSV", 229)
	c.cmd("RETR t.txt", 501) // offset set in TYPE I, used in TYPE A
	c.cmd("TYPE I", 200)
	if got := c.retr("t.txt"); got != "line1\nline2\nbare\rcr\n" {
		t.Errorf("binary %q", got)
	}
}

func TestRestartAndAppend(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("r.txt", "0123456789")
	c := s.login("alice", "secret-pw")
	c.cmd("TYPE I", 200)
	if got := c.cmd("REST 4", 350); got != "Restart position accepted (4)." {
		t.Errorf("REST = %q", got)
	}
	if got := c.retr("r.txt"); got != "456789" {
		t.Errorf("REST+RETR = %q", got)
	}
	if got := c.retr("r.txt"); got != "0123456789" {
		t.Errorf("REST not consumed: %q", got)
	}
	c.cmd("REST 10", 350)
	if got := c.retr("r.txt"); got != "" {
		t.Errorf("REST at EOF = %q", got)
	}
	c.cmd("REST 11", 350)
	c.cmd("EPSV", 229)
	c.cmd("RETR r.txt", 554)

	c.cmd("REST 4", 350)
	c.stor("STOR", "r.txt", "xy")
	if got := s.readFile("r.txt"); got != "0123xy" {
		t.Errorf("REST+STOR = %q", got)
	}
	c.cmd("REST 7", 350)
	c.cmd("EPSV", 229)
	c.cmd("STOR r.txt", 554)
	c.cmd("REST 1", 350)
	c.cmd("STOR missing.txt", 550)

	c.stor("APPE", "r.txt", "zz")
	if got := s.readFile("r.txt"); got != "0123xyzz" {
		t.Errorf("APPE = %q", got)
	}
	c.cmd("REST 2", 350)
	c.stor("APPE", "r.txt", "!")
	if got := s.readFile("r.txt"); got != "0123xyzz!" {
		t.Errorf("REST+APPE = %q", got)
	}
	c.stor("APPE", "new.txt", "created")
	if got := s.readFile("new.txt"); got != "created" {
		t.Errorf("APPE new = %q", got)
	}
}

func TestSTOU(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("dir/taken", "old")
	c := s.login("alice", "secret-pw")
	msg := c.stor("STOU", "", "unique 1")
	m := regexp.MustCompile(`^FILE: (sluice\.[0-9a-f]{12})$`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("STOU 150 = %q", msg)
	}
	if got := s.readFile(m[1]); got != "unique 1" {
		t.Errorf("STOU file = %q", got)
	}
	c.cmd("CWD dir", 250)
	if msg := c.stor("STOU", "free", "unique 2"); msg != "FILE: free" {
		t.Errorf("STOU free = %q", msg)
	}
	msg = c.stor("STOU", "taken", "unique 3")
	m = regexp.MustCompile(`^FILE: (taken\.[0-9a-f]{12})$`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("STOU taken = %q", msg)
	}
	if s.readFile("dir/taken") != "old" || s.readFile("dir/"+m[1]) != "unique 3" {
		t.Error("STOU overwrote or lost data")
	}
}

func TestUploadSurvivesControlHangup(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.cmd("STOR late.bin", 150)
	c.c.Close()
	time.Sleep(50 * time.Millisecond)
	io.WriteString(d, "still stored")
	d.Close()
	r := s.waitResult()
	if got := s.readFile("late.bin"); got != "still stored" || r.sum.FilesIn != 1 {
		t.Errorf("file %q, summary %+v", got, r.sum)
	}
}

// TestAbortUrgentLikeFtplib sends ABOR the way Python's ftplib does:
// "ABOR\r\n" with MSG_OOB, so the final byte is TCP urgent data. With
// SO_OOBINLINE (set by the supervisor) it stays in the stream.
func TestAbortUrgentLikeFtplib(t *testing.T) {
	s := newTestServer(t, func(s *testServer) { s.oobInline = true })
	f, _ := os.Create(filepath.Join(s.dir, "big.bin"))
	f.Truncate(1 << 30)
	f.Close()
	c := s.login("alice", "secret-pw")
	d := c.epsv()
	c.cmd("RETR big.bin", 150)
	io.ReadFull(d, make([]byte, 1000))
	rc, err := c.c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), []byte("ABOR\r\n"), unix.MSG_OOB, nil)
		return true
	})
	if serr != nil {
		t.Fatal(serr)
	}
	c.expect(426)
	c.expect(226)
	c.cmd("NOOP", 200)
}

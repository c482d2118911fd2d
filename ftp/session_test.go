package ftp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPreLogin(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.dial()

	feat := c.cmd("FEAT", 211)
	wantFeat := "211-Features:\n CLNT\n EPRT\n EPSV\n HASH XXH64*;SHA-256;SHA-1;MD5;CRC32\n MDTM\n MFMT\n" +
		" MLST type*;size*;modify*;perm*;unique*;unix.mode*;\n RANG\n REST STREAM\n SIZE\n TVFS\n UTF8\n" +
		" XCRC\n XMD5\n XSHA1\n XSHA256\n211 End"
	if feat != wantFeat {
		t.Errorf("FEAT:\n%s\nwant\n%s", feat, wantFeat)
	}
	if got := c.cmd("SYST", 215); got != "UNIX Type: L8" {
		t.Errorf("SYST = %q", got)
	}
	c.cmd("NOOP", 200)
	c.cmd("OPTS UTF8 ON", 200)
	c.cmd("CLNT test client 1.0", 200)
	if help := c.cmd("HELP", 214); !strings.Contains(help, "RETR") || !strings.HasSuffix(help, "214 Help OK.") {
		t.Errorf("HELP = %q", help)
	}
	for _, cmd := range []string{"PWD", "CWD /", "LIST", "RETR x", "STOR x", "STAT", "SITE HELP", "EPSV", "PORT 127,0,0,1,4,1", "TYPE I", "ABOR", "MLST"} {
		if got := c.cmd(cmd, 530); got != "Please login with USER and PASS." {
			t.Errorf("%s before login: %q", cmd, got)
		}
	}
	c.cmd("XYZZ", 500)
	c.cmd("AUTH TLS", 502)
	c.cmd("RETR a\x00b", 501)
	c.cmd("PASS nouser", 503)
	c.cmd("USER alice", 331)
	if got := c.cmd("PASS wrong", 530); got != "Login incorrect." {
		t.Errorf("bad password: %q", got)
	}
	// A failed PASS forgets the user.
	c.cmd("PASS secret-pw", 503)
	c.cmd("USER alice", 331)
	if got := c.cmd("PASS secret-pw", 230); got != "Login successful." {
		t.Errorf("login: %q", got)
	}
	c.cmd("USER bob", 530)
	c.quit()
	if r := s.waitResult(); r.err != nil || r.sum.Account != "alice" || r.sum.LastCode != 221 {
		t.Errorf("result %+v", r)
	}
}

func TestLoginAttempts(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.dial()
	for i := 0; i < 2; i++ {
		c.cmd("USER alice", 331)
		c.cmd("PASS nope", 530)
	}
	c.cmd("USER alice", 331)
	c.cmd("PASS nope", 421)
	c.expectClosed()
	if r := s.waitResult(); !errors.Is(r.err, ErrTooManyAttempts) {
		t.Errorf("Serve = %v", r.err)
	}
}

func TestRefusedLogin(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.dial()
	c.cmd("USER refused", 331)
	if got := c.cmd("PASS x", 530); got != "Too many sessions for this account." {
		t.Errorf("refused: %q", got)
	}
	c.cmd("USER banned", 331)
	if got := c.cmd("PASS x", 421); got != "Banned for a while." {
		t.Errorf("banned: %q", got)
	}
	c.expectClosed()
	if r := s.waitResult(); !errors.Is(r.err, ErrBanned) {
		t.Errorf("Serve = %v", r.err)
	}
}

func TestPasswordNeverLeaks(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.dial()
	c.cmd("USER alice", 331)
	c.cmd("PASS wrong-secret-xyz", 530)
	c.cmd("USER alice", 331)
	c.cmd("PASS secret-pw", 230)
	c.quit()
	s.waitResult()
	for _, ev := range s.events.kind("command") {
		if ev.Command == "PASS" && (ev.Path != "" || ev.Detail != "") {
			t.Errorf("PASS event carries data: %+v", ev)
		}
		if strings.Contains(fmt.Sprintf("%+v", ev), "secret") {
			t.Errorf("event contains the password: %+v", ev)
		}
	}
	if len(s.events.kind("command")) != 5 {
		t.Errorf("command events: %+v", s.events.kind("command"))
	}
}

func TestREIN(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.dial()
	c.cmd("USER alice", 331)
	c.cmd("REIN", 220)
	c.cmd("PASS secret-pw", 503)

	c.cmd("USER alice", 331)
	c.cmd("PASS secret-pw", 230)
	c.cmd("CWD /", 250)
	c.cmd("TYPE A", 200)
	if got := c.cmd("REIN", 220); got != "Service ready for new user." {
		t.Errorf("REIN: %q", got)
	}
	c.cmd("PWD", 530)
	c.cmd("USER bob", 331)
	if got := c.cmd("PASS bob-pw", 530); got != "REIN cannot switch accounts: reconnect to log in as another user." {
		t.Errorf("REIN switch: %q", got)
	}
	c.cmd("USER alice", 331)
	c.cmd("PASS secret-pw", 230)
	if got := c.cmd("STAT", 211); !strings.Contains(got, "TYPE: BINARY") {
		t.Errorf("REIN did not reset TYPE: %q", got)
	}
}

func TestLongCommandLine(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.dial()
	c.send("USER " + strings.Repeat("a", 100<<10))
	if got := c.expect(500); got != "Command line too long." {
		t.Errorf("long line: %q", got)
	}
	c.send("NOOP " + strings.Repeat("b", maxLineLength-5)) // exactly the limit
	c.expect(200)
	c.cmd("NOOP", 200)
	c.cmd("USER alice", 331)
	c.cmd("PASS secret-pw", 230)
}

func TestTelnetAndLineEndings(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.dial()
	c.sendRaw("USER alice\nPASS secret-pw\n")
	c.expect(331)
	c.expect(230)
	c.sendRaw("\xff\xfb\x01\xff\xf1NO\xff\xf6OP\r\n")
	c.expect(200)
	c.sendRaw("\xff\xf4\xff\xf2ABOR\r\n")
	c.expect(225)
}

func TestIdleTimeout(t *testing.T) {
	s := newTestServer(t, func(s *testServer) { s.cfg.IdleTimeout = 300 * time.Millisecond })
	c := s.login("alice", "secret-pw")
	start := time.Now()
	if got := c.expect(421); got != "Timeout." {
		t.Errorf("idle: %q", got)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	c.expectClosed()
	if r := s.waitResult(); !errors.Is(r.err, ErrIdleTimeout) {
		t.Errorf("Serve = %v", r.err)
	}
}

func TestLoginTimeout(t *testing.T) {
	s := newTestServer(t, func(s *testServer) { s.cfg.LoginTimeout = 300 * time.Millisecond })
	c := s.dial()
	c.cmd("NOOP", 200) // activity does not extend the login deadline
	c.expect(421)
	c.expectClosed()
	if r := s.waitResult(); !errors.Is(r.err, ErrLoginTimeout) {
		t.Errorf("Serve = %v", r.err)
	}
}

func TestShutdownIdle(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	s.cancel()
	if got := c.expect(421); got != "Server shutting down, closing control connection." {
		t.Errorf("shutdown: %q", got)
	}
	c.expectClosed()
	if r := s.waitResult(); !errors.Is(r.err, ErrShutdown) {
		t.Errorf("Serve = %v", r.err)
	}
}

func TestPipelining(t *testing.T) {
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	const n = 10000
	cmds := []struct {
		line string
		code int
	}{{"NOOP", 200}, {"PWD", 257}, {"SYST", 215}, {"TYPE I", 200}, {"bogus", 500}, {"CWD /", 250}}
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(cmds[i%len(cmds)].line + "\r\n")
	}
	go c.c.Write([]byte(b.String())) // the replies are read concurrently
	for i := 0; i < n; i++ {
		code, lines := c.read()
		if want := cmds[i%len(cmds)].code; code != want {
			t.Fatalf("reply %d to %q: %q, want %d", i, cmds[i%len(cmds)].line, lines, want)
		}
	}
	c.quit()
	if r := s.waitResult(); r.sum.Commands != n+3 {
		t.Errorf("Commands = %d, want %d", r.sum.Commands, n+3)
	}
}

func TestQuitWithPipelinedTail(t *testing.T) {
	// Commands after QUIT are never read; the 221 must still arrive (the
	// server lingers instead of resetting the connection).
	s := newTestServer(t, nil)
	c := s.login("alice", "secret-pw")
	c.sendRaw("QUIT\r\n" + strings.Repeat("NOOP\r\n", 20000))
	c.expect(221)
	c.expectClosed()
}

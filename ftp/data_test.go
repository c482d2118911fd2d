package ftp

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPassiveAndActive(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("f", "data over many modes")
	c := s.login("alice", "secret-pw")

	// PASV
	msg := c.cmd("PASV", 227)
	m := regexp.MustCompile(`^Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)\.$`).FindStringSubmatch(msg)
	if m == nil || m[1]+"."+m[2]+"."+m[3]+"."+m[4] != "127.0.0.1" {
		t.Fatalf("PASV reply %q", msg)
	}
	p1, _ := strconv.Atoi(m[5])
	p2, _ := strconv.Atoi(m[6])
	d, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p1*256+p2))
	if err != nil {
		t.Fatal(err)
	}
	c.cmd("RETR f", 150)
	b, _ := io.ReadAll(d)
	c.expect(226)
	if string(b) != "data over many modes" {
		t.Errorf("PASV data %q", b)
	}

	// PORT and EPRT to our own listener.
	for _, verb := range []string{"PORT", "EPRT"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		arg := fmt.Sprintf("127,0,0,1,%d,%d", port>>8, port&255)
		if verb == "EPRT" {
			arg = fmt.Sprintf("|1|127.0.0.1|%d|", port)
		}
		c.cmd(verb+" "+arg, 200)
		c.cmd("RETR f", 150)
		dc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(dc)
		dc.Close()
		ln.Close()
		c.expect(226)
		if string(b) != "data over many modes" {
			t.Errorf("%s data %q", verb, b)
		}
	}

	// A setup is used once.
	c.cmd("RETR f", 425)

	// Bounce protection.
	for _, tt := range []struct {
		cmd  string
		code int
	}{
		{"PORT 127,0,0,2,19,136", 501}, // another address
		{"PORT 127,0,0,1,0,80", 501},   // privileged port
		{"PORT 10,0,0,1,19,136", 501},
		{"PORT 127,0,0,1,19", 500},
		{"PORT garbage", 500},
		{"EPRT |1|127.0.0.2|5000|", 501},
		{"EPRT |1|127.0.0.1|21|", 501},
		{"EPRT |2|::1|5000|", 501},
		{"EPRT |3|x|5000|", 522},
		{"EPRT nonsense", 500},
		{"EPSV 2", 522},
		{"EPSV 7", 522},
		{"EPSV x", 501},
		{"EPSV 1", 229},
	} {
		c.cmd(tt.cmd, tt.code)
	}
	if got := c.cmd("PORT 127,0,0,2,19,136", 501); got != "PORT refused: active mode only to your own address and ports >= 1024." {
		t.Errorf("bounce reply %q", got)
	}
	if got := c.cmd("PORT 1,2", 500); got != "Illegal PORT command." {
		t.Errorf("bad PORT reply %q", got)
	}

	// EPSV ALL
	c.cmd("EPSV ALL", 200)
	c.cmd("PASV", 501)
	c.cmd("PORT 127,0,0,1,19,136", 501)
	c.cmd("EPRT |1|127.0.0.1|5000|", 501)
	if got := c.retr("f"); got != "data over many modes" {
		t.Errorf("EPSV data %q", got)
	}
}

func TestModesDisabled(t *testing.T) {
	s := newTestServer(t, func(s *testServer) {
		s.cfg.AllowActive = false
		s.cfg.AllowPassive = false
	})
	c := s.login("alice", "secret-pw")
	c.cmd("PORT 127,0,0,1,19,136", 502)
	c.cmd("EPRT |1|127.0.0.1|5000|", 502)
	c.cmd("PASV", 502)
	c.cmd("EPSV", 502)
	c.cmd("LIST", 425)
}

func TestPassiveAddressAndRange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := newTestServer(t, func(s *testServer) {
		s.cfg.PassivePortMin, s.cfg.PassivePortMax = port, port
		s.cfg.PassiveAddress = "203.0.113.7"
	})
	c := s.login("alice", "secret-pw")
	want := fmt.Sprintf("Entering Passive Mode (203,0,113,7,%d,%d).", port>>8, port&255)
	if got := c.cmd("PASV", 227); got != want {
		t.Errorf("PASV = %q, want %q", got, want)
	}
	// The only port is taken by this session's listener: a second session
	// gets 425. A new PASV in the first session replaces (closes) its own.
	c2 := s.login("bob", "bob-pw")
	c2.cmd("EPSV", 425)
	if got := c.cmd("EPSV", 229); got != fmt.Sprintf("Entering Extended Passive Mode (|||%d|)", port) {
		t.Errorf("EPSV = %q", got)
	}
}

func TestPassiveRefusesOtherPeers(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("f", "for the right peer")
	c := s.login("alice", "secret-pw")
	msg := c.cmd("EPSV", 229)
	port := strings.TrimSuffix(strings.TrimPrefix(msg, "Entering Extended Passive Mode (|||"), "|)")
	// Another local address (all of 127/8 is loopback on Linux).
	dd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	intruder, err := dd.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer intruder.Close()
	c.cmd("RETR f", 150)
	intruder.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := intruder.Read(make([]byte, 10)); err == nil {
		t.Fatalf("intruder read %d bytes", n)
	}
	d, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(d)
	c.expect(226)
	if string(b) != "for the right peer" {
		t.Errorf("data %q", b)
	}
	tr := s.events.kind("transfer")
	if len(tr) != 1 || !strings.Contains(tr[0].Detail, "refused 1 data connection") {
		t.Errorf("events %+v", tr)
	}
}

func TestDataTimeout(t *testing.T) {
	s := newTestServer(t, func(s *testServer) { s.cfg.DataTimeout = 300 * time.Millisecond })
	s.writeFile("f", "x")
	c := s.login("alice", "secret-pw")
	c.cmd("EPSV", 229)
	c.cmd("RETR f", 150)
	if got := c.expect(425); got != "Cannot open data connection: none from your address within 300ms." {
		t.Errorf("data timeout: %q", got)
	}
	// Active mode to a port nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c.cmd(fmt.Sprintf("EPRT |1|127.0.0.1|%d|", port), 200)
	c.cmd("RETR f", 150)
	c.expect(425)
	c.cmd("NOOP", 200)
}

func TestIPv6Control(t *testing.T) {
	s := newTestServer(t, func(s *testServer) { s.addr = "[::1]:0" })
	s.writeFile("f", "over IPv6")
	c := s.login("alice", "secret-pw")
	if got := c.cmd("PASV", 522); got != "Use EPSV (IPv6 control connection)." {
		t.Errorf("PASV = %q", got)
	}
	if got := c.cmd("EPSV 1", 522); got != "Network protocol not supported, use (2)." {
		t.Errorf("EPSV 1 = %q", got)
	}
	c.cmd("EPSV 2", 229)
	c.cmd("PORT 127,0,0,1,19,136", 501)
	// EPSV: the port is reached at the control connection's address.
	msg := c.cmd("EPSV", 229)
	port := strings.TrimSuffix(strings.TrimPrefix(msg, "Entering Extended Passive Mode (|||"), "|)")
	d, err := net.Dial("tcp", "[::1]:"+port)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd("RETR f", 150)
	b, _ := io.ReadAll(d)
	c.expect(226)
	if string(b) != "over IPv6" {
		t.Errorf("data %q", b)
	}
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c.cmd(fmt.Sprintf("EPRT |2|::1|%d|", ln.Addr().(*net.TCPAddr).Port), 200)
	c.cmd("RETR f", 150)
	dc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(dc)
	dc.Close()
	c.expect(226)
	if string(b) != "over IPv6" {
		t.Errorf("EPRT data %q", b)
	}
}

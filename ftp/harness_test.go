package ftp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// testServer runs real sessions on a loopback listener.
type testServer struct {
	t      *testing.T
	addr   string // listen address; "127.0.0.1:0" unless set by mod
	cfg    Config
	auth   *testAuth
	events *eventLog
	dir    string // the files behind "/"
	cancel context.CancelFunc
	// oobInline sets SO_OOBINLINE on control connections, as the
	// supervisor does in production.
	oobInline bool

	mu      sync.Mutex
	results []sessionResult
	wg      sync.WaitGroup
	done    chan sessionResult
}

type sessionResult struct {
	err error
	sum Summary
}

func defaultConfig() Config {
	return Config{
		Banner:           "sluice test",
		AllowActive:      true,
		AllowPassive:     true,
		LoginTimeout:     10 * time.Second,
		IdleTimeout:      10 * time.Second,
		DataTimeout:      5 * time.Second,
		MaxLoginAttempts: 3,
		LogCommands:      true,
	}
}

// newTestServer starts a server; mod may adjust the config and the auth
// before it listens.
func newTestServer(t *testing.T, mod func(*testServer)) *testServer {
	t.Helper()
	s := &testServer{
		t:      t,
		cfg:    defaultConfig(),
		events: &eventLog{},
		dir:    t.TempDir(),
		done:   make(chan sessionResult, 16),
	}
	s.auth = &testAuth{
		users: map[string]string{"alice": "secret-pw", "bob": "bob-pw", "reader": "reader-pw"},
	}
	s.auth.fs = func(user string) FileSystem {
		fsys, err := newRootFS(s.dir)
		if err != nil {
			t.Errorf("newRootFS: %v", err)
			return nil
		}
		if user == "reader" {
			fsys.rights["/"] = datapath.RightList | datapath.RightRead
		}
		return fsys
	}
	if mod != nil {
		mod(s)
	}
	if s.addr == "" {
		s.addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if s.oobInline {
				if err := datapath.SetOOBInline(c.(*net.TCPConn)); err != nil {
					t.Errorf("SetOOBInline: %v", err)
				}
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				sess := NewSession(c, s.cfg, s.auth, s.events)
				err := sess.Serve(ctx)
				r := sessionResult{err: err, sum: sess.Summary()}
				s.mu.Lock()
				s.results = append(s.results, r)
				s.mu.Unlock()
				select {
				case s.done <- r:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		cancel()
		waited := make(chan struct{})
		go func() { s.wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			t.Error("sessions did not end after cancel")
		}
	})
	return s
}

// waitResult returns the next session result.
func (s *testServer) waitResult() sessionResult {
	s.t.Helper()
	select {
	case r := <-s.done:
		return r
	case <-time.After(10 * time.Second):
		s.t.Fatal("session did not end")
		return sessionResult{}
	}
}

func (s *testServer) writeFile(name, content string) {
	s.t.Helper()
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *testServer) readFile(name string) string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(name)))
	if err != nil {
		s.t.Fatal(err)
	}
	return string(b)
}

// rawClient speaks the protocol by hand, for exact replies.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (s *testServer) dial() *rawClient {
	s.t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: s.t, c: c, r: bufio.NewReader(c)}
	rc.expect(220)
	return rc
}

func (s *testServer) login(user, pass string) *rawClient {
	s.t.Helper()
	rc := s.dial()
	rc.cmd("USER "+user, 331)
	rc.cmd("PASS "+pass, 230)
	return rc
}

func (c *rawClient) sendRaw(b string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) send(line string) { c.t.Helper(); c.sendRaw(line + "\r\n") }

// read returns one complete reply: its code and its lines without CRLF.
func (c *rawClient) read() (int, []string) {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	first, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading reply: %v (got %q)", err, first)
	}
	first = strings.TrimSuffix(first, "\r\n")
	lines = append(lines, first)
	if len(first) < 4 {
		c.t.Fatalf("short reply %q", first)
	}
	code, err := strconv.Atoi(first[:3])
	if err != nil {
		c.t.Fatalf("bad reply %q", first)
	}
	if first[3] == '-' {
		for {
			l, err := c.r.ReadString('\n')
			if err != nil {
				c.t.Fatalf("reading multi-line reply: %v", err)
			}
			if !strings.HasSuffix(l, "\r\n") {
				c.t.Fatalf("reply line without CRLF: %q", l)
			}
			l = strings.TrimSuffix(l, "\r\n")
			lines = append(lines, l)
			if strings.HasPrefix(l, first[:3]+" ") {
				break
			}
		}
	} else if first[3] != ' ' {
		c.t.Fatalf("bad reply %q", first)
	}
	return code, lines
}

// expect reads a reply and checks its code; it returns the text of a
// single-line reply, or all lines joined with "\n".
func (c *rawClient) expect(code int) string {
	c.t.Helper()
	got, lines := c.read()
	if got != code {
		c.t.Fatalf("got reply %q, want code %d", lines, code)
	}
	if len(lines) == 1 {
		return lines[0][4:]
	}
	return strings.Join(lines, "\n")
}

func (c *rawClient) cmd(line string, code int) string {
	c.t.Helper()
	c.send(line)
	return c.expect(code)
}

// expectClosed checks that the server closed the control connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.r.ReadString('\n'); err != io.EOF {
		c.t.Fatalf("expected EOF, got %q, %v", l, err)
	}
	c.c.Close() // as a client does; the server lingers until then
}

// epsv opens a passive data connection from the client's side.
func (c *rawClient) epsv() net.Conn {
	c.t.Helper()
	msg := c.cmd("EPSV", 229)
	i := strings.Index(msg, "(|||")
	if i < 0 {
		c.t.Fatalf("bad 229 %q", msg)
	}
	port, err := strconv.Atoi(strings.TrimSuffix(msg[i+4:], "|)"))
	if err != nil {
		c.t.Fatalf("bad 229 %q", msg)
	}
	d, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { d.Close() })
	return d
}

// retr downloads name over a fresh EPSV connection.
func (c *rawClient) retr(name string) string {
	c.t.Helper()
	d := c.epsv()
	c.cmd("RETR "+name, 150)
	b, err := io.ReadAll(d)
	if err != nil {
		c.t.Fatal(err)
	}
	c.expect(226)
	return string(b)
}

// list runs a listing command over a fresh EPSV connection and returns
// its lines.
func (c *rawClient) list(cmdline string) []string {
	c.t.Helper()
	d := c.epsv()
	c.cmd(cmdline, 150)
	b, err := io.ReadAll(d)
	if err != nil {
		c.t.Fatal(err)
	}
	c.expect(226)
	s := string(b)
	if s == "" {
		return nil
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("listing does not end in CRLF: %q", s)
	}
	return strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
}

// stor uploads content with verb (STOR/APPE/STOU) and returns the 150 text.
func (c *rawClient) stor(verb, name, content string) string {
	c.t.Helper()
	d := c.epsv()
	line := verb
	if name != "" {
		line += " " + name
	}
	msg := c.cmd(line, 150)
	if _, err := io.WriteString(d, content); err != nil {
		c.t.Fatal(err)
	}
	d.Close()
	c.expect(226)
	return msg
}

// quit ends the session politely and closes our side.
func (c *rawClient) quit() {
	c.t.Helper()
	c.cmd("QUIT", 221)
	c.expectClosed()
}

package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TLSMode says how a target protects its sessions.
type TLSMode int

const (
	// TLSNone is plain FTP.
	TLSNone TLSMode = iota
	// TLSImplicit is ftps://: TLS from the first byte (port 990 by default).
	TLSImplicit
	// TLSExplicit is AUTH TLS on a plain control connection (RFC 4217),
	// then PBSZ 0 and PROT P so that data connections are protected too.
	TLSExplicit
)

// Target is one server to measure.
type Target struct {
	Name string // label in reports
	Addr string // host:port of the control connection (or of the raw baseline)
	User string
	Pass string
	Dir  string // path from the URL: where the workloads find their files
	TLS  TLSMode
	// TLSConfig is used for control and data connections; nil means
	// certificates are verified against the system roots.
	TLSConfig *tls.Config
	// Raw marks the sendfile baseline: a connection is a download of the
	// whole file, no FTP at all. Only the download workloads apply.
	Raw bool
	// DialTimeout bounds connect and every reply.
	Timeout time.Duration
}

// ParseTarget reads ftp://user:pass@host:port/dir, ftps:// (implicit TLS),
// ftpes:// (explicit AUTH TLS) and raw://host:port (the sendfile baseline).
// Without a user the login is anonymous.
func ParseTarget(raw string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	t := &Target{Name: u.Host, Timeout: 30 * time.Second, Dir: u.Path}
	port := "21"
	switch u.Scheme {
	case "ftp":
	case "ftps":
		t.TLS, port = TLSImplicit, "990"
	case "ftpes":
		t.TLS = TLSExplicit
	case "raw":
		t.Raw = true
	default:
		return nil, fmt.Errorf("target %q: scheme must be ftp, ftps, ftpes or raw", raw)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("target %q: no host", raw)
	}
	if u.Port() != "" {
		port = u.Port()
	} else if t.Raw {
		return nil, fmt.Errorf("target %q: raw needs a port", raw)
	}
	t.Addr = net.JoinHostPort(u.Hostname(), port)
	t.User, t.Pass = "anonymous", "bench@"
	if u.User != nil {
		t.User = u.User.Username()
		if p, ok := u.User.Password(); ok {
			t.Pass = p
		}
	}
	if t.TLS != TLSNone {
		t.TLSConfig = &tls.Config{ServerName: u.Hostname()}
	}
	return t, nil
}

// Path joins the target's directory and a name relative to it. An empty
// directory means the login directory, so the name stays relative.
func (t *Target) Path(name string) string {
	d := strings.TrimPrefix(t.Dir, "/")
	if d == "" {
		return name
	}
	// ftp://host/dir in a URL is relative to the login directory
	// (RFC 1738); ftp://host/%2Fdir is absolute.
	return strings.TrimSuffix(d, "/") + "/" + name
}

// ReplyError is a reply the client did not expect.
type ReplyError struct {
	Cmd  string
	Code int
	Msg  string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.Cmd, e.Code, e.Msg)
}

// Conn is one FTP session. It is written for measurement: no directory
// cache, no retries, and the data paths use splice and sendfile so that
// the client is never what limits the rate.
type Conn struct {
	t      *Target
	raw    net.Conn // the TCP control connection
	c      net.Conn // raw, or TLS on top of it
	r      *bufio.Reader
	tlsOn  bool
	noEPSV bool
	cache  tls.ClientSessionCache
	pipe   *spliceBuf
}

// dialer turns MPTCP off: Go 1.26 uses it by default, and a benchmark
// must measure the TCP path the clients of an FTP server take.
func dialer(timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	d.SetMultipathTCP(false)
	return d
}

// Dial opens the control connection and reads the greeting (after the TLS
// handshake for ftps://, after AUTH TLS for ftpes://).
func Dial(ctx context.Context, t *Target) (*Conn, error) {
	nc, err := dialer(t.Timeout).DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", t.Addr, err)
	}
	c := &Conn{t: t, raw: nc, c: nc, cache: tls.NewLRUClientSessionCache(4)}
	if t.TLS == TLSImplicit {
		c.startTLS()
	}
	c.r = bufio.NewReaderSize(c.c, 4096)
	if _, _, err := c.expect("greeting", 220); err != nil {
		c.Close()
		return nil, err
	}
	if t.TLS == TLSExplicit {
		if _, _, err := c.Cmd("AUTH TLS", 234); err != nil {
			c.Close()
			return nil, err
		}
		c.startTLS()
		c.r = bufio.NewReaderSize(c.c, 4096)
	}
	return c, nil
}

func (c *Conn) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if c.t.TLSConfig != nil {
		cfg = c.t.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	// Servers that demand session reuse on the data connection (vsftpd's
	// require_ssl_reuse, proftpd's default) get it: one cache per session.
	cfg.ClientSessionCache = c.cache
	return cfg
}

func (c *Conn) startTLS() {
	c.c = tls.Client(c.raw, c.tlsConfig())
	c.tlsOn = true
}

// Login sends USER and PASS, then switches to binary; on TLS sessions it
// also asks for protected data connections.
func (c *Conn) Login() error {
	code, _, err := c.Cmd("USER "+c.t.User, 230, 331)
	if err != nil {
		return err
	}
	if code == 331 {
		if _, _, err := c.cmdLog("PASS ****", "PASS "+c.t.Pass, 230); err != nil {
			return err
		}
	}
	if c.tlsOn {
		if _, _, err := c.Cmd("PBSZ 0", 200); err != nil {
			return err
		}
		if _, _, err := c.Cmd("PROT P", 200); err != nil {
			return err
		}
	}
	_, _, err = c.Cmd("TYPE I", 200)
	return err
}

// Quit says goodbye and closes.
func (c *Conn) Quit() error {
	_, _, err := c.Cmd("QUIT", 221)
	c.Close()
	return err
}

// Close drops the connection.
func (c *Conn) Close() {
	c.c.Close()
	if c.pipe != nil {
		c.pipe.close()
		c.pipe = nil
	}
}

// Cmd sends one command and reads its reply, which must have one of the
// codes in want (any code when want is empty).
func (c *Conn) Cmd(line string, want ...int) (int, string, error) {
	return c.cmdLog(line, line, want...)
}

func (c *Conn) cmdLog(shown, line string, want ...int) (int, string, error) {
	c.c.SetDeadline(time.Now().Add(c.t.Timeout))
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		return 0, "", fmt.Errorf("send %s: %w", shown, err)
	}
	return c.expect(shown, want...)
}

func (c *Conn) expect(what string, want ...int) (int, string, error) {
	c.c.SetDeadline(time.Now().Add(c.t.Timeout))
	code, msg, err := c.reply()
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w", what, err)
	}
	if len(want) == 0 {
		return code, msg, nil
	}
	for _, w := range want {
		if code == w {
			return code, msg, nil
		}
	}
	return code, msg, &ReplyError{Cmd: what, Code: code, Msg: msg}
}

// reply reads one reply, multi-line ones included ("123-" … "123 ").
func (c *Conn) reply() (int, string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return 0, "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if len(line) < 3 {
		return 0, "", fmt.Errorf("short reply %q", line)
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil {
		return 0, "", fmt.Errorf("bad reply %q", line)
	}
	msg := strings.TrimSpace(line[3:])
	if len(line) > 3 && line[3] == '-' {
		end := line[:3] + " "
		for {
			l, err := c.r.ReadString('\n')
			if err != nil {
				return 0, "", err
			}
			if strings.HasPrefix(l, end) {
				break
			}
		}
	}
	return code, msg, nil
}

// openData asks for a passive data connection (EPSV, falling back to PASV
// once for servers without it) and connects. It always connects to the
// control connection's address: the address in a PASV reply may be one the
// server sees, not one the client can reach.
func (c *Conn) openData(ctx context.Context) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(c.t.Addr)
	var port int
	if !c.noEPSV {
		code, msg, err := c.Cmd("EPSV")
		if err != nil {
			return nil, err
		}
		if code == 229 {
			p, err := parseEPSV(msg)
			if err != nil {
				return nil, err
			}
			port = p
		} else if code >= 500 {
			c.noEPSV = true
		} else {
			return nil, &ReplyError{Cmd: "EPSV", Code: code, Msg: msg}
		}
	}
	if c.noEPSV {
		_, msg, err := c.Cmd("PASV", 227)
		if err != nil {
			return nil, err
		}
		p, err := parsePASV(msg)
		if err != nil {
			return nil, err
		}
		port = p
	}
	d, err := dialer(c.t.Timeout).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("data connection: %w", err)
	}
	return d, nil
}

func parseEPSV(msg string) (int, error) {
	i := strings.Index(msg, "(")
	j := strings.LastIndex(msg, ")")
	if i < 0 || j < i+5 {
		return 0, fmt.Errorf("EPSV reply %q", msg)
	}
	inner := msg[i+1 : j] // |||port|
	if len(inner) < 5 {
		return 0, fmt.Errorf("EPSV reply %q", msg)
	}
	parts := strings.Split(inner, string(inner[0]))
	if len(parts) != 5 {
		return 0, fmt.Errorf("EPSV reply %q", msg)
	}
	p, err := strconv.Atoi(parts[3])
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("EPSV reply %q", msg)
	}
	return p, nil
}

func parsePASV(msg string) (int, error) {
	i := strings.Index(msg, "(")
	j := strings.LastIndex(msg, ")")
	if i < 0 || j < i {
		// Some servers omit the parentheses: take the six numbers after
		// the first digit.
		i = strings.IndexAny(msg, "0123456789") - 1
		j = len(msg)
		if i < -1 {
			return 0, fmt.Errorf("PASV reply %q", msg)
		}
	}
	f := strings.Split(strings.TrimSpace(msg[i+1:j]), ",")
	if len(f) != 6 {
		return 0, fmt.Errorf("PASV reply %q", msg)
	}
	hi, e1 := strconv.Atoi(strings.TrimSpace(f[4]))
	lo, e2 := strconv.Atoi(strings.TrimSpace(f[5]))
	if e1 != nil || e2 != nil || hi < 0 || hi > 255 || lo < 0 || lo > 255 {
		return 0, fmt.Errorf("PASV reply %q", msg)
	}
	return hi<<8 | lo, nil
}

// transfer runs one data command: it opens the data connection, sends cmd,
// moves the data with fn while it reads the preliminary reply, and checks
// the final one. fn runs concurrently with the wait for 150 because a
// server may do the TLS handshake of the data connection before or after
// it sends 150.
func (c *Conn) transfer(ctx context.Context, cmd string, fn func(net.Conn) (int64, error)) (int64, error) {
	dc, err := c.openData(ctx)
	if err != nil {
		return 0, err
	}
	if c.tlsOn {
		dc = tls.Client(dc, c.tlsConfig())
	}
	if _, err := io.WriteString(c.c, cmd+"\r\n"); err != nil {
		dc.Close()
		return 0, fmt.Errorf("send %s: %w", cmd, err)
	}
	type res struct {
		n   int64
		err error
	}
	done := make(chan res, 1)
	go func() {
		n, err := fn(dc)
		if cerr := dc.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		done <- res{n, err}
	}()
	if _, _, err := c.expect(cmd, 125, 150); err != nil {
		dc.Close()
		<-done
		return 0, err
	}
	r := <-done
	if r.err != nil {
		return r.n, fmt.Errorf("%s: data: %w", cmd, r.err)
	}
	// The final reply may take as long as the server needs to flush.
	if _, _, err := c.expect(cmd, 226, 250); err != nil {
		return r.n, err
	}
	return r.n, nil
}

// Retr downloads path and throws the bytes away: spliced to /dev/null on
// plain TCP, read and discarded after decryption on TLS.
func (c *Conn) Retr(ctx context.Context, path string, count func(int64)) (int64, error) {
	return c.transfer(ctx, "RETR "+path, func(dc net.Conn) (int64, error) {
		return c.discard(dc, count)
	})
}

// Stor uploads size bytes of src (a page-cached file) to path, with
// sendfile on plain TCP.
func (c *Conn) Stor(ctx context.Context, path string, src *os.File, size int64, count func(int64)) (int64, error) {
	return c.transfer(ctx, "STOR "+path, func(dc net.Conn) (int64, error) {
		return sendFile(dc, src, size, count, c.t.Timeout)
	})
}

// List runs LIST, MLSD or NLST on path and returns the bytes and lines
// of the listing.
func (c *Conn) List(ctx context.Context, verb, path string) (bytes int64, lines int, err error) {
	cmd := verb
	if path != "" {
		cmd += " " + path
	}
	var names []string
	n, err := c.transfer(ctx, cmd, func(dc net.Conn) (int64, error) {
		dc.SetDeadline(time.Now().Add(c.t.Timeout))
		br := bufio.NewReaderSize(dc, 64<<10)
		var n int64
		for {
			l, err := br.ReadString('\n')
			n += int64(len(l))
			if strings.TrimSpace(l) != "" {
				lines++
				if verb == "NLST" {
					names = append(names, strings.TrimRight(l, "\r\n"))
				}
			}
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				return n, err
			}
		}
	})
	return n, lines, err
}

// Names lists a directory with NLST and returns the names.
func (c *Conn) Names(ctx context.Context, path string) ([]string, error) {
	var names []string
	_, err := c.transfer(ctx, "NLST "+path, func(dc net.Conn) (int64, error) {
		dc.SetDeadline(time.Now().Add(c.t.Timeout))
		sc := bufio.NewScanner(dc)
		for sc.Scan() {
			if s := strings.TrimSpace(sc.Text()); s != "" {
				// Servers differ: some answer "dir/name", some "name".
				if k := strings.LastIndex(s, "/"); k >= 0 {
					s = s[k+1:]
				}
				if s != "." && s != ".." && s != "" {
					names = append(names, s)
				}
			}
		}
		return 0, sc.Err()
	})
	return names, err
}

// Delete removes a file; errors are returned, not fatal to the session.
func (c *Conn) Delete(path string) error {
	_, _, err := c.Cmd("DELE "+path, 250)
	return err
}

// discard drains a data connection. Plain TCP goes socket → pipe →
// /dev/null with splice, so no payload byte is copied to user space.
func (c *Conn) discard(dc net.Conn, count func(int64)) (int64, error) {
	return discard(dc, &c.pipe, count, c.t.Timeout)
}

// discard resets the deadline of a data connection before each chunk: a
// transfer may be long, but must not stall for idle.
func discard(dc net.Conn, pp **spliceBuf, count func(int64), idle time.Duration) (int64, error) {
	if tc, ok := dc.(*net.TCPConn); ok {
		if *pp == nil {
			p, err := newSpliceBuf()
			if err != nil {
				return 0, err
			}
			*pp = p
		}
		return (*pp).drain(tc, count, idle)
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	var total int64
	for {
		dc.SetReadDeadline(time.Now().Add(idle))
		n, err := dc.Read(*buf)
		total += int64(n)
		if count != nil && n > 0 {
			count(int64(n))
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// pipeSize is what F_SETPIPE_SZ asks for: 1 MiB is the default
// /proc/sys/fs/pipe-max-size, and large pipes mean few splice calls.
const pipeSize = 1 << 20

// spliceBuf is a pipe and /dev/null, reused across the transfers of a
// session.
type spliceBuf struct {
	r, w    int
	devnull int
	size    int
}

func newSpliceBuf() (*spliceBuf, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	size := 64 << 10
	if n, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeSize); err == nil {
		size = n
	}
	dn, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, fmt.Errorf("open /dev/null: %w", err)
	}
	return &spliceBuf{r: p[0], w: p[1], devnull: dn, size: size}, nil
}

func (s *spliceBuf) close() {
	unix.Close(s.r)
	unix.Close(s.w)
	unix.Close(s.devnull)
}

func (s *spliceBuf) drain(tc *net.TCPConn, count func(int64), idle time.Duration) (int64, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		var n int64
		var serr error
		tc.SetReadDeadline(time.Now().Add(idle))
		err := rc.Read(func(fd uintptr) bool {
			n, serr = unix.Splice(int(fd), nil, s.w, nil, s.size, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			// EAGAIN: nothing to read yet; let the poller wait.
			return serr != unix.EAGAIN
		})
		if err != nil {
			return total, err
		}
		if serr == unix.EINTR {
			continue
		}
		if serr != nil {
			return total, fmt.Errorf("splice from socket: %w", serr)
		}
		if n == 0 {
			return total, nil
		}
		for left := n; left > 0; {
			m, err := unix.Splice(s.r, nil, s.devnull, nil, int(left), unix.SPLICE_F_MOVE)
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			if err != nil {
				return total, fmt.Errorf("splice to /dev/null: %w", err)
			}
			left -= m
		}
		total += n
		if count != nil {
			count(n)
		}
	}
}

// sendFile uploads size bytes from the start of f. On plain TCP it calls
// sendfile itself, 4 MiB at a time (so progress is live and a stall times
// out); over TLS it must go through user space.
func sendFile(dc net.Conn, f *os.File, size int64, count func(int64), idle time.Duration) (int64, error) {
	tc, ok := dc.(*net.TCPConn)
	if !ok {
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		var total int64
		for total < size {
			want := int64(len(*buf))
			if size-total < want {
				want = size - total
			}
			n, err := f.ReadAt((*buf)[:want], total)
			if n > 0 {
				dc.SetWriteDeadline(time.Now().Add(idle))
				if _, werr := dc.Write((*buf)[:n]); werr != nil {
					return total, werr
				}
				total += int64(n)
				if count != nil {
					count(int64(n))
				}
			}
			if err != nil && err != io.EOF {
				return total, err
			}
			if n == 0 {
				return total, io.ErrUnexpectedEOF
			}
		}
		return total, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var off int64
	src := int(f.Fd())
	for off < size {
		chunk := size - off
		if chunk > 4<<20 {
			chunk = 4 << 20
		}
		var n int
		var serr error
		tc.SetWriteDeadline(time.Now().Add(idle))
		err := rc.Write(func(fd uintptr) bool {
			o := off
			n, serr = unix.Sendfile(int(fd), src, &o, int(chunk))
			return serr != unix.EAGAIN
		})
		if err != nil {
			return off, err
		}
		if serr == unix.EINTR {
			continue
		}
		if serr != nil {
			return off, fmt.Errorf("sendfile: %w", serr)
		}
		if n == 0 {
			return off, io.ErrUnexpectedEOF
		}
		off += int64(n)
		if count != nil {
			count(int64(n))
		}
	}
	return off, nil
}

// RawRetr is a download from the sendfile baseline: connect, send the
// file's name and a newline, and the server sends the whole file and
// closes.
func RawRetr(ctx context.Context, t *Target, name string, pp **spliceBuf, count func(int64)) (int64, error) {
	nc, err := dialer(t.Timeout).DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return 0, fmt.Errorf("connect %s: %w", t.Addr, err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, name+"\n"); err != nil {
		return 0, fmt.Errorf("raw request: %w", err)
	}
	return discard(nc, pp, count, t.Timeout)
}

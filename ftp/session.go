package ftp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// Errors Serve returns when it ends the session itself. A client that sends
// QUIT or simply disconnects ends it with nil.
var (
	ErrIdleTimeout     = errors.New("ftp: idle timeout")
	ErrLoginTimeout    = errors.New("ftp: login timeout")
	ErrTooManyAttempts = errors.New("ftp: too many failed login attempts")
	ErrShutdown        = errors.New("ftp: server shutting down")
)

// defaultDataTimeout applies when Config.DataTimeout is zero: a data
// connection that never comes must not hold a session forever, because the
// idle timer does not run during a transfer.
const defaultDataTimeout = time.Minute

// maxPending bounds the commands queued behind a running transfer (RFC 959
// lets a client send commands during a transfer; we answer them after it).
// With lines of at most 4 KiB this caps the queue at 1 MiB; once it is full
// the session stops reading, and TCP flow control pushes back on the client.
const maxPending = 256

// ctlLine is one item from the control reader: a command line, a line that
// was too long, or the read error that ended the stream.
type ctlLine struct {
	text     string
	tooLong  bool
	err      error
	auth     bool // an AUTH command: the reader waits for resumeReader
	buffered bool // more bytes were already buffered after it
}

// Session is one FTP control connection, from greeting to close. All
// protocol state lives in the goroutine running Serve; a reader goroutine
// feeds it command lines and each data transfer runs in a goroutine of its
// own, so that ABOR and STAT are seen while bytes move.
type Session struct {
	conn   net.Conn
	cfg    Config
	auth   Authenticator
	events EventSink

	w    *bufio.Writer
	werr error // first reply write error; ends the session

	ctx     context.Context
	localIP netip.Addr // control connection's local address (unmapped)
	peerIP  netip.Addr // control connection's peer address (unmapped)

	// Login state.
	user       string   // name from USER, awaiting PASS
	acct       *Account // nil until logged in
	fs         FileSystem
	reinName   string // after REIN: the account a new login must match
	loginFails int

	// Per-login state, reset by REIN.
	cwd        string
	ascii      bool  // TYPE A
	rest       int64 // REST offset for the next transfer
	renameFrom string
	epsvAll    bool
	facts      factSet       // MLST facts chosen with OPTS MLST
	client     string        // CLNT
	algo       datapath.Algo // OPTS HASH ("" = XXH64)
	rangSet    bool          // RANG given for the next HASH
	rangFrom   int64
	rangTo     int64 // exclusive

	// Data connection setup: at most one of these is set.
	pasv   net.Listener   // PASV/EPSV listener awaiting the transfer command
	active netip.AddrPort // PORT/EPRT target

	xfer       *transfer // running transfer, or nil
	pending    []ctlLine // commands received during the transfer
	shutdownAt bool      // ctx was cancelled during a transfer

	lines      chan ctlLine
	stop       chan struct{}
	readerDone chan struct{}

	done   bool  // end the loop after the current command
	endErr error // what Serve returns then

	// For the "command" audit event of the command being handled.
	evPath string

	mu  sync.Mutex // guards sum, read by Summary from other goroutines
	sum Summary

	// FTPS (tls.go).
	tlsBase      *tls.Config // from SetTLS; nil: no TLS
	tlsCtlConfig *tls.Config // this session's clone (own ticket keys, bound tickets)
	tlsKeys      [][32]byte
	tlsTag       []byte
	tlsCtl       *tls.Conn // the control connection once TLS is up
	rawConn      net.Conn  // the TCP connection under tlsCtl
	pbsz, protP  bool
	readerSwap   chan readerSwap // readLoop waits on it after an AUTH line
	lineBuffered bool            // plain bytes followed the AUTH line being handled
}

// readerSwap tells the reader what to read after an AUTH line: conn, or
// the same stream when conn is nil.
type readerSwap struct{ conn net.Conn }

// NewSession prepares a session on an accepted control connection. Serve
// runs it; the session owns conn from then on and closes it.
func NewSession(conn net.Conn, cfg Config, auth Authenticator, events EventSink) *Session {
	s := &Session{
		conn:       conn,
		cfg:        cfg,
		auth:       auth,
		events:     events,
		cwd:        "/",
		facts:      allFacts,
		lines:      make(chan ctlLine, 16),
		stop:       make(chan struct{}),
		readerDone: make(chan struct{}),
		readerSwap: make(chan readerSwap),
	}
	s.w = bufio.NewWriterSize(conn, 4096)
	s.localIP = addrIP(conn.LocalAddr())
	s.peerIP = addrIP(conn.RemoteAddr())
	return s
}

// addrIP extracts the unmapped IP of a TCP address ("::ffff:1.2.3.4"
// becomes 1.2.3.4, so that IPv4 clients of a dual-stack listener compare
// equal to their PORT arguments).
func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Summary reports the session's counters; it is safe to call at any time
// from any goroutine.
func (s *Session) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

// Serve greets the client and runs the session until QUIT, a fatal error, a
// timeout, or ctx is done (server shutdown). It closes the control
// connection before it returns. It returns nil when the client quits or
// disconnects, ErrIdleTimeout / ErrLoginTimeout / ErrTooManyAttempts /
// ErrShutdown (wrapping ctx's error) when the session ended it, and the
// underlying error for I/O failures and refused logins.
func (s *Session) Serve(ctx context.Context) error {
	s.ctx = ctx
	if s.cfg.Implicit {
		// Implicit FTPS: TLS from the first byte, before the greeting.
		if s.tlsBase == nil {
			_ = s.conn.Close()
			return errors.New("ftps: implicit TLS without a TLS configuration")
		}
		if err := s.startTLS(); err != nil {
			_ = s.conn.Close()
			return err
		}
		s.pbsz = true
	}
	go s.readLoop()
	defer s.cleanup()

	banner := s.cfg.Banner
	if banner == "" {
		banner = "FTP server ready."
	}
	s.reply(220, banner)

	var loginDeadline time.Time
	if s.cfg.LoginTimeout > 0 {
		loginDeadline = time.Now().Add(s.cfg.LoginTimeout)
	}
	lastActivity := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	progressTick := time.NewTicker(time.Second)
	defer progressTick.Stop()
	shutdown := ctx.Done()

	for {
		if s.werr != nil {
			return s.werr
		}
		if s.done {
			return s.endErr
		}
		if s.xfer == nil {
			// Between commands, a shutdown wins over queued work.
			select {
			case <-shutdown:
				s.reply(421, "Server shutting down, closing control connection.")
				return fmt.Errorf("%w: %w", ErrShutdown, context.Cause(ctx))
			default:
			}
			if len(s.pending) > 0 {
				l := s.pending[0]
				s.pending[0] = ctlLine{}
				s.pending = s.pending[1:]
				s.handleLine(l)
				lastActivity = time.Now()
				continue
			}
		}

		lines := s.lines
		if s.xfer != nil && len(s.pending) >= maxPending {
			lines = nil // stop reading; TCP pushes back
		}
		var xferDone <-chan xferResult
		var timeout <-chan time.Time
		var progress <-chan time.Time
		loginExpired := false
		if s.xfer != nil {
			xferDone = s.xfer.done
			if s.xfer.dir != "" {
				progress = progressTick.C
			}
		} else {
			// The idle timer runs between commands only: a long transfer
			// is activity (its own stalls are DataTimeout's business).
			var deadline time.Time
			if s.cfg.IdleTimeout > 0 {
				deadline = lastActivity.Add(s.cfg.IdleTimeout)
			}
			if s.acct == nil && !loginDeadline.IsZero() && (deadline.IsZero() || loginDeadline.Before(deadline)) {
				deadline = loginDeadline
				loginExpired = true
			}
			if !deadline.IsZero() {
				timer.Reset(time.Until(deadline))
				timeout = timer.C
			}
		}

		select {
		case <-shutdown:
			if s.xfer == nil {
				s.reply(421, "Server shutting down, closing control connection.")
				return fmt.Errorf("%w: %w", ErrShutdown, context.Cause(ctx))
			}
			// Let the transfer finish; the supervisor kills us after its
			// grace period. Its reply is followed by the 421.
			s.shutdownAt = true
			shutdown = nil

		case l := <-lines:
			if l.err != nil {
				// The control connection is gone. An upload in flight is
				// allowed to finish (a client may hang up right after
				// sending its data; the stall timeout bounds the wait);
				// cleanup aborts anything else, since nobody is left to be
				// told how it ended.
				if s.xfer != nil && s.xfer.dir == "in" {
					s.finishTransfer(<-s.xfer.done, true)
				}
				if errors.Is(l.err, io.EOF) || errors.Is(l.err, net.ErrClosed) {
					return nil
				}
				return fmt.Errorf("ftp: reading control connection: %w", l.err)
			}
			if s.xfer != nil {
				s.handleDuringTransfer(l)
			} else {
				s.handleLine(l)
			}
			lastActivity = time.Now()

		case <-progress:
			// For the supervisor's view of running transfers (sluice
			// status); it does not go to the audit log.
			t := s.xfer
			s.emit(Event{Kind: "progress", Command: t.verb, Path: t.path, Dir: t.dir,
				Bytes: t.moved.Load(), Size: t.size, Duration: time.Since(t.start)})

		case r := <-xferDone:
			s.finishTransfer(r, false)
			lastActivity = time.Now()
			if s.shutdownAt {
				s.reply(421, "Server shutting down, closing control connection.")
				return fmt.Errorf("%w: %w", ErrShutdown, context.Cause(ctx))
			}

		case <-timeout:
			if loginExpired {
				s.reply(421, "Login timeout, closing control connection.")
				return ErrLoginTimeout
			}
			s.reply(421, "Timeout.")
			return ErrIdleTimeout
		}
	}
}

// readLoop turns the control stream into lines for Serve. It ends when the
// stream does (Serve closes the connection on its way out) or Serve stops
// listening.
func (s *Session) readLoop() {
	defer close(s.readerDone)
	tr := newTelnetReader(s.conn, maxLineLength)
	for {
		b, err := tr.readLine()
		var l ctlLine
		switch {
		case err == nil:
			l.text = string(b)
		case errors.Is(err, errLineTooLong):
			l.tooLong = true
		default:
			l.err = err
		}
		if l.err == nil && !l.tooLong {
			if c, err := parseCommand(l.text); err == nil && c.Verb == "AUTH" {
				l.buffered = tr.r.Buffered() > 0
				l.auth = true
			}
		}
		select {
		case s.lines <- l:
		case <-s.stop:
			return
		}
		if l.err != nil {
			return
		}
		if l.auth {
			// Stop until the AUTH is handled: after "234" the next
			// bytes are a TLS handshake, not a command.
			select {
			case sw := <-s.readerSwap:
				if sw.conn != nil {
					tr = newTelnetReader(sw.conn, maxLineLength)
				}
			case <-s.stop:
				return
			}
		}
	}
}

// cleanup ends the transfer, the listeners and the reader, then closes the
// control connection.
//
// The close lingers briefly: after our FIN (CloseWrite) the reader keeps
// draining what the client still sends until it closes too, or for at most
// lingerTime. Closing a socket with unread input makes the kernel send an
// RST, which can destroy our last reply (221, 421) before the client reads
// it — a client that pipelined commands after QUIT would see a reset
// instead of "221 Goodbye".
func (s *Session) cleanup() {
	if s.xfer != nil {
		s.xfer.abort()
		r := <-s.xfer.done
		s.finishTransfer(r, true)
	}
	s.closeDataSetup()
	close(s.stop)
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = s.conn.SetReadDeadline(time.Now().Add(lingerTime))
		go func() {
			// Unblock the reader if it waits on a full channel: it then
			// sees stop and returns.
			for range s.lines {
			}
		}()
		<-s.readerDone
		close(s.lines)
	}
	_ = s.conn.Close()
	<-s.readerDone
}

// lingerTime bounds the wait for the client's FIN at close.
const lingerTime = time.Second

// handleLine handles one command line outside a transfer.
func (s *Session) handleLine(l ctlLine) {
	s.mu.Lock()
	s.sum.Commands++
	s.mu.Unlock()
	wasRNFR := false
	defer func() {
		// RNTO must immediately follow RNFR (RFC 959 section 4.1.3): any
		// other line, RNTO included, forgets the source.
		if !wasRNFR {
			s.renameFrom = ""
		}
	}()
	if l.tooLong {
		s.reply(errLineTooBig.Code, errLineTooBig.Msg)
		return
	}
	cmd, err := parseCommand(l.text)
	if err != nil {
		code, msg := replyForErr(err, "", opFile)
		s.reply(code, msg)
		return
	}
	s.evPath = ""
	wasRNFR = cmd.Verb == "RNFR"
	s.lineBuffered = l.buffered
	if l.auth && cmd.Verb != "AUTH" {
		s.resumeReader(nil)
	}
	s.dispatch(cmd)
	if s.cfg.LogCommands {
		s.emit(Event{Kind: "command", Command: cmd.Verb, Path: s.evPath, Code: s.lastCode()})
	}
}

// handleDuringTransfer answers the few commands that make sense while a
// transfer runs and queues the rest (RFC 959 section 4.1.3 / 5.4: ABOR and
// STAT are meant for exactly this moment).
func (s *Session) handleDuringTransfer(l ctlLine) {
	if l.tooLong {
		s.pending = append(s.pending, l)
		return
	}
	cmd, err := parseCommand(l.text)
	var handle func()
	switch {
	case err != nil:
	case cmd.Verb == "ABOR":
		handle = s.abortTransfer
	case cmd.Verb == "STAT" && cmd.Arg == "":
		handle = s.statTransfer
	case cmd.Verb == "NOOP":
		// A keep-alive during a long transfer (some clients send one to
		// keep NAT state alive); they wait for this reply, not the 226.
		handle = func() { s.reply(200, "NOOP ok.") }
	}
	if handle == nil {
		s.pending = append(s.pending, l)
		return
	}
	s.mu.Lock()
	s.sum.Commands++
	s.mu.Unlock()
	path := s.xfer.path
	handle()
	if s.cfg.LogCommands {
		s.emit(Event{Kind: "command", Command: cmd.Verb, Path: path, Code: s.lastCode()})
	}
}

func (s *Session) lastCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum.LastCode
}

// emit sends an audit event; a nil sink drops it.
func (s *Session) emit(ev Event) {
	if s.events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	s.events.Emit(ev)
}

// loggedIn reports whether USER/PASS succeeded.
func (s *Session) loggedIn() bool { return s.acct != nil }

// dataTimeout is the configured DataTimeout or a safe default.
func (s *Session) dataTimeout() time.Duration {
	if s.cfg.DataTimeout > 0 {
		return s.cfg.DataTimeout
	}
	return defaultDataTimeout
}

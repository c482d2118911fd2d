package ftp

// FTPS (RFC 4217): AUTH TLS on the control connection, PBSZ/PROT for the
// data connections, and implicit TLS (the whole control connection is TLS
// from the first byte). The engine only drives crypto/tls; the
// certificate, the signer that holds the private key (in the supervisor)
// and the session ticket keys come from the caller through SetTLS.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// TLS modes of a listener or an account (Config.TLS, Account.RequireTLS).
const (
	TLSOff      = "off"      // AUTH TLS refused
	TLSOptional = "optional" // AUTH TLS offered, plain FTP allowed
	TLSRequired = "required" // USER before AUTH TLS gets 530, data without PROT P gets 521
)

// Errors of the data connection's TLS handshake.
var (
	// ErrTLSNoReuse: the data connection did not resume the control
	// connection's TLS session and the account requires it.
	ErrTLSNoReuse = errors.New("ftps: data connection did not resume the control connection's TLS session")
	errTLSData    = errors.New("ftps: data connection TLS handshake failed")
)

// tlsHandshakeTimeout bounds every handshake (control and data).
const tlsHandshakeTimeout = 15 * time.Second

// sessionTagPrefix marks the SessionState.Extra entry that binds a ticket
// to one control session.
const sessionTagPrefix = "sluice-ctl:"

// SetTLS gives the session its TLS configuration: the certificate chain
// with a signer for the key (the key stays with the supervisor). It must
// be called before Serve when Config.TLS is not off or Config.Implicit is
// set. The session clones cfg, installs fresh random ticket keys and binds
// every ticket it issues to this control session (see bindTickets).
func (s *Session) SetTLS(cfg *tls.Config) {
	s.tlsBase = cfg
}

// Secure reports whether the control connection is protected by TLS. The
// worker tells the supervisor, which refuses accounts that require TLS on
// a plain connection.
func (s *Session) Secure() bool { return s.tlsCtl != nil }

// tlsEnabled reports whether FTPS can be used on this session at all.
func (s *Session) tlsEnabled() bool {
	return s.tlsBase != nil && (s.cfg.Implicit || (s.cfg.TLS != "" && s.cfg.TLS != TLSOff))
}

// newTLSConfigs prepares the control and data configurations: a clone of
// the base, with this session's own random ticket keys (they never leave
// the worker and only this control session and its data connections use
// them) and tickets bound to a random per-session tag.
func (s *Session) newTLSConfigs() error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	tag := make([]byte, 16)
	if _, err := rand.Read(tag); err != nil {
		return err
	}
	s.tlsTag = append([]byte(sessionTagPrefix), tag...)
	s.tlsKeys = [][32]byte{key}
	ctl := s.tlsBase.Clone()
	ctl.SetSessionTicketKeys(s.tlsKeys)
	s.bindTickets(ctl, true)
	s.tlsCtlConfig = ctl
	return nil
}

// bindTickets makes cfg issue tickets that carry the session tag and
// accept only tickets that do. A control connection's tickets are always
// tagged; a data connection's only when it itself resumed a tagged ticket
// (a data connection that made a full handshake — a third party, or a
// client that does not reuse sessions — gets untagged tickets, which can
// never satisfy the reuse check later).
func (s *Session) bindTickets(cfg *tls.Config, control bool) {
	tag := s.tlsTag
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if control || cs.DidResume {
			ss.Extra = append(ss.Extra, tag)
		}
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := cfg.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		for _, e := range ss.Extra {
			if subtle.ConstantTimeCompare(e, tag) == 1 {
				return ss, nil
			}
		}
		return nil, nil // not ours: full handshake
	}
}

// dataTLSConfig is the configuration of one data connection.
func (s *Session) dataTLSConfig() *tls.Config {
	c := s.tlsCtlConfig.Clone()
	c.SetSessionTicketKeys(s.tlsKeys)
	s.bindTickets(c, false)
	return c
}

// startTLS runs the server handshake on the raw control connection and
// switches the session to it.
func (s *Session) startTLS() error {
	if s.tlsCtlConfig == nil {
		if err := s.newTLSConfigs(); err != nil {
			return err
		}
	}
	tc := tls.Server(s.conn, s.tlsCtlConfig)
	ctx, cancel := context.WithTimeout(s.ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("ftps: control connection handshake: %w", err)
	}
	s.rawConn = s.conn
	s.conn = tc
	s.tlsCtl = tc
	s.w.Reset(tc)
	return nil
}

// tlsRequired reports whether this session must use TLS for data: the
// listener or the account says so.
func (s *Session) tlsRequired() bool {
	return s.cfg.TLS == TLSRequired || s.cfg.Implicit || (s.acct != nil && s.acct.RequireTLS)
}

// cmdAUTH: RFC 4217 section 4. The reader goroutine stopped after this
// line (see readLoop) and waits for resumeReader, so no byte that follows
// is read as plain text.
func (s *Session) cmdAUTH(arg string) {
	switch {
	case !s.tlsEnabled():
		s.resumeReader(nil)
		s.reply(502, "AUTH not available: TLS is off on this listener.")
		return
	case s.tlsCtl != nil:
		s.resumeReader(nil)
		s.reply(503, "TLS is already active.")
		return
	}
	mech := strings.ToUpper(strings.TrimSpace(arg))
	if mech != "TLS" && mech != "SSL" && mech != "TLS-C" && mech != "TLS-P" {
		s.resumeReader(nil)
		s.reply(504, "AUTH TLS is the only mechanism.")
		return
	}
	if s.lineBuffered {
		// Plain-text bytes after AUTH, before the handshake: the
		// STARTTLS command-injection pattern (CVE-2011-0411). Refuse
		// rather than let them be read as if protected.
		s.reply(421, "Data after AUTH before the TLS handshake; closing control connection.")
		s.end(errors.New("ftps: pipelined data after AUTH"))
		return
	}
	s.reply(234, "Proceed with negotiation.")
	if s.werr != nil {
		return
	}
	if err := s.startTLS(); err != nil {
		s.resumeReader(nil)
		s.werr = err // the connection is in an undefined state
		return
	}
	// RFC 4217 section 4: AUTH resets the login state.
	s.user = ""
	if mech == "TLS-P" || mech == "SSL" {
		s.protP = true
	}
	s.resumeReader(s.conn)
}

// resumeReader lets the reader goroutine go on after an AUTH line, on r
// (the TLS connection) or, when r is nil, on the stream it had.
func (s *Session) resumeReader(r net.Conn) {
	select {
	case s.readerSwap <- readerSwap{conn: r}:
	case <-s.readerDone:
	}
}

// cmdPBSZ: RFC 4217 section 9; only 0 makes sense over TLS.
func (s *Session) cmdPBSZ(arg string) {
	if s.tlsCtl == nil {
		s.reply(503, "PBSZ needs AUTH TLS first.")
		return
	}
	// Any value is answered with PBSZ=0 (the section 8 rule for
	// stream-oriented protection).
	s.pbsz = true
	s.reply(200, "PBSZ=0")
}

// cmdPROT: RFC 4217 section 9; C (clear) and P (private).
func (s *Session) cmdPROT(arg string) {
	if s.tlsCtl == nil {
		s.reply(503, "PROT needs AUTH TLS first.")
		return
	}
	if !s.pbsz {
		s.reply(503, "PROT needs PBSZ 0 first.")
		return
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "P":
		s.protP = true
		s.reply(200, "Protection level set to P.")
	case "C":
		if s.tlsRequired() {
			s.reply(534, "PROT C refused: this server requires encrypted data connections (tls = \"required\").")
			return
		}
		s.protP = false
		s.reply(200, "Protection level set to C.")
	case "S", "E":
		s.reply(536, "Only PROT P and PROT C are supported.")
	default:
		s.reply(504, "Unknown protection level; use P or C.")
	}
}

// cmdCCC: RFC 4217 section 6. Refused: the control connection stays
// encrypted (it would otherwise let an attacker inject commands).
func (s *Session) cmdCCC(string) {
	s.reply(534, "CCC refused: the control connection stays encrypted.")
}

// needProtection replies 521 when TLS is required and PROT P was not set.
func (s *Session) needProtection() bool {
	if s.protP || !s.tlsRequired() {
		return true
	}
	s.reply(521, "Data connections must be encrypted: send PBSZ 0 and PROT P first.")
	return false
}

// dataWrapper returns what runs the TLS handshake on a data connection when PROT P is in
// force, and enforces session reuse unless the account relaxes it.
func (s *Session) dataWrapper() func(ctx context.Context, c net.Conn) (net.Conn, error) {
	if !s.protP || s.tlsCtl == nil {
		return nil
	}
	cfg := s.dataTLSConfig()
	requireReuse := s.acct == nil || s.acct.TLSReuse
	return func(ctx context.Context, c net.Conn) (net.Conn, error) {
		bc := &batchConn{Conn: c, r: bufio.NewReaderSize(c, batchSize)}
		tc := tls.Server(bc, cfg)
		hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w: %v", errTLSData, err)
		}
		if requireReuse && !tc.ConnectionState().DidResume {
			tc.Close()
			return nil, ErrTLSNoReuse
		}
		bc.start()
		return &tlsData{Conn: tc, bc: bc}, nil
	}
}

// batchConn sits under a data connection's tls.Conn. Once the handshake
// is done it gathers the records of one Write (crypto/tls writes each
// 16 KiB record with its own syscall) into one large write: a 2 GiB RETR
// makes 8 Ki writes instead of 128 Ki; tlsData flushes it after each
// Write, after each Read (a TLS 1.3 KeyUpdate answer) and on Close. Reads
// go through a large buffer too (crypto/tls reads record by record).
type batchConn struct {
	net.Conn
	r   *bufio.Reader
	mu  sync.Mutex
	buf *bufio.Writer // nil until start
}

func (b *batchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

const batchSize = 256 << 10

func (b *batchConn) start() {
	b.mu.Lock()
	b.buf = bufio.NewWriterSize(b.Conn, batchSize+1024)
	b.mu.Unlock()
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return b.Conn.Write(p)
	}
	return b.buf.Write(p)
}

func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil || b.buf.Buffered() == 0 {
		return nil
	}
	return b.buf.Flush()
}

func (b *batchConn) Close() error {
	// tls.Conn.Close has sent close_notify (into the buffer) and set the
	// write deadline to "now": give the flush its own short deadline.
	b.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	ferr := b.flush()
	if err := b.Conn.Close(); err != nil {
		return err
	}
	return ferr
}

// tlsData is a PROT P data connection.
type tlsData struct {
	*tls.Conn
	bc *batchConn
}

func (d *tlsData) Write(p []byte) (int, error) {
	n, err := d.Conn.Write(p)
	if ferr := d.bc.flush(); err == nil {
		err = ferr
	}
	return n, err
}

func (d *tlsData) Read(p []byte) (int, error) {
	n, err := d.Conn.Read(p)
	d.bc.flush()
	return n, err
}

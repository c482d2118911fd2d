package ftp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// cmdPASV opens a passive listener (RFC 959 section 4.1.2). PASV can only
// carry an IPv4 address, so on an IPv6 control connection the client must
// use EPSV.
func (s *Session) cmdPASV(string) {
	if !s.passiveAllowed("PASV") {
		return
	}
	if !s.localIP.Is4() {
		s.reply(522, "Use EPSV (IPv6 control connection).")
		return
	}
	adv := s.localIP
	if s.cfg.PassiveAddress != "" {
		// A NAT's public address. A bad value is a configuration error the
		// config loader should catch; here we fall back to the local
		// address rather than advertise garbage.
		if a, err := netip.ParseAddr(s.cfg.PassiveAddress); err == nil && a.Unmap().Is4() {
			adv = a.Unmap()
		}
	}
	port, ok := s.openPassive()
	if !ok {
		return
	}
	text, err := formatPASV(adv, port)
	if err != nil {
		s.closeDataSetup()
		s.reply(425, "Cannot open passive connection.")
		return
	}
	s.reply(227, text)
}

// cmdEPSV: RFC 2428 section 3. "EPSV ALL" promises that the client will
// use nothing else, after which PORT, EPRT and PASV are refused.
func (s *Session) cmdEPSV(arg string) {
	proto, all, err := parseEPSVArg(arg)
	switch {
	case errors.Is(err, errEPSVProtocol):
		s.replyf(522, "Network protocol not supported, use (%d).", s.family())
		return
	case err != nil:
		s.reply(501, "Syntax error in EPSV argument.")
		return
	case all:
		s.epsvAll = true
		s.reply(200, "EPSV ALL ok.")
		return
	}
	if !s.passiveAllowed("EPSV") {
		return
	}
	if proto != 0 && proto != s.family() {
		// We listen on the control connection's address, so only its
		// family is possible.
		s.replyf(522, "Network protocol not supported, use (%d).", s.family())
		return
	}
	port, ok := s.openPassive()
	if !ok {
		return
	}
	s.replyf(229, "Entering Extended Passive Mode (|||%d|)", port)
}

// cmdPORT: RFC 959 section 4.1.2, restricted against the FTP bounce attack
// (RFC 2577 section 3): the address must be the client's own and the port
// unprivileged.
func (s *Session) cmdPORT(arg string) {
	if !s.activeAllowed("PORT") {
		return
	}
	ap, err := parsePORT(arg)
	if err != nil {
		s.reply(500, "Illegal PORT command.")
		return
	}
	s.setActive(ap, "PORT")
}

// cmdEPRT: RFC 2428 section 2, with the same bounce restrictions as PORT.
func (s *Session) cmdEPRT(arg string) {
	if !s.activeAllowed("EPRT") {
		return
	}
	ap, err := parseEPRT(arg)
	switch {
	case errors.Is(err, errEPRTProtocol):
		s.reply(522, "Network protocol not supported, use (1,2).")
		return
	case err != nil:
		s.reply(500, "Illegal EPRT command.")
		return
	}
	s.setActive(ap, "EPRT")
}

func (s *Session) setActive(ap netip.AddrPort, verb string) {
	if ap.Addr().Unmap() != s.peerIP.WithZone("") || ap.Port() < 1024 {
		s.replyf(501, "%s refused: active mode only to your own address and ports >= 1024.", verb)
		return
	}
	s.closeDataSetup()
	// Dial the peer's own address (with its zone, for link-local IPv6):
	// it is what was just checked.
	s.active = netip.AddrPortFrom(s.peerIP, ap.Port())
	s.replyf(200, "%s command successful. Consider using EPSV.", verb)
}

func (s *Session) passiveAllowed(verb string) bool {
	if !s.cfg.AllowPassive {
		s.replyf(502, "%s refused: passive mode is disabled on this server; use PORT or EPRT.", verb)
		return false
	}
	if verb == "PASV" && s.epsvAll {
		s.reply(501, "PASV not allowed after EPSV ALL.")
		return false
	}
	return true
}

func (s *Session) activeAllowed(verb string) bool {
	if !s.cfg.AllowActive {
		s.replyf(502, "%s refused: active mode is disabled on this server; use EPSV or PASV.", verb)
		return false
	}
	if s.epsvAll {
		s.replyf(501, "%s not allowed after EPSV ALL.", verb)
		return false
	}
	return true
}

// family is the RFC 2428 protocol number of the control connection.
func (s *Session) family() int {
	if s.localIP.Is4() {
		return 1
	}
	return 2
}

// openPassive replaces any previous data setup with a new listener on the
// control connection's local address and replies 425 if none can be made.
func (s *Session) openPassive() (uint16, bool) {
	s.closeDataSetup()
	ln, err := listenPassive(s.ctx, s.localIP, s.cfg.PassivePortMin, s.cfg.PassivePortMax)
	if err != nil {
		s.reply(425, "Cannot open passive connection: no free port.")
		return 0, false
	}
	s.pasv = ln
	return uint16(ln.Addr().(*net.TCPAddr).Port), true
}

// listenPassive listens on ip at a port of min..max, starting at a random
// one (so ports are not predictable) and trying each in turn. A zero or
// inverted range means "any port". MPTCP is off: its sockets are not
// subject to Landlock's TCP rules.
func listenPassive(ctx context.Context, ip netip.Addr, min, max int) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	if min <= 0 || max <= 0 || max < min || max > 65535 {
		return lc.Listen(ctx, "tcp", netip.AddrPortFrom(ip, 0).String())
	}
	n := max - min + 1
	start := rand.IntN(n)
	var lastErr error
	for i := 0; i < n; i++ {
		port := min + (start+i)%n
		ln, err := lc.Listen(ctx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			return ln, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("ftp: no free passive port in %d-%d: %w", min, max, lastErr)
}

// closeDataSetup forgets a pending PASV listener or PORT address.
func (s *Session) closeDataSetup() {
	if s.pasv != nil {
		_ = s.pasv.Close()
		s.pasv = nil
	}
	s.active = netip.AddrPort{}
}

func portOf(ln net.Listener) string {
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		return strconv.Itoa(ta.Port)
	}
	return ln.Addr().String()
}

// haveDataSetup reports whether a transfer command can get a connection.
func (s *Session) haveDataSetup() bool { return s.pasv != nil || s.active.IsValid() }

// errDataTimeout is the error of a data connection that did not come.
var errDataTimeout = errors.New("no data connection in time")

// takeDataSetup hands the pending listener or address to a transfer and
// returns how that transfer gets its connection. Either way the setup is
// used once: clients send PASV/PORT before every transfer.
func (s *Session) takeDataSetup(t *transfer) func(ctx context.Context) (net.Conn, error) {
	open := s.openData(t)
	wrap := s.dataWrapper()
	if wrap == nil {
		return open
	}
	return func(ctx context.Context) (net.Conn, error) {
		c, err := open(ctx)
		if err != nil {
			return nil, err
		}
		return wrap(ctx, c)
	}
}

// openData is takeDataSetup without TLS.
func (s *Session) openData(t *transfer) func(ctx context.Context) (net.Conn, error) {
	timeout := s.dataTimeout()
	peer := s.peerIP
	if ln := s.pasv; ln != nil {
		s.pasv = nil
		t.ln = ln
		return func(ctx context.Context) (net.Conn, error) {
			defer ln.Close()
			return acceptFrom(ln, peer, time.Now().Add(timeout), &t.refused)
		}
	}
	addr := s.active
	s.active = netip.AddrPort{}
	local := s.localIP
	return func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{
			Timeout:   timeout,
			LocalAddr: &net.TCPAddr{IP: local.AsSlice(), Zone: local.Zone()},
		}
		d.SetMultipathTCP(false)
		c, err := d.DialContext(ctx, "tcp", addr.String())
		if err != nil {
			return nil, fmt.Errorf("ftp: active data connection to %s: %w", addr, err)
		}
		return c, nil
	}
}

// acceptFrom accepts the data connection, but only from the control
// connection's peer: anyone else who races to the advertised port (port
// stealing, RFC 2577 section 5) is closed and the wait goes on until the
// deadline. refused counts them, for the audit record.
func acceptFrom(ln net.Listener, peer netip.Addr, deadline time.Time, refused *int) (net.Conn, error) {
	if dl, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
		_ = dl.SetDeadline(deadline)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errDataTimeout
			}
			return nil, fmt.Errorf("ftp: accepting data connection: %w", err)
		}
		if addrIP(c.RemoteAddr()) == peer {
			return c, nil
		}
		*refused++
		_ = c.Close()
	}
}

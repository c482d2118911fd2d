package ftp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Errors of the pure address parsers.
var (
	errPORTSyntax   = errors.New("malformed PORT argument")
	errEPRTSyntax   = errors.New("malformed EPRT argument")
	errEPRTProtocol = errors.New("unsupported EPRT network protocol")
	errEPSVSyntax   = errors.New("malformed EPSV argument")
	errEPSVProtocol = errors.New("unsupported EPSV network protocol")
	errNotIPv4PASV  = errors.New("PASV needs an IPv4 address")
)

// parsePORT parses the argument of PORT (RFC 959 section 4.1.2):
// "h1,h2,h3,h4,p1,p2", six decimal numbers 0..255. Surrounding spaces are
// tolerated; nothing else is.
func parsePORT(arg string) (netip.AddrPort, error) {
	fields := strings.Split(strings.TrimSpace(arg), ",")
	if len(fields) != 6 {
		return netip.AddrPort{}, errPORTSyntax
	}
	var b [6]byte
	for i, f := range fields {
		v, ok := parseDecimal(f, 255)
		if !ok {
			return netip.AddrPort{}, errPORTSyntax
		}
		b[i] = byte(v)
	}
	ip := netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
	return netip.AddrPortFrom(ip, uint16(b[4])<<8|uint16(b[5])), nil
}

// parseEPRT parses the argument of EPRT (RFC 2428 section 2):
// "<d><net-prt><d><net-addr><d><tcp-port><d>", where d is one character in
// ASCII 33..126 ("|" recommended), net-prt 1 (IPv4, dotted decimal) or 2
// (IPv6, RFC 4291 text form). An unknown protocol yields errEPRTProtocol so
// the caller can answer 522 with the protocols we do support. IPv6 zones are
// refused: the address must equal the control peer, which has none.
func parseEPRT(arg string) (netip.AddrPort, error) {
	if len(arg) < 2 || arg[0] < 33 || arg[0] > 126 {
		return netip.AddrPort{}, errEPRTSyntax
	}
	d := string(arg[0])
	parts := strings.Split(arg[1:], d)
	// "|1|a|p|" splits into ["1","a","p",""].
	if len(parts) != 4 || parts[3] != "" {
		return netip.AddrPort{}, errEPRTSyntax
	}
	proto, addr, port := parts[0], parts[1], parts[2]
	p, ok := parseDecimal(port, 65535)
	if !ok || p == 0 {
		return netip.AddrPort{}, errEPRTSyntax
	}
	switch proto {
	case "1":
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is4() {
			return netip.AddrPort{}, errEPRTSyntax
		}
		return netip.AddrPortFrom(ip, uint16(p)), nil
	case "2":
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return netip.AddrPort{}, errEPRTSyntax
		}
		return netip.AddrPortFrom(ip, uint16(p)), nil
	default:
		if _, ok := parseDecimal(proto, 1<<16); !ok {
			return netip.AddrPort{}, errEPRTSyntax
		}
		return netip.AddrPort{}, errEPRTProtocol
	}
}

// parseDecimal accepts 1..5 ASCII digits with a value <= max.
func parseDecimal(s string, max int) (int, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, v <= max
}

// formatPASV renders the 227 reply text for an IPv4 address and port, in the
// form of RFC 959 section 4.2 ("227 Entering Passive Mode
// (h1,h2,h3,h4,p1,p2)."), which is what every client's regexp expects.
func formatPASV(ip netip.Addr, port uint16) (string, error) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return "", errNotIPv4PASV
	}
	b := ip.As4()
	return fmt.Sprintf("Entering Passive Mode (%d,%d,%d,%d,%d,%d).",
		b[0], b[1], b[2], b[3], port>>8, port&0xff), nil
}

// parseEPSVArg parses EPSV's optional argument (RFC 2428 section 3): ""
// (any protocol), "1", "2" or "ALL". It returns the protocol number (0 for
// none) and whether it was ALL.
func parseEPSVArg(arg string) (proto int, all bool, err error) {
	arg = strings.TrimSpace(arg)
	switch {
	case arg == "":
		return 0, false, nil
	case strings.EqualFold(arg, "ALL"):
		return 0, true, nil
	case arg == "1":
		return 1, false, nil
	case arg == "2":
		return 2, false, nil
	}
	if _, ok := parseDecimal(arg, 1<<16); ok {
		return 0, false, errEPSVProtocol
	}
	return 0, false, errEPSVSyntax
}

package ftp

import (
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-ftp/sluice/datapath"
)

// cmdSpec describes one verb.
type cmdSpec struct {
	// fn handles the command; nil means "recognised, not implemented"
	// (502, RFC 959 section 4.2) as opposed to unknown (500).
	fn func(s *Session, arg string)
	// preLogin allows the command before USER/PASS succeeded.
	preLogin bool
}

// commands is the dispatch table. It is filled in init because HELP reads
// it, which would otherwise be an initialisation cycle.
var commands map[string]cmdSpec

func init() {
	commands = map[string]cmdSpec{
		// Access control (RFC 959 section 4.1.1).
		"USER": {fn: (*Session).cmdUSER, preLogin: true},
		"PASS": {fn: (*Session).cmdPASS, preLogin: true},
		"ACCT": {fn: (*Session).cmdACCT},
		"CWD":  {fn: (*Session).cmdCWD},
		"XCWD": {fn: (*Session).cmdCWD},
		"CDUP": {fn: (*Session).cmdCDUP},
		"XCUP": {fn: (*Session).cmdCDUP},
		"REIN": {fn: (*Session).cmdREIN, preLogin: true},
		"QUIT": {fn: (*Session).cmdQUIT, preLogin: true},
		// Transfer parameters (4.1.2, RFC 2428).
		"PORT": {fn: (*Session).cmdPORT},
		"PASV": {fn: (*Session).cmdPASV},
		"EPRT": {fn: (*Session).cmdEPRT},
		"EPSV": {fn: (*Session).cmdEPSV},
		"TYPE": {fn: (*Session).cmdTYPE},
		"STRU": {fn: (*Session).cmdSTRU},
		"MODE": {fn: (*Session).cmdMODE},
		// Service commands (4.1.3, RFC 3659).
		"RETR": {fn: (*Session).cmdRETR},
		"STOR": {fn: (*Session).cmdSTOR},
		"STOU": {fn: (*Session).cmdSTOU},
		"APPE": {fn: (*Session).cmdAPPE},
		"ALLO": {fn: (*Session).cmdALLO},
		"REST": {fn: (*Session).cmdREST},
		"RNFR": {fn: (*Session).cmdRNFR},
		"RNTO": {fn: (*Session).cmdRNTO},
		"ABOR": {fn: (*Session).cmdABOR},
		"DELE": {fn: (*Session).cmdDELE},
		"RMD":  {fn: (*Session).cmdRMD},
		"XRMD": {fn: (*Session).cmdRMD},
		"MKD":  {fn: (*Session).cmdMKD},
		"XMKD": {fn: (*Session).cmdMKD},
		"PWD":  {fn: (*Session).cmdPWD},
		"XPWD": {fn: (*Session).cmdPWD},
		"LIST": {fn: (*Session).cmdLIST},
		"NLST": {fn: (*Session).cmdNLST},
		"SITE": {fn: (*Session).cmdSITE},
		"AVBL": {fn: (*Session).cmdAVBL},
		"SYST": {fn: (*Session).cmdSYST, preLogin: true},
		"STAT": {fn: (*Session).cmdSTAT},
		"HELP": {fn: (*Session).cmdHELP, preLogin: true},
		"NOOP": {fn: (*Session).cmdNOOP, preLogin: true},
		"FEAT": {fn: (*Session).cmdFEAT, preLogin: true},
		"OPTS": {fn: (*Session).cmdOPTS, preLogin: true},
		"CLNT": {fn: (*Session).cmdCLNT, preLogin: true},
		"SIZE": {fn: (*Session).cmdSIZE},
		"MDTM": {fn: (*Session).cmdMDTM},
		"MFMT": {fn: (*Session).cmdMFMT},
		"MLST": {fn: (*Session).cmdMLST},
		"MLSD": {fn: (*Session).cmdMLSD},
		// Checksums (draft-bryan-ftpext-hash, draft-bryan-ftp-range for
		// HASH, and the legacy X* commands).
		"HASH":    {fn: (*Session).cmdHASH},
		"RANG":    {fn: (*Session).cmdRANG},
		"XCRC":    {fn: (*Session).cmdXCRC},
		"XMD5":    {fn: (*Session).cmdXMD5},
		"XSHA1":   {fn: (*Session).cmdXSHA1},
		"XSHA256": {fn: (*Session).cmdXSHA256},
		// FTPS (RFC 4217, tls.go). AUTH answers 502 where TLS is off,
		// so that clients such as lftp fall back cleanly.
		"AUTH": {fn: (*Session).cmdAUTH, preLogin: true},
		"PBSZ": {fn: (*Session).cmdPBSZ, preLogin: true},
		"PROT": {fn: (*Session).cmdPROT, preLogin: true},
		"CCC":  {fn: (*Session).cmdCCC, preLogin: true},
		// Recognised but not offered: the rest of RFC 2228, SMNT, LANG
		// (RFC 2640), HOST (RFC 7151).
		"ADAT": {preLogin: true}, "MIC": {preLogin: true},
		"CONF": {preLogin: true}, "ENC": {preLogin: true}, "SMNT": {},
		"LANG": {preLogin: true}, "HOST": {preLogin: true},
	}
}

// dispatch runs one parsed command outside a transfer.
func (s *Session) dispatch(cmd command) {
	spec, ok := commands[cmd.Verb]
	if !ok {
		s.reply(500, "Unknown command.")
		return
	}
	if spec.fn == nil {
		s.replyf(502, "%s not implemented.", cmd.Verb)
		return
	}
	if !spec.preLogin && !s.loggedIn() {
		s.reply(530, "Please login with USER and PASS.")
		return
	}
	spec.fn(s, cmd.Arg)
}

func (s *Session) cmdNOOP(string) { s.reply(200, "NOOP ok.") }

// cmdSYST: RFC 959 section 4.1.3; "UNIX Type: L8" is what clients look for
// to choose ls-style LIST parsing and binary defaults.
func (s *Session) cmdSYST(string) { s.reply(215, "UNIX Type: L8") }

func (s *Session) cmdQUIT(string) {
	s.reply(221, "Goodbye.")
	s.done = true
}

// cmdACCT: no accounts beyond USER here (RFC 959: 202 "superfluous").
func (s *Session) cmdACCT(string) { s.reply(202, "ACCT not needed.") }

// cmdALLO: storage is not pre-allocated; RFC 959 says servers that do not
// need ALLO treat it as NOOP, with 202.
func (s *Session) cmdALLO(string) { s.reply(202, "ALLO command ignored.") }

// cmdCLNT records the client's self-description (a de-facto extension;
// FileZilla and others send it).
func (s *Session) cmdCLNT(arg string) {
	s.client = truncate(strings.TrimSpace(arg), 128)
	s.reply(200, "Noted.")
}

func (s *Session) cmdHELP(arg string) {
	arg = strings.ToUpper(strings.TrimSpace(arg))
	if arg != "" {
		if spec, ok := commands[arg]; ok && spec.fn != nil {
			s.replyf(214, "%s is implemented.", arg)
		} else {
			s.reply(502, "Unknown command; HELP lists the implemented ones.")
		}
		return
	}
	var verbs []string
	for v, spec := range commands {
		if spec.fn != nil {
			verbs = append(verbs, v)
		}
	}
	sort.Strings(verbs)
	var rows []string
	for i := 0; i < len(verbs); i += 8 {
		rows = append(rows, strings.Join(verbs[i:min(i+8, len(verbs))], " "))
	}
	s.replyMulti(214, "The following commands are recognized.", rows, "Help OK.")
}

// cmdSITE offers HELP and CHMOD. CHMOD exists because lftp's `mirror -R`
// (and FileZilla's "File permissions…") carry modes over with it; it
// needs the write right and sets permission bits only (the file system
// refuses setuid, setgid and sticky). Every other SITE command is refused.
func (s *Session) cmdSITE(arg string) {
	sub, rest, _ := strings.Cut(strings.TrimSpace(arg), " ")
	switch strings.ToUpper(sub) {
	case "":
		s.reply(501, "SITE needs a subcommand; SITE HELP lists them.")
	case "HELP":
		s.replyMulti(214, "The following SITE commands are recognized.", []string{"CHMOD", "HELP", "QUOTA"}, "Help OK.")
	case "CHMOD":
		s.siteChmod(strings.TrimLeft(rest, " "))
	case "QUOTA":
		s.siteQuota()
	default:
		s.reply(502, "SITE command not supported: this server implements SITE CHMOD, SITE QUOTA and SITE HELP.")
	}
}

// siteChmod handles "SITE CHMOD mode path"; mode is octal, 3 or 4 digits.
func (s *Session) siteChmod(arg string) {
	ms, target, ok := strings.Cut(arg, " ")
	if !ok || target == "" {
		s.reply(501, "Usage: SITE CHMOD mode path (mode in octal, e.g. 644)")
		return
	}
	mode, err := strconv.ParseUint(ms, 8, 32)
	if err != nil || len(ms) > 4 {
		s.reply(501, "SITE CHMOD: the mode must be octal, e.g. 644.")
		return
	}
	if mode&^0o777 != 0 {
		s.reply(550, "SITE CHMOD: only permission bits (0777) may be set; no setuid, setgid or sticky bits.")
		return
	}
	p, ok := s.resolve(target)
	if !ok || !s.allowed(p, datapath.RightWrite) {
		return
	}
	if err := s.fs.Chmod(p, fs.FileMode(mode)); err != nil {
		s.fail(err, p)
		return
	}
	s.reply(200, "SITE CHMOD command ok.")
}

// features are the FEAT lines (RFC 2389), sorted as most servers do.
func (s *Session) features() []string {
	var tlsFeat []string
	if s.tlsEnabled() {
		tlsFeat = []string{"AUTH TLS", "PBSZ", "PROT"}
	}
	return append(tlsFeat,
		"CLNT",
		"EPRT",
		"EPSV",
		s.hashFeat(),
		"MDTM",
		"MFMT",
		"MLST "+s.facts.feat(),
		"RANG",
		"REST STREAM",
		"SIZE",
		"TVFS",
		"UTF8",
		"XCRC",
		"XMD5",
		"XSHA1",
		"XSHA256",
	)
}

func (s *Session) cmdFEAT(string) {
	s.replyMulti(211, "Features:", s.features(), "End")
}

// cmdOPTS handles OPTS UTF8 (draft-ietf-ftpext-utf-8-option, sent by most
// Windows clients) and OPTS MLST (RFC 3659 section 7.9).
func (s *Session) cmdOPTS(arg string) {
	name, val, _ := strings.Cut(strings.TrimSpace(arg), " ")
	switch strings.ToUpper(name) {
	case "UTF8", "UTF-8":
		switch strings.ToUpper(strings.TrimSpace(val)) {
		case "ON", "":
			s.reply(200, "Always in UTF8 mode.")
		case "OFF":
			// Names are never transcoded; there is nothing to switch off.
			s.reply(200, "UTF8 stays on: names are sent as stored.")
		default:
			s.reply(501, "OPTS UTF8 takes ON or OFF.")
		}
	case "HASH":
		s.optsHash(val)
	case "MLST":
		s.facts = parseFactSet(strings.TrimSpace(val))
		s.reply(200, strings.TrimRight("MLST OPTS "+s.facts.String(), " "))
	case "":
		s.reply(501, "OPTS needs an option name.")
	default:
		s.reply(501, "Option not understood.")
	}
}

// cmdTYPE: RFC 959 section 3.1.1. A (optionally "A N") switches on the
// LF<->CRLF conversion; I and "L 8" are the same binary image on an 8-bit
// host. Telnet/ASA format control and EBCDIC are refused with 504.
func (s *Session) cmdTYPE(arg string) {
	f := strings.Fields(strings.ToUpper(arg))
	switch {
	case len(f) == 1 && f[0] == "A", len(f) == 2 && f[0] == "A" && f[1] == "N":
		s.ascii = true
		s.reply(200, "Switching to ASCII mode.")
	case len(f) == 1 && f[0] == "I", len(f) == 2 && f[0] == "L" && f[1] == "8",
		len(f) == 1 && f[0] == "L8":
		s.ascii = false
		s.reply(200, "Switching to Binary mode.")
	case len(f) >= 1 && (f[0] == "A" || f[0] == "E" || f[0] == "L"):
		s.reply(504, "TYPE not supported for that parameter; use A, A N, I or L 8.")
	default:
		s.reply(501, "Unrecognised TYPE; use A or I.")
	}
}

// cmdMODE: only stream mode (RFC 959 section 3.4.1); REST STREAM (RFC 3659
// section 5) builds on it.
func (s *Session) cmdMODE(arg string) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "S":
		s.reply(200, "Mode set to S.")
	case "B", "C":
		s.reply(504, "Only MODE S (stream) is supported.")
	default:
		s.reply(501, "Unrecognised MODE.")
	}
}

// cmdSTRU: only file structure (RFC 959 section 3.1.2).
func (s *Session) cmdSTRU(arg string) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "F":
		s.reply(200, "Structure set to F.")
	case "R", "P":
		s.reply(504, "Only STRU F (file) is supported.")
	default:
		s.reply(501, "Unrecognised STRU.")
	}
}

// cmdSTAT without argument reports the session (RFC 959: 211); with one it
// lists the path over the control connection (213, see cmdSTATPath).
func (s *Session) cmdSTAT(arg string) {
	if arg != "" {
		s.cmdSTATPath(arg)
		return
	}
	lines := []string{
		"Connected to " + s.peerIP.String(),
		"Logged in as " + s.acct.Name,
	}
	if s.ascii {
		lines = append(lines, "TYPE: ASCII")
	} else {
		lines = append(lines, "TYPE: BINARY")
	}
	switch {
	case s.pasv != nil:
		lines = append(lines, "Data connection: passive, listening on port "+portOf(s.pasv))
	case s.active.IsValid():
		lines = append(lines, "Data connection: active, to "+s.active.String())
	default:
		lines = append(lines, "No data connection")
	}
	if s.rest > 0 {
		lines = append(lines, fmt.Sprintf("Restart offset: %d", s.rest))
	}
	s.replyMulti(211, "FTP server status:", lines, "End of status")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

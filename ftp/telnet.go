package ftp

import (
	"bufio"
	"errors"
	"io"
)

// Telnet command bytes (RFC 854). The FTP control connection speaks the
// Telnet protocol (RFC 959 section 4.1.3), so these can appear in the stream.
const (
	tnSE   = 240 // end of subnegotiation
	tnDM   = 242 // Data Mark (the "Synch" sent with TCP urgent data)
	tnIP   = 244 // Interrupt Process (sent before ABOR, RFC 959 section 4.1.3)
	tnSB   = 250 // begin subnegotiation
	tnWILL = 251
	tnWONT = 252
	tnDO   = 253
	tnDONT = 254
	tnIAC  = 255
)

// errLineTooLong is returned by readLine for a line longer than the limit;
// the rest of that line has been discarded and the reader is ready for the
// next one.
var errLineTooLong = errors.New("command line too long")

// telnetReader turns the control byte stream into command lines.
//
// It removes Telnet commands: IAC IP, IAC DM, IAC AO and the other two-byte
// commands are dropped; IAC WILL/WONT/DO/DONT <option> (three bytes) are
// ignored (we never negotiate options, RFC 1123 section 4.1.2.12 lets an FTP
// server refuse them silently); IAC SB ... IAC SE is skipped; IAC IAC is a
// literal 0xFF byte. This is what lets "IAC IP IAC DM ABOR" — the abort
// sequence of RFC 959 section 4.1.3, sent by curl and Python's ftplib and
// delivered inline because the supervisor sets SO_OOBINLINE — parse as ABOR.
//
// Lines end at LF; a CR right before the LF is removed, so both CRLF (the
// standard) and bare LF (sent by some scripts) work.
type telnetReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newTelnetReader(r io.Reader, max int) *telnetReader {
	return &telnetReader{r: bufio.NewReaderSize(r, 4096), max: max}
}

// readLine returns the next line without Telnet commands and terminator. The
// returned slice is valid until the next call. At the end of the stream it
// returns io.EOF (a partial last line without LF is dropped: a command is
// only complete once terminated). A line longer than max bytes yields
// errLineTooLong once the whole line has been consumed.
func (t *telnetReader) readLine() ([]byte, error) {
	t.buf = t.buf[:0]
	tooLong := false
	for {
		c, err := t.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == tnIAC {
			lit, ok, err := t.telnetCommand()
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			c = lit
		} else if c == '\n' {
			if n := len(t.buf); n > 0 && t.buf[n-1] == '\r' {
				t.buf = t.buf[:n-1]
			}
			if tooLong || len(t.buf) > t.max {
				return nil, errLineTooLong
			}
			return t.buf, nil
		}
		// Keep at most max+1 bytes: one more than allowed may still be a CR
		// that the LF will strip; beyond that the line is too long anyway
		// and we only read on to find its end.
		if len(t.buf) > t.max {
			tooLong = true
			continue
		}
		t.buf = append(t.buf, c)
	}
}

// telnetCommand handles the bytes after an IAC. It reports a literal byte
// (ok=true) for IAC IAC and ok=false for commands that are dropped.
func (t *telnetReader) telnetCommand() (lit byte, ok bool, err error) {
	c, err := t.r.ReadByte()
	if err != nil {
		return 0, false, err
	}
	switch c {
	case tnIAC:
		return tnIAC, true, nil
	case tnWILL, tnWONT, tnDO, tnDONT:
		// Option negotiation: swallow the option byte, answer nothing.
		if _, err := t.r.ReadByte(); err != nil {
			return 0, false, err
		}
		return 0, false, nil
	case tnSB:
		// Subnegotiation: skip through IAC SE. IAC IAC inside is data.
		for {
			b, err := t.r.ReadByte()
			if err != nil {
				return 0, false, err
			}
			if b != tnIAC {
				continue
			}
			b, err = t.r.ReadByte()
			if err != nil {
				return 0, false, err
			}
			if b == tnSE {
				return 0, false, nil
			}
		}
	default:
		// IP, DM, AO, AYT, EC, EL, GA, NOP, BRK, SE and anything else: a
		// two-byte command with no meaning for an FTP server's input.
		return 0, false, nil
	}
}

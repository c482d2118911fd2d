package ftp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Replies are written only by the session's main loop (never by a transfer
// goroutine), so their order on the wire is the order of the decisions and
// no lock is needed.

// reply sends a single-line reply "ddd text".
func (s *Session) reply(code int, msg string) {
	s.write(code, "", nil, msg)
}

// replyf is reply with formatting.
func (s *Session) replyf(code int, format string, args ...any) {
	s.reply(code, fmt.Sprintf(format, args...))
}

// replyMulti sends the multi-line form of RFC 959 section 4.2: "ddd-first",
// the body lines, "ddd last". Every body line is prefixed with one SP: RFC
// 2389 requires it for FEAT, RFC 3659 for MLST, and it also keeps a line
// that happens to begin with "ddd " (a file name, say) from ending the reply
// early.
func (s *Session) replyMulti(code int, first string, body []string, last string) {
	s.write(code, first, body, last)
}

// write renders a reply into the buffer and flushes it. All text is
// sanitised so that nothing we echo can contain CR or LF.
func (s *Session) write(code int, first string, body []string, last string) {
	if s.werr != nil {
		return
	}
	c := strconv.Itoa(code)
	w := s.w
	if first != "" || len(body) > 0 {
		w.WriteString(c)
		w.WriteByte('-')
		w.WriteString(sanitizeLine(first))
		w.WriteString("\r\n")
		for _, l := range body {
			w.WriteByte(' ')
			w.WriteString(sanitizeLine(l))
			w.WriteString("\r\n")
		}
	}
	w.WriteString(c)
	w.WriteByte(' ')
	w.WriteString(sanitizeLine(last))
	w.WriteString("\r\n")
	s.flush()
	s.mu.Lock()
	s.sum.LastCode = code
	s.mu.Unlock()
}

// flush writes buffered replies with a deadline, so a client that stops
// reading cannot park the session forever on a full socket buffer.
func (s *Session) flush() {
	if s.werr != nil {
		return
	}
	d := s.cfg.IdleTimeout
	if d <= 0 {
		d = 5 * time.Minute
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(d))
	if err := s.w.Flush(); err != nil {
		s.werr = fmt.Errorf("ftp: writing reply: %w", err)
	}
}

// sanitizeLine replaces CR and LF so that text taken from file names or
// arguments cannot start a new reply line.
func sanitizeLine(s string) string {
	if strings.IndexAny(s, "\r\n") < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// quotePath renders a path for the 257 reply of PWD/MKD: enclosed in double
// quotes, with each embedded quote doubled (RFC 959 Appendix II).
func quotePath(p string) string {
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

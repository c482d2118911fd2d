package ftp

import (
	"errors"
	"fmt"
	"strings"
)

// cmdUSER starts a login (RFC 959 section 4.1.1).
func (s *Session) cmdUSER(arg string) {
	if s.loggedIn() {
		// The worker already runs as this account's uid; another user needs
		// another connection.
		s.reply(530, "Already logged in; reconnect to log in as another user.")
		return
	}
	if s.tlsCtl == nil && (s.cfg.TLS == TLSRequired || s.cfg.Implicit) {
		s.reply(530, "TLS required: send AUTH TLS before USER (tls = \"required\" on this listener).")
		return
	}
	name := strings.TrimSpace(arg)
	if name == "" {
		s.reply(501, "USER needs a user name.")
		return
	}
	s.user = name
	s.reply(331, "Please specify the password.")
}

// cmdPASS completes the login. The password is handed to the
// Authenticator and nowhere else: not to replies, not to events.
func (s *Session) cmdPASS(pass string) {
	if s.loggedIn() {
		s.reply(230, "Already logged in.")
		return
	}
	if s.user == "" {
		s.reply(503, "Login with USER first.")
		return
	}
	user := s.user
	s.user = ""
	acct, err := s.auth.Login(s.ctx, user, pass)
	if err != nil {
		s.loginFailed(err)
		return
	}
	if acct == nil || acct.FS == nil {
		s.reply(421, "Login service error, closing control connection.")
		s.end(fmt.Errorf("ftp: authenticator returned no account for %q", user))
		return
	}
	if s.reinName != "" && acct.Name != s.reinName {
		s.reply(530, "REIN cannot switch accounts: reconnect to log in as another user.")
		return
	}
	s.acct = acct
	s.fs = acct.FS
	s.cwd = "/"
	if home, err := cleanPath("/", acct.Home); err == nil {
		s.cwd = home
	}
	s.loginFails = 0
	s.mu.Lock()
	s.sum.Account = acct.Name
	s.mu.Unlock()
	s.reply(230, "Login successful.")
}

// loginFailed answers a failed PASS.
func (s *Session) loginFailed(err error) {
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		code := refused.Code
		if code != 421 && code != 530 {
			code = 530
		}
		msg := refused.Msg
		if msg == "" {
			msg = "Login refused."
		}
		s.reply(code, msg)
		if code == 421 {
			s.end(fmt.Errorf("ftp: login refused: %w", err))
		}
	case errors.Is(err, ErrBanned):
		s.reply(421, "Service not available, closing control connection.")
		s.end(fmt.Errorf("ftp: login refused: %w", err))
	case errors.Is(err, ErrLoginRefused):
		s.reply(530, "Login refused.")
	case errors.Is(err, ErrBadLogin):
		s.loginFails++
		if s.cfg.MaxLoginAttempts > 0 && s.loginFails >= s.cfg.MaxLoginAttempts {
			s.reply(421, "Login incorrect; too many attempts, closing control connection.")
			s.end(ErrTooManyAttempts)
			return
		}
		s.reply(530, "Login incorrect.")
	case s.ctx.Err() != nil:
		s.reply(421, "Server shutting down, closing control connection.")
		s.end(fmt.Errorf("%w: %w", ErrShutdown, err))
	default:
		// The authenticator (IPC to the supervisor) failed: nothing a retry
		// on this connection would fix.
		s.reply(421, "Login service unavailable, closing control connection.")
		s.end(fmt.Errorf("ftp: login: %w", err))
	}
}

// cmdREIN resets the session to the state right after the greeting (RFC
// 959 section 4.1.1). The worker process has already dropped to the
// account's uid, so a later login may only return to the same account.
func (s *Session) cmdREIN(string) {
	if s.loggedIn() {
		s.reinName = s.acct.Name
	}
	s.acct = nil
	s.fs = nil
	s.user = ""
	s.resetTransferState()
	s.cwd = "/"
	s.reply(220, "Service ready for new user.")
}

// resetTransferState forgets every per-login parameter.
func (s *Session) resetTransferState() {
	s.ascii = false
	s.rest = 0
	s.renameFrom = ""
	s.epsvAll = false
	s.facts = allFacts
	s.algo, s.rangSet = "", false
	s.closeDataSetup()
}

// end makes Serve return err after the current reply.
func (s *Session) end(err error) {
	s.done = true
	s.endErr = err
}

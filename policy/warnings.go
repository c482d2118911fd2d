package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/sluice-ftp/sluice/datapath"
)

// Warnings returns the non-fatal concerns about c, one sentence each, for
// `sluice serve --check` and the start-up log. It is deterministic (same
// config, same list in the same order). It may run argon2id once per
// account named "demo" (to detect the demo password), so call it once at
// load, not per login.
func (c *Config) Warnings() []string {
	var w []string
	add := func(format string, args ...any) { w = append(w, fmt.Sprintf(format, args...)) }

	if c.fileMode != 0 {
		if c.fileMode.Perm()&0o022 != 0 {
			add("config file %s is writable by group or others (mode %04o): whoever can write it controls the server; chmod 600 or 640", c.Source, c.fileMode.Perm())
		} else if c.fileMode.Perm()&0o004 != 0 && len(c.Accounts) > 0 {
			add("config file %s is readable by all users (mode %04o) and holds password hashes; chmod 600 or 640", c.Source, c.fileMode.Perm())
		}
	}

	var exposed []netip.AddrPort // non-loopback listeners (plain FTP)
	for _, ap := range c.FTP.Listen {
		if !ap.Addr().Unmap().IsLoopback() {
			exposed = append(exposed, ap)
		}
	}

	if c.FTP.PassivePortMin > 0 {
		for _, ap := range c.FTP.Listen {
			if pt := int(ap.Port()); pt >= c.FTP.PassivePortMin && pt <= c.FTP.PassivePortMax {
				add("ftp.passive_ports %d-%d includes the listen port %d of %s", c.FTP.PassivePortMin, c.FTP.PassivePortMax, pt, ap)
				break
			}
		}
	}
	if c.TLS.CertFile == "" && c.NeedsTLS() {
		for _, ap := range append(append([]netip.AddrPort(nil), c.FTP.Listen...), c.FTP.ImplicitListen...) {
			if !ap.Addr().Unmap().IsLoopback() {
				add("FTPS on %s uses a generated self-signed certificate: clients cannot verify it; set tls.cert_file and tls.key_file", ap)
				break
			}
		}
	}
	if c.FTP.PassiveAddress.IsValid() && !c.FTP.Passive {
		add("ftp.passive_address is set but passive mode is off (ftp.passive = false)")
	}
	if c.Limits.MaxSessionsPerIP > c.Limits.MaxSessions {
		add("limits.max_sessions_per_ip (%d) is above limits.max_sessions (%d) and has no effect", c.Limits.MaxSessionsPerIP, c.Limits.MaxSessions)
	}
	if c.Limits.FailDelay >= c.Limits.LoginTimeout {
		add("limits.fail_delay (%s) is not shorter than limits.login_timeout (%s): a client that mistypes its password times out", fmtDur(c.Limits.FailDelay), fmtDur(c.Limits.LoginTimeout))
	}
	if c.Limits.BanAfterFailures == 0 && len(exposed) > 0 {
		add("limits.ban_after_failures is 0: password guessing from the network is never banned")
	}

	enabled := 0
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if a.Disabled {
			continue
		}
		enabled++
		if isDemo(a) {
			if a.loopbackOnly() {
				add("demo account %s/demo is enabled (loopback only)", a.Name)
			} else {
				add("account %q has the well-known password \"demo\" and may log in from outside loopback: change it (sluice user passwd %s) or restrict allow_from", a.Name, a.Name)
			}
		} else if weakHash(a.Password) {
			add("account %q: its password hash uses less work than OWASP recommends; set the password again with `sluice user passwd %s`", a.Name, a.Name)
		}
		const writeish = datapath.RightWrite | datapath.RightDelete | datapath.RightRename | datapath.RightMkdir
		if len(a.AllowFrom) == 0 && a.rights()&writeish != 0 && len(exposed) > 0 && c.FTP.TLS != TLSRequired && a.TLS != TLSRequired {
			add("account %q may write from any address over plain FTP (listening on %s): passwords cross the network in clear; restrict it with allow_from", a.Name, exposed[0])
		}
		if a.UID == c.Server.WorkerUID && len(exposed) > 0 {
			add("account %q runs as uid %d, the same as the pre-login workers (server.worker_uid): when started as root, a compromised pre-login worker could signal or trace this account's sessions; give accounts their own uid", a.Name, a.UID)
		}
	}
	if enabled == 0 {
		if len(c.Accounts) == 0 {
			add("no accounts are configured: nobody can log in (add one with `sluice user add`)")
		} else {
			add("every account is disabled: nobody can log in")
		}
	}
	return w
}

// isDemo reports whether a's password is "demo": its hash is the embedded
// default's, or it is called demo and the password verifies.
func isDemo(a *Account) bool {
	if a.Password == demoHash() {
		return true
	}
	if !strings.EqualFold(a.Name, "demo") {
		return false
	}
	ok, _ := VerifyPassword(a.Password, "demo")
	return ok
}

// demoHash is the password hash of the embedded default's demo account.
var demoHash = sync.OnceValue(func() string {
	raw, prob := decodeRaw(defaultTOML)
	if prob != nil {
		return ""
	}
	if accts, ok := raw["account"].([]map[string]any); ok && len(accts) > 0 {
		s, _ := accts[0]["password"].(string)
		return s
	}
	return ""
})

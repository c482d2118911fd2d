package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ftp/sluice/datapath"
)

// Defaults of the keys a file leaves out. sluice.example.toml documents the
// same values (and a test holds the two together).
func defaultConfig() Config {
	return Config{
		Server: ServerConfig{
			Name:           "sluice",
			Banner:         "sluice FTP server ready",
			StateDir:       "./var/lib",
			WorkerUID:      DefaultUID,
			WorkerGID:      DefaultGID,
			WorkerPool:     4,
			ShutdownGrace:  30 * time.Second,
			RequireSandbox: true,
		},
		Log: LogConfig{
			Audit:  "stdout",
			Format: "auto",
			Level:  "info",
		},
		FTP: FTPConfig{
			Listen: []netip.AddrPort{
				netip.MustParseAddrPort("127.0.0.1:2121"),
				netip.MustParseAddrPort("[::1]:2121"),
			},
			PassivePortMin: 50000,
			PassivePortMax: 50100,
			Active:         true,
			Passive:        true,
			TLS:            "off",
		},
		Limits: Limits{
			MaxSessions:           500,
			MaxSessionsPerIP:      20,
			MaxSessionsPerAccount: 0,
			LoginTimeout:          30 * time.Second,
			IdleTimeout:           5 * time.Minute,
			DataTimeout:           30 * time.Second,
			MaxLoginAttempts:      3,
			BanAfterFailures:      10,
			BanWindow:             10 * time.Minute,
			BanDuration:           15 * time.Minute,
			FailDelay:             time.Second,
			QuotaWarnings:         []int{80, 95},
		},
		Accounting: defaultAccounting(),
		Metrics:    MetricsConfig{MaxAccounts: defaultMetricsAccounts},
	}
}

// Bounds used by validation.
const (
	maxWorkerPool     = 64
	maxListeners      = 64
	maxSessionsBound  = 1_000_000
	maxFoldersPerAcct = 64 // a login passes one directory fd per folder over SCM_RIGHTS (at most 253)
	maxAllowFrom      = 1024
	maxRightNames     = 16
	maxAuthorizedKeys = 256
	durDay            = 24 * time.Hour
)

var accountNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)

// Parse decodes and validates a configuration. Relative paths in it are
// resolved against baseDir, or against the current directory when baseDir
// is empty. source names the configuration in errors ("/etc/sluice.toml",
// "embedded default").
func Parse(data []byte, baseDir, source string) (*Config, error) {
	if source == "" {
		source = "config"
	}
	if baseDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("%s: resolve relative paths: %w", source, err)
		}
		baseDir = wd
	} else if !filepath.IsAbs(baseDir) {
		abs, err := filepath.Abs(baseDir)
		if err != nil {
			return nil, fmt.Errorf("%s: resolve relative paths: %w", source, err)
		}
		baseDir = abs
	}
	raw, prob := decodeRaw(data)
	if prob != nil {
		return nil, &ConfigError{Source: source, Problems: []*Problem{prob}}
	}
	p := &cfgParser{ps: &problemList{}, base: baseDir}
	c := p.config(raw)
	if len(p.ps.list) > 0 {
		return nil, &ConfigError{Source: source, Problems: p.ps.result()}
	}
	c.Source = source
	return c, nil
}

// decodeRaw decodes TOML text into a generic map. The map, rather than
// Go structs and MetaData.Undecoded, is what the schema walks: Undecoded
// names a key in the third [[account]] only as "account.x", and decoding
// into structs stops at the first type mismatch, whereas every problem
// should be reported, each with its full indexed path.
func decodeRaw(data []byte) (map[string]any, *Problem) {
	if !utf8.Valid(data) {
		return nil, &Problem{Msg: "not valid UTF-8 text"}
	}
	raw := map[string]any{}
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)
			return nil, &Problem{Msg: "TOML syntax error: " + msg}
		}
		return nil, &Problem{Msg: "TOML syntax error: " + err.Error()}
	}
	return raw, nil
}

type cfgParser struct {
	ps   *problemList
	base string
}

func (p *cfgParser) config(raw map[string]any) *Config {
	c := defaultConfig()
	root := &tomlTable{ps: p.ps, m: raw}

	if t := root.sub("server"); t != nil {
		p.server(t, &c.Server)
		t.finish()
	}
	c.Server.StateDir = p.resolve(c.Server.StateDir)
	if t := root.sub("log"); t != nil {
		p.log(t, &c.Log)
		t.finish()
	}
	if t := root.sub("ftp"); t != nil {
		p.ftp(t, &c.FTP)
		t.finish()
	}
	if t := root.sub("limits"); t != nil {
		p.limits(t, &c.Limits)
		t.finish()
	}
	if t := root.sub("metrics"); t != nil {
		p.metrics(t, &c.Metrics)
		t.finish()
	}
	if t := root.sub("accounting"); t != nil {
		p.accounting(t, &c.Accounting)
		t.finish()
	}
	roles := p.roles(root)
	groupIdx, groups := p.groups(root, roles)
	c.Hooks = defaultHooks(c.Server.StateDir)
	if t := root.sub("hooks"); t != nil {
		p.hooksTable(t, &c.Hooks)
		t.finish()
	}
	for _, t := range root.subArray("hook") {
		if h, ok := p.hook(t, groupIdx); ok {
			c.HookList = append(c.HookList, h)
		}
		t.finish()
	}
	if len(c.HookList) > maxHooks {
		p.ps.add("hook", "%d hooks; at most %d", len(c.HookList), maxHooks)
	}
	if t := root.sub("tls"); t != nil {
		p.tls(t, &c.TLS)
		t.finish()
	}
	if t := root.sub("sftp"); t != nil {
		p.sftp(t, &c.SFTP, &c.FTP)
		t.finish()
	}
	accts := root.subArray("account")
	c.Accounts = make([]Account, 0, len(accts))
	levels := make([]AccountLevel, 0, len(accts))
	for _, t := range accts {
		a, lvl := p.account(t, roles, groupIdx)
		c.Accounts = append(c.Accounts, a)
		levels = append(levels, lvl)
		t.finish()
	}
	root.finish()
	p.crossChecks(&c, accts)
	p.metricsCrossCheck(&c)
	p.resolveAccounts(&c, levels, accts, groupIdx, roles)
	if len(groups) > 0 {
		c.Groups = groups
	}
	for _, r := range roles {
		c.Roles = append(c.Roles, *r)
	}
	slices.SortFunc(c.Roles, func(a, b Role) int { return strings.Compare(a.Name, b.Name) })

	c.index = make(map[string]int, len(c.Accounts))
	for i, a := range c.Accounts {
		if _, dup := c.index[a.Name]; !dup {
			c.index[a.Name] = i
		}
	}
	return &c
}

// resolve makes a path from the file absolute.
func (p *cfgParser) resolve(s string) string {
	if s == "" {
		return ""
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(p.base, s)
	}
	return filepath.Clean(s)
}

// pathValue reads a file-system path key and resolves it.
func (p *cfgParser) pathValue(t *tomlTable, k string, dst *string) bool {
	var s string
	if !t.str(k, &s) {
		return false
	}
	if s == "" {
		t.ps.add(t.key(k), "must not be empty")
		return false
	}
	if strings.ContainsRune(s, 0) {
		t.ps.add(t.key(k), "must not contain NUL")
		return false
	}
	*dst = p.resolve(s)
	return true
}

func (p *cfgParser) server(t *tomlTable, s *ServerConfig) {
	if t.str("name", &s.Name) {
		if s.Name == "" || len(s.Name) > 64 || !oneLine(s.Name) {
			t.ps.add(t.key("name"), "must be 1..64 characters without control characters")
		}
	}
	if t.str("banner", &s.Banner) {
		switch {
		case s.Banner == "":
			t.ps.add(t.key("banner"), "must not be empty")
		case !oneLine(s.Banner):
			t.ps.add(t.key("banner"), "must be one line without control characters (CR/LF would forge FTP replies)")
		case len(s.Banner) > 200:
			t.ps.add(t.key("banner"), "is longer than 200 bytes")
		}
	}
	var dir string
	if p.pathValue(t, "state_dir", &dir) {
		s.StateDir = dir
	}
	hasUID := t.id("worker_uid", &s.WorkerUID)
	hasGID := t.id("worker_gid", &s.WorkerGID)
	var user string
	if t.str("worker_user", &user) && user != "" {
		if hasUID || hasGID {
			t.ps.add(t.key("worker_user"), "give either worker_user or worker_uid/worker_gid, not both")
		} else if uid, gid, err := lookupUser(user); err != nil {
			t.ps.add(t.key("worker_user"), "%v", err)
		} else {
			s.WorkerUID, s.WorkerGID, s.WorkerUser = uid, gid, user
		}
	}
	t.intIn("worker_pool", &s.WorkerPool, 0, maxWorkerPool)
	t.duration("shutdown_grace", &s.ShutdownGrace, 0, durDay)
	t.boolean("require_sandbox", &s.RequireSandbox)
}

func (p *cfgParser) log(t *tomlTable, l *LogConfig) {
	if t.str("audit", &l.Audit) {
		switch l.Audit {
		case "stdout":
		case "":
			t.ps.add(t.key("audit"), `must be "stdout" or a file path, not empty`)
		case "stderr", "-", "/dev/stdout":
			t.ps.add(t.key("audit"), `%q is not supported: use "stdout" or a file path`, l.Audit)
		default:
			if strings.ContainsRune(l.Audit, 0) {
				t.ps.add(t.key("audit"), "must not contain NUL")
			} else {
				l.Audit = p.resolve(l.Audit)
			}
		}
	}
	if t.str("format", &l.Format) {
		if !isOneOf(l.Format, "auto", "json", "pretty") {
			t.ps.add(t.key("format"), "unknown format %q (want auto, json or pretty)", l.Format)
		}
	}
	if t.str("level", &l.Level) {
		if !isOneOf(l.Level, "debug", "info", "warn", "error") {
			t.ps.add(t.key("level"), "unknown level %q (want debug, info, warn or error)", l.Level)
		}
	}
	t.boolean("commands", &l.Commands)
	if t.str("xferlog", &l.Xferlog) && l.Xferlog != "" {
		if isOneOf(l.Xferlog, "stdout", "stderr", "-") {
			t.ps.add(t.key("xferlog"), `must be a file path (or "" for none), not %q`, l.Xferlog)
		} else if strings.ContainsRune(l.Xferlog, 0) {
			t.ps.add(t.key("xferlog"), "must not contain NUL")
		} else {
			l.Xferlog = p.resolve(l.Xferlog)
			if l.Xferlog == l.Audit {
				t.ps.add(t.key("xferlog"), "is the same file as log.audit")
			}
		}
	}
}

func (p *cfgParser) ftp(t *tomlTable, f *FTPConfig) {
	var listen []string
	if t.strList("listen", &listen) {
		f.Listen = nil
		if len(listen) == 0 {
			t.ps.add(t.key("listen"), "must list at least one address (host:port)")
		}
		if len(listen) > maxListeners {
			t.ps.add(t.key("listen"), "%d addresses; at most %d", len(listen), maxListeners)
			listen = nil
		}
		seen := map[netip.AddrPort]int{}
		for i, s := range listen {
			k := fmt.Sprintf("%s[%d]", t.key("listen"), i)
			ap, err := parseListen(s)
			if err != nil {
				t.ps.add(k, "%v", err)
				continue
			}
			if j, dup := seen[ap]; dup {
				t.ps.add(k, "%q duplicates %s[%d]", s, t.key("listen"), j)
				continue
			}
			for other, j := range seen {
				if listenOverlaps(ap, other) {
					t.ps.add(k, "%q overlaps %s[%d] %q: a wildcard address already takes port %d", s, t.key("listen"), j, other, ap.Port())
				}
			}
			seen[ap] = i
			f.Listen = append(f.Listen, ap)
		}
	}
	var pr string
	if t.str("passive_ports", &pr) {
		lo, hi, err := parsePortRange(pr)
		if err != nil {
			t.ps.add(t.key("passive_ports"), "%v", err)
		} else {
			f.PassivePortMin, f.PassivePortMax = lo, hi
		}
	}
	var pa string
	if t.str("passive_address", &pa) && pa != "" {
		a, err := netip.ParseAddr(pa)
		switch {
		case err != nil:
			t.ps.add(t.key("passive_address"), "%q is not an IP address (want an IPv4 address; host names are not resolved)", pa)
		case !a.Is4():
			t.ps.add(t.key("passive_address"), "%q is not an IPv4 address (PASV can only advertise IPv4; IPv6 clients use EPSV)", pa)
		case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			t.ps.add(t.key("passive_address"), "%q cannot be connected to", pa)
		default:
			f.PassiveAddress = a
		}
	}
	if t.str("tls", &f.TLS) && !isOneOf(f.TLS, "off", "optional", "required") {
		t.ps.add(t.key("tls"), "unknown mode %q (want off, optional or required)", f.TLS)
	}
	taken := append(append([]netip.AddrPort(nil), f.Listen...), f.ImplicitListen...)
	f.ImplicitListen = append(f.ImplicitListen, listenList(t, "implicit_listen", taken, "FTP or FTPS listener")...)
	t.boolean("active", &f.Active)
	t.boolean("passive", &f.Passive)
	if !f.Active && !f.Passive {
		t.ps.add(t.key("passive"), "active and passive are both false: no data connection (listings, transfers) could ever be opened")
	}
	t.boolean("verify_on_retr", &f.VerifyOnRetr)
}

// listenList reads the list of listen addresses under key, refusing each
// one that clashes with taken (the listeners read so far, what names
// them) or with an earlier entry of the list.
func listenList(t *tomlTable, key string, taken []netip.AddrPort, what string) []netip.AddrPort {
	var raw []string
	if !t.strList(key, &raw) {
		return nil
	}
	if len(raw) > maxListeners {
		t.ps.add(t.key(key), "%d addresses; at most %d", len(raw), maxListeners)
		return nil
	}
	var out []netip.AddrPort
	for i, s := range raw {
		k := fmt.Sprintf("%s[%d]", t.key(key), i)
		ap, err := parseListen(s)
		if err != nil {
			t.ps.add(k, "%v", err)
			continue
		}
		clash := false
		for _, other := range append(taken[:len(taken):len(taken)], out...) {
			if ap == other || listenOverlaps(ap, other) {
				t.ps.add(k, "%q clashes with %q (another %s)", s, other, what)
				clash = true
				break
			}
		}
		if !clash {
			out = append(out, ap)
		}
	}
	return out
}

// parseListen parses "host:port" where host is an IP literal.
func parseListen(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		host, port, herr := splitHostPort(s)
		switch {
		case herr != nil:
			return ap, fmt.Errorf("%q is not host:port (IPv6 hosts in brackets: \"[::1]:21\")", s)
		case host == "":
			return ap, fmt.Errorf("%q has no host: write 0.0.0.0:%s for all IPv4 addresses or [::]:%s for all IPv6 ones", s, port, port)
		case !validPort(port):
			return ap, fmt.Errorf("%q: port %q is not a number in 1..65535", s, port)
		default:
			return ap, fmt.Errorf("%q: host %q is not an IP address (host names are not resolved)", s, host)
		}
	}
	if ap.Port() == 0 {
		return ap, fmt.Errorf("%q: port must be 1..65535", s)
	}
	if ap.Addr().Is4In6() {
		return ap, fmt.Errorf("%q: write IPv4 addresses in IPv4 form", s)
	}
	if a := ap.Addr(); a.IsMulticast() || (a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return ap, fmt.Errorf("%q: cannot listen on a multicast or broadcast address", s)
	}
	return ap, nil
}

func splitHostPort(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", errors.New("missing port")
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", "", errors.New("unbracketed IPv6")
	}
	return host, port, nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535
}

// overlaps reports whether two different listen addresses cannot both be
// bound: same family and port, one of them the wildcard.
func listenOverlaps(a, b netip.AddrPort) bool {
	if a.Port() != b.Port() || a.Addr().Is4() != b.Addr().Is4() {
		return false
	}
	return a.Addr().IsUnspecified() || b.Addr().IsUnspecified()
}

// parsePortRange parses "min-max" (or a single port).
func parsePortRange(s string) (int, int, error) {
	los, his, ok := strings.Cut(s, "-")
	if !ok {
		his = los
	}
	lo, err1 := strconv.Atoi(los)
	hi, err2 := strconv.Atoi(his)
	if err1 != nil || err2 != nil || strings.ContainsAny(s, "+ ") {
		return 0, 0, fmt.Errorf("%q is not a port range such as \"50000-50100\"", s)
	}
	switch {
	case lo < 1024 || hi < 1024:
		return 0, 0, fmt.Errorf("%q: passive ports must be at least 1024", s)
	case lo > 65535 || hi > 65535:
		return 0, 0, fmt.Errorf("%q: ports end at 65535", s)
	case lo > hi:
		return 0, 0, fmt.Errorf("%q is inverted: %d is above %d", s, lo, hi)
	}
	return lo, hi, nil
}

func (p *cfgParser) tls(t *tomlTable, c *TLSConfig) {
	if t.str("cert_file", &c.CertFile) && c.CertFile != "" {
		c.CertFile = p.resolve(c.CertFile)
	}
	if t.str("key_file", &c.KeyFile) && c.KeyFile != "" {
		c.KeyFile = p.resolve(c.KeyFile)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		t.ps.add(t.key("key_file"), "cert_file and key_file go together: set both, or neither for a generated self-signed certificate")
	}
}

func (p *cfgParser) sftp(t *tomlTable, c *SFTPConfig, f *FTPConfig) {
	taken := append(append(append([]netip.AddrPort(nil), f.Listen...), f.ImplicitListen...), c.Listen...)
	c.Listen = append(c.Listen, listenList(t, "listen", taken, "listener")...)
	if t.str("host_key_file", &c.HostKeyFile) && c.HostKeyFile != "" {
		if strings.ContainsRune(c.HostKeyFile, 0) {
			t.ps.add(t.key("host_key_file"), "must not contain NUL")
		} else {
			c.HostKeyFile = p.resolve(c.HostKeyFile)
		}
	}
}

func (p *cfgParser) limits(t *tomlTable, l *Limits) {
	t.intIn("max_sessions", &l.MaxSessions, 1, maxSessionsBound)
	t.intIn("max_sessions_per_ip", &l.MaxSessionsPerIP, 1, maxSessionsBound)
	t.intIn("max_sessions_per_account", &l.MaxSessionsPerAccount, 0, maxSessionsBound)
	t.duration("login_timeout", &l.LoginTimeout, time.Second, time.Hour)
	t.duration("idle_timeout", &l.IdleTimeout, time.Second, durDay)
	t.duration("data_timeout", &l.DataTimeout, time.Second, time.Hour)
	t.intIn("max_login_attempts", &l.MaxLoginAttempts, 1, 100)
	t.intIn("ban_after_failures", &l.BanAfterFailures, 0, 1_000_000)
	t.duration("ban_window", &l.BanWindow, time.Second, 30*durDay)
	t.duration("ban_duration", &l.BanDuration, time.Second, 365*durDay)
	t.duration("fail_delay", &l.FailDelay, 0, time.Minute)
	t.integer("upload_rate", &l.UploadRate, 0, maxRateOrQuota)
	t.integer("download_rate", &l.DownloadRate, 0, maxRateOrQuota)
	quotaWarnings(t, &l.QuotaWarnings)
}

func (p *cfgParser) account(t *tomlTable, roles map[string]*Role, groups map[string]*Group) (Account, AccountLevel) {
	a := Account{UID: DefaultUID, GID: DefaultGID, TLS: "optional", TLSReuse: true}
	var lvl AccountLevel
	if t.str("name", &a.Name) {
		switch {
		case !accountNameRE.MatchString(a.Name):
			t.ps.add(t.key("name"), "%q is not a valid account name (1..64 of a-z A-Z 0-9 . _ -)", a.Name)
		case a.Name == "." || a.Name == "..":
			t.ps.add(t.key("name"), "%q is not a valid account name", a.Name)
		case a.Name[0] == '-':
			t.ps.add(t.key("name"), "%q must not start with '-'", a.Name)
		}
	} else if _, present := t.m["name"]; !present {
		t.ps.add(t.key("name"), "missing: every account needs a name")
	}
	if t.str("password", &a.Password) {
		if err := CheckPasswordHash(a.Password); err != nil {
			t.ps.add(t.key("password"), "%s", strings.TrimPrefix(err.Error(), ErrMalformedHash.Error()+": "))
		}
	} else if _, present := t.m["password"]; !present {
		t.ps.add(t.key("password"), "missing: set one with `sluice user passwd %s`", a.Name)
	}
	t.id("uid", &a.UID)
	t.id("gid", &a.GID)
	var from []string
	if t.strList("allow_from", &from) {
		if len(from) > maxAllowFrom {
			t.ps.add(t.key("allow_from"), "%d networks; at most %d", len(from), maxAllowFrom)
			from = nil
		}
		for i, s := range from {
			pr, err := parseAllow(s)
			if err != nil {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("allow_from"), i), "%v", err)
				continue
			}
			a.AllowFrom = append(a.AllowFrom, pr)
		}
	}
	t.intIn("max_sessions", &a.MaxSessions, 0, maxSessionsBound)
	t.boolean("disabled", &a.Disabled)
	if t.str("tls", &a.TLS) && !isOneOf(a.TLS, "optional", "required") {
		t.ps.add(t.key("tls"), "unknown mode %q (want optional or required)", a.TLS)
	}
	t.boolean("tls_reuse", &a.TLSReuse)
	var keys []string
	if t.strList("authorized_keys", &keys) {
		if len(keys) > maxAuthorizedKeys {
			t.ps.add(t.key("authorized_keys"), "%d keys; at most %d", len(keys), maxAuthorizedKeys)
			keys = nil
		}
		for i, line := range keys {
			pk, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
			switch {
			case err != nil:
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("authorized_keys"), i), "not an authorized_keys line (\"ssh-ed25519 AAAA… comment\"): %v", err)
			case len(strings.TrimSpace(string(rest))) > 0:
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("authorized_keys"), i), "one key per entry")
			default:
				a.AuthorizedKeys = append(a.AuthorizedKeys, pk.Marshal())
				a.AuthorizedKeyLines = append(a.AuthorizedKeyLines, line)
			}
		}
	}
	// Roles, groups and the limits beyond allow_from/max_sessions
	// (policy/roles.go resolves them after all tables are read).
	p.roleNames(t, "roles", &lvl.Roles, roles)
	var gnames []string
	if t.strList("groups", &gnames) {
		for i, g := range gnames {
			switch {
			case groups[g] == nil:
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("groups"), i), "unknown group %q (define it with [[group]] or `sluice group add`)", g)
			case slices.Contains(lvl.Groups, g):
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("groups"), i), "%q is listed twice", g)
			default:
				lvl.Groups = append(lvl.Groups, g)
			}
		}
	}
	a.Groups = lvl.Groups
	a.RoleNames = lvl.Roles
	p.accessLimits(t, &lvl.Limits, false)
	lvl.Limits.AllowFrom = a.AllowFrom
	lvl.Limits.MaxSessions = a.MaxSessions
	canInherit := len(lvl.Roles) > 0 || len(gnames) > 0

	folders := t.subArray("folder")
	if _, present := t.m["folder"]; !present && len(gnames) == 0 {
		t.ps.add(t.key("folder"), "missing: an account needs at least one [[account.folder]] (or a group that has folders)")
	}
	if len(folders) > maxFoldersPerAcct {
		t.ps.add(t.key("folder"), "%d folders; at most %d per account", len(folders), maxFoldersPerAcct)
		folders = nil
	}
	seen := map[string]int{}
	for i, ft := range folders {
		f, ok := p.folder(ft, canInherit)
		ft.finish()
		if ok && f.Role != "" && roles[f.Role] == nil {
			ft.ps.add(ft.key("role"), "unknown role %q", f.Role)
			ok = false
		}
		if !ok {
			continue
		}
		if j, dup := seen[f.Path]; dup {
			ft.ps.add(ft.key("path"), "%q duplicates %s.folder[%d].path", f.Path, t.path, j)
			continue
		}
		seen[f.Path] = i
		a.Folders = append(a.Folders, f)
	}
	lvl.Folders = a.Folders
	return a, lvl
}

// parseAllow parses one allow_from entry: a CIDR prefix, or a bare address
// meaning that host alone.
func parseAllow(s string) (netip.Prefix, error) {
	var pr netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		pr, err = netip.ParsePrefix(s)
		if err != nil {
			return pr, fmt.Errorf("%q is not a CIDR network such as \"192.0.2.0/24\" or \"2001:db8::/32\"", s)
		}
		if m := pr.Masked(); m != pr {
			return pr, fmt.Errorf("%q has host bits set: did you mean %q?", s, m.String())
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return pr, fmt.Errorf("%q is not a CIDR network such as \"192.0.2.0/24\" or an IP address", s)
		}
		if a.Zone() != "" {
			return pr, fmt.Errorf("%q: zones are not allowed", s)
		}
		pr = netip.PrefixFrom(a, a.BitLen())
	}
	if pr.Addr().Is4In6() {
		return pr, fmt.Errorf("%q: write IPv4 networks in IPv4 form (mapped addresses are matched as IPv4)", s)
	}
	return pr, nil
}

// folder reads one [[account.folder]] or [[group.folder]]. Without
// rights it takes its role's, or (canInherit) its account's or group's
// roles' (f.Inherit, resolved by Resolve).
func (p *cfgParser) folder(t *tomlTable, canInherit bool) (Folder, bool) {
	var f Folder
	ok := true
	t.str("role", &f.Role)
	t.integer("quota_bytes", &f.QuotaBytes, 0, maxRateOrQuota)
	t.integer("quota_files", &f.QuotaFiles, 0, maxRateOrQuota)
	if t.str("path", &f.Path) {
		switch {
		case !strings.HasPrefix(f.Path, "/"):
			t.ps.add(t.key("path"), "%q must be absolute (start with /)", f.Path)
			ok = false
		case path.Clean(f.Path) != f.Path:
			t.ps.add(t.key("path"), "%q is not clean: write %q", f.Path, path.Clean(f.Path))
			ok = false
		case !oneLine(f.Path):
			t.ps.add(t.key("path"), "%q contains control characters", f.Path)
			ok = false
		case len(f.Path) > 1024:
			t.ps.add(t.key("path"), "is longer than 1024 bytes")
			ok = false
		}
	} else {
		if _, present := t.m["path"]; !present {
			t.ps.add(t.key("path"), `missing: the folder's virtual path, e.g. "/"`)
		}
		ok = false
	}
	if !p.pathValue(t, "dir", &f.Dir) {
		if _, present := t.m["dir"]; !present {
			t.ps.add(t.key("dir"), "missing: the directory that stores the folder")
		}
		ok = false
	}
	var names []string
	if t.strList("rights", &names) {
		if len(names) == 0 {
			t.ps.add(t.key("rights"), `is empty: list at least one of %s`, datapath.RightWords)
			ok = false
		}
		if len(names) > maxRightNames {
			t.ps.add(t.key("rights"), "%d rights listed; there are only 11 words", len(names))
			ok = false
			names = nil
		}
		seen := map[string]bool{}
		for _, n := range names {
			r, known := datapath.RightByName(n)
			if !known {
				t.ps.add(t.key("rights"), "unknown right %q (want %s)", n, datapath.RightWords)
				ok = false
				continue
			}
			if seen[n] {
				t.ps.add(t.key("rights"), "right %q is listed twice", n)
				ok = false
				continue
			}
			seen[n] = true
			f.Rights |= r
		}
		f.RightNames = names
	} else {
		_, present := t.m["rights"]
		switch {
		case present:
			ok = false
		case f.Role != "" || canInherit:
			f.Inherit = true
		default:
			t.ps.add(t.key("rights"), `missing: e.g. ["list", "read"] (or role = "reader")`)
			ok = false
		}
	}
	return f, ok
}

// crossChecks finds problems that involve more than one key.
func (p *cfgParser) crossChecks(c *Config, accts []*tomlTable) {
	seen := map[string]int{}
	for i, a := range c.Accounts {
		if a.TLS == "required" && !c.NeedsTLS() && i < len(accts) {
			p.ps.add(accts[i].key("tls"), `is "required" but no listener offers FTPS: set ftp.tls or ftp.implicit_listen`)
		}
		if !accountNameRE.MatchString(a.Name) || i >= len(accts) {
			continue // reported already
		}
		k := strings.ToLower(a.Name)
		if j, dup := seen[k]; dup {
			if c.Accounts[j].Name == a.Name {
				p.ps.add(accts[i].key("name"), "%q duplicates account[%d]", a.Name, j)
			} else {
				p.ps.add(accts[i].key("name"), "%q duplicates account[%d] %q (names differing only in case are refused)", a.Name, j, c.Accounts[j].Name)
			}
			continue
		}
		seen[k] = i
	}
}

func isOneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// demoHash0 is the hash of "demo" in default.toml.
const demoHash0 = "$argon2id$v=19$m=19456,t=2,p=1$10UVs830OKIm4BbaKreKSw$AW5/ywMJ0jtgd8QCECOCb+iRc/crklnB80JvU7Ws9p8"

// testHash is the hash of a random password nobody knows.
const testHash = "$argon2id$v=19$m=19456,t=2,p=1$N7FPzhgZt8hed/lo4shAxA$pl0UkkyNhXqpJDRYUjb86WGXiDrEwJLkBhEXooFth+c"

// account is a valid [[account]] block for building test files.
func acctTOML(name string) string {
	return `
[[account]]
name = "` + name + `"
password = "` + testHash + `"
  [[account.folder]]
  path = "/"
  dir = "data"
  rights = ["list", "read"]
`
}

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse([]byte(text), "/srv/sluice", "test.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func problemsOf(t *testing.T, err error) []*Problem {
	t.Helper()
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *ConfigError", err, err)
	}
	return ce.Problems
}

func TestParseMinimalGetsDefaults(t *testing.T) {
	c := mustParse(t, acctTOML("alice"))
	want := defaultConfig()
	want.Server.StateDir = "/srv/sluice/var/lib"
	if !reflect.DeepEqual(c.Server, want.Server) || !reflect.DeepEqual(c.Log, want.Log) ||
		!reflect.DeepEqual(c.FTP, want.FTP) || !reflect.DeepEqual(c.Limits, want.Limits) {
		t.Errorf("defaults:\n got %+v %+v %+v %+v\nwant %+v %+v %+v %+v",
			c.Server, c.Log, c.FTP, c.Limits, want.Server, want.Log, want.FTP, want.Limits)
	}
	if c.Source != "test.toml" {
		t.Errorf("Source = %q", c.Source)
	}
	a := c.Account("alice")
	if a == nil {
		t.Fatal("no account alice")
	}
	if a.UID != DefaultUID || a.GID != DefaultGID || a.MaxSessions != 0 || a.Disabled || len(a.AllowFrom) != 0 {
		t.Errorf("account defaults: %+v", a)
	}
	wantF := []Folder{{Path: "/", Dir: "/srv/sluice/data", Rights: datapath.RightList | datapath.RightRead, RightNames: []string{"list", "read"}}}
	if !reflect.DeepEqual(a.Folders, wantF) {
		t.Errorf("folders = %+v, want %+v", a.Folders, wantF)
	}
}

func TestParseFull(t *testing.T) {
	c := mustParse(t, `
[server]
name = "files"
banner = "Welcome"
state_dir = "/var/lib/sluice"
worker_uid = 990
worker_gid = 991
worker_pool = 0
shutdown_grace = "0s"
require_sandbox = false

[log]
audit = "log/audit.json"
format = "json"
level = "debug"
commands = true
xferlog = "/var/log/xferlog"

[ftp]
listen = ["0.0.0.0:21", "[::]:21", "[fe80::1%eth0]:2121"]
passive_ports = "40000"
passive_address = "203.0.113.7"
active = false

[limits]
max_sessions = 10
max_sessions_per_ip = 2
max_sessions_per_account = 3
login_timeout = "10s"
idle_timeout = "1h30m"
data_timeout = "5s"
max_login_attempts = 1
ban_after_failures = 0
ban_window = "1m"
ban_duration = "24h"
fail_delay = "0s"

[[account]]
name = "bob.smith-2_x"
password = "`+demoHash0+`"
uid = 1001
gid = 1002
allow_from = ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]
max_sessions = 4
disabled = true

  [[account.folder]]
  path = "/"
  dir = "/srv/ftp/bob"
  rights = ["all"]

  [[account.folder]]
  path = "/pub/in"
  dir = "../incoming"
  rights = ["write", "mkdir"]
`)
	want := Config{
		Server: ServerConfig{Name: "files", Banner: "Welcome", StateDir: "/var/lib/sluice", WorkerUID: 990, WorkerGID: 991, WorkerPool: 0, ShutdownGrace: 0, RequireSandbox: false},
		Log:    LogConfig{Audit: "/srv/sluice/log/audit.json", Format: "json", Level: "debug", Commands: true, Xferlog: "/var/log/xferlog"},
		FTP: FTPConfig{
			Listen:         []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:21"), netip.MustParseAddrPort("[::]:21"), netip.MustParseAddrPort("[fe80::1%eth0]:2121")},
			PassivePortMin: 40000, PassivePortMax: 40000,
			PassiveAddress: netip.MustParseAddr("203.0.113.7"),
			Active:         false, Passive: true, TLS: "off",
		},
		Limits: Limits{MaxSessions: 10, MaxSessionsPerIP: 2, MaxSessionsPerAccount: 3, LoginTimeout: 10 * time.Second,
			IdleTimeout: 90 * time.Minute, DataTimeout: 5 * time.Second, MaxLoginAttempts: 1, BanAfterFailures: 0,
			BanWindow: time.Minute, BanDuration: 24 * time.Hour, FailDelay: 0, QuotaWarnings: []int{80, 95}},
		Metrics:    MetricsConfig{MaxAccounts: defaultMetricsAccounts},
		Accounting: defaultAccounting(),
		Accounts: []Account{{
			Name: "bob.smith-2_x", Password: demoHash0, UID: 1001, GID: 1002,
			AllowFrom:   []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.7/32")},
			MaxSessions: 4, Disabled: true, TLS: "optional", TLSReuse: true,
			Folders: []Folder{
				{Path: "/", Dir: "/srv/ftp/bob", Rights: datapath.RightsAll, RightNames: []string{"all"}},
				{Path: "/pub/in", Dir: "/srv/incoming", Rights: datapath.RightsWriting | datapath.RightMkdir, RightNames: []string{"write", "mkdir"}},
			},
			Limits: AccessLimits{MaxSessions: 4, AllowFrom: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.7/32")}},
		}},
		Source: "test.toml",
	}
	c.index, c.fileMode = nil, 0
	if len(c.Roles) != len(BuiltinRoles()) {
		t.Errorf("roles: %v, want the built-in ones", c.Roles)
	}
	want.Roles = c.Roles
	want.Hooks = defaultHooks("/var/lib/sluice")
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", *c, want)
	}
}

// TestParseInvalid checks that each mistake is refused with an error that
// names its key and says why.
func TestParseInvalid(t *testing.T) {
	acct := acctTOML("a")
	folder := func(body string) string {
		return "[[account]]\nname = \"a\"\npassword = \"" + demoHash0 + "\"\n[[account.folder]]\n" + body
	}
	acctWith := func(line string) string {
		return "[[account]]\nname = \"a\"\npassword = \"" + demoHash0 + "\"\n" + line + "\n[[account.folder]]\npath = \"/\"\ndir = \"d\"\nrights = [\"read\"]\n"
	}
	cases := []struct {
		name, text, key, msg string
	}{
		{"syntax", "[ftp\n", "", "TOML syntax error: line 2"},
		{"not utf8", "# \xff\n", "", "UTF-8"},
		{"unknown top-level table", "[webdav]\nlisten = 1\n" + acct, "webdav", "unknown key"},
		{"unknown top-level key", "lisen = 1\n" + acct, "lisen", "unknown key"},
		{"unknown nested key", "[ftp]\nlisen = [\"127.0.0.1:21\"]\n" + acct, "ftp.lisen", `unknown key (did you mean "listen"?)`},
		{"unknown account key", acctWith(`pasword = "x"`), "account[0].pasword", `did you mean "password"?`},
		{"unknown folder key", folder("path = \"/\"\ndir = \"d\"\nrights = [\"read\"]\nright = [\"all\"]\n"), "account[0].folder[0].right", `did you mean "rights"?`},
		{"case typo", "[ftp]\nListen = [\"127.0.0.1:21\"]\n" + acct, "ftp.Listen", `did you mean "listen"?`},
		{"table not a table", "ftp = 1\n" + acct, "ftp", "must be a table"},
		{"account not array", "[account]\nname = \"a\"\n", "account", "must be an array of tables"},
		{"wrong type", "[ftp]\nactive = \"yes\"\n" + acct, "ftp.active", "must be true or false, not a string"},
		{"wrong elem type", "[ftp]\nlisten = [\"127.0.0.1:21\", 21]\n" + acct, "ftp.listen[1]", "must be a string, not an integer"},

		{"server name empty", "[server]\nname = \"\"\n" + acct, "server.name", "1..64"},
		{"accounting mode", "[accounting]\nmode = \"kernel\"\n" + acct, "accounting.mode", "want auto, ebpf or userspace"},
		{"accounting cgroup relative", "[accounting]\ncgroup = \"sluice\"\n" + acct, "accounting.cgroup", "absolute, clean"},
		{"accounting pin_dir root", "[accounting]\npin_dir = \"/\"\n" + acct, "accounting.pin_dir", "below a bpffs mount"},
		{"accounting save_interval", "[accounting]\nsave_interval = \"10ms\"\n" + acct, "accounting.save_interval", "too short"},
		{"quota warnings order", "[limits]\nquota_warnings = [95, 80]\n" + acct, "limits.quota_warnings", "ascend"},
		{"quota warnings range", "[limits]\nquota_warnings = [80, 100]\n" + acct, "limits.quota_warnings[1]", "1 to 99"},
		{"global rate negative", "[limits]\ndownload_rate = -1\n" + acct, "limits.download_rate", "out of range"},
		{"transfer quota period", acctWith(`transfer_quota_period = "week"`), "account[0].transfer_quota_period", "want day or month"},
		{"session rate type", acctWith(`session_upload_rate = "fast"`), "account[0].session_upload_rate", "must be an integer"},
		{"banner crlf", "[server]\nbanner = \"hi\\r\\n230 logged in\"\n" + acct, "server.banner", "one line"},
		{"banner empty", "[server]\nbanner = \"\"\n" + acct, "server.banner", "empty"},
		{"state_dir empty", "[server]\nstate_dir = \"\"\n" + acct, "server.state_dir", "empty"},
		{"worker_uid 0", "[server]\nworker_uid = 0\n" + acct, "server.worker_uid", "root"},
		{"worker_gid negative", "[server]\nworker_gid = -1\n" + acct, "server.worker_gid", "out of range"},
		{"worker_uid huge", "[server]\nworker_uid = 4294967295\n" + acct, "server.worker_uid", "out of range"},
		{"worker_pool", "[server]\nworker_pool = 65\n" + acct, "server.worker_pool", "out of range 0..64"},
		{"shutdown_grace negative", "[server]\nshutdown_grace = \"-1s\"\n" + acct, "server.shutdown_grace", "too short"},
		{"duration integer", "[server]\nshutdown_grace = 30\n" + acct, "server.shutdown_grace", `duration string such as "30s"`},

		{"audit empty", "[log]\naudit = \"\"\n" + acct, "log.audit", "not empty"},
		{"audit stderr", "[log]\naudit = \"stderr\"\n" + acct, "log.audit", "not supported"},
		{"format", "[log]\nformat = \"xml\"\n" + acct, "log.format", `unknown format "xml"`},
		{"level", "[log]\nlevel = \"trace\"\n" + acct, "log.level", `unknown level "trace"`},
		{"xferlog stdout", "[log]\nxferlog = \"stdout\"\n" + acct, "log.xferlog", "must be a file path"},
		{"xferlog = audit", "[log]\naudit = \"a.log\"\nxferlog = \"./a.log\"\n" + acct, "log.xferlog", "same file"},

		{"listen empty", "[ftp]\nlisten = []\n" + acct, "ftp.listen", "at least one"},
		{"listen no port", "[ftp]\nlisten = [\"127.0.0.1\"]\n" + acct, "ftp.listen[0]", "not host:port"},
		{"listen no host", "[ftp]\nlisten = [\":21\"]\n" + acct, "ftp.listen[0]", "has no host"},
		{"listen hostname", "[ftp]\nlisten = [\"localhost:21\"]\n" + acct, "ftp.listen[0]", "not an IP address"},
		{"listen port 0", "[ftp]\nlisten = [\"127.0.0.1:0\"]\n" + acct, "ftp.listen[0]", "1..65535"},
		{"listen port big", "[ftp]\nlisten = [\"127.0.0.1:65536\"]\n" + acct, "ftp.listen[0]", "1..65535"},
		{"listen bare v6", "[ftp]\nlisten = [\"::1:21\"]\n" + acct, "ftp.listen[0]", "brackets"},
		{"listen duplicate", "[ftp]\nlisten = [\"127.0.0.1:21\", \"127.0.0.1:21\"]\n" + acct, "ftp.listen[1]", "duplicates ftp.listen[0]"},
		{"listen overlap", "[ftp]\nlisten = [\"0.0.0.0:21\", \"127.0.0.1:21\"]\n" + acct, "ftp.listen[1]", "overlaps"},
		{"listen mapped", "[ftp]\nlisten = [\"[::ffff:127.0.0.1]:21\"]\n" + acct, "ftp.listen[0]", "IPv4 form"},
		{"passive inverted", "[ftp]\npassive_ports = \"50100-50000\"\n" + acct, "ftp.passive_ports", "inverted"},
		{"passive low", "[ftp]\npassive_ports = \"1000-2000\"\n" + acct, "ftp.passive_ports", "at least 1024"},
		{"passive high", "[ftp]\npassive_ports = \"60000-70000\"\n" + acct, "ftp.passive_ports", "65535"},
		{"passive garbage", "[ftp]\npassive_ports = \"50000:50100\"\n" + acct, "ftp.passive_ports", "not a port range"},
		{"passive signed", "[ftp]\npassive_ports = \"+5000-6000\"\n" + acct, "ftp.passive_ports", "not a port range"},
		{"passive_address v6", "[ftp]\npassive_address = \"2001:db8::1\"\n" + acct, "ftp.passive_address", "not an IPv4"},
		{"passive_address name", "[ftp]\npassive_address = \"ftp.example.com\"\n" + acct, "ftp.passive_address", "not an IP"},
		{"passive_address any", "[ftp]\npassive_address = \"0.0.0.0\"\n" + acct, "ftp.passive_address", "cannot be connected"},
		{"no data modes", "[ftp]\nactive = false\npassive = false\n" + acct, "ftp.passive", "both false"},

		{"max_sessions 0", "[limits]\nmax_sessions = 0\n" + acct, "limits.max_sessions", "out of range"},
		{"per_ip 0", "[limits]\nmax_sessions_per_ip = 0\n" + acct, "limits.max_sessions_per_ip", "out of range"},
		{"per_account negative", "[limits]\nmax_sessions_per_account = -1\n" + acct, "limits.max_sessions_per_account", "out of range"},
		{"login_timeout 0", "[limits]\nlogin_timeout = \"0s\"\n" + acct, "limits.login_timeout", "must be positive"},
		{"idle_timeout unit", "[limits]\nidle_timeout = \"300\"\n" + acct, "limits.idle_timeout", "missing unit"},
		{"data_timeout bad", "[limits]\ndata_timeout = \"soon\"\n" + acct, "limits.data_timeout", "not a duration"},
		{"data_timeout long", "[limits]\ndata_timeout = \"2h\"\n" + acct, "limits.data_timeout", "too long"},
		{"attempts 0", "[limits]\nmax_login_attempts = 0\n" + acct, "limits.max_login_attempts", "out of range"},
		{"ban_after negative", "[limits]\nban_after_failures = -3\n" + acct, "limits.ban_after_failures", "out of range"},
		{"ban_window 0", "[limits]\nban_window = \"0s\"\n" + acct, "limits.ban_window", "positive"},
		{"ban_duration negative", "[limits]\nban_duration = \"-5m\"\n" + acct, "limits.ban_duration", "positive"},
		{"fail_delay negative", "[limits]\nfail_delay = \"-1s\"\n" + acct, "limits.fail_delay", "too short"},
		{"fail_delay float", "[limits]\nfail_delay = 1.5\n" + acct, "limits.fail_delay", "not a float"},

		{"name missing", "[[account]]\npassword = \"" + demoHash0 + "\"\n[[account.folder]]\npath = \"/\"\ndir = \"d\"\nrights = [\"read\"]\n", "account[0].name", "missing"},
		{"name bad char", strings.Replace(acct, `"a"`, `"a b"`, 1), "account[0].name", "not a valid account name"},
		{"name too long", strings.Replace(acct, `"a"`, `"`+strings.Repeat("x", 65)+`"`, 1), "account[0].name", "not a valid account name"},
		{"name empty", strings.Replace(acct, `"a"`, `""`, 1), "account[0].name", "not a valid account name"},
		{"name dotdot", strings.Replace(acct, `"a"`, `".."`, 1), "account[0].name", "not a valid account name"},
		{"name dash", strings.Replace(acct, `"a"`, `"-rf"`, 1), "account[0].name", "must not start with '-'"},
		{"name duplicate", acct + acctTOML("a"), "account[1].name", `"a" duplicates account[0]`},
		{"name duplicate case", acct + acctTOML("A"), "account[1].name", "differing only in case"},
		{"password missing", "[[account]]\nname = \"a\"\n[[account.folder]]\npath = \"/\"\ndir = \"d\"\nrights = [\"read\"]\n", "account[0].password", "missing"},
		{"password plain", strings.Replace(acct, testHash, "hunter2", 1), "account[0].password", "plain-text"},
		{"password bcrypt", strings.Replace(acct, testHash, "$2y$10$abcdefghijklmnopqrstuu5J5Rf5Ww3h5G4dSxD0dKZ6xFhQ9S6Cm", 1), "account[0].password", "not argon2id"},
		{"password huge m", strings.Replace(acct, "m=19456", "m=104857600", 1), "account[0].password", "out of range"},
		{"uid 0", acctWith("uid = 0"), "account[0].uid", "must not be 0 (root)"},
		{"gid 0", acctWith("gid = 0"), "account[0].gid", "must not be 0 (root)"},
		{"uid string", acctWith(`uid = "1000"`), "account[0].uid", "must be an integer, not a string"},
		{"allow_from bad", acctWith(`allow_from = ["10.0.0.0/33"]`), "account[0].allow_from[0]", "not a CIDR"},
		{"allow_from host bits", acctWith(`allow_from = ["10.1.2.3/8"]`), "account[0].allow_from[0]", `did you mean "10.0.0.0/8"?`},
		{"allow_from name", acctWith(`allow_from = ["example.com"]`), "account[0].allow_from[0]", "not a CIDR"},
		{"allow_from mapped", acctWith(`allow_from = ["::ffff:10.0.0.0/104"]`), "account[0].allow_from[0]", "IPv4 form"},
		{"allow_from string", acctWith(`allow_from = "10.0.0.0/8"`), "account[0].allow_from", "must be an array of strings"},
		{"max_sessions negative", acctWith("max_sessions = -1"), "account[0].max_sessions", "out of range"},
		{"disabled string", acctWith(`disabled = "no"`), "account[0].disabled", "true or false"},
		{"no folders", "[[account]]\nname = \"a\"\npassword = \"" + demoHash0 + "\"\n", "account[0].folder", "at least one"},
		{"folder relative", folder("path = \"pub\"\ndir = \"d\"\nrights = [\"read\"]\n"), "account[0].folder[0].path", "must be absolute"},
		{"folder unclean", folder("path = \"/pub/../x\"\ndir = \"d\"\nrights = [\"read\"]\n"), "account[0].folder[0].path", `not clean: write "/x"`},
		{"folder trailing slash", folder("path = \"/pub/\"\ndir = \"d\"\nrights = [\"read\"]\n"), "account[0].folder[0].path", "not clean"},
		{"folder control", folder("path = \"/a\\nb\"\ndir = \"d\"\nrights = [\"read\"]\n"), "account[0].folder[0].path", "control"},
		{"folder path missing", folder("dir = \"d\"\nrights = [\"read\"]\n"), "account[0].folder[0].path", "missing"},
		{"folder dir empty", folder("path = \"/\"\ndir = \"\"\nrights = [\"read\"]\n"), "account[0].folder[0].dir", "must not be empty"},
		{"folder dir missing", folder("path = \"/\"\nrights = [\"read\"]\n"), "account[0].folder[0].dir", "missing"},
		{"folder rights missing", folder("path = \"/\"\ndir = \"d\"\n"), "account[0].folder[0].rights", "missing"},
		{"folder rights empty", folder("path = \"/\"\ndir = \"d\"\nrights = []\n"), "account[0].folder[0].rights", "is empty"},
		{"folder right unknown", folder("path = \"/\"\ndir = \"d\"\nrights = [\"list\", \"wrte\"]\n"), "account[0].folder[0].rights", `unknown right "wrte" (want list, read, write, create, overwrite, append, delete, rename, mkdir, all)`},
		{"folder right twice", folder("path = \"/\"\ndir = \"d\"\nrights = [\"read\", \"read\"]\n"), "account[0].folder[0].rights", "listed twice"},
		{"folder duplicate", folder("path = \"/\"\ndir = \"d\"\nrights = [\"read\"]\n[[account.folder]]\npath = \"/\"\ndir = \"e\"\nrights = [\"read\"]\n"), "account[0].folder[1].path", "duplicates account[0].folder[0].path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "/srv", "t.toml")
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.text)
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 {
				t.Fatalf("want exactly one problem, got %d: %v", len(ps), err)
			}
			if ps[0].Key != tc.key || !strings.Contains(ps[0].Msg, tc.msg) {
				t.Errorf("got %q\nwant key %q and message containing %q", ps[0].Error(), tc.key, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "t.toml: ") {
				t.Errorf("error %q does not name the source", err)
			}
		})
	}
}

// TestParseReportsAllProblems checks that one Parse reports every problem,
// in file order within each table, each under its own key.
func TestParseReportsAllProblems(t *testing.T) {
	text := `
[ftp]
lisen = ["127.0.0.1:21"]
passive_ports = "2000-1000"

[limits]
idle_timeout = "forever"

[[account]]
name = "ok"
password = "` + demoHash0 + `"
  [[account.folder]]
  path = "/"
  dir = "d"
  rights = ["read"]

[[account]]
name = "bad one"
pasword = "x"
  [[account.folder]]
  path = "/"
  dir = "d"
  rights = ["read"]
  [[account.folder]]
  path = "/x"
  dir = "d"
  rights = ["wrte"]
`
	_, err := Parse([]byte(text), "/srv", "sluice.toml")
	if err == nil {
		t.Fatal("accepted")
	}
	var keys []string
	for _, p := range problemsOf(t, err) {
		keys = append(keys, p.Key)
	}
	want := []string{
		"ftp.passive_ports",
		"ftp.lisen",
		"limits.idle_timeout",
		"account[1].name",
		"account[1].password",
		"account[1].folder[1].rights",
		"account[1].pasword",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("problem keys:\n got %q\nwant %q\nerror:\n%v", keys, want, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "sluice.toml: 7 problems:\n  ftp.passive_ports: ") {
		t.Errorf("message:\n%s", msg)
	}
	// The problems are reachable with errors.As through Unwrap() []error.
	var p *Problem
	if !errors.As(err, &p) || p.Key != "ftp.passive_ports" {
		t.Errorf("errors.As(*Problem) = %v", p)
	}
}

func TestDefault(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	if c.Source != EmbeddedSource {
		t.Errorf("Source = %q", c.Source)
	}
	wantListen := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:2121"), netip.MustParseAddrPort("[::1]:2121")}
	if !slices.Equal(c.FTP.Listen, wantListen) {
		t.Errorf("listen = %v", c.FTP.Listen)
	}
	if c.FTP.PassivePortMin != 50000 || c.FTP.PassivePortMax != 50100 {
		t.Errorf("passive = %d-%d", c.FTP.PassivePortMin, c.FTP.PassivePortMax)
	}
	if len(c.Accounts) != 1 {
		t.Fatalf("accounts = %+v", c.Accounts)
	}
	a := c.Account("demo")
	if a == nil || a.UID != 65534 || a.GID != 65534 || a.Disabled {
		t.Fatalf("demo account = %+v", a)
	}
	if ok, err := VerifyPassword(a.Password, "demo"); !ok || err != nil {
		t.Errorf("demo password does not verify: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(a.Password, "Demo"); ok {
		t.Error("demo password verifies Demo")
	}
	if want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}; !slices.Equal(a.AllowFrom, want) {
		t.Errorf("allow_from = %v", a.AllowFrom)
	}
	if len(a.Folders) != 1 || a.Folders[0].Path != "/" || a.Folders[0].Dir != filepath.Join(wd, "var/ftp") || a.Folders[0].Rights != datapath.RightsAll {
		t.Errorf("folders = %+v", a.Folders)
	}
	if c.Server.StateDir != filepath.Join(wd, "var/lib") {
		t.Errorf("state_dir = %q", c.Server.StateDir)
	}
	if w := c.Warnings(); !slices.Equal(w, []string{"demo account demo/demo is enabled (loopback only)"}) {
		t.Errorf("warnings = %q", w)
	}
	// Each call returns a fresh copy.
	c.Accounts[0].Name = "changed"
	if Default().Account("demo") == nil {
		t.Error("Default shares state between calls")
	}
	if !strings.Contains(string(DefaultTOML()), "[[account]]") {
		t.Error("DefaultTOML")
	}
}

func TestRelativePaths(t *testing.T) {
	text := `
[server]
state_dir = "state"
[log]
audit = "logs/../audit.json"
xferlog = "/abs/xferlog"
` + acctTOML("a") + `
  [[account.folder]]
  path = "/up"
  dir = "../up/./x/"
  rights = ["all"]
  [[account.folder]]
  path = "/abs"
  dir = "/data//abs/"
  rights = ["all"]
`
	c, err := Parse([]byte(text), "/etc/sluice", "x")
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.StateDir != "/etc/sluice/state" || c.Log.Audit != "/etc/sluice/audit.json" || c.Log.Xferlog != "/abs/xferlog" {
		t.Errorf("server/log paths: %q %q %q", c.Server.StateDir, c.Log.Audit, c.Log.Xferlog)
	}
	var dirs []string
	for _, f := range c.Accounts[0].Folders {
		dirs = append(dirs, f.Dir)
	}
	if want := []string{"/etc/sluice/data", "/etc/up/x", "/data/abs"}; !slices.Equal(dirs, want) {
		t.Errorf("dirs = %q, want %q", dirs, want)
	}

	// Load resolves against the file's directory, whatever the CWD.
	dir := t.TempDir()
	p := filepath.Join(dir, "conf", "sluice.toml")
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Accounts[0].Folders[0].Dir; got != filepath.Join(dir, "conf", "data") {
		t.Errorf("Load: dir = %q", got)
	}
	if c.Source != p {
		t.Errorf("Load: Source = %q", c.Source)
	}

	// An empty baseDir means the current directory.
	wd, _ := os.Getwd()
	c, err = Parse([]byte(text), "", "x")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Accounts[0].Folders[0].Dir; got != filepath.Join(wd, "data") {
		t.Errorf("empty base: dir = %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	p := filepath.Join(dir, "bad.toml")
	os.WriteFile(p, []byte("[ftp]\nlisten = []\n"), 0o600)
	_, err := Load(p)
	if ps := problemsOf(t, err); len(ps) != 1 || ps[0].Key != "ftp.listen" {
		t.Errorf("invalid file: %v", err)
	}
	if !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestAccountLookup(t *testing.T) {
	c := mustParse(t, acctTOML("alice")+acctTOML("bob"))
	if a := c.Account("bob"); a == nil || a.Name != "bob" || a != &c.Accounts[1] {
		t.Errorf("Account(bob) = %v", a)
	}
	if c.Account("Bob") != nil || c.Account("") != nil || c.Account("carol") != nil {
		t.Error("found an account that does not exist")
	}
	var nilc *Config
	if nilc.Account("x") != nil {
		t.Error("nil config")
	}
	// A Config built by hand (no index) works too.
	hand := &Config{Accounts: []Account{{Name: "x"}}}
	if hand.Account("x") == nil {
		t.Error("hand-built config")
	}
	// A Config changed after parsing does not answer from a stale index.
	c.Accounts = c.Accounts[1:]
	if a := c.Account("bob"); a == nil || a.Name != "bob" {
		t.Errorf("after edit: %v", a)
	}
	if c.Account("alice") != nil {
		t.Error("after edit: found alice")
	}
}

func TestAllowedFrom(t *testing.T) {
	a := &Account{AllowFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("2001:db8::/32")}}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::ffff:127.0.0.1", true}, // v4-mapped, as a dual-stack listener reports it
		{"::1", true},
		{"fe80::1%eth0", false},
		{"2001:db8::5%eth0", true}, // zone ignored
		{"128.0.0.1", false},
		{"10.0.0.1", false},
		{"::2", false},
	} {
		if got := a.AllowedFrom(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("AllowedFrom(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
	if a.AllowedFrom(netip.Addr{}) {
		t.Error("invalid address allowed")
	}
	any := &Account{}
	if !any.AllowedFrom(netip.MustParseAddr("203.0.113.1")) || !any.AllowedFrom(netip.Addr{}) {
		t.Error("empty allow_from must allow any address")
	}
}

func TestWarnings(t *testing.T) {
	demoAccount := strings.Replace(acctTOML("demo"), testHash, demoHash0, 1)
	writer := `
[[account]]
name = "up"
password = "` + testHash + `"
uid = 2000
  [[account.folder]]
  path = "/"
  dir = "d"
  rights = ["list", "write"]
`
	tests := []struct {
		name, text string
		want       []string // substrings, one per warning, in order
	}{
		{"quiet", "[ftp]\nlisten = [\"127.0.0.1:21\"]\n" + strings.Replace(writer, `"up"`, `"up"`, 1), nil},
		{"plain ftp writer", "[ftp]\nlisten = [\"0.0.0.0:21\"]\n" + writer,
			[]string{`account "up" may write from any address over plain FTP (listening on 0.0.0.0:21): passwords cross the network in clear`}},
		{"restricted writer is fine", "[ftp]\nlisten = [\"0.0.0.0:21\"]\n" + strings.Replace(writer, "uid = 2000", "uid = 2000\nallow_from = [\"10.0.0.0/8\"]", 1), nil},
		{"demo exposed", "[ftp]\nlisten = [\"127.0.0.1:21\"]\n" + demoAccount,
			[]string{`account "demo" has the well-known password "demo"`}},
		{"demo loopback", "[ftp]\nlisten = [\"127.0.0.1:21\"]\n" + strings.Replace(demoAccount, "[[account.folder]]", "allow_from = [\"127.0.0.1\"]\n[[account.folder]]", 1),
			[]string{"demo account demo/demo is enabled (loopback only)"}},
		{"disabled demo", "[ftp]\nlisten = [\"127.0.0.1:21\"]\n" + strings.Replace(demoAccount, "[[account.folder]]", "disabled = true\n[[account.folder]]", 1),
			[]string{"every account is disabled"}},
		{"no accounts", "[ftp]\nlisten = [\"127.0.0.1:21\"]\n", []string{"no accounts are configured"}},
		{"knobs", `
[ftp]
listen = ["[::]:50050"]
passive = false
active = true
passive_address = "192.0.2.1"
[limits]
max_sessions = 5
max_sessions_per_ip = 6
fail_delay = "30s"
login_timeout = "30s"
ban_after_failures = 0
` + strings.Replace(writer, "rights = [\"list\", \"write\"]", "rights = [\"read\"]", 1), []string{
			"ftp.passive_ports 50000-50100 includes the listen port 50050",
			"ftp.passive_address is set but passive mode is off",
			"limits.max_sessions_per_ip (6) is above limits.max_sessions (5)",
			"limits.fail_delay (30s) is not shorter than limits.login_timeout (30s)",
			"limits.ban_after_failures is 0",
		}},
		{"shared uid exposed", "[ftp]\nlisten = [\"0.0.0.0:21\"]\n" + strings.Replace(writer, "uid = 2000", "allow_from = [\"10.0.0.0/8\"]", 1),
			[]string{`account "up" runs as uid 65534, the same as the pre-login workers`}},
		{"weak hash", "[ftp]\nlisten = [\"127.0.0.1:21\"]\n" + strings.Replace(writer, testHash, refHash, 1),
			[]string{`account "up": its password hash uses less work than OWASP recommends`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := mustParse(t, tc.text).Warnings()
			if len(w) != len(tc.want) {
				t.Fatalf("warnings:\n%s\nwant %d", strings.Join(w, "\n"), len(tc.want))
			}
			for i := range w {
				if !strings.Contains(w[i], tc.want[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, w[i], tc.want[i])
				}
			}
		})
	}
}

func TestWarningsFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.toml")
	text := "[ftp]\nlisten = [\"127.0.0.1:21\"]\n" + strings.Replace(acctTOML("alice"), "[[account.folder]]", "uid = 3000\n[[account.folder]]", 1)
	for _, tc := range []struct {
		mode os.FileMode
		want string
	}{
		{0o600, ""},
		{0o640, ""},
		{0o644, "readable by all users"},
		{0o664, "writable by group or others"},
		{0o606, "writable by group or others"},
	} {
		os.WriteFile(p, []byte(text), 0o600)
		os.Chmod(p, tc.mode)
		c, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(c.Warnings(), "\n")
		if (tc.want == "") != (w == "") || !strings.Contains(w, tc.want) {
			t.Errorf("mode %04o: warnings %q, want %q", tc.mode, w, tc.want)
		}
	}
}

// TestParseLargeInputs checks that long lists and many problems neither
// take long (nothing quadratic) nor flood the report.
func TestParseLargeInputs(t *testing.T) {
	const n = 20000
	var b strings.Builder
	list := func(format string) string {
		b.Reset()
		for i := range n {
			fmt.Fprintf(&b, format, i/256, i%256)
		}
		return b.String()
	}
	cases := []struct{ name, text, key string }{
		{"listen", "[ftp]\nlisten = [" + list(`"10.%d.%d.1:21",`) + "]\n" + acctTOML("a"), "ftp.listen"},
		{"allow_from", strings.Replace(acctTOML("a"), "[[account.folder]]", "allow_from = ["+list(`"10.%d.%d.1",`)+"]\n[[account.folder]]", 1), "account[0].allow_from"},
		{"rights", strings.Replace(acctTOML("a"), `rights = ["list", "read"]`, "rights = ["+strings.Repeat(`"read",`, n)+"]", 1), "account[0].folder[0].rights"},
		{"folders", acctTOML("a") + strings.Repeat("[[account.folder]]\npath = \"/x\"\ndir = \"d\"\nrights = [\"read\"]\n", 100), "account[0].folder"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "/b", "x")
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Key != tc.key {
				t.Errorf("problems: %v", err)
			}
		})
	}
	// Twenty thousand broken accounts: the report is capped.
	_, err := Parse([]byte(strings.Repeat("[[account]]\nname = \"?\"\n", n)), "/b", "x")
	ps := problemsOf(t, err)
	if len(ps) != maxProblems+1 || ps[maxProblems].Msg != fmt.Sprintf("and %d more problems", 3*n-maxProblems) {
		t.Errorf("%d problems, last %v", len(ps), ps[len(ps)-1])
	}
}

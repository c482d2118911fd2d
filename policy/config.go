// Package policy is sluice's configuration model: the one TOML file that
// says where the server listens, what it logs, its limits, and which
// accounts may log in to which folders with which rights.
//
// Loading is strict. Unknown keys, values of the wrong type or out of range
// and impossible combinations are all refused, each named by its key with
// its table path ("account[2].folder[0].rights"), and all of them are
// reported together in one *ConfigError. Non-fatal concerns are returned by
// Config.Warnings.
//
// The package also hashes and verifies passwords (argon2id PHC strings) and
// edits the accounts of a config file in place for `sluice user …`,
// preserving everything else in the file byte for byte.
package policy

import (
	_ "embed"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// Config is a loaded, validated configuration. Relative paths in the file
// have been resolved: every path in a Config is absolute and clean.
type Config struct {
	Server  ServerConfig
	Log     LogConfig
	FTP     FTPConfig
	Limits  Limits
	Metrics MetricsConfig
	// Accounting is [accounting]: byte counters and their persistence.
	Accounting AccountingConfig
	TLS        TLSConfig
	SFTP       SFTPConfig
	Accounts   []Account
	// Roles are the built-in roles and the [[role]] tables, by name;
	// Groups the [[group]] tables. Accounts are already resolved
	// against them (Resolve).
	Roles  []Role
	Groups []Group
	// Hooks is the [hooks] table, HookList the [[hook]] tables.
	Hooks    HooksConfig
	HookList []Hook
	// Source is the file the configuration came from, or "embedded
	// default".
	Source string

	fileMode os.FileMode    // mode of the file, 0 when not from a file
	index    map[string]int // account name → index in Accounts
}

// ServerConfig is the [server] table.
type ServerConfig struct {
	Name     string // shown in logs and the banner
	Banner   string // text of the 220 greeting
	StateDir string // server state (counters, retry queues)
	// WorkerUID and WorkerGID are the ids pre-login workers run as when
	// the server is started as root.
	WorkerUID, WorkerGID uint32
	// WorkerUser is the name worker_uid/worker_gid were looked up from
	// (worker_user), or "".
	WorkerUser    string
	WorkerPool    int           // idle pre-spawned workers, 0..64
	ShutdownGrace time.Duration // how long transfers may run on after SIGTERM
	// RequireSandbox: refuse to start when the worker sandbox (Landlock,
	// seccomp) cannot be applied on this kernel. False downgrades
	// explicitly: the sandbox is applied as far as possible and every
	// session logs a warning naming what is missing.
	RequireSandbox bool
}

// LogConfig is the [log] table.
type LogConfig struct {
	Audit    string // "stdout" or an absolute file path
	Format   string // auto | json | pretty
	Level    string // debug | info | warn | error
	Commands bool   // log every command (PASS arguments never)
	Xferlog  string // absolute path of a wu-ftpd xferlog, or ""
}

// FTPConfig is the [ftp] table.
type FTPConfig struct {
	Listen []netip.AddrPort
	// PassivePortMin..PassivePortMax is the passive data port range,
	// inclusive.
	PassivePortMin, PassivePortMax int
	// PassiveAddress, when valid, is the IPv4 address advertised in PASV
	// replies (for NAT).
	PassiveAddress netip.Addr
	Active         bool // PORT/EPRT allowed
	Passive        bool // PASV/EPSV allowed
	// TLS is explicit FTPS (AUTH TLS) on the Listen addresses: "off",
	// "optional" or "required".
	TLS string
	// ImplicitListen are implicit-FTPS listeners: TLS from the first
	// byte, always required.
	ImplicitListen []netip.AddrPort
	// VerifyOnRetr checks every download of a file with a recorded
	// digest against it while sending, and aborts with 451 on a mismatch.
	VerifyOnRetr bool
}

// TLSConfig is the [tls] table: the certificate of FTPS. The key is read
// by the supervisor only; workers get the chain and a signer over IPC.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files (reloaded on SIGHUP). Both
	// empty: a self-signed ECDSA P-256 certificate is generated under
	// StateDir on first start.
	CertFile, KeyFile string
}

// SFTPConfig is the [sftp] table: SSH listeners serving the SFTP
// subsystem only.
type SFTPConfig struct {
	Listen []netip.AddrPort
	// HostKeyFile is a PEM/OpenSSH private key file; "" means an Ed25519
	// key generated under StateDir on first start. Read by the
	// supervisor only.
	HostKeyFile string
}

// TLS modes (FTPConfig.TLS, Account.TLS).
const (
	TLSOff      = "off"
	TLSOptional = "optional"
	TLSRequired = "required"
)

// NeedsTLS reports whether any listener offers FTPS.
func (c *Config) NeedsTLS() bool {
	return c.FTP.TLS != TLSOff || len(c.FTP.ImplicitListen) > 0
}

// Limits is the [limits] table.
type Limits struct {
	MaxSessions           int
	MaxSessionsPerIP      int
	MaxSessionsPerAccount int // default for accounts; 0 = unlimited
	LoginTimeout          time.Duration
	IdleTimeout           time.Duration
	DataTimeout           time.Duration
	MaxLoginAttempts      int // per connection
	// BanAfterFailures failed logins from one address within BanWindow
	// ban it for BanDuration; 0 turns banning off.
	BanAfterFailures int
	BanWindow        time.Duration
	BanDuration      time.Duration
	FailDelay        time.Duration // delay before a failed-login reply
	// UploadRate and DownloadRate cap all sessions of all accounts
	// together (bytes/s; 0: unlimited).
	UploadRate, DownloadRate int64
	// QuotaWarnings are the percentages of a storage quota at which an
	// upload's 226 reply carries a warning and a quota-warning event
	// fires (ascending; default 80, 95).
	QuotaWarnings []int
}

// Account is one [[account]].
type Account struct {
	Name     string
	Password string // argon2id PHC string
	// UID and GID are the system ids the account's sessions run as when
	// the server is started as root. Never 0.
	UID, GID uint32
	// AllowFrom lists the networks the account may log in from; empty
	// means anywhere.
	AllowFrom []netip.Prefix
	// MaxSessions caps the account's concurrent sessions; 0 means
	// Limits.MaxSessionsPerAccount applies.
	MaxSessions int
	Disabled    bool
	// TLS is "optional" or "required": a required account cannot log in
	// over plain FTP and its data connections must use PROT P.
	TLS string
	// TLSReuse: a PROT P data connection must resume the control
	// connection's TLS session (vsftpd's require_ssl_reuse). false is
	// for clients that cannot (Python ftplib, Java).
	TLSReuse bool
	// AuthorizedKeys are the SSH public keys that may log in to the
	// account over SFTP (the wire form of each), with the lines as
	// written in the file.
	AuthorizedKeys     [][]byte
	AuthorizedKeyLines []string
	// Folders are the resolved folders: the account's own and its
	// groups', each with its effective rights (see Resolve).
	Folders []Folder
	// Groups and RoleNames are as written; Roles are the effective
	// roles (the account's, then its groups'); Limits the resolved
	// limits (AllowFrom and MaxSessions above are copies of theirs).
	Groups    []string
	RoleNames []string
	Roles     []string
	Limits    AccessLimits
}

// Folder is one [[account.folder]]: a virtual path of the account's tree
// and the directory that backs it.
type Folder struct {
	Path       string          // virtual path: absolute and clean ("/pub")
	Dir        string          // storage directory: absolute and clean
	Rights     datapath.Rights // what the account may do in it
	RightNames []string        // the rights as written in the file
	// Role names the role whose rights the folder takes when it has no
	// rights of its own; Inherit is set (before resolution only) when
	// the rights are still to be taken from a role.
	Role    string
	Inherit bool
	// QuotaBytes and QuotaFiles cap the folder (0: none); enforced by
	// the accounting layer.
	QuotaBytes, QuotaFiles int64
	// Source is "" for the account's own folder, "group NAME" for one
	// it has from a group.
	Source string
}

// DefaultUID and DefaultGID are the ids of an account (and of the
// pre-login workers) that does not name its own: nobody/nogroup.
const (
	DefaultUID = 65534
	DefaultGID = 65534
)

// Source names for configurations not read from a file.
const EmbeddedSource = "embedded default"

//go:embed default.toml
var defaultTOML []byte

// Default returns the embedded default configuration, the one `sluice
// serve` runs without --config (and `make run` uses): loopback listeners on
// port 2121, passive ports 50000-50100, and one account demo/demo allowed
// from loopback only, whose folder "/" is ./var/ftp relative to the current
// directory.
func Default() *Config {
	c, err := Parse(defaultTOML, "", EmbeddedSource)
	if err != nil {
		// default.toml is part of the binary and tested.
		panic("policy: embedded default config: " + err.Error())
	}
	return c
}

// DefaultTOML returns the text of the embedded default configuration (for
// `sluice config show-default` and the like).
func DefaultTOML() []byte { return append([]byte(nil), defaultTOML...) }

// maxConfigSize bounds what Load reads.
const maxConfigSize = 16 << 20

// Load reads the config file at path, resolves its relative paths against
// the file's directory and validates it.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read config %s: not a regular file", path)
	}
	if fi.Size() > maxConfigSize {
		return nil, fmt.Errorf("read config %s: larger than %d MiB", path, maxConfigSize>>20)
	}
	data := make([]byte, fi.Size())
	if _, err := readConfigBytes(f, data); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, filepath.Dir(abs), path)
	if err != nil {
		return nil, err
	}
	c.fileMode = fi.Mode()
	return c, nil
}

func readConfigBytes(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Account returns the account called name (names are case-sensitive), or
// nil.
func (c *Config) Account(name string) *Account {
	if c == nil {
		return nil
	}
	if i, ok := c.index[name]; ok && len(c.index) == len(c.Accounts) && i < len(c.Accounts) && c.Accounts[i].Name == name {
		return &c.Accounts[i]
	}
	for i := range c.Accounts {
		if c.Accounts[i].Name == name {
			return &c.Accounts[i]
		}
	}
	return nil
}

// AllowedFrom reports whether the account may log in from ip: true when
// AllowFrom is empty, else when a listed network contains ip. IPv4-mapped
// IPv6 addresses (::ffff:a.b.c.d) count as their IPv4 address, and a zone is
// ignored.
func (a *Account) AllowedFrom(ip netip.Addr) bool {
	if len(a.AllowFrom) == 0 {
		return true
	}
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("").Unmap()
	for _, p := range a.AllowFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// loopbackOnly reports whether every network in AllowFrom is loopback (and
// there is at least one).
func (a *Account) loopbackOnly() bool {
	if len(a.AllowFrom) == 0 {
		return false
	}
	for _, p := range a.AllowFrom {
		if !p.Addr().IsLoopback() || (p.Addr().Is4() && p.Bits() < 8) || (p.Addr().Is6() && p.Bits() < 128) {
			return false
		}
	}
	return true
}

// rights returns the union of the account's folder rights.
func (a *Account) rights() datapath.Rights {
	var r datapath.Rights
	for _, f := range a.Folders {
		r |= f.Rights
	}
	return r
}

// oneLine reports whether s is safe to put into a protocol reply or a log
// line: no control characters (CR/LF would forge FTP reply lines).
func oneLine(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 })
}

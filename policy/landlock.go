package policy

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/datapath"
)

// Landlock: the supervisor (which can open every path) builds each ruleset
// and passes its descriptor to the worker, which only calls
// landlock_restrict_self on it. A worker never needs to open a path to be
// confined.
//
// Layer 1 (pre-login, per configuration generation): every configured
// storage directory with the union of the rights of the accounts that use
// it; TCP bind on the passive ports; TCP connect on none (or, with active
// mode on, not handled at all — see LandlockLayer1). Scoped: no signals
// and no abstract unix sockets outside the worker's own domain.
//
// Layer 2 (post-login, per login): the account's folders, each with the
// rights of that folder only.

// Landlock access rights (x/sys names are long; these are the ones the
// kernel knows at ABI 1..7).
const (
	llExecute    = unix.LANDLOCK_ACCESS_FS_EXECUTE
	llWriteFile  = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	llReadFile   = unix.LANDLOCK_ACCESS_FS_READ_FILE
	llReadDir    = unix.LANDLOCK_ACCESS_FS_READ_DIR
	llRemoveDir  = unix.LANDLOCK_ACCESS_FS_REMOVE_DIR
	llRemoveFile = unix.LANDLOCK_ACCESS_FS_REMOVE_FILE
	llMakeChar   = unix.LANDLOCK_ACCESS_FS_MAKE_CHAR
	llMakeDir    = unix.LANDLOCK_ACCESS_FS_MAKE_DIR
	llMakeReg    = unix.LANDLOCK_ACCESS_FS_MAKE_REG
	llMakeSock   = unix.LANDLOCK_ACCESS_FS_MAKE_SOCK
	llMakeFifo   = unix.LANDLOCK_ACCESS_FS_MAKE_FIFO
	llMakeBlock  = unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK
	llMakeSym    = unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	llRefer      = unix.LANDLOCK_ACCESS_FS_REFER    // ABI 2
	llTruncate   = unix.LANDLOCK_ACCESS_FS_TRUNCATE // ABI 3
	llIoctlDev   = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

	llBindTCP    = unix.LANDLOCK_ACCESS_NET_BIND_TCP    // ABI 4
	llConnectTCP = unix.LANDLOCK_ACCESS_NET_CONNECT_TCP // ABI 4

	llScopeAbstractUnix = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET // ABI 6
	llScopeSignal       = unix.LANDLOCK_SCOPE_SIGNAL               // ABI 6
)

// fsAccessByABI: the file-system rights a ruleset can handle at each ABI.
func fsAccessForABI(abi int) uint64 {
	v := uint64(llExecute | llWriteFile | llReadFile | llReadDir | llRemoveDir | llRemoveFile |
		llMakeChar | llMakeDir | llMakeReg | llMakeSock | llMakeFifo | llMakeBlock | llMakeSym)
	if abi >= 2 {
		v |= llRefer
	}
	if abi >= 3 {
		v |= llTruncate
	}
	if abi >= 5 {
		v |= llIoctlDev
	}
	return v
}

var fsAccessNames = []struct {
	bit  uint64
	name string
}{
	{llExecute, "execute"}, {llWriteFile, "write_file"}, {llReadFile, "read_file"}, {llReadDir, "read_dir"},
	{llRemoveDir, "remove_dir"}, {llRemoveFile, "remove_file"}, {llMakeChar, "make_char"}, {llMakeDir, "make_dir"},
	{llMakeReg, "make_reg"}, {llMakeSock, "make_sock"}, {llMakeFifo, "make_fifo"}, {llMakeBlock, "make_block"},
	{llMakeSym, "make_sym"}, {llRefer, "refer"}, {llTruncate, "truncate"}, {llIoctlDev, "ioctl_dev"},
}

// FSAccessNames renders Landlock file-system rights ("read_file,read_dir").
func FSAccessNames(v uint64) []string {
	var out []string
	for _, n := range fsAccessNames {
		if v&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// LandlockRights maps a folder's protocol rights to Landlock rights, so
// that what the protocol refuses the kernel refuses too:
//
//	list      → read_dir
//	read      → read_file
//	create    → write_file, make_reg, truncate, remove_file
//	overwrite → write_file, make_reg, truncate, remove_file, read_file
//	append    → write_file, make_reg, truncate, remove_file, read_file
//	delete    → remove_file, remove_dir
//	mkdir     → make_dir
//	rename    → refer, remove_file, remove_dir, make_reg, make_dir
//
// Uploads write a hidden partial and rename it into place, so every
// writing right needs make_reg, truncate (of the partial) and remove_file
// (the kernel counts renaming the partial away as removing its name). Overwrite
// and append need read_file because a resume or an append copies or
// re-hashes bytes already on disk (datapath.RightsReadingFiles); create
// alone (a dropbox) uploads without reading anything back, so its layer
// has neither read_file nor read_dir. Landlock cannot tell a partial
// from a final file: that create-only never replaces an existing file is
// enforced by the worker (O_EXCL, RENAME_NOREPLACE), not by the kernel
// policy. Rename needs the remove and make rights because the kernel
// models a rename as removing a name here and making one there; Landlock
// has no rename-only right. So an account with rename (but not write)
// can, in the kernel's eyes, create empty files: the protocol does not
// let it, a compromised worker could. Nothing grants execute, make_sym,
// devices, fifos, sockets or device ioctls.
func LandlockRights(r datapath.Rights) uint64 {
	var v uint64
	if r.Has(datapath.RightList) {
		v |= llReadDir
	}
	if r.Any(datapath.RightsReadingFiles) {
		v |= llReadFile
	}
	if r.Any(datapath.RightsWriting) {
		v |= llWriteFile | llMakeReg | llTruncate | llRemoveFile
	}
	if r.Has(datapath.RightDelete) {
		v |= llRemoveFile | llRemoveDir
	}
	if r.Has(datapath.RightMkdir) {
		v |= llMakeDir
	}
	if r.Has(datapath.RightRename) {
		v |= llRefer | llRemoveFile | llRemoveDir | llMakeReg | llMakeDir
	}
	return v
}

// PathRule grants Access beneath Path.
type PathRule struct {
	Path   string
	Access uint64
	Why    string
}

// PortRule grants Access (bind and/or connect) on one TCP port.
type PortRule struct {
	Port   uint16
	Access uint64
}

// LandlockLayer is one Landlock ruleset, as data.
type LandlockLayer struct {
	HandledFS  uint64
	HandledNet uint64
	Scoped     uint64
	Paths      []PathRule
	Ports      []PortRule
	// ConnectNote explains the TCP connect policy in words.
	ConnectNote string
}

// LandlockLayer1 is the pre-login layer, the same for every worker of a
// configuration generation.
//
// TCP connect: Landlock rules are per port, without ranges. Active mode
// dials the client's chosen port, any of 1024..65535: 64512 rules, which
// each worker's domain would copy (some megabytes of kernel memory per
// session). So when active mode is on, connect is not handled by Landlock
// and the FTP layer is what restricts the target (the client's own
// address, port ≥ 1024). When active mode is off, connect is handled with
// no rule: no TCP connection can be made at all. Active mode binds the
// local address to port 0 before connecting, so port 0 is bindable then.
func LandlockLayer1(cfg *Config) LandlockLayer {
	l := LandlockLayer{
		HandledFS:  fsAccessForABI(7),
		HandledNet: llBindTCP,
		Scoped:     llScopeAbstractUnix | llScopeSignal,
	}
	idx := map[string]int{}
	for _, a := range cfg.Accounts {
		if a.Disabled {
			continue
		}
		for _, f := range a.Folders {
			acc := LandlockRights(f.Rights)
			if i, ok := idx[f.Dir]; ok {
				l.Paths[i].Access |= acc
				l.Paths[i].Why += ", " + a.Name + ":" + f.Path
				continue
			}
			idx[f.Dir] = len(l.Paths)
			l.Paths = append(l.Paths, PathRule{Path: f.Dir, Access: acc, Why: "storage of " + a.Name + ":" + f.Path})
		}
	}
	if cfg.FTP.Passive {
		min, max := cfg.FTP.PassivePortMin, cfg.FTP.PassivePortMax
		if min <= 0 || max <= 0 || max < min {
			l.Ports = append(l.Ports, PortRule{Port: 0, Access: llBindTCP})
		} else {
			for p := min; p <= max; p++ {
				l.Ports = append(l.Ports, PortRule{Port: uint16(p), Access: llBindTCP})
			}
		}
	}
	if cfg.FTP.Active {
		if len(l.Ports) == 0 || l.Ports[0].Port != 0 {
			l.Ports = append([]PortRule{{Port: 0, Access: llBindTCP}}, l.Ports...)
		}
		l.ConnectNote = "not restricted by Landlock (active mode is on: per-port rules for 1024-65535 would cost megabytes per session); the FTP layer connects only to the client's own address, port >= 1024"
	} else {
		l.HandledNet |= llConnectTCP
		l.ConnectNote = "denied: active mode is off, no TCP connect is allowed"
	}
	return l
}

// LandlockLayer2 is the post-login layer of one account: its folders,
// each with its own rights. Network and scopes stay as layer 1 set them.
func LandlockLayer2(a *Account) LandlockLayer {
	l := LandlockLayer{HandledFS: fsAccessForABI(7)}
	for _, f := range a.Folders {
		l.Paths = append(l.Paths, PathRule{Path: f.Dir, Access: LandlockRights(f.Rights),
			Why: fmt.Sprintf("%s (rights: %s)", f.Path, f.Rights)})
	}
	return l
}

// AccountWrites reports whether an account may change files anywhere (the
// post-login seccomp filter grants the file-changing syscalls then).
func AccountWrites(a *Account) bool {
	const w = datapath.RightsWriting | datapath.RightDelete | datapath.RightRename | datapath.RightMkdir
	return a.rights()&w != 0
}

// ErrLandlockUnavailable: this kernel has no Landlock (or it is disabled).
var ErrLandlockUnavailable = errors.New("Landlock unavailable")

// LandlockABI returns the kernel's Landlock ABI version, or 0 and an
// error wrapping ErrLandlockUnavailable.
func LandlockABI() (int, error) {
	v, _, e := syscall.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0, fmt.Errorf("%w: landlock_create_ruleset: %v (kernel built without CONFIG_SECURITY_LANDLOCK, or landlock not in lsm=)", ErrLandlockUnavailable, e)
	}
	return int(v), nil
}

// rulesetAttr is struct landlock_ruleset_attr up to ABI 7 (24 bytes).
type rulesetAttr struct {
	fs, net, scoped uint64
}

type netPortAttr struct {
	access uint64
	port   uint64
}

// Build creates the ruleset at the kernel's ABI (best effort: rights the
// kernel does not know are dropped and named in missing). Paths that
// cannot be opened are skipped and named in missing too (the account's
// logins fail in that case anyway). The caller owns the returned file.
func (l LandlockLayer) Build(abi int) (f *os.File, missing []string, err error) {
	return l.BuildWith(abi, nil)
}

// BuildWith is Build with the directories already open: dirs[i], when
// dirs is not nil, is Paths[i] (the supervisor passes the very fds it
// sends to the worker, so a path swapped in between cannot matter).
func (l LandlockLayer) BuildWith(abi int, dirs []*os.File) (f *os.File, missing []string, err error) {
	if dirs != nil && len(dirs) != len(l.Paths) {
		return nil, nil, fmt.Errorf("landlock: %d directories for %d rules", len(dirs), len(l.Paths))
	}
	attr := rulesetAttr{fs: l.HandledFS & fsAccessForABI(abi)}
	if d := l.HandledFS &^ attr.fs; d != 0 {
		missing = append(missing, fmt.Sprintf("Landlock ABI %d cannot restrict %s", abi, strings.Join(FSAccessNames(d), ",")))
	}
	if abi >= 4 {
		attr.net = l.HandledNet
	} else if l.HandledNet != 0 {
		missing = append(missing, fmt.Sprintf("Landlock ABI %d < 4: TCP bind/connect not restricted", abi))
	}
	if abi >= 6 {
		attr.scoped = l.Scoped
	} else if l.Scoped != 0 {
		missing = append(missing, fmt.Sprintf("Landlock ABI %d < 6: signals and abstract unix sockets not scoped", abi))
	}
	fd, _, e := syscall.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		return nil, missing, fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	f = os.NewFile(fd, "landlock-ruleset")
	fail := func(err error) (*os.File, []string, error) {
		f.Close()
		return nil, missing, err
	}
	for i, p := range l.Paths {
		if p.Access&attr.fs == 0 {
			continue // no right at all there: nothing to grant
		}
		var dfd int
		if dirs != nil {
			dfd = int(dirs[i].Fd())
		} else {
			dfd, err = unix.Open(p.Path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s: %v (no access granted there)", p.Path, err))
				continue
			}
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: p.Access & attr.fs, Parent_fd: int32(dfd)}
		err = addRule(f, unix.LANDLOCK_RULE_PATH_BENEATH, unsafe.Pointer(&rule))
		if dirs == nil {
			unix.Close(dfd)
		} else {
			runtime.KeepAlive(dirs[i])
		}
		if err != nil {
			return fail(fmt.Errorf("landlock rule for %s: %w", p.Path, err))
		}
	}
	if attr.net != 0 {
		for _, p := range l.Ports {
			rule := netPortAttr{access: p.Access & attr.net, port: uint64(p.Port)}
			if rule.access == 0 {
				continue
			}
			if err := addRule(f, landlockRuleNetPort, unsafe.Pointer(&rule)); err != nil {
				return fail(fmt.Errorf("landlock rule for TCP port %d: %w", p.Port, err))
			}
		}
	}
	return f, missing, nil
}

// landlockRuleNetPort is LANDLOCK_RULE_NET_PORT (x/sys has no constant).
const landlockRuleNetPort = 2

func addRule(ruleset *os.File, typ uintptr, attr unsafe.Pointer) error {
	_, _, e := syscall.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, ruleset.Fd(), typ, uintptr(attr), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// RestrictSelf enters the ruleset's domain on every thread of the process
// (AllThreadsSyscall: this kernel has no LANDLOCK_RESTRICT_SELF_TSYNC).
// no_new_privs must be set on every thread first (SetNoNewPrivs). Denials
// are logged by the kernel's audit (Landlock ABI ≥ 7, default flags).
func RestrictSelf(ruleset *os.File) error {
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, ruleset.Fd(), 0, 0); e != 0 {
		return fmt.Errorf("landlock_restrict_self on all threads: %w", e)
	}
	return nil
}

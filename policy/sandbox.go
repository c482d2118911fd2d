package policy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The worker sandbox, in the order the worker applies it:
//
//	pre-login (after the supervisor's Confine message, before Ready and
//	before any client byte):
//	  rlimits; not dumpable; no_new_privs on every thread;
//	  Landlock layer 1 (LandlockLayer1); seccomp filter 1 (PreLoginSeccomp)
//	post-login (right after DropPrivileges):
//	  Landlock layer 2 (LandlockLayer2); seccomp filter 2 (PostLoginSeccomp)
//
// Everything a reviewer sees in `sluice policy show` comes from the
// functions of this file, landlock.go and seccomp.go, which are also what
// the supervisor and the worker call.

// Rlimit is one resource limit set on every worker before login.
type Rlimit struct {
	Name     string
	Resource int
	Value    uint64 // soft and hard
	Why      string
}

// WorkerRlimits are set (soft = hard) before the first client byte. They
// cannot be raised again: the worker has no CAP_SYS_RESOURCE.
var WorkerRlimits = []Rlimit{
	{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, 256, "a session needs about a dozen descriptors plus one per folder (at most 64)"},
	{"RLIMIT_NPROC", unix.RLIMIT_NPROC, 8192, "counts every task of the uid: bounds a thread bomb (seccomp already forbids new processes); high enough for 500 sessions of one uid"},
	{"RLIMIT_CORE", unix.RLIMIT_CORE, 0, "no core dumps: a worker's memory can hold a password being checked"},
	{"RLIMIT_MEMLOCK", unix.RLIMIT_MEMLOCK, 0, "nothing to lock"},
}

// ConfineSpec is what the supervisor tells a worker about its sandbox.
type ConfineSpec struct {
	// Require: fail closed (exit) if any part cannot be applied. False
	// only when the operator set require_sandbox = false.
	Require bool        `json:"require"`
	Seccomp SeccompSpec `json:"seccomp"`
	// Off: apply nothing. Only with require_sandbox = false and
	// SLUICE_UNSAFE_NO_SANDBOX=1 in the supervisor's environment
	// (benchmarks of the sandbox's cost); every session logs it.
	Off bool `json:"off,omitempty"`
}

// PreLoginSpec derives the worker's pre-login seccomp parameters from the
// configuration: the ids it may become (root mode).
func PreLoginSpec(cfg *Config, switchUser bool) SeccompSpec {
	s := SeccompSpec{SwitchUser: switchUser, Write: true}
	if switchUser {
		for _, a := range cfg.Accounts {
			if a.Disabled {
				continue
			}
			s.UIDs = append(s.UIDs, a.UID)
			s.GIDs = append(s.GIDs, a.GID)
		}
		s.UIDs, s.GIDs = uniqueSorted(s.UIDs), uniqueSorted(s.GIDs)
	}
	return s
}

// PostLoginSpec derives an account's post-login seccomp parameters.
func PostLoginSpec(a *Account, switchUser bool) SeccompSpec {
	return SeccompSpec{SwitchUser: switchUser, UIDs: []uint32{a.UID}, GIDs: []uint32{a.GID}, Write: AccountWrites(a)}
}

// ConfinePreLogin applies the pre-login sandbox to this process. ruleset is
// Landlock layer 1 (nil when the supervisor found no Landlock). It
// returns what could not be enforced; with spec.Require any shortfall is
// an error and the caller must exit.
func ConfinePreLogin(spec ConfineSpec, ruleset *os.File) (missing []string, err error) {
	if spec.Off {
		return []string{"sandbox disabled (SLUICE_UNSAFE_NO_SANDBOX)"}, nil
	}
	var errs []error
	note := func(what string, err error) {
		if err != nil {
			errs = append(errs, err)
			missing = append(missing, what+": "+err.Error())
		}
	}
	for _, r := range WorkerRlimits {
		note(r.Name, unix.Setrlimit(r.Resource, &unix.Rlimit{Cur: r.Value, Max: r.Value}))
	}
	// Not dumpable: /proc/PID/mem, ptrace attach and core dumps are
	// refused to processes of the same uid (another account's session
	// under a shared uid, or a pre-login worker).
	note("PR_SET_DUMPABLE", unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0))
	if err := SetNoNewPrivs(); err != nil {
		// Without no_new_privs neither Landlock nor seccomp can be
		// applied by an unprivileged process.
		note("no_new_privs", err)
		return missing, joinIf(spec.Require, errs)
	}
	if ruleset == nil {
		note("Landlock layer 1", ErrLandlockUnavailable)
	} else {
		note("Landlock layer 1", RestrictSelf(ruleset))
	}
	prog, err := CompileSeccomp(PreLoginSeccomp(spec.Seccomp, os.Getpid()))
	if err == nil {
		err = InstallSeccomp(prog)
	}
	note("seccomp filter 1", err)
	return missing, joinIf(spec.Require, errs)
}

// ConfinePostLogin applies the post-login sandbox, after DropPrivileges:
// Landlock layer 2 (the account's folders), then the narrower seccomp
// filter (which forbids landlock calls, so it comes last).
func ConfinePostLogin(spec ConfineSpec, ruleset *os.File) (missing []string, err error) {
	if spec.Off {
		return []string{"sandbox disabled (SLUICE_UNSAFE_NO_SANDBOX)"}, nil
	}
	var errs []error
	note := func(what string, err error) {
		if err != nil {
			errs = append(errs, err)
			missing = append(missing, what+": "+err.Error())
		}
	}
	if ruleset == nil {
		note("Landlock layer 2", ErrLandlockUnavailable)
	} else {
		note("Landlock layer 2", RestrictSelf(ruleset))
	}
	prog, err := CompileSeccomp(PostLoginSeccomp(spec.Seccomp, os.Getpid()))
	if err == nil {
		err = InstallSeccomp(prog)
	}
	note("seccomp filter 2", err)
	return missing, joinIf(spec.Require, errs)
}

func joinIf(require bool, errs []error) error {
	if !require || len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("sandbox incomplete (require_sandbox = true): %w", errors.Join(errs...))
}

// Invariant is one line of `sluice policy check`.
type Invariant struct {
	Name     string `json:"name"`
	Required bool   `json:"required"` // refused start without it (require_sandbox)
	Enforced bool   `json:"enforced"`
	Detail   string `json:"detail"`
}

// MinLandlockABI is the oldest Landlock ABI the sandbox requires: 4
// (Linux 6.7) adds TCP bind/connect rules; 3 adds truncate, 2 rename
// across directories.
const MinLandlockABI = 4

// Probe checks this kernel and process for what the worker sandbox needs.
func Probe() []Invariant {
	var out []Invariant
	add := func(name string, req, ok bool, detail string, args ...any) {
		out = append(out, Invariant{Name: name, Required: req, Enforced: ok, Detail: fmt.Sprintf(detail, args...)})
	}
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0)
	add("all-thread syscalls", true, e == 0, "%s", ifs(e == 0,
		"syscall.AllThreadsSyscall works (binary built with CGO_ENABLED=0): no_new_privs, Landlock and the uid switch reach every thread",
		fmt.Sprintf("AllThreadsSyscall: %v — rebuild with CGO_ENABLED=0", e)))

	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	add("no_new_privs", true, err == nil, "%s", ifs(err == nil, "set on every worker thread before the first client byte", fmt.Sprint("PR_GET_NO_NEW_PRIVS: ", err)))
	_ = nnp

	_, err = unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	seccompOK := err == nil
	add("seccomp allow-list", true, seccompOK, "%s", ifs(seccompOK,
		"filter 1 on every thread (TSYNC) before the first client byte; narrower filter 2 after login; default EPERM",
		fmt.Sprint("PR_GET_SECCOMP: ", err, " (kernel without CONFIG_SECCOMP_FILTER)")))
	logged, _ := os.ReadFile("/proc/sys/kernel/seccomp/actions_logged")
	logOK := seccompOK && strings.Contains(" "+string(logged)+" ", " errno ")
	add("seccomp denials logged", false, logOK, "%s", ifs(logOK,
		"SECCOMP_FILTER_FLAG_LOG: every denied syscall gives an audit record (type=1326: dmesg or auditd)",
		"kernel.seccomp.actions_logged lacks \"errno\": denials fail with EPERM but are not logged"))

	abi, err := LandlockABI()
	switch {
	case err != nil:
		add("Landlock files", true, false, "%v", err)
		add("Landlock TCP ports", true, false, "needs Landlock ABI ≥ 4")
	default:
		add("Landlock files", true, abi >= MinLandlockABI, "ABI %d: layer 1 = storage roots only; layer 2 = the account's folders with their rights%s",
			abi, ifs(abi >= MinLandlockABI, "", fmt.Sprintf(" — ABI %d < %d required", abi, MinLandlockABI)))
		add("Landlock TCP ports", true, abi >= 4, "%s", ifs(abi >= 4,
			"bind only on the passive ports (and 0 for active mode); connect: none without active mode, unrestricted by Landlock with it",
			fmt.Sprintf("ABI %d < 4: no TCP rules", abi)))
		add("Landlock scopes", false, abi >= 6, "%s", ifs(abi >= 6,
			"no signals and no abstract unix sockets outside the worker's own domain", fmt.Sprintf("ABI %d < 6", abi)))
		add("Landlock denials logged", false, abi >= 7, "%s", ifs(abi >= 7,
			"denials give audit records (type=1423) when the kernel audit subsystem is on (auditd running or audit=1)", fmt.Sprintf("ABI %d < 7", abi)))
	}

	mptcp, _ := os.ReadFile("/proc/sys/net/mptcp/enabled")
	add("MPTCP cannot bypass Landlock", true, true, "MPTCP here: %s; sluice's listeners and data sockets disable it, workers run with GODEBUG=multipathtcp=0 and seccomp refuses socket(IPPROTO_MPTCP)",
		ifs(strings.TrimSpace(string(mptcp)) == "1", "enabled", "disabled or absent"))

	root := unix.Geteuid() == 0
	add("per-account uid, no capabilities", false, root, "%s", ifs(root,
		"running as root: pre-login workers run as worker_uid with CAP_SETUID+CAP_SETGID only; after login the account's uid/gid, no groups, no capabilities",
		"not root (developer mode): every session runs as this uid; no uid switch"))

	_, bpfErr := os.Stat("/sys/fs/bpf")
	add("BPF (not used by the sandbox)", false, bpfErr == nil, "%s", ifs(bpfErr == nil, "/sys/fs/bpf present", "/sys/fs/bpf absent"))
	cg := "absent"
	for _, p := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"} {
		if _, err := os.Stat(p); err == nil {
			cg = "at " + strings.TrimSuffix(p, "/cgroup.controllers")
			break
		}
	}
	add("cgroup v2 (not used by the sandbox)", false, cg != "absent", "cgroup v2 %s", cg)
	return out
}

func ifs(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// MissingRequired lists the required invariants Probe found unenforceable.
func MissingRequired(inv []Invariant) []string {
	var out []string
	for _, i := range inv {
		if i.Required && !i.Enforced {
			out = append(out, i.Name+": "+i.Detail)
		}
	}
	return out
}

package policy

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The worker's seccomp allow-lists are Go data, in the manner of gVisor's
// runsc/fsgofer/filter/config.go: a table of syscalls, each with the
// argument values it may be called with, the group that needs it and why.
// `sluice policy show` prints these very tables, and the worker compiles
// them into a classic BPF program (CompileSeccomp) — there is no second
// description that could drift.
//
// Everything not allowed fails with EPERM and is logged by the kernel
// (SECCOMP_RET_ERRNO + SECCOMP_FILTER_FLAG_LOG: an audit record of type
// SECCOMP, 1326, in the kernel log or auditd), except clone3, which fails
// with ENOSYS so that Go's runtime and os/exec fall back to clone.

// ArgOp says how an argument is compared. Only the low 32 bits of an
// argument are compared: every constrained argument is a C int or a
// 32-bit flag word in the kernel's signature, and the kernel ignores the
// high half of those.
type ArgOp int

const (
	ArgIn       ArgOp = iota // the argument is one of Values
	ArgNotIn                 // the argument is none of Values
	ArgMaskedIn              // argument & Mask is one of Values
)

// ArgRule constrains one argument.
type ArgRule struct {
	Arg    int    // 0..5
	Name   string // the argument's name, for reviewers ("domain")
	Op     ArgOp
	Mask   uint32 // ArgMaskedIn only
	Values []uint32
	Labels []string // names of Values, for reviewers ("AF_INET")
}

// SyscallRule allows one syscall when every one of its ArgRules holds.
// The same syscall may appear in several rules (in different groups);
// any rule that matches allows it.
type SyscallRule struct {
	Name  string
	Nr    uintptr
	Args  []ArgRule
	Group string
	Why   string
}

// Seccomp groups, in the order `policy show` lists them.
const (
	GroupRuntime = "go-runtime" // threads, memory, signals, timers, polling
	GroupNet     = "network"    // control and data connections, IPC socket
	GroupFSRead  = "files-read" // listing and reading beneath folder fds
	GroupFSWrite = "files-write"
	GroupLogin   = "login" // pre-login only: become the account, confine further
)

// SeccompSpec is what the worker needs to know to build its filters; the
// supervisor sends it (ipc.Confine, ipc.AuthReply).
type SeccompSpec struct {
	// SwitchUser: the worker will change uid/gid after login (root mode).
	SwitchUser bool `json:"switch_user"`
	// UIDs and GIDs are the account ids a pre-login worker may become:
	// setresuid/setresgid accept nothing else (never 0).
	UIDs []uint32 `json:"uids"`
	GIDs []uint32 `json:"gids"`
	// Write: the (post-login) account has a folder with a write, delete,
	// rename or mkdir right, so the file-changing syscalls are allowed.
	Write bool `json:"write"`
}

// NeverAllowed lists syscalls that no worker filter allows in any phase
// (checked by a test), with the reason a reviewer would ask for.
var NeverAllowed = []struct{ Name, Why string }{
	{"execve", "a worker runs no program: no shell, no helper"},
	{"execveat", "as execve"},
	{"ptrace", "no inspection of other processes"},
	{"process_vm_readv", "no access to other processes' memory"},
	{"process_vm_writev", "no access to other processes' memory"},
	{"mount", "no file-system changes"},
	{"umount2", "no file-system changes"},
	{"pivot_root", "no file-system changes"},
	{"chroot", "no file-system changes"},
	{"bpf", "no BPF programs or maps (BPF_PROG_LOAD included)"},
	{"unshare", "no new namespaces"},
	{"setns", "no joining namespaces"},
	{"keyctl", "no kernel keyrings"},
	{"add_key", "no kernel keyrings"},
	{"request_key", "no kernel keyrings"},
	{"userfaultfd", "a classic exploitation aid"},
	{"perf_event_open", "kernel attack surface, side channels"},
	{"io_uring_setup", "io_uring bypasses seccomp for the operations it performs"},
	{"io_uring_enter", "as io_uring_setup"},
	{"ioctl", "no device or terminal control (TIOCSTI and friends)"},
	{"setuid", "the uid changes only through setresuid, pinned to account ids"},
	{"setreuid", "as setuid"},
	{"setfsuid", "as setuid"},
	{"symlinkat", "a client cannot create symlinks"},
	{"linkat", "no hard links out of or into folders"},
	{"init_module", "no kernel modules"},
	{"finit_module", "no kernel modules"},
	{"kexec_load", "no kernel replacement"},
	{"reboot", "no"},
}

func sc(name string, nr uintptr, group, why string, args ...ArgRule) SyscallRule {
	return SyscallRule{Name: name, Nr: nr, Group: group, Why: why, Args: args}
}

func in(arg int, name string, vals []uint32, labels ...string) ArgRule {
	return ArgRule{Arg: arg, Name: name, Op: ArgIn, Values: vals, Labels: labels}
}

// baseRules are allowed in every phase: what the Go runtime, the protocol
// engine and the IPC need.
func baseRules(pid int) []SyscallRule {
	p := uint32(pid)
	pidLabel := fmt.Sprintf("own pid (%d)", pid)
	if pid == 0 {
		pidLabel = "own pid"
	}
	return []SyscallRule{
		// Hot paths first: the filter is a linear list.
		sc("futex", unix.SYS_FUTEX, GroupRuntime, "goroutine scheduling"),
		sc("epoll_pwait", unix.SYS_EPOLL_PWAIT, GroupRuntime, "network poller"),
		sc("read", unix.SYS_READ, GroupNet, "control connection, pipes; files opened beneath folder fds"),
		sc("write", unix.SYS_WRITE, GroupNet, "replies, data connections; files the account may write (Landlock decides at open)"),
		sc("splice", unix.SYS_SPLICE, GroupNet, "zero-copy STOR (socket → pipe → file)"),
		sc("sendfile", unix.SYS_SENDFILE, GroupNet, "zero-copy RETR"),
		sc("nanosleep", unix.SYS_NANOSLEEP, GroupRuntime, "scheduler back-off"),
		sc("sched_yield", unix.SYS_SCHED_YIELD, GroupRuntime, "scheduler"),
		sc("epoll_ctl", unix.SYS_EPOLL_CTL, GroupRuntime, "network poller"),
		sc("pread64", unix.SYS_PREAD64, GroupRuntime, "runtime's cgroup CPU-quota poll (fd opened at start); file reads"),
		sc("close", unix.SYS_CLOSE, GroupRuntime, "descriptors"),
		sc("tgkill", unix.SYS_TGKILL, GroupRuntime, "goroutine preemption: signals to the worker's own threads only",
			in(0, "tgid", []uint32{p}, pidLabel)),
		sc("kill", unix.SYS_KILL, GroupRuntime, "the runtime re-raising a fatal signal at itself only",
			in(0, "pid", []uint32{p}, pidLabel)),
		sc("rt_sigreturn", unix.SYS_RT_SIGRETURN, GroupRuntime, "signal delivery"),
		sc("rt_sigprocmask", unix.SYS_RT_SIGPROCMASK, GroupRuntime, "signal masks of new threads"),
		sc("rt_sigaction", unix.SYS_RT_SIGACTION, GroupRuntime, "signal handlers (runtime)"),
		sc("sigaltstack", unix.SYS_SIGALTSTACK, GroupRuntime, "signal stacks of new threads"),
		sc("getpid", unix.SYS_GETPID, GroupRuntime, "runtime"),
		sc("gettid", unix.SYS_GETTID, GroupRuntime, "runtime"),
		sc("clone", unix.SYS_CLONE, GroupRuntime, "new threads only: CLONE_THREAD must be set (no new processes)",
			ArgRule{Arg: 0, Name: "flags", Op: ArgMaskedIn, Mask: unix.CLONE_THREAD, Values: []uint32{unix.CLONE_THREAD}, Labels: []string{"CLONE_THREAD set"}}),
		sc("exit", unix.SYS_EXIT, GroupRuntime, "thread exit"),
		sc("exit_group", unix.SYS_EXIT_GROUP, GroupRuntime, "process exit"),
		sc("restart_syscall", unix.SYS_RESTART_SYSCALL, GroupRuntime, "interrupted sleeps"),
		sc("mmap", unix.SYS_MMAP, GroupRuntime, "heap; never executable",
			ArgRule{Arg: 2, Name: "prot", Op: ArgMaskedIn, Mask: unix.PROT_EXEC, Values: []uint32{0}, Labels: []string{"PROT_EXEC clear"}}),
		sc("munmap", unix.SYS_MUNMAP, GroupRuntime, "heap"),
		sc("madvise", unix.SYS_MADVISE, GroupRuntime, "heap scavenger"),
		sc("mprotect", unix.SYS_MPROTECT, GroupRuntime, "never executable",
			ArgRule{Arg: 2, Name: "prot", Op: ArgMaskedIn, Mask: unix.PROT_EXEC, Values: []uint32{0}, Labels: []string{"PROT_EXEC clear"}}),
		sc("sched_getaffinity", unix.SYS_SCHED_GETAFFINITY, GroupRuntime, "GOMAXPROCS updates"),
		sc("getrandom", unix.SYS_GETRANDOM, GroupRuntime, "crypto/rand, map seeds, passive port choice"),
		sc("clock_gettime", unix.SYS_CLOCK_GETTIME, GroupRuntime, "time (when the vDSO is not used)"),
		sc("clock_nanosleep", unix.SYS_CLOCK_NANOSLEEP, GroupRuntime, "sleeps"),
		sc("epoll_create1", unix.SYS_EPOLL_CREATE1, GroupRuntime, "network poller (lazy)"),
		sc("eventfd2", unix.SYS_EVENTFD2, GroupRuntime, "network poller wake-up"),
		sc("pipe2", unix.SYS_PIPE2, GroupRuntime, "splice pipes"),
		sc("fcntl", unix.SYS_FCNTL, GroupRuntime, "descriptor flags and pipe size; no locks, no F_SETOWN/F_SETSIG",
			in(1, "cmd", []uint32{unix.F_DUPFD_CLOEXEC, unix.F_GETFD, unix.F_SETFD, unix.F_GETFL, unix.F_SETFL, unix.F_GETPIPE_SZ, unix.F_SETPIPE_SZ},
				"F_DUPFD_CLOEXEC", "F_GETFD", "F_SETFD", "F_GETFL", "F_SETFL", "F_GETPIPE_SZ", "F_SETPIPE_SZ")),
		sc("uname", unix.SYS_UNAME, GroupRuntime, "package net, lazily on the first listen"),
		sc("getuid", unix.SYS_GETUID, GroupRuntime, "identity checks"),
		sc("geteuid", unix.SYS_GETEUID, GroupRuntime, "identity checks"),
		sc("getgid", unix.SYS_GETGID, GroupRuntime, "identity checks"),
		sc("getegid", unix.SYS_GETEGID, GroupRuntime, "identity checks"),
		sc("getresuid", unix.SYS_GETRESUID, GroupRuntime, "verifying the privilege drop"),
		sc("getresgid", unix.SYS_GETRESGID, GroupRuntime, "verifying the privilege drop"),
		sc("getgroups", unix.SYS_GETGROUPS, GroupRuntime, "verifying the privilege drop"),
		sc("capget", unix.SYS_CAPGET, GroupRuntime, "verifying the privilege drop"),

		sc("socket", unix.SYS_SOCKET, GroupNet, "passive listeners and active data connections: TCP over IPv4/IPv6 only (no MPTCP, no packet, netlink or unix sockets)",
			in(0, "domain", []uint32{unix.AF_INET, unix.AF_INET6}, "AF_INET", "AF_INET6"),
			ArgRule{Arg: 1, Name: "type", Op: ArgMaskedIn, Mask: ^uint32(unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC), Values: []uint32{unix.SOCK_STREAM}, Labels: []string{"SOCK_STREAM (|NONBLOCK|CLOEXEC)"}},
			in(2, "protocol", []uint32{0, unix.IPPROTO_TCP}, "0", "IPPROTO_TCP")),
		sc("bind", unix.SYS_BIND, GroupNet, "passive listener; active mode binds the local address (Landlock limits the ports)"),
		sc("listen", unix.SYS_LISTEN, GroupNet, "passive listener"),
		sc("accept4", unix.SYS_ACCEPT4, GroupNet, "passive data connection"),
		sc("connect", unix.SYS_CONNECT, GroupNet, "active data connection (Landlock limits the ports)"),
		sc("setsockopt", unix.SYS_SETSOCKOPT, GroupNet, "keep-alive, TCP_NODELAY, SO_REUSEADDR, pacing",
			in(1, "level", []uint32{unix.SOL_SOCKET, unix.IPPROTO_TCP, unix.IPPROTO_IP, unix.IPPROTO_IPV6}, "SOL_SOCKET", "IPPROTO_TCP", "IPPROTO_IP", "IPPROTO_IPV6")),
		sc("getsockopt", unix.SYS_GETSOCKOPT, GroupNet, "connect result (SO_ERROR), socket type"),
		sc("getsockname", unix.SYS_GETSOCKNAME, GroupNet, "addresses"),
		sc("getpeername", unix.SYS_GETPEERNAME, GroupNet, "addresses"),
		sc("shutdown", unix.SYS_SHUTDOWN, GroupNet, "closing data connections"),
		sc("sendmsg", unix.SYS_SENDMSG, GroupNet, "IPC to the supervisor"),
		sc("recvmsg", unix.SYS_RECVMSG, GroupNet, "IPC from the supervisor (with directory fds)"),
		sc("sendto", unix.SYS_SENDTO, GroupNet, "socket writes"),
		sc("recvfrom", unix.SYS_RECVFROM, GroupNet, "socket reads"),
	}
}

// readRules: looking at files beneath the folder descriptors.
func readRules() []SyscallRule {
	const writeFlags = unix.O_WRONLY | unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC | unix.O_APPEND
	return []SyscallRule{
		sc("openat2", unix.SYS_OPENAT2, GroupFSRead, "every path, resolved with RESOLVE_BENEATH a folder fd (Landlock decides what may be opened for writing)"),
		sc("openat", unix.SYS_OPENAT, GroupFSRead, "read-only opens",
			ArgRule{Arg: 2, Name: "flags", Op: ArgMaskedIn, Mask: writeFlags, Values: []uint32{0}, Labels: []string{"no O_WRONLY/O_RDWR/O_CREAT/O_TRUNC/O_APPEND"}}),
		sc("newfstatat", unix.SYS_NEWFSTATAT, GroupFSRead, "SIZE, MDTM, listings"),
		sc("fstat", unix.SYS_FSTAT, GroupFSRead, "open files"),
		sc("statx", unix.SYS_STATX, GroupFSRead, "stat"),
		sc("getdents64", unix.SYS_GETDENTS64, GroupFSRead, "listings"),
		sc("lseek", unix.SYS_LSEEK, GroupFSRead, "REST offsets"),
		sc("readlinkat", unix.SYS_READLINKAT, GroupFSRead, "showing symlink targets in listings"),
		sc("fgetxattr", unix.SYS_FGETXATTR, GroupFSRead, "stored checksums (user.sluice.* attributes) of open files"),
		sc("flistxattr", unix.SYS_FLISTXATTR, GroupFSRead, "stored checksums of open files"),
		sc("fcntl", unix.SYS_FCNTL, GroupFSRead, "open-file-description locks on files being transferred (one writer per file)",
			in(1, "cmd", []uint32{unix.F_OFD_GETLK, unix.F_OFD_SETLK, unix.F_OFD_SETLKW}, "F_OFD_GETLK", "F_OFD_SETLK", "F_OFD_SETLKW")),
	}
}

// writeRules: changing files. Only for accounts with a write, delete,
// rename or mkdir right (and before login, because the post-login filter
// can only narrow the pre-login one).
func writeRules() []SyscallRule {
	return []SyscallRule{
		sc("openat", unix.SYS_OPENAT, GroupFSWrite, "opens for writing (Landlock limits where)"),
		sc("pwrite64", unix.SYS_PWRITE64, GroupFSWrite, "uploads"),
		sc("tee", unix.SYS_TEE, GroupFSWrite, "hash uploads in memory where the folder grants no read right (dropbox): the file is never read back"),
		sc("ftruncate", unix.SYS_FTRUNCATE, GroupFSWrite, "STOR over an existing file"),
		sc("fallocate", unix.SYS_FALLOCATE, GroupFSWrite, "ALLO"),
		sc("fsync", unix.SYS_FSYNC, GroupFSWrite, "durable uploads"),
		sc("fdatasync", unix.SYS_FDATASYNC, GroupFSWrite, "durable uploads"),
		sc("unlinkat", unix.SYS_UNLINKAT, GroupFSWrite, "DELE, RMD"),
		sc("renameat2", unix.SYS_RENAMEAT2, GroupFSWrite, "RNFR/RNTO"),
		sc("renameat", unix.SYS_RENAMEAT, GroupFSWrite, "RNFR/RNTO"),
		sc("mkdirat", unix.SYS_MKDIRAT, GroupFSWrite, "MKD"),
		sc("utimensat", unix.SYS_UTIMENSAT, GroupFSWrite, "MFMT"),
		sc("fchmodat2", unix.SYS_FCHMODAT2, GroupFSWrite, "SITE CHMOD (permission bits only; the protocol refuses setuid/setgid/sticky)"),
		sc("fchmod", unix.SYS_FCHMOD, GroupFSWrite, "SITE CHMOD before Linux 6.6"),
		sc("fsetxattr", unix.SYS_FSETXATTR, GroupFSWrite, "checksums and upload checkpoints (user.sluice.* attributes) on open files"),
		sc("fremovexattr", unix.SYS_FREMOVEXATTR, GroupFSWrite, "upload checkpoints on open files"),
	}
}

// loginRules: what a pre-login worker needs to become the account and to
// confine itself further. Absent after login.
func loginRules(spec SeccompSpec) []SyscallRule {
	rules := []SyscallRule{
		sc("landlock_restrict_self", unix.SYS_LANDLOCK_RESTRICT_SELF, GroupLogin, "enter the account's Landlock layer (ruleset built by the supervisor)",
			in(2, "flags", []uint32{0}, "0")),
		sc("seccomp", unix.SYS_SECCOMP, GroupLogin, "install the narrower post-login filter",
			in(0, "operation", []uint32{unix.SECCOMP_SET_MODE_FILTER}, "SECCOMP_SET_MODE_FILTER")),
	}
	if !spec.SwitchUser {
		return rules
	}
	uidLabels := idLabels(spec.UIDs)
	gidLabels := idLabels(spec.GIDs)
	return append(rules,
		sc("setgroups", unix.SYS_SETGROUPS, GroupLogin, "drop supplementary groups: the empty list only",
			in(0, "size", []uint32{0}, "0")),
		sc("setresgid", unix.SYS_SETRESGID, GroupLogin, "become an account's gid (configured gids only, never 0)",
			in(0, "rgid", spec.GIDs, gidLabels...), in(1, "egid", spec.GIDs, gidLabels...), in(2, "sgid", spec.GIDs, gidLabels...)),
		sc("setresuid", unix.SYS_SETRESUID, GroupLogin, "become an account's uid (configured uids only, never 0)",
			in(0, "ruid", spec.UIDs, uidLabels...), in(1, "euid", spec.UIDs, uidLabels...), in(2, "suid", spec.UIDs, uidLabels...)),
		sc("capset", unix.SYS_CAPSET, GroupLogin, "clear every capability"),
		sc("prctl", unix.SYS_PRCTL, GroupLogin, "clear (and check) ambient capabilities; nothing else",
			in(0, "option", []uint32{unix.PR_CAP_AMBIENT}, "PR_CAP_AMBIENT"),
			in(1, "op", []uint32{unix.PR_CAP_AMBIENT_CLEAR_ALL, unix.PR_CAP_AMBIENT_IS_SET}, "PR_CAP_AMBIENT_CLEAR_ALL", "PR_CAP_AMBIENT_IS_SET")),
	)
}

func idLabels(ids []uint32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprint(id)
	}
	return out
}

// PreLoginSeccomp is the first filter, installed before the worker reads a
// client byte. pid is the worker's own pid (0 when printing the policy).
func PreLoginSeccomp(spec SeccompSpec, pid int) []SyscallRule {
	r := baseRules(pid)
	r = append(r, readRules()...)
	r = append(r, writeRules()...)
	return append(r, loginRules(spec)...)
}

// PostLoginSeccomp is the second filter, installed after the uid switch:
// no setuid family, no landlock, no prctl, no seccomp; file-changing
// syscalls only for an account that may change files.
func PostLoginSeccomp(spec SeccompSpec, pid int) []SyscallRule {
	r := baseRules(pid)
	r = append(r, readRules()...)
	if spec.Write {
		r = append(r, writeRules()...)
	}
	return r
}

// Seccomp return values.
const (
	seccompDeny   = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	seccompNoSys  = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	seccompAllow  = unix.SECCOMP_RET_ALLOW
	seccompKill   = unix.SECCOMP_RET_KILL_PROCESS
	x32SyscallBit = 0x40000000
)

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// CompileSeccomp turns rules into a classic BPF program:
//
//	arch != native        → kill the process (syscall numbers would be misread)
//	nr has the x32 bit    → EPERM
//	nr == clone3          → ENOSYS (the runtime falls back to clone)
//	for each rule: nr matches and every argument rule holds → allow
//	otherwise             → EPERM
func CompileSeccomp(rules []SyscallRule) ([]unix.SockFilter, error) {
	stmt := func(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
	jump := func(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
	}
	const (
		ldw  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		and  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	)
	prog := []unix.SockFilter{
		stmt(ldw, offArch),
		jump(jeq, auditArch, 1, 0),
		stmt(ret, seccompKill),
		stmt(ldw, offNr),
		jump(jset, x32SyscallBit, 0, 1),
		stmt(ret, seccompDeny),
		jump(jeq, unix.SYS_CLONE3, 0, 1),
		stmt(ret, seccompNoSys),
	}
	for _, r := range rules {
		// One block per rule; every failed test jumps to the block's end,
		// which is the next rule. Blocks are short, so the 8-bit jump
		// offsets of classic BPF suffice (checked below).
		var body []unix.SockFilter
		type fix struct {
			at     int  // an instruction that can leave the block
			onTrue bool // its true branch (ArgNotIn) rather than its false branch
		}
		var fails []fix
		for _, a := range r.Args {
			if a.Arg < 0 || a.Arg > 5 || len(a.Values) == 0 {
				return nil, fmt.Errorf("seccomp rule %s: bad argument rule %+v", r.Name, a)
			}
			body = append(body, stmt(ldw, uint32(offArgs+8*a.Arg))) // low half (little-endian)
			if a.Op == ArgMaskedIn {
				body = append(body, stmt(and, a.Mask))
			}
			switch a.Op {
			case ArgIn, ArgMaskedIn:
				// jeq v1 → next arg; ...; jeq vn → next arg else fail
				n := len(a.Values)
				for i, v := range a.Values {
					left := n - 1 - i // jeq instructions after this one
					ins := jump(jeq, v, uint8(left), 0)
					if i == n-1 {
						fails = append(fails, fix{at: len(body)})
					}
					body = append(body, ins)
				}
			case ArgNotIn:
				for _, v := range a.Values {
					fails = append(fails, fix{at: len(body), onTrue: true})
					body = append(body, jump(jeq, v, 0, 0)) // true → fail (patched below)
				}
			}
		}
		body = append(body, stmt(ret, seccompAllow))
		end := len(body) // index of the first instruction after the block
		for _, f := range fails {
			d := end - f.at - 1
			if d > 255 {
				return nil, fmt.Errorf("seccomp rule %s: too many argument values", r.Name)
			}
			ins := &body[f.at]
			if f.onTrue {
				ins.Jt = uint8(d)
			} else {
				ins.Jf = uint8(d)
			}
		}
		if len(body) > 255 {
			return nil, fmt.Errorf("seccomp rule %s: too long", r.Name)
		}
		prog = append(prog, stmt(ldw, offNr), jump(jeq, uint32(r.Nr), 0, uint8(len(body))))
		prog = append(prog, body...)
	}
	prog = append(prog, stmt(ret, seccompDeny))
	if len(prog) > 4096 {
		return nil, fmt.Errorf("seccomp program too long (%d instructions)", len(prog))
	}
	return prog, nil
}

// ErrSeccompUnavailable: this kernel cannot install a seccomp filter.
var ErrSeccompUnavailable = errors.New("seccomp filters unavailable")

// InstallSeccomp installs a filter on every thread of the process with
// seccomp(SECCOMP_SET_MODE_FILTER, TSYNC|LOG) from one locked thread.
// no_new_privs must already be set on every thread (SetNoNewPrivs; the
// post-login filter forbids prctl, so it is not set again here).
// TSYNC makes the kernel apply the filter to every thread atomically, or
// fail. Threads created later inherit it.
func InstallSeccomp(prog []unix.SockFilter) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG)
	r, _, e := syscall.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		if e == unix.EINVAL || e == unix.ENOSYS {
			return fmt.Errorf("%w: seccomp(SET_MODE_FILTER): %v", ErrSeccompUnavailable, e)
		}
		return fmt.Errorf("seccomp(SET_MODE_FILTER, TSYNC): %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp TSYNC: thread %d could not be synchronised", r)
	}
	return nil
}

// SetNoNewPrivs sets PR_SET_NO_NEW_PRIVS on every thread: no execve can
// ever grant privileges again (setuid bits, file capabilities), and it is
// what lets an unprivileged process install seccomp filters and Landlock
// domains.
func SetNoNewPrivs() error {
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS) on all threads: %w", e)
	}
	return nil
}

// FormatArgRule renders an argument rule for reviewers.
func FormatArgRule(a ArgRule) string {
	vals := a.Labels
	if len(vals) != len(a.Values) {
		vals = idLabels(a.Values)
	}
	switch a.Op {
	case ArgNotIn:
		return fmt.Sprintf("%s ∉ {%s}", a.Name, strings.Join(vals, ", "))
	case ArgMaskedIn:
		if len(a.Labels) == 1 && len(a.Values) == 1 {
			return fmt.Sprintf("%s: %s", a.Name, a.Labels[0])
		}
		return fmt.Sprintf("%s & %#x ∈ {%s}", a.Name, a.Mask, strings.Join(vals, ", "))
	}
	if len(vals) == 1 {
		return fmt.Sprintf("%s = %s", a.Name, vals[0])
	}
	return fmt.Sprintf("%s ∈ {%s}", a.Name, strings.Join(vals, ", "))
}

// uniqueSorted returns ids sorted, without duplicates.
func uniqueSorted(ids []uint32) []uint32 {
	out := append([]uint32(nil), ids...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	j := 0
	for i, v := range out {
		if i == 0 || v != out[j-1] {
			out[j] = v
			j++
		}
	}
	return out[:j]
}

package policy

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities a pre-login worker keeps so that, after login, it can become
// the account's uid/gid. Nothing else: the worker starts as an unprivileged
// uid (worker_uid), and these two are granted as ambient capabilities by the
// supervisor when it starts the worker (SysProcAttr.AmbientCaps).
var WorkerCaps = []uintptr{unix.CAP_SETUID, unix.CAP_SETGID}

// ErrRootAccount is returned when asked to become uid or gid 0: a session
// never runs as root (ARCHITECTURE invariant 3).
var ErrRootAccount = errors.New("refusing to run a session as uid or gid 0")

// DropPrivileges makes every thread of this process the given uid/gid, with
// an explicitly empty supplementary group list and no capabilities, then
// verifies the result. The order is fixed: setgroups and setgid need
// CAP_SETGID, which the uid switch may take away, so the groups go first
// and the uid last (as tailscale's incubator and OpenSSH do).
//
// Go's syscall.Setgroups/Setresgid/Setresuid apply to all OS threads (they
// use AllThreadsSyscall when cgo is off); the capability clear below does the
// same explicitly. The binary must be built with CGO_ENABLED=0.
func DropPrivileges(uid, gid uint32) error {
	if uid == 0 || gid == 0 {
		return ErrRootAccount
	}
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("setgroups([]): %w", err)
	}
	if err := syscall.Setresgid(int(gid), int(gid), int(gid)); err != nil {
		return fmt.Errorf("setresgid(%d): %w", gid, err)
	}
	if err := syscall.Setresuid(int(uid), int(uid), int(uid)); err != nil {
		return fmt.Errorf("setresuid(%d): %w", uid, err)
	}
	if err := ClearCapabilities(); err != nil {
		return err
	}
	return VerifyDropped(uid, gid)
}

// ClearCapabilities empties the effective, permitted, inheritable and ambient
// sets of every thread. A uid change between two non-zero uids keeps
// capabilities (capabilities(7), "Effect of user ID changes"), so the ones a
// pre-login worker holds must be removed by hand.
func ClearCapabilities() error {
	if _, _, e := syscall.AllThreadsSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset(0): %w", e)
	}
	return nil
}

// VerifyDropped checks, from the kernel's point of view, that the drop took:
// real, effective and saved ids are the account's, there are no
// supplementary groups and no capability is left. It runs on the calling
// thread; the all-threads syscalls above cannot leave threads behind (they
// fail instead), and the adversarial tests read every /proc task.
func VerifyDropped(uid, gid uint32) error {
	r, e, s := unix.Getresuid()
	if r != int(uid) || e != int(uid) || s != int(uid) {
		return fmt.Errorf("uid drop did not take: real %d effective %d saved %d, want %d", r, e, s, uid)
	}
	r, e, s = unix.Getresgid()
	if r != int(gid) || e != int(gid) || s != int(gid) {
		return fmt.Errorf("gid drop did not take: real %d effective %d saved %d, want %d", r, e, s, gid)
	}
	groups, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	if len(groups) != 0 {
		return fmt.Errorf("supplementary groups remain: %v", groups)
	}
	caps, err := CurrentCapabilities()
	if err != nil {
		return err
	}
	if caps != (CapSets{}) {
		return fmt.Errorf("capabilities remain: %+v", caps)
	}
	return nil
}

// CapSets is the capability state of the calling thread.
type CapSets struct {
	Effective, Permitted, Inheritable uint64
	Ambient                           bool // any ambient capability raised
}

// CurrentCapabilities reads the calling thread's capability sets.
func CurrentCapabilities() (CapSets, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return CapSets{}, fmt.Errorf("capget: %w", err)
	}
	cs := CapSets{
		Effective:   uint64(data[0].Effective) | uint64(data[1].Effective)<<32,
		Permitted:   uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32,
		Inheritable: uint64(data[0].Inheritable) | uint64(data[1].Inheritable)<<32,
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		v, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0)
		if err == nil && v == 1 {
			cs.Ambient = true
			break
		}
	}
	return cs, nil
}

// IsRoot reports whether this process runs with euid 0: the supervisor then
// starts workers as worker_uid and has them switch to the account's uid
// after login. Otherwise it is developer mode: everything works except the
// uid switch.
func IsRoot() bool { return unix.Geteuid() == 0 }

// SetProcessName sets the calling thread's name (comm, as ps and top show
// it). Workers are exec'd from /proc/self/exe, which would name them
// "exe"; called from an init function, which runs on the main thread, it
// renames the process.
func SetProcessName(name string) error {
	b := append([]byte(name), 0)
	if len(b) > 16 {
		b = append(b[:15], 0)
	}
	return unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
}

// NameAllThreads names every thread of the process (SetProcessName names
// only the caller). Threads the runtime starts later are cloned from
// these and inherit the name, so ps -L, top -H, perf and the kernel's
// audit records (comm=) all show the worker as such. Needs a CGO_ENABLED=0
// binary (AllThreadsSyscall); otherwise it names the calling thread.
func NameAllThreads(name string) error {
	b := append([]byte(name), 0)
	if len(b) > 16 {
		b = append(b[:15], 0)
	}
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0)
	runtime.KeepAlive(b)
	if e == syscall.ENOTSUP {
		return SetProcessName(name)
	}
	if e != 0 {
		return e
	}
	return nil
}

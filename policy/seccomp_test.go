package policy

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/datapath"
)

// runBPF interprets the subset of classic BPF that CompileSeccomp emits,
// over a struct seccomp_data, so that the compiled filters can be checked
// without installing them.
func runBPF(t *testing.T, prog []unix.SockFilter, arch uint32, nr int, args ...uint64) uint32 {
	t.Helper()
	var a uint32
	word := func(off uint32) uint32 {
		switch {
		case off == offNr:
			return uint32(nr)
		case off == offArch:
			return arch
		case off >= offArgs && off < offArgs+48:
			i := (off - offArgs) / 8
			var v uint64
			if int(i) < len(args) {
				v = args[i]
			}
			if (off-offArgs)%8 == 0 {
				return uint32(v)
			}
			return uint32(v >> 32)
		}
		t.Fatalf("load at offset %d", off)
		return 0
	}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = word(in.K)
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if a == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if a&in.K != 0 {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("unexpected instruction %#v", in)
		}
	}
	t.Fatal("fell off the end of the program")
	return 0
}

func TestSeccompFilters(t *testing.T) {
	const pid = 4242
	pre := SeccompSpec{SwitchUser: true, UIDs: []uint32{1001, 65534}, GIDs: []uint32{1001}, Write: true}
	preProg, err := CompileSeccomp(PreLoginSeccomp(pre, pid))
	if err != nil {
		t.Fatal(err)
	}
	postRW, err := CompileSeccomp(PostLoginSeccomp(SeccompSpec{Write: true}, pid))
	if err != nil {
		t.Fatal(err)
	}
	postRO, err := CompileSeccomp(PostLoginSeccomp(SeccompSpec{Write: false}, pid))
	if err != nil {
		t.Fatal(err)
	}
	const (
		allow = seccompAllow
		deny  = seccompDeny
	)
	arch := uint32(auditArch)
	type c struct {
		name string
		prog []unix.SockFilter
		nr   int
		args []uint64
		want uint32
	}
	stream := uint64(unix.SOCK_STREAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC)
	cases := []c{
		{"read", preProg, unix.SYS_READ, nil, allow},
		{"tcp socket", postRO, unix.SYS_SOCKET, []uint64{unix.AF_INET6, stream, 0}, allow},
		{"tcp socket proto 6", postRO, unix.SYS_SOCKET, []uint64{unix.AF_INET, stream, unix.IPPROTO_TCP}, allow},
		{"mptcp socket", preProg, unix.SYS_SOCKET, []uint64{unix.AF_INET, stream, unix.IPPROTO_MPTCP}, deny},
		{"packet socket", preProg, unix.SYS_SOCKET, []uint64{unix.AF_PACKET, unix.SOCK_RAW, 0}, deny},
		{"netlink socket", preProg, unix.SYS_SOCKET, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, 0}, deny},
		{"unix socket", preProg, unix.SYS_SOCKET, []uint64{unix.AF_UNIX, stream, 0}, deny},
		{"udp socket", preProg, unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_DGRAM, 0}, deny},
		{"thread", preProg, unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, allow},
		{"fork", preProg, unix.SYS_CLONE, []uint64{uint64(unix.SIGCHLD)}, deny},
		{"clone3", preProg, unix.SYS_CLONE3, nil, seccompNoSys},
		{"execve", preProg, unix.SYS_EXECVE, nil, deny},
		{"ptrace", preProg, unix.SYS_PTRACE, nil, deny},
		{"mount", preProg, unix.SYS_MOUNT, nil, deny},
		{"bpf", preProg, unix.SYS_BPF, []uint64{unix.BPF_PROG_LOAD}, deny},
		{"setresuid account", preProg, unix.SYS_SETRESUID, []uint64{65534, 65534, 65534}, allow},
		{"setresuid 0", preProg, unix.SYS_SETRESUID, []uint64{0, 0, 0}, deny},
		{"setresuid saved 0", preProg, unix.SYS_SETRESUID, []uint64{65534, 65534, 0}, deny},
		{"setresuid other", preProg, unix.SYS_SETRESUID, []uint64{1002, 1002, 1002}, deny},
		{"setresuid after login", postRW, unix.SYS_SETRESUID, []uint64{65534, 65534, 65534}, deny},
		{"setuid", preProg, unix.SYS_SETUID, []uint64{0}, deny},
		{"setgroups empty", preProg, unix.SYS_SETGROUPS, []uint64{0, 0}, allow},
		{"setgroups some", preProg, unix.SYS_SETGROUPS, []uint64{1, 0xdead}, deny},
		{"prctl ambient", preProg, unix.SYS_PRCTL, []uint64{unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL}, allow},
		{"prctl other", preProg, unix.SYS_PRCTL, []uint64{unix.PR_SET_DUMPABLE, 1}, deny},
		{"prctl after login", postRW, unix.SYS_PRCTL, []uint64{unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL}, deny},
		{"landlock before", preProg, unix.SYS_LANDLOCK_RESTRICT_SELF, []uint64{3, 0}, allow},
		{"landlock after", postRW, unix.SYS_LANDLOCK_RESTRICT_SELF, []uint64{3, 0}, deny},
		{"seccomp after", postRW, unix.SYS_SECCOMP, []uint64{unix.SECCOMP_SET_MODE_FILTER}, deny},
		{"tgkill self", postRO, unix.SYS_TGKILL, []uint64{pid, 7, 23}, allow},
		{"tgkill other", postRO, unix.SYS_TGKILL, []uint64{1, 1, 9}, deny},
		{"kill other", postRO, unix.SYS_KILL, []uint64{1, 9}, deny},
		{"mmap rw", postRO, unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE}, allow},
		{"mmap exec", postRO, unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ | unix.PROT_EXEC}, deny},
		{"mprotect exec", postRO, unix.SYS_MPROTECT, []uint64{0, 4096, unix.PROT_EXEC}, deny},
		{"fcntl setfl", postRO, unix.SYS_FCNTL, []uint64{3, unix.F_SETFL, 0}, allow},
		{"fcntl pipe size", postRO, unix.SYS_FCNTL, []uint64{3, unix.F_SETPIPE_SZ, 1 << 20}, allow},
		{"fcntl ofd lock", postRO, unix.SYS_FCNTL, []uint64{3, unix.F_OFD_SETLK, 0}, allow},
		{"fcntl setown", postRO, unix.SYS_FCNTL, []uint64{3, unix.F_SETOWN, 1}, deny},
		{"ioctl", postRW, unix.SYS_IOCTL, []uint64{0, unix.TIOCSTI}, deny},
		{"openat read", postRO, unix.SYS_OPENAT, []uint64{0, 0, unix.O_RDONLY | unix.O_CLOEXEC}, allow},
		{"openat write ro account", postRO, unix.SYS_OPENAT, []uint64{0, 0, unix.O_WRONLY | unix.O_CREAT}, deny},
		{"openat write rw account", postRW, unix.SYS_OPENAT, []uint64{0, 0, unix.O_WRONLY | unix.O_CREAT}, allow},
		{"unlinkat ro account", postRO, unix.SYS_UNLINKAT, nil, deny},
		{"unlinkat rw account", postRW, unix.SYS_UNLINKAT, nil, allow},
		{"fchmodat2 ro account", postRO, unix.SYS_FCHMODAT2, nil, deny},
		{"renameat2 rw account", postRW, unix.SYS_RENAMEAT2, nil, allow},
		{"x32 read", preProg, unix.SYS_READ | x32SyscallBit, nil, deny},
		{"io_uring", preProg, unix.SYS_IO_URING_SETUP, nil, deny},
		{"userfaultfd", preProg, unix.SYS_USERFAULTFD, nil, deny},
		{"perf_event_open", preProg, unix.SYS_PERF_EVENT_OPEN, nil, deny},
		{"keyctl", preProg, unix.SYS_KEYCTL, nil, deny},
		{"unshare", preProg, unix.SYS_UNSHARE, nil, deny},
	}
	for _, tc := range cases {
		if got := runBPF(t, tc.prog, arch, tc.nr, tc.args...); got != tc.want {
			t.Errorf("%s: filter returns %#x, want %#x", tc.name, got, tc.want)
		}
	}
	if got := runBPF(t, preProg, unix.AUDIT_ARCH_I386, unix.SYS_READ); got != seccompKill {
		t.Errorf("foreign arch: %#x, want kill", got)
	}
}

// TestNeverAllowed: the syscalls the policy promises never to allow are in
// no allow-list of any phase.
func TestNeverAllowed(t *testing.T) {
	spec := SeccompSpec{SwitchUser: true, UIDs: []uint32{1}, GIDs: []uint32{1}, Write: true}
	for _, rules := range [][]SyscallRule{PreLoginSeccomp(spec, 1), PostLoginSeccomp(spec, 1)} {
		for _, r := range rules {
			for _, n := range NeverAllowed {
				if r.Name == n.Name {
					t.Errorf("%s is allowed (%s) but listed as never allowed", r.Name, r.Group)
				}
			}
			if r.Why == "" || r.Group == "" {
				t.Errorf("%s: every rule needs a group and a reason", r.Name)
			}
		}
	}
}

func TestLandlockRights(t *testing.T) {
	ro := LandlockRights(datapath.RightList | datapath.RightRead)
	if ro != llReadDir|llReadFile {
		t.Errorf("read-only folder: %v", FSAccessNames(ro))
	}
	all := LandlockRights(datapath.RightsAll)
	if all&(llExecute|llMakeSym|llMakeChar|llMakeBlock|llMakeFifo|llMakeSock|llIoctlDev) != 0 {
		t.Errorf("all rights grant too much: %v", FSAccessNames(all))
	}
	// create only (dropbox): neither read_file nor read_dir.
	if w := LandlockRights(datapath.RightWrite); w != llWriteFile|llMakeReg|llTruncate|llRemoveFile {
		t.Errorf("create: %v", FSAccessNames(w))
	}
	if w := LandlockRights(datapath.RightAppend); w&llReadFile == 0 || w&llReadDir != 0 {
		t.Errorf("append: %v", FSAccessNames(w))
	}
}

func TestLandlockLayer1Ports(t *testing.T) {
	cfg, err := Parse([]byte("[ftp]\npassive_ports = \"50000-50002\"\nactive = false\n[[account]]\nname = \"a\"\npassword = \""+demoHash0+"\"\n  [[account.folder]]\n  path = \"/\"\n  dir = \"/srv/a\"\n  rights = [\"list\", \"read\"]\n"), "/", "t")
	if err != nil {
		t.Fatal(err)
	}
	l := LandlockLayer1(cfg)
	if len(l.Ports) != 3 || l.Ports[0].Port != 50000 || l.HandledNet != llBindTCP|llConnectTCP {
		t.Errorf("passive only: ports %+v handled %#x", l.Ports, l.HandledNet)
	}
	if len(l.Paths) != 1 || l.Paths[0].Access != llReadDir|llReadFile {
		t.Errorf("paths %+v", l.Paths)
	}
	cfg.FTP.Active = true
	l = LandlockLayer1(cfg)
	if l.Ports[0].Port != 0 || l.HandledNet != llBindTCP {
		t.Errorf("active: ports %+v handled %#x", l.Ports[:1], l.HandledNet)
	}
}

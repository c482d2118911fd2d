package bpf

import (
	"errors"
	"fmt"
)

// ErrUnavailable is matched (errors.Is) by every *UnavailableError: eBPF
// accounting cannot run here and the caller should fall back to
// user-space accounting (accounting.Ledger), and say so once, loudly.
var ErrUnavailable = errors.New("eBPF accounting unavailable")

// Reason says why eBPF accounting is unavailable.
type Reason int

const (
	// NotRoot: loading programs and pinning maps needs CAP_BPF,
	// CAP_NET_ADMIN and CAP_SYS_ADMIN (bpffs, cgroup attach); sluice asks
	// for root.
	NotRoot Reason = iota + 1
	// NoCgroup2: the attach directory is not on a cgroup v2 file system
	// (cgroup_skb and sock_ops attach to cgroup v2 only).
	NoCgroup2
	// NoBPFFS: bpffs is not mounted and could not be mounted.
	NoBPFFS
	// Kernel: the kernel lacks something the programs need
	// (BPF_MAP_TYPE_SK_STORAGE with spin locks: 5.2; bpf_link cgroup
	// attach: 5.7; bpf_sk_storage_get from sock_ops and cgroup_skb; BTF).
	Kernel
)

func (r Reason) String() string {
	switch r {
	case NotRoot:
		return "not root"
	case NoCgroup2:
		return "no cgroup v2"
	case NoBPFFS:
		return "no bpffs"
	case Kernel:
		return "kernel"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// UnavailableError is the typed form of ErrUnavailable.
type UnavailableError struct {
	Reason Reason
	Detail string // human-readable, e.g. the path or the missing feature
	Err    error  // underlying error, if any
}

func (e *UnavailableError) Error() string {
	s := "eBPF accounting unavailable (" + e.Reason.String() + ")"
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func unavailable(r Reason, detail string, err error) error {
	return &UnavailableError{Reason: r, Detail: detail, Err: err}
}

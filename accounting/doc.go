// Package accounting holds the pure-Go half of per-account bandwidth and
// quota accounting: the counter types shared by both accounting modes, the
// snapshot file (persistence with fsync and atomic rename), the user-space
// fallback ledger used when eBPF is unavailable, and the pacing primitives
// (a token bucket whose rate is the connection's share of its account's
// limit).
//
// It has no raw syscalls and no BPF dependency: package bpf implements the
// kernel mode on top of these types, and datapath stays unaware of both
// (an *accounting.Pacer satisfies datapath.Pacer).
//
// The two modes:
//
//   - eBPF (package bpf): the kernel counts every data byte of every
//     session of an account by TCP sequence number, keyed by the account's
//     cgroup; the supervisor reads the pinned maps; workers read their
//     share through read-only map fds (bpf.View, a ShareSource).
//   - user space (Ledger): the supervisor adds the byte counts that
//     workers report from sendfile/splice (datapath.Result.Bytes), tracks
//     live data connections through Ledger.Open, and pushes each worker its
//     share (a ShareBox in the worker). Same semantics, but only as
//     trustworthy as the workers' reports, and control-free by
//     construction (only data transfers are reported).
//
// See docs/accounting.md for the design and its trade-offs.
package accounting

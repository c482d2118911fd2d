// Package bpf is the kernel half of per-account accounting: eBPF programs
// that count every data byte of every session of an account, exactly, in
// maps the operator can read with bpftool, and the typed Go API the
// supervisor uses to load them, register accounts, read and persist the
// counters and set rates. Workers get nothing from this package: the
// supervisor pushes them their bandwidth shares (docs/accounting.md).
//
// # Programs (accounting.c, compiled by bpf2go; objects committed)
//
// Three programs attach (bpf_link, not pinned) to one cgroup v2 directory,
// Options.CgroupPath, e.g. /sys/fs/cgroup/unified/sluice; the supervisor
// creates one child per account, sluice/acct-NAME, and starts or moves the
// account's workers there (SysProcAttr.UseCgroupFD, or cgroup.procs
// after login).
//
//   - cgroup_skb/egress counts, per socket (SK_STORAGE, spin lock): bytes
//     out = advance of the highest payload end sequence sent (retransmits
//     never advance it; SYN/FIN and the pure ACKs sent after our FIN carry
//     no payload), bytes in = advance of the highest cumulative ACK we sent
//     (rcv_nxt: in-order data only, so reordering and retransmits count
//     once), capped at the peer's FIN.
//   - cgroup_skb/ingress records the peer's FIN sequence.
//   - sockops sets the exact bases (snd_nxt, rcv_nxt) when the connection
//     is established — bytes can arrive before user space learns about a
//     socket, so nothing is keyed on a map user space fills — and arms the
//     state callback that ends the connection's "live" count.
//
// IPv4 and IPv6 (one Hop-by-Hop header skipped: BIG TCP packets over 64 KiB
// carry one); lengths come from skb->len, never tot_len/payload_len (0 for
// BIG TCP).
//
// # Which connections count
//
// An account is the cgroup of the socket, set when the socket is created
// (or, for an accepted socket, inherited from its listener) and never
// changed afterwards, not even by passing the fd. Workers create their data
// sockets (PASV listeners, PORT connections) after login, in acct-NAME: they
// count. The control connection is accepted by the supervisor, outside
// sluice/, and handed over: it does not count. So the counters hold
// exactly the data connections' payload, without control traffic, and a
// worker can neither charge its traffic to another account (it cannot
// leave its cgroup: cgroup.procs belongs to root) nor hide it.
//
// # Maps (pinned under Options.PinDir, default /sys/fs/bpf/sluice, 0600)
//
//	accounts  hash  cgroup id → {name, bytes_in, bytes_out, conns, conns_in, conns_out, conns_total}
//	limits    hash  cgroup id → {rate_in, rate_out} (bytes/s, 0 unlimited); key 0 = global
//	totals    array [0] → the same counters over every socket below the attach point
//
// `bpftool map dump pinned /sys/fs/bpf/sluice/accounts` prints the fields
// by name (the maps carry BTF). Only the kernel writes counters (atomic
// adds); the supervisor inserts an account's entry once (name, restored
// counts) and writes limits. Workers get read-only fds (View).
//
// # Restarts
//
// Links are not pinned: the programs go when the supervisor goes, and so
// do the workers (Pdeathsig). Maps are pinned: Load reuses them, so a
// restart — even kill -9 — loses nothing; after a reboot, Restore takes
// the counters from the snapshot file the supervisor writes periodically
// and at shutdown (Save: temp file, fsync, rename, directory fsync).
//
// # Pacing
//
// A worker paces its own transfers with accounting.Pacer, at the share
// the supervisor computes from these maps (rate ÷ the account's live
// connections in that direction, which the kernel counts) and pushes: a
// token bucket around sendfile chunks and splice reads, or
// SO_MAX_PACING_RATE (SetMaxPacingRate, PacingSetter). Never by dropping
// packets.
//
// When eBPF is unavailable (Load or Probe returns an error matching
// ErrUnavailable, with a Reason), use accounting.Ledger. See
// docs/accounting.md.
package bpf

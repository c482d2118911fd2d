// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
//
//
// sluice per-account accounting: cgroup_skb ingress/egress and sock_ops
// programs attached to the parent cgroup of the account cgroups
// (e.g. /sys/fs/cgroup/unified/sluice). See doc.go and
// docs/accounting.md for the design; the short version:
//
//  - An account is the cgroup v2 directory of the *socket* (the cgroup of
//    the task that created it, or of the listener it was accepted from).
//    Workers create their data sockets after they were moved into
//    sluice/acct-NAME; the control connection was accepted by the
//    supervisor and belongs to the supervisor's cgroup, so it is not
//    counted here. A process cannot change the cgroup of a socket.
//  - Bytes are counted exactly by TCP sequence number, per socket
//    (SK_STORAGE under a spin lock):
//      out = advance of the highest end sequence we have sent (payload
//            only: SYN and FIN are excluded; retransmits never advance it);
//      in  = advance of the highest cumulative ACK we have sent, capped at
//            the peer's FIN. The cumulative ACK is rcv_nxt: it only moves
//            over bytes received in order, so out-of-order segments and
//            retransmits (loopback reorders) are counted exactly once.
//  - The exact bases (snd_nxt, rcv_nxt at establishment) come from the
//    sock_ops ESTABLISHED callbacks; a socket that was established before
//    the programs were attached is counted from the first packet seen.
//  - Live connections: a socket counts as live from its first packet after
//    establishment until it leaves ESTABLISHED (sock_ops STATE_CB); it
//    counts as a live sender (conns_out) / receiver (conns_in) from its
//    first payload byte in that direction. Pacing divides the account's
//    rate by these.

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

#define SLUICE_ETH_P_IP 0x0800
#define SLUICE_ETH_P_IPV6 0x86DD
#define SLUICE_NEXTHDR_HOP 0

#define SLUICE_TCP_FIN 0x01
#define SLUICE_TCP_SYN 0x02
#define SLUICE_TCP_RST 0x04
#define SLUICE_TCP_ACK 0x10

// Per-account counters. Written by the kernel programs only (atomic adds);
// user space inserts an entry when it registers an account (the name, and
// restored byte counts) and never updates it afterwards.
struct sluice_account {
	char name[32];
	__u64 bytes_in;    // payload bytes received (acked in order)
	__u64 bytes_out;   // payload bytes sent (first transmission)
	__u64 conns;       // live TCP connections of the account
	__u64 conns_in;    // of which have received payload
	__u64 conns_out;   // of which have sent payload
	__u64 conns_total; // connections ever established
};

// Configured rates in bytes per second; 0 means unlimited. Written by the
// supervisor only. Key 0 holds the global limits.
struct sluice_limits {
	__u64 rate_in;
	__u64 rate_out;
};

// Per-socket state.
struct sluice_sock {
	struct bpf_spin_lock lock;
	__u32 flags;
	__u32 snd_hi;  // end sequence of the highest payload sent
	__u32 ack_hi;  // highest cumulative ACK sent (capped at fin_seq)
	__u32 fin_seq; // sequence number of the peer's FIN (SF_FIN)
	__u32 pad;
	__u64 cgid;    // cgroup id of the socket, 0 until the first packet
};

#define SF_BASE_OUT (1 << 0) // snd_hi is valid
#define SF_BASE_IN (1 << 1)  // ack_hi is valid
#define SF_FIN (1 << 2)      // fin_seq is valid
#define SF_ESTAB (1 << 3)    // established seen by sock_ops (STATE_CB armed)
#define SF_LIVE (1 << 4)     // counted in conns
#define SF_OUT (1 << 5)      // counted in conns_out
#define SF_IN (1 << 6)       // counted in conns_in
#define SF_DONE (1 << 7)     // left ESTABLISHED; never counted live again

// LIBBPF_PIN_BY_NAME
#define SLUICE_PIN_BY_NAME 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); // cgroup id
	__type(value, struct sluice_account);
	__uint(pinning, SLUICE_PIN_BY_NAME);
} accounts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); // cgroup id; 0 = global
	__type(value, struct sluice_limits);
	__uint(pinning, SLUICE_PIN_BY_NAME);
} limits SEC(".maps");

// totals[0]: every socket below the attach point, registered or not.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_account);
	__uint(pinning, SLUICE_PIN_BY_NAME);
} totals SEC(".maps");

// Pinned too: during a binary upgrade the old and the new supervisor's
// programs are attached at once, and sessions of the old one outlive it.
// With one shared per-socket state both count each byte once (counting is
// by highest sequence, so a second look at a packet adds nothing), and the
// new programs continue the old sockets' state. A socket's entry goes with
// the socket, so nothing stale survives in it.
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sluice_sock);
	__uint(pinning, SLUICE_PIN_BY_NAME);
} socks SEC(".maps");

struct sluice_seg {
	__u32 seq;
	__u32 ack;
	__u32 len; // payload bytes
	__u8 flags;
};

// Parses the IPv4/IPv6 + TCP headers at the start of skb (cgroup_skb sees
// the packet from the network header). The payload length is taken from
// skb->len, not from tot_len/payload_len: those are 0 for BIG TCP packets
// over 64 KiB, which carry an IPv6 Hop-by-Hop jumbo header instead.
static __always_inline int sluice_parse(struct __sk_buff *skb, struct sluice_seg *s)
{
	__u32 off;
	__u8 proto;

	if (skb->protocol == bpf_htons(SLUICE_ETH_P_IP)) {
		__u8 ip[20];
		if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)))
			return -1;
		// Fragments (MF or offset) never carry a whole TCP segment.
		if ((ip[6] & 0x3f) || ip[7])
			return -1;
		proto = ip[9];
		off = (ip[0] & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(SLUICE_ETH_P_IPV6)) {
		__u8 ip6[40];
		if (bpf_skb_load_bytes(skb, 0, ip6, sizeof(ip6)))
			return -1;
		proto = ip6[6];
		off = 40;
		if (proto == SLUICE_NEXTHDR_HOP) {
			__u8 ext[2];
			if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)))
				return -1;
			proto = ext[0];
			off += ((__u32)ext[1] + 1) * 8;
		}
	} else {
		return -1;
	}
	if (proto != IPPROTO_TCP)
		return -1;

	__u8 th[14];
	if (off > 4096 || bpf_skb_load_bytes(skb, off, th, sizeof(th)))
		return -1;
	__u32 hlen = off + (th[12] >> 4) * 4;
	if (skb->len < hlen)
		return -1;
	s->seq = bpf_ntohl(*(__u32 *)&th[4]);
	s->ack = bpf_ntohl(*(__u32 *)&th[8]);
	s->flags = th[13];
	s->len = skb->len - hlen;
	return 0;
}

static __always_inline int after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

static __always_inline void sluice_add(__u64 cgid, __u64 in, __u64 out, __s64 conns,
				       __s64 cin, __s64 cout, __u64 total)
{
	__u32 zero = 0;
	struct sluice_account *t = bpf_map_lookup_elem(&totals, &zero);
	struct sluice_account *a = cgid ? bpf_map_lookup_elem(&accounts, &cgid) : 0;

#define SLUICE_ADD(f, v)                                   \
	if (v) {                                           \
		if (t)                                     \
			__sync_fetch_and_add(&t->f, v);    \
		if (a)                                     \
			__sync_fetch_and_add(&a->f, v);    \
	}
	SLUICE_ADD(bytes_in, in);
	SLUICE_ADD(bytes_out, out);
	SLUICE_ADD(conns, conns);
	SLUICE_ADD(conns_in, cin);
	SLUICE_ADD(conns_out, cout);
	SLUICE_ADD(conns_total, total);
#undef SLUICE_ADD
}

static __always_inline struct sluice_sock *sluice_sock_get(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return 0;
	return bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
}

// Marks a socket live on its first packet after establishment. Called with
// the lock held; returns the conns delta.
static __always_inline __s64 sluice_mark_live(struct sluice_sock *st)
{
	if ((st->flags & (SF_ESTAB | SF_LIVE | SF_DONE)) == SF_ESTAB) {
		st->flags |= SF_LIVE;
		return 1;
	}
	return 0;
}

SEC("cgroup_skb/egress")
int sluice_egress(struct __sk_buff *skb)
{
	struct sluice_seg s;
	if (sluice_parse(skb, &s))
		return 1;
	struct sluice_sock *st = sluice_sock_get(skb);
	if (!st)
		return 1;
	__u64 cgid = bpf_skb_cgroup_id(skb);

	__u32 start = s.seq + ((s.flags & SLUICE_TCP_SYN) ? 1 : 0);
	__u32 end = start + s.len;
	__u64 dout = 0, din = 0;
	__s64 live = 0, cin = 0, cout = 0, total = 0;

	bpf_spin_lock(&st->lock);
	if (!st->cgid)
		st->cgid = cgid;
	else
		cgid = st->cgid;
	live = sluice_mark_live(st);
	total = live;
	if (!(st->flags & SF_BASE_OUT)) {
		st->snd_hi = start;
		st->flags |= SF_BASE_OUT;
	}
	// Only a packet with payload can advance snd_hi: pure ACKs sent after
	// our FIN carry seq = snd_nxt, one past the last payload byte.
	if (s.len && after(end, st->snd_hi)) {
		dout = end - st->snd_hi;
		st->snd_hi = end;
	}
	if (s.flags & SLUICE_TCP_ACK) {
		__u32 ack = s.ack;
		if ((st->flags & SF_FIN) && after(ack, st->fin_seq))
			ack = st->fin_seq;
		if (!(st->flags & SF_BASE_IN)) {
			st->ack_hi = ack;
			st->flags |= SF_BASE_IN;
		} else if (after(ack, st->ack_hi)) {
			din = ack - st->ack_hi;
			st->ack_hi = ack;
		}
	}
	if ((st->flags & (SF_LIVE | SF_DONE)) == SF_LIVE) {
		if (dout && !(st->flags & SF_OUT)) {
			st->flags |= SF_OUT;
			cout = 1;
		}
		if (din && !(st->flags & SF_IN)) {
			st->flags |= SF_IN;
			cin = 1;
		}
	}
	bpf_spin_unlock(&st->lock);

	if (dout || din || live || cin || cout)
		sluice_add(cgid, din, dout, live, cin, cout, total);
	return 1;
}

SEC("cgroup_skb/ingress")
int sluice_ingress(struct __sk_buff *skb)
{
	struct sluice_seg s;
	if (sluice_parse(skb, &s))
		return 1;
	if (!(s.flags & SLUICE_TCP_FIN))
		return 1;
	struct sluice_sock *st = sluice_sock_get(skb);
	if (!st)
		return 1;
	// The peer's FIN occupies one sequence number after its payload; our
	// ACK of it must not be counted as a byte.
	__u32 fin = s.seq + ((s.flags & SLUICE_TCP_SYN) ? 1 : 0) + s.len;
	bpf_spin_lock(&st->lock);
	st->fin_seq = fin;
	st->flags |= SF_FIN;
	bpf_spin_unlock(&st->lock);
	return 1;
}

SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 1;

	switch (ctx->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
		struct sluice_sock *st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return 1;
		__u32 snd = ctx->snd_nxt, rcv = ctx->rcv_nxt;
		bpf_spin_lock(&st->lock);
		// Exact bases: nothing but SYNs has been exchanged yet.
		st->snd_hi = snd;
		st->ack_hi = rcv;
		st->flags |= SF_BASE_OUT | SF_BASE_IN | SF_ESTAB;
		bpf_spin_unlock(&st->lock);
		bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	}
	case BPF_SOCK_OPS_STATE_CB: {
		if (ctx->args[0] != BPF_TCP_ESTABLISHED && ctx->args[1] != BPF_TCP_CLOSE)
			break;
		struct sluice_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
		if (!st)
			break;
		__s64 live = 0, cin = 0, cout = 0;
		__u64 cgid;
		bpf_spin_lock(&st->lock);
		cgid = st->cgid;
		if (!(st->flags & SF_DONE)) {
			st->flags |= SF_DONE;
			if (st->flags & SF_LIVE)
				live = -1;
			if (st->flags & SF_IN)
				cin = -1;
			if (st->flags & SF_OUT)
				cout = -1;
		}
		bpf_spin_unlock(&st->lock);
		if (live || cin || cout)
			sluice_add(cgid, 0, 0, live, cin, cout, 0);
		break;
	}
	}
	return 1;
}

char __license[] SEC("license") = "Dual BSD/GPL";

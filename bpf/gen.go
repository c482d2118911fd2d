package bpf

// The C programs are compiled by bpf2go (cilium/ebpf, the version in
// go.mod) into acct_bpfel.o, acct_bpfeb.o and the Go bindings acct_bpf{el,eb}.go, which are
// committed: building sluice needs no clang. `make generate` rebuilds them
// (clang-14, bpftool and the kernel's BTF for headers/vmlinux.h).
//
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -mcpu=v3 -Wall -Werror" -type sluice_account -type sluice_limits -type sluice_sock acct accounting.c -- -I./headers

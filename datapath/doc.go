// Package datapath is the worker's file system and data mover.
//
// Tree resolves every virtual path in the kernel, beneath a directory fd that
// the supervisor opened for the account (security invariant 4): openat2(2)
// with RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS, or an *at syscall on a parent
// fd obtained that way. No storage path is ever built from strings, so `..`,
// absolute symlinks, symlinks that climb out and /proc magic links cannot
// leave a folder, even when the tree changes between two operations.
//
// Send and Receive move file data to and from a data connection: sendfile(2)
// for downloads and a socket→pipe→file splice(2) loop for uploads, with a
// buffered copy only where the kernel cannot help (TYPE A conversion, TLS,
// append-mode files).
//
// Upload (Tree.BeginUpload) makes STOR/APPE/STOU atomic and checksummed:
// bytes go to a hidden ".sluice-partial.NAME", an inline XXH64 follows
// them, and Commit records the digest (xattr user.sluice.xxh64, or the
// sidecar ".sluice-meta.NAME" without xattrs) and renames the partial into
// place. A failed upload keeps its partial with a digest checkpoint for
// REST + STOR. Tree.Hash answers HASH; Verify is `sluice verify`. See
// docs/datapath.md.
//
// Syscalls this package needs after start-up (for the seccomp allow-list):
// openat2, newfstatat, fstat, getdents64, mkdirat, unlinkat, renameat2
// (flags 0 and RENAME_NOREPLACE), utimensat, fchmodat2 (Chmod), close,
// fcntl (incl. F_SETPIPE_SZ, F_OFD_SETLK), pipe2, splice, sendfile,
// pread64, read, write, lseek, ftruncate, fgetxattr, fsetxattr,
// fremovexattr, setsockopt, plus the netpoller's epoll_pwait/epoll_ctl.
// Only with Upload.Durable: fdatasync, fsync. Only in the tee benchmark
// mode: tee.
package datapath

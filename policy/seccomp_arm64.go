package policy

import "golang.org/x/sys/unix"

// auditArch is the AUDIT_ARCH_* value of the syscall ABI the tables are
// written for; any other kills the process.
const auditArch = unix.AUDIT_ARCH_AARCH64

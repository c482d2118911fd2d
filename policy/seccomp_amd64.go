package policy

import "golang.org/x/sys/unix"

// auditArch is the AUDIT_ARCH_* value of the syscall ABI the tables are
// written for; any other (x32 is caught by its syscall-number bit, i386 by
// this) kills the process.
const auditArch = unix.AUDIT_ARCH_X86_64

package bpf

import (
	"fmt"
	"math"
	"syscall"

	"golang.org/x/sys/unix"
)

// SetMaxPacingRate sets SO_MAX_PACING_RATE on a TCP socket: the kernel's
// TCP pacing (internal pacing; no fq qdisc needed) then sends at most
// bytesPerSec. 0 removes the limit. Measured at a 100 MB/s target:
// 100.1, 100.0, 99.8 MB/s (KERNEL-NOTES). The option takes a 64-bit value
// since Linux 4.20; any process may set it on its own socket, so it is a
// cooperative limit like the token bucket.
func SetMaxPacingRate(c syscall.Conn, bytesPerSec uint64) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("SO_MAX_PACING_RATE: %w", err)
	}
	v := bytesPerSec
	if v == 0 {
		v = math.MaxUint64 // ~0UL: unlimited
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, v)
	}); err != nil {
		return fmt.Errorf("SO_MAX_PACING_RATE: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("SO_MAX_PACING_RATE: %w", serr)
	}
	return nil
}

// PacingSetter returns a function that sets c's SO_MAX_PACING_RATE, for
// accounting.PacerConfig.Apply (kernel pacing of downloads).
func PacingSetter(c syscall.Conn) func(uint64) error {
	return func(rate uint64) error { return SetMaxPacingRate(c, rate) }
}

package datapath

import (
	"io/fs"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Chmod sets the permission bits of p (SITE CHMOD; lftp's `mirror -R`
// uses it to carry modes over). Only the nine rwx bits may be set: setuid,
// setgid and sticky bits are refused, so a client cannot make a setuid
// file even of its own uid. Needs RightWrite; mount points are refused.
func (t *Tree) Chmod(p string, mode fs.FileMode) error {
	const op = "chmod"
	if mode&^fs.ModePerm != 0 {
		return kindErr(op, p, ErrNoRight, "only permission bits (0777) may be set")
	}
	tg, err := t.lock(op, p)
	if err != nil {
		return err
	}
	defer t.mu.RUnlock()
	if err := t.need(op, tg, RightWrite); err != nil {
		return err
	}
	if t.reserved(tg) {
		return kindErr(op, p, ErrNoRight, "a folder's mount point keeps its mode")
	}
	// Resolve the whole path beneath the folder (a final symlink is
	// followed only while it stays inside) into an O_PATH fd, and change
	// the mode of that very inode: fchmodat2(fd, "", AT_EMPTY_PATH),
	// Linux 6.6+. fchmod(2) refuses O_PATH fds.
	fd, err := openBeneath(tg.m.fd, tg.rel, unix.O_PATH, 0)
	if err != nil {
		return resolveErr(op, p, err, true)
	}
	defer unix.Close(fd)
	empty, _ := unix.BytePtrFromString("")
	_, _, errno := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(fd), uintptr(unsafe.Pointer(empty)), uintptr(mode.Perm()), unix.AT_EMPTY_PATH, 0, 0)
	if errno == unix.ENOSYS {
		// Before 6.6: reopen the inode for reading and fchmod it.
		rfd, err := openBeneath(tg.m.fd, tg.rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return resolveErr(op, p, err, true)
		}
		defer unix.Close(rfd)
		if err := unix.Fchmod(rfd, uint32(mode.Perm())); err != nil {
			return pathErr(op, p, err)
		}
		return nil
	}
	if errno != 0 {
		return pathErr(op, p, errno)
	}
	return nil
}

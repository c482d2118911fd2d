package bpf

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// IsCgroup2 reports whether path is a directory on a cgroup v2 file system.
func IsCgroup2(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// CgroupID returns the id of a cgroup v2 directory: the value
// bpf_skb_cgroup_id() returns for sockets created in it, which keys the
// accounts map. On cgroup v2 (kernfs, 64-bit inode numbers) it is the
// directory's inode number.
func CgroupID(path string) (uint64, error) {
	if !IsCgroup2(path) {
		return 0, fmt.Errorf("cgroup id of %s: not on cgroup v2", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("cgroup id: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("cgroup id of %s: not a directory", path)
	}
	return st.Ino, nil
}

// MakeCgroup creates the cgroup v2 directory path (and its parents) if
// needed, mode 0755 (owned by root: only root can move processes into it,
// so a worker cannot leave its account's cgroup), and returns its id.
func MakeCgroup(path string) (uint64, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	return CgroupID(path)
}

// RemoveCgroup removes an empty cgroup directory (rmdir; a cgroup with
// processes in it is EBUSY). A missing directory is not an error.
func RemoveCgroup(path string) error {
	if err := unix.Rmdir(path); err != nil && err != unix.ENOENT {
		return fmt.Errorf("cgroup: rmdir %s: %w", path, err)
	}
	return nil
}

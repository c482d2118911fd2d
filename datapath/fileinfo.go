package datapath

import (
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fileInfo is an fs.FileInfo built from a stat done on an fd or relative to
// a directory fd. Sys returns a *syscall.Stat_t, as os.FileInfo does, so the
// LIST formatter can read uid, gid and nlink the usual way; it is nil for
// synthetic directories.
type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	sys   *syscall.Stat_t
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any {
	if fi.sys == nil {
		return nil
	}
	return fi.sys
}

func newFileInfo(name string, st *unix.Stat_t) *fileInfo {
	fi := &fileInfo{
		name:  name,
		size:  st.Size,
		mtime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)),
		mode:  fs.FileMode(st.Mode & 0o777),
		sys:   toSyscallStat(st),
	}
	// Same mapping as os.fillFileStatFromSys.
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		fi.mode |= fs.ModeDevice
	case unix.S_IFCHR:
		fi.mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		fi.mode |= fs.ModeDir
	case unix.S_IFIFO:
		fi.mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		fi.mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		fi.mode |= fs.ModeSocket
	}
	if st.Mode&unix.S_ISGID != 0 {
		fi.mode |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISUID != 0 {
		fi.mode |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		fi.mode |= fs.ModeSticky
	}
	return fi
}

func syntheticInfo(name string, mtime time.Time) *fileInfo {
	return &fileInfo{name: name, mode: fs.ModeDir | 0o555, mtime: mtime}
}

type integer interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~int | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uint | ~uintptr
}

// set converts between the per-architecture integer types of unix.Stat_t
// and syscall.Stat_t (uint32 vs uint64 nlink, int32 vs int64 blksize...).
func set[T, U integer](dst *T, v U) { *dst = T(v) }

// toSyscallStat copies x/sys's Stat_t into the standard library's, field by
// field (no unsafe), because x/sys has fstatat everywhere while syscall does
// not export it on amd64, and callers expect *syscall.Stat_t from Sys().
func toSyscallStat(st *unix.Stat_t) *syscall.Stat_t {
	var s syscall.Stat_t
	set(&s.Dev, st.Dev)
	set(&s.Ino, st.Ino)
	set(&s.Nlink, st.Nlink)
	set(&s.Mode, st.Mode)
	set(&s.Uid, st.Uid)
	set(&s.Gid, st.Gid)
	set(&s.Rdev, st.Rdev)
	set(&s.Size, st.Size)
	set(&s.Blksize, st.Blksize)
	set(&s.Blocks, st.Blocks)
	set(&s.Atim.Sec, st.Atim.Sec)
	set(&s.Atim.Nsec, st.Atim.Nsec)
	set(&s.Mtim.Sec, st.Mtim.Sec)
	set(&s.Mtim.Nsec, st.Mtim.Nsec)
	set(&s.Ctim.Sec, st.Ctim.Sec)
	set(&s.Ctim.Nsec, st.Ctim.Nsec)
	return &s
}

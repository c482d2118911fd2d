package datapath

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Mount maps a virtual directory to a storage directory fd.
type Mount struct {
	Path   string   // virtual, clean, absolute: "/" or "/pub"
	Dir    *os.File // directory fd (O_RDONLY|O_DIRECTORY|O_CLOEXEC, opened by the supervisor); Tree takes ownership
	Rights Rights
}

// Tree is an account's file system: a set of mounts, each resolved by the
// kernel beneath its directory fd. It is safe for concurrent use.
//
// Semantics, beyond the method comments:
//   - A path belongs to the mount with the longest matching virtual prefix,
//     compared by whole components ("/pub" holds "/pub/x", not "/public").
//   - Directories that are strict ancestors of a mount and lie in no mount
//     (all of them when there is no "/" mount) are synthetic: read-only
//     (mode dr-xr-xr-x, Rights = RightList), listing the mounts beneath.
//   - Mount points, and ancestors of mount points, can never be removed,
//     renamed or renamed over: ErrNoRight. Mkdir on them is fs.ErrExist.
//   - Stat of a mount point or synthetic directory needs no right: it is
//     already visible in its parent's listing, and an upload-only folder
//     (RightWrite alone) must still be usable as a CWD target.
//   - Absolute symlinks are always refused (ErrEscape), even when their
//     target lies inside the folder: RESOLVE_BENEATH cannot tell. Relative
//     symlinks that stay inside the folder work everywhere.
type Tree struct {
	mu      sync.RWMutex // Close takes it exclusively: no op ever uses a closed (possibly reused) fd number
	closed  bool
	mounts  []*mount            // longest Path first
	virtual map[string][]string // directory → sorted child names that are mounts or lead to mounts
	born    time.Time           // ModTime of synthetic directories
}

type mount struct {
	vpath  string
	dir    *os.File
	fd     int
	rights Rights
}

// target is a located virtual path.
type target struct {
	vpath string
	m     *mount // nil: a synthetic directory, or absent
	rel   string // path relative to m's root, "." for the root itself
	// absent: a name that does not exist in a synthetic directory. It
	// is located (rather than failing) so that creating it is refused
	// with ErrNoRight — synthetic directories are read-only — while
	// reading it gives fs.ErrNotExist.
	absent bool
}

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// NewTree validates the mounts (clean absolute paths, no duplicates, every
// Dir a directory) and takes ownership of every Dir, even when it returns an
// error (it then closes them all), so that the caller has nothing to clean up.
func NewTree(mounts []Mount) (*Tree, error) {
	t := &Tree{virtual: map[string][]string{}, born: time.Now()}
	fail := func(err error) (*Tree, error) {
		for _, m := range mounts {
			if m.Dir != nil {
				m.Dir.Close()
			}
		}
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range mounts {
		if !validPath(m.Path) {
			return fail(fmt.Errorf("datapath: mount %q: not a clean absolute path", m.Path))
		}
		if seen[m.Path] {
			return fail(fmt.Errorf("datapath: mount %q: duplicate", m.Path))
		}
		seen[m.Path] = true
		if m.Dir == nil {
			return fail(fmt.Errorf("datapath: mount %q: no directory fd", m.Path))
		}
		fi, err := m.Dir.Stat()
		if err != nil {
			return fail(fmt.Errorf("datapath: mount %q: %w", m.Path, err))
		}
		if !fi.IsDir() {
			return fail(fmt.Errorf("datapath: mount %q: %w", m.Path, ErrNotDir))
		}
		t.mounts = append(t.mounts, &mount{vpath: m.Path, dir: m.Dir, fd: int(m.Dir.Fd()), rights: m.Rights})
	}
	sort.Slice(t.mounts, func(i, j int) bool { return len(t.mounts[i].vpath) > len(t.mounts[j].vpath) })

	children := map[string]map[string]bool{}
	for _, m := range t.mounts {
		for p := m.vpath; p != "/"; p = path.Dir(p) {
			parent := path.Dir(p)
			if children[parent] == nil {
				children[parent] = map[string]bool{}
			}
			children[parent][path.Base(p)] = true
		}
	}
	if children["/"] == nil {
		children["/"] = map[string]bool{} // "/" always exists, even with no mounts
	}
	for dir, set := range children {
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		t.virtual[dir] = names
	}
	return t, nil
}

// validPath accepts only what the session's normaliser produces. Anything
// else is refused before it reaches the kernel, as a second line of defence.
func validPath(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p && !strings.ContainsRune(p, 0)
}

func within(mp, p string) (string, bool) {
	switch {
	case p == mp:
		return ".", true
	case mp == "/":
		return p[1:], true
	case strings.HasPrefix(p, mp) && p[len(mp)] == '/':
		return p[len(mp)+1:], true
	}
	return "", false
}

// lock takes the read lock and locates p. The caller must call t.mu.RUnlock
// when err is nil.
func (t *Tree) lock(op, p string) (target, error) {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return target{}, pathErr(op, p, fs.ErrClosed)
	}
	tg, err := t.locate(op, p)
	if err != nil {
		t.mu.RUnlock()
	}
	return tg, err
}

func (t *Tree) locate(op, p string) (target, error) {
	if !validPath(p) {
		return target{}, kindErr(op, p, ErrEscape, "not a clean absolute path")
	}
	if reservedPath(p) {
		// Partial uploads and sidecars are the server's own; they
		// are reached through the name they belong to.
		return target{}, kindErr(op, p, ErrNoRight, "reserved name")
	}
	for _, m := range t.mounts {
		if rel, ok := within(m.vpath, p); ok {
			return target{vpath: p, m: m, rel: rel}, nil
		}
	}
	if _, ok := t.virtual[p]; ok {
		return target{vpath: p}, nil
	}
	if _, ok := t.virtual[path.Dir(p)]; ok {
		return target{vpath: p, absent: true}, nil
	}
	return target{}, pathErr(op, p, unix.ENOENT)
}

// reserved reports whether p is a mount point or leads to one: such paths
// are part of the account's layout, not of its data.
func (t *Tree) reserved(tg target) bool {
	if tg.m == nil || tg.rel == "." {
		return true
	}
	_, ok := t.virtual[tg.vpath]
	return ok
}

func (t *Tree) rightsOf(tg target) Rights {
	if tg.absent {
		return RightsNone
	}
	if tg.m == nil {
		return RightList
	}
	return tg.m.rights
}

func (t *Tree) need(op string, tg target, want Rights) error {
	if !t.rightsOf(tg).Has(want) {
		return kindErr(op, tg.vpath, ErrNoRight, "folder lacks the "+want.String()+" right")
	}
	return nil
}

// needAny is need for "one of these rights".
func (t *Tree) needAny(op string, tg target, want Rights) error {
	if !t.rightsOf(tg).Any(want) {
		return kindErr(op, tg.vpath, ErrNoRight, "folder lacks the "+strings.Join(want.Names(), " or ")+" right")
	}
	return nil
}

// openBeneath is the only way this package turns a path into an fd: the
// kernel walks rel beneath dirfd and fails with EXDEV/ELOOP rather than
// leave it, whatever the tree looks like at that instant.
func openBeneath(dirfd int, rel string, flags uint64, mode uint64) (int, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: resolveFlags}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(dirfd, rel, &how)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && tries < 16:
			// RESOLVE_BENEATH returns EAGAIN when a concurrent
			// rename or mount could have let `..` escape: retry.
			continue
		}
		return fd, err
	}
}

// splitRel splits a mount-relative path into its parent and final component.
func splitRel(rel string) (parent, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

func joinRel(rel, name string) string {
	if rel == "." {
		return name
	}
	return rel + "/" + name
}

// openParent opens the directory holding tg's final component (O_PATH: no
// read permission needed, nothing to read) for an *at syscall on that name.
func openParent(op string, tg target) (int, string, error) {
	parent, name := splitRel(tg.rel)
	if name == "" || name == "." || name == ".." {
		return -1, "", kindErr(op, tg.vpath, ErrEscape, "bad final component")
	}
	fd, err := openBeneath(tg.m.fd, parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", resolveErr(op, tg.vpath, err, true)
	}
	return fd, name, nil
}

func (t *Tree) mountInfo(m *mount) (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(m.fd, &st); err != nil {
		return nil, pathErr("stat", m.vpath, err)
	}
	return newFileInfo(path.Base(m.vpath), &st), nil
}

// Stat returns information about path, following symlinks beneath the
// folder. It needs RightList or RightRead (none for mount points and
// synthetic directories).
func (t *Tree) Stat(p string) (fs.FileInfo, error) {
	const op = "stat"
	tg, err := t.lock(op, p)
	if err != nil {
		return nil, err
	}
	defer t.mu.RUnlock()
	if tg.absent {
		return nil, pathErr(op, p, unix.ENOENT)
	}
	if tg.m == nil {
		return syntheticInfo(path.Base(p), t.born), nil
	}
	if tg.rel == "." {
		return t.mountInfo(tg.m)
	}
	if r := t.rightsOf(tg); !r.Has(RightList) && !r.Has(RightRead) {
		return nil, kindErr(op, p, ErrNoRight, "folder lacks the list and read rights")
	}
	fd, err := openBeneath(tg.m.fd, tg.rel, unix.O_PATH, 0)
	if err != nil {
		if err == unix.ENOENT && t.reserved(tg) {
			return syntheticInfo(path.Base(p), t.born), nil
		}
		return nil, resolveErr(op, p, err, true)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, pathErr(op, p, err)
	}
	return newFileInfo(path.Base(p), &st), nil
}

// ReadDir lists a directory, sorted by name. Entries carry Stat information:
// symlinks are followed beneath the folder; a dangling or escaping symlink
// is listed with its own (Lstat) information, mode ModeSymlink, so that the
// listing tells nothing about what lies outside. Mounts (and directories
// leading to mounts) appear as directories, shadowing a real entry of the
// same name. Needs RightList.
func (t *Tree) ReadDir(p string) ([]fs.FileInfo, error) {
	const op = "readdir"
	tg, err := t.lock(op, p)
	if err != nil {
		return nil, err
	}
	defer t.mu.RUnlock()
	if tg.absent {
		return nil, pathErr(op, p, unix.ENOENT)
	}
	var out []fs.FileInfo
	if tg.m != nil {
		if err := t.need(op, tg, RightList); err != nil {
			return nil, err
		}
		out, err = t.readReal(op, tg)
		if err != nil && !(errors.Is(err, fs.ErrNotExist) && t.reserved(tg)) {
			return nil, err
		}
	}
	for _, name := range t.virtual[p] {
		var fi fs.FileInfo
		ctg, err := t.locate(op, path.Join(p, name))
		isMount := err == nil && ctg.m != nil && ctg.rel == "."
		if isMount {
			if fi, err = t.mountInfo(ctg.m); err != nil {
				continue
			}
		} else {
			fi = syntheticInfo(name, t.born)
		}
		i := sort.Search(len(out), func(i int) bool { return out[i].Name() >= name })
		switch {
		case i < len(out) && out[i].Name() == name:
			// A mount shadows the real entry; a directory that
			// merely leads to mounts keeps its real information,
			// as Stat reports it.
			if isMount {
				out[i] = fi
			}
		default:
			out = append(out, nil)
			copy(out[i+1:], out[i:])
			out[i] = fi
		}
	}
	return out, nil
}

func (t *Tree) readReal(op string, tg target) ([]fs.FileInfo, error) {
	fd, err := openBeneath(tg.m.fd, tg.rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, resolveErr(op, tg.vpath, err, true)
	}
	dir := os.NewFile(uintptr(fd), tg.vpath)
	defer dir.Close()
	var out []fs.FileInfo
	for {
		ents, err := dir.ReadDir(1024)
		for _, e := range ents {
			if Reserved(e.Name()) {
				continue // partial uploads and sidecars stay hidden
			}
			if fi := entryInfo(tg, fd, e.Name()); fi != nil {
				out = append(out, fi)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, pathErr(op, tg.vpath, errors.Unwrap(err))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// entryInfo stats one directory entry. The name comes from getdents (a
// single component, never "." or ".."), so fstatat(AT_SYMLINK_NOFOLLOW) on
// the directory fd cannot go anywhere; only symlinks are followed, and only
// through openat2 from the folder root.
func entryInfo(tg target, dirfd int, name string) fs.FileInfo {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // vanished since getdents
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return newFileInfo(name, &st)
	}
	if fd, err := openBeneath(tg.m.fd, joinRel(tg.rel, name), unix.O_PATH, 0); err == nil {
		var tst unix.Stat_t
		err := unix.Fstat(fd, &tst)
		unix.Close(fd)
		if err == nil {
			return newFileInfo(name, &tst)
		}
	}
	return newFileInfo(name, &st)
}

// regularFile turns a freshly opened fd into an *os.File if it is a regular
// file. The fd was opened O_NONBLOCK so that a FIFO planted in the folder
// cannot block the open; that flag is cleared again for regular files.
func regularFile(op, vpath string, fd int) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, pathErr(op, vpath, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		unix.Close(fd)
		return nil, kindErr(op, vpath, ErrIsDir, "")
	default:
		unix.Close(fd)
		return nil, pathErr(op, vpath, &kindError{kind: fs.ErrPermission, msg: "not a regular file"})
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, pathErr(op, vpath, err)
	}
	// Named by its virtual path: the storage path never reaches logs.
	return os.NewFile(uintptr(fd), vpath), nil
}

// Open opens a regular file for reading (ErrIsDir for a directory). Needs
// RightRead.
func (t *Tree) Open(p string) (*os.File, error) {
	const op = "open"
	tg, err := t.lock(op, p)
	if err != nil {
		return nil, err
	}
	defer t.mu.RUnlock()
	if tg.absent {
		return nil, pathErr(op, p, unix.ENOENT)
	}
	if tg.m == nil {
		return nil, kindErr(op, p, ErrIsDir, "")
	}
	if err := t.need(op, tg, RightRead); err != nil {
		return nil, err
	}
	if tg.rel == "." {
		return nil, kindErr(op, p, ErrIsDir, "")
	}
	fd, err := openBeneath(tg.m.fd, tg.rel, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_LARGEFILE, 0)
	if err != nil {
		if err == unix.ENOENT && t.reserved(tg) {
			return nil, kindErr(op, p, ErrIsDir, "")
		}
		return nil, resolveErr(op, p, err, true)
	}
	return regularFile(op, p, fd)
}

// CreateFlags are the flags Create accepts.
const CreateFlags = os.O_TRUNC | os.O_APPEND | os.O_EXCL

// Create opens a regular file for writing, creating it with mode 0644
// (umask applies). flag is a combination of os.O_TRUNC, os.O_APPEND and
// os.O_EXCL. A symlink inside the folder is followed (a dangling one creates
// its target, beneath the folder only). Needs RightWrite.
//
// Note for uploads: splice(2) refuses append-mode files (EINVAL), so an
// O_APPEND file makes Receive fall back to a copy. For a zero-copy APPE,
// open without O_APPEND and Seek(0, io.SeekEnd).
func (t *Tree) Create(p string, flag int) (*os.File, error) {
	const op = "create"
	if flag&^CreateFlags != 0 {
		return nil, pathErr(op, p, unix.EINVAL)
	}
	tg, err := t.lock(op, p)
	if err != nil {
		return nil, err
	}
	defer t.mu.RUnlock()
	if err := t.needAny(op, tg, RightsWriting); err != nil {
		return nil, err
	}
	if t.reserved(tg) {
		return nil, kindErr(op, p, ErrIsDir, "mount point")
	}
	// Without the overwrite right an existing file is never truncated:
	// append-only opens it for appending (no O_CREAT unless create is
	// granted too), create-only insists on a new file (O_EXCL).
	switch r := t.rightsOf(tg); {
	case r.Has(RightOverwrite):
	case flag&os.O_APPEND != 0 && r.Has(RightAppend) && flag&os.O_TRUNC == 0:
		if !r.Has(RightWrite) {
			fd, err := openBeneath(tg.m.fd, tg.rel, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_LARGEFILE|unix.O_APPEND, 0)
			if err != nil {
				return nil, resolveErr(op, p, err, true)
			}
			return regularFile(op, p, fd)
		}
	case r.Has(RightWrite):
		flag = flag&^os.O_TRUNC | os.O_EXCL
	default:
		return nil, kindErr(op, p, ErrNoRight, "folder lacks the create right")
	}
	fd, err := openBeneath(tg.m.fd, tg.rel,
		unix.O_WRONLY|unix.O_CREAT|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_LARGEFILE|uint64(flag), 0o644)
	if err != nil {
		return nil, resolveErr(op, p, err, true)
	}
	return regularFile(op, p, fd)
}

// Mkdir creates a directory with mode 0755 (umask applies). Needs
// RightMkdir; fs.ErrExist on a mount point.
func (t *Tree) Mkdir(p string) error {
	const op = "mkdir"
	tg, err := t.lock(op, p)
	if err != nil {
		return err
	}
	defer t.mu.RUnlock()
	if err := t.need(op, tg, RightMkdir); err != nil {
		return err
	}
	if t.reserved(tg) {
		return pathErr(op, p, unix.EEXIST)
	}
	dfd, name, err := openParent(op, tg)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Mkdirat(dfd, name, 0o755); err != nil {
		return resolveErr(op, p, err, false)
	}
	return nil
}

// Remove deletes a file or a symlink (never what it points to); ErrIsDir for
// a directory. Needs RightDelete; ErrNoRight for a mount point.
func (t *Tree) Remove(p string) error {
	const op = "remove"
	tg, err := t.lock(op, p)
	if err != nil {
		return err
	}
	defer t.mu.RUnlock()
	if err := t.need(op, tg, RightDelete); err != nil {
		return err
	}
	if t.reserved(tg) {
		return kindErr(op, p, ErrNoRight, "mount point")
	}
	dfd, name, err := openParent(op, tg)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	// unlinkat without AT_REMOVEDIR fails with EISDIR on a directory, so
	// there is no stat-then-unlink race to get wrong.
	if err := unix.Unlinkat(dfd, name, 0); err != nil {
		return resolveErr(op, p, err, false)
	}
	unix.Unlinkat(dfd, MetaPrefix+name, 0) // its sidecar, if any
	return nil
}

// Rmdir deletes an empty directory (ErrNotDir for anything else, including a
// symlink to a directory; a non-empty directory wraps unix.ENOTEMPTY).
// Needs RightDelete; ErrNoRight for a mount point.
func (t *Tree) Rmdir(p string) error {
	const op = "rmdir"
	tg, err := t.lock(op, p)
	if err != nil {
		return err
	}
	defer t.mu.RUnlock()
	if err := t.need(op, tg, RightDelete); err != nil {
		return err
	}
	if t.reserved(tg) {
		return kindErr(op, p, ErrNoRight, "mount point")
	}
	dfd, name, err := openParent(op, tg)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil {
		return resolveErr(op, p, err, false)
	}
	return nil
}

// Rename moves from to to inside one mount (ErrCrossFolder otherwise). An
// existing file at to is replaced; an existing directory never is
// (ErrIsDir). A symlink is moved, not followed. Needs RightRename;
// ErrNoRight when either side is a mount point.
func (t *Tree) Rename(from, to string) error {
	const op = "rename"
	ftg, err := t.lock(op, from)
	if err != nil {
		return err
	}
	defer t.mu.RUnlock()
	if err := t.need(op, ftg, RightRename); err != nil {
		return err
	}
	if t.reserved(ftg) {
		return kindErr(op, from, ErrNoRight, "mount point")
	}
	ttg, err := t.locate(op, to)
	if err != nil {
		return err
	}
	if ttg.m != nil && ftg.m != ttg.m {
		return kindErr(op, from, ErrCrossFolder, "to "+to)
	}
	if t.reserved(ttg) {
		return kindErr(op, to, ErrNoRight, "mount point")
	}
	ffd, fname, err := openParent(op, ftg)
	if err != nil {
		return err
	}
	defer unix.Close(ffd)
	tfd, tname, err := openParent(op, ttg)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)

	var st unix.Stat_t
	if err := unix.Fstatat(ffd, fname, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return resolveErr(op, from, err, false)
	}
	srcDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if err := unix.Fstatat(tfd, tname, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return kindErr(op, to, ErrIsDir, "rename never replaces a directory")
	}
	// The kernel already refuses a non-directory over a directory
	// (EISDIR). A directory can replace only an empty directory, which
	// RENAME_NOREPLACE forbids without a check-then-act race.
	var flags uint
	if srcDir {
		flags = unix.RENAME_NOREPLACE
	}
	// Renaming over an existing file replaces it: that takes the
	// overwrite right, else the kernel refuses atomically.
	noOverwrite := !t.rightsOf(ttg).Has(RightOverwrite)
	if noOverwrite {
		flags = unix.RENAME_NOREPLACE
	}
	err = unix.Renameat2(ffd, fname, tfd, tname, flags)
	if err == unix.EEXIST && noOverwrite && !srcDir {
		return kindErr(op, to, ErrNoOverwrite, "")
	}
	if err == unix.EINVAL && flags != 0 && !noOverwrite {
		// File system without RENAME_NOREPLACE: the check above has
		// to do.
		err = unix.Renameat2(ffd, fname, tfd, tname, 0)
	}
	if err != nil {
		if err == unix.ENOTEMPTY {
			return kindErr(op, to, ErrIsDir, "rename never replaces a directory")
		}
		return resolveErr(op, from, err, false)
	}
	if !srcDir {
		// A sidecar follows its file (bound to the inode, so a stale
		// one left at the target name is harmless either way).
		unix.Renameat2(ffd, MetaPrefix+fname, tfd, MetaPrefix+tname, 0)
	}
	return nil
}

// Chtimes sets the modification time (access time untouched), following a
// symlink beneath the folder. Needs RightWrite; ErrNoRight on a synthetic
// directory.
func (t *Tree) Chtimes(p string, mtime time.Time) error {
	const op = "chtimes"
	tg, err := t.lock(op, p)
	if err != nil {
		return err
	}
	defer t.mu.RUnlock()
	if err := t.needAny(op, tg, RightsWriting); err != nil {
		return err
	}
	if tg.m == nil {
		return kindErr(op, p, ErrNoRight, "synthetic directory")
	}
	// utimensat(dirfd, name, AT_SYMLINK_NOFOLLOW) cannot follow a final
	// symlink safely, so resolve the whole path with openat2 and set the
	// times on the O_PATH fd itself (AT_EMPTY_PATH, checked on 6.18).
	fd, err := openBeneath(tg.m.fd, tg.rel, unix.O_PATH, 0)
	if err != nil {
		return resolveErr(op, p, err, true)
	}
	defer unix.Close(fd)
	// A valid digest record stays valid: it is re-stamped with the new
	// mtime (clients such as lftp set the mtime right after an upload).
	restamp := t.recordBefore(tg)
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		if restamp != nil {
			restamp(false)
		}
		return pathErr(op, p, err)
	}
	if restamp != nil {
		restamp(true)
	}
	return nil
}

// Rights reports what the account may do at p: the rights of the mount
// holding it, RightList for a synthetic directory, RightsNone for an invalid
// or unknown path.
func (t *Tree) Rights(p string) Rights {
	tg, err := t.lock("rights", p)
	if err != nil {
		return RightsNone
	}
	defer t.mu.RUnlock()
	return t.rightsOf(tg)
}

// Close closes every directory fd. It waits for operations in progress;
// later operations fail with fs.ErrClosed.
func (t *Tree) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	var first error
	for _, m := range t.mounts {
		if err := m.dir.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

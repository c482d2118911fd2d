package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// UploadMode is the FTP verb an upload serves.
type UploadMode int

const (
	// UploadStore (STOR): from offset 0 a new file; from offset n > 0 a
	// resume: the first n bytes come from the partial upload of the same
	// name if there is one, else from the existing file.
	UploadStore UploadMode = iota
	// UploadAppend (APPE): continue the file as SIZE reports it: the
	// existing file if there is one (its bytes are copied into the
	// partial), else the partial (a resumed upload), else a new file.
	UploadAppend
	// UploadUnique (STOU): a new file; the final name must not exist,
	// at the start or when it is renamed into place.
	UploadUnique
)

// Errors of BeginUpload besides Tree's.
var (
	// ErrBadOffset: the restart offset lies beyond the bytes there are
	// to resume from (FTP 554).
	ErrBadOffset = errors.New("restart offset beyond the end of the file")
	// ErrBusy: another session is uploading the same name right now
	// (FTP 450). It wraps unix.EBUSY.
	ErrBusy = errors.New("an upload to this name is in progress")
)

// Upload is one atomic, checksummed upload: the bytes go to the hidden
// partial ".sluice-partial.NAME" next to NAME while an XXH64 digest follows
// them; Commit records the digest on the file and renames it into place,
// so readers only ever see complete files. A failed upload keeps the
// partial with a checkpoint of its digest: REST + STOR (or APPE) of NAME
// resumes it. An open partial holds an OFD write lock, so that two
// sessions never write the same partial.
//
// Its methods are not safe for concurrent use, except File (for progress).
type Upload struct {
	vpath   string
	mode    UploadMode
	dirfd   int // O_PATH fd of the directory holding NAME and the partial
	name    string
	pname   string
	f       *os.File // the partial, O_RDWR
	base    int64    // where this upload's bytes start
	d       *xxhash.Digest
	h       *inline
	done    bool
	Durable bool // fdatasync the file (and the directory) at Commit

	// writeOnly: the folder grants no reading right, so the partial is
	// opened O_WRONLY and the digest follows the bytes in memory (tee)
	// rather than by reading them back.
	writeOnly bool
	// noReplace: Commit must not replace an existing final name.
	noReplace bool

	// Resumed says where the digest state at base came from, for the
	// log: "new", "checkpoint", "checkpoint+rehash", "rehash", "record",
	// "copy".
	Resumed string
}

// BeginUpload prepares an upload of p (a regular file; needs RightWrite).
// offset is the REST offset (UploadStore only). The returned Upload's
// Offset is where the client's bytes go: offset for STOR, the resumed size
// for APPE.
func (t *Tree) BeginUpload(p string, mode UploadMode, offset int64) (*Upload, error) {
	const op = "upload"
	if offset < 0 || (offset > 0 && mode != UploadStore) {
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
	rights := t.rightsOf(tg)
	dirfd, name, err := openParent(op, tg)
	if err != nil {
		return nil, err
	}
	u := &Upload{vpath: p, mode: mode, dirfd: dirfd, name: name, pname: PartialPrefix + name,
		writeOnly: !rights.Any(RightsReadingFiles)}
	ok := false
	defer func() {
		if !ok {
			u.release(false)
		}
	}()
	// The final file, if any: a directory is refused, anything else but
	// a regular file too. A symlink is replaced, not written through.
	var fst unix.Stat_t
	finalExists := false
	switch err := unix.Fstatat(dirfd, name, &fst, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil:
		finalExists = true
		switch fst.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return nil, kindErr(op, p, ErrIsDir, "")
		case unix.S_IFREG, unix.S_IFLNK:
		default:
			return nil, pathErr(op, p, &kindError{kind: fs.ErrPermission, msg: "not a regular file"})
		}
	case err != unix.ENOENT:
		return nil, resolveErr(op, p, err, false)
	}
	if mode == UploadUnique && finalExists {
		return nil, pathErr(op, p, unix.EEXIST)
	}
	if err := uploadAllowed(rights, mode, offset, finalExists, fst.Size); err != nil {
		return nil, pathErr(op, p, err)
	}
	// Without the overwrite right the final name must still be free when
	// the partial is renamed into place (append renames over the file it
	// extends, which the append right allows).
	u.noReplace = mode == UploadUnique || (!rights.Has(RightOverwrite) && !(finalExists && rights.Has(RightAppend)))
	if u.writeOnly && (offset > 0 || mode == UploadAppend) {
		// Resuming re-hashes bytes on disk, which a folder without a
		// reading right may not read back (a dropbox).
		if !finalExists && mode == UploadAppend {
			// APPE of a new name is a plain create.
		} else {
			return nil, kindErr(op, p, ErrNoRight, "resume and append need the read, append or overwrite right")
		}
	}
	openMode := uint64(unix.O_RDWR)
	if u.writeOnly {
		openMode = unix.O_WRONLY
	}
	fd, err := openBeneath(dirfd, u.pname, openMode|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_LARGEFILE, 0o644)
	if err != nil {
		return nil, resolveErr(op, p, err, false)
	}
	if u.f, err = regularFile(op, p, fd); err != nil {
		return nil, err
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(u.f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		u.f.Close()
		u.f = nil
		if err == unix.EAGAIN || err == unix.EACCES {
			return nil, pathErr(op, p, &kindError{kind: ErrBusy, cause: unix.EBUSY})
		}
		return nil, pathErr(op, p, os.NewSyscallError("fcntl", err))
	}
	var pst unix.Stat_t
	if err := unix.Fstat(int(u.f.Fd()), &pst); err != nil {
		return nil, pathErr(op, p, err)
	}
	m := u.meta()
	switch {
	case mode == UploadStore && offset > 0 && pst.Size > 0:
		// REST n + STOR: resume the partial.
		if offset > pst.Size {
			return nil, pathErr(op, p, &kindError{kind: ErrBadOffset, msg: fmt.Sprintf("%d > %d", offset, pst.Size)})
		}
		if err := u.resumePartial(m, offset); err != nil {
			return nil, pathErr(op, p, err)
		}
	case mode == UploadAppend && !finalExists && pst.Size > 0:
		// APPE of an interrupted upload: continue it where it stopped
		// (SIZE reported this length).
		if u.writeOnly {
			return nil, kindErr(op, p, ErrNoRight, "resume needs the read, append or overwrite right")
		}
		if err := u.resumePartial(m, pst.Size); err != nil {
			return nil, pathErr(op, p, err)
		}
	case (mode == UploadStore && offset > 0) || (mode == UploadAppend && finalExists):
		// Resume or append onto the existing file: copy its first n
		// bytes into a fresh partial, so that readers keep seeing the
		// old file until the new one is complete.
		if !finalExists {
			return nil, pathErr(op, p, unix.ENOENT)
		}
		if err := u.fromFinal(m, mode, offset); err != nil {
			return nil, pathErr(op, p, err)
		}
	default:
		if err := u.truncate(0); err != nil {
			return nil, pathErr(op, p, err)
		}
		m.remove(xattrCkpt)
		u.d, u.base, u.Resumed = xxhash.New(), 0, "new"
	}
	if _, err := u.f.Seek(u.base, 0); err != nil {
		return nil, pathErr(op, p, err)
	}
	ok = true
	return u, nil
}

func (u *Upload) meta() meta { return meta{fd: int(u.f.Fd()), dirfd: u.dirfd, name: u.pname} }

func (u *Upload) truncate(n int64) error {
	if err := unix.Ftruncate(int(u.f.Fd()), n); err != nil {
		return os.NewSyscallError("ftruncate", err)
	}
	return nil
}

// resumePartial sets the digest to the state after the partial's first n
// bytes: from the checkpoint when it lies at or before n, hashing the
// bytes between it and n from the page cache; from scratch otherwise. The
// partial is then cut at n. Whatever the checkpoint says, the digest is
// of the bytes on disk.
func (u *Upload) resumePartial(m meta, n int64) error {
	d, from := xxhash.New(), int64(0)
	u.Resumed = "rehash"
	if b, err := m.get(xattrCkpt); err == nil {
		if c, cd, err := unmarshalCheckpoint(b); err == nil && c.Off <= n {
			d, from = cd, c.Off
			u.Resumed = "checkpoint"
			if from < n {
				u.Resumed = "checkpoint+rehash"
			}
		}
	}
	if err := hashRange(int(u.f.Fd()), d, from, n, make([]byte, hashBuf), nil); err != nil {
		return err
	}
	if err := u.truncate(n); err != nil {
		return err
	}
	u.d, u.base = d, n
	u.checkpoint(n, d)
	return nil
}

// fromFinal fills a fresh partial with the existing file's first n bytes
// (all of them for APPE) and the digest with their state.
func (u *Upload) fromFinal(m meta, mode UploadMode, n int64) error {
	if err := u.truncate(0); err != nil {
		return err
	}
	m.remove(xattrCkpt)
	sfd, err := openBeneath(u.dirfd, u.name, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_LARGEFILE, 0)
	if err != nil {
		return err
	}
	src, err := regularFile("upload", u.vpath, sfd)
	if err != nil {
		return err
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	if mode == UploadAppend {
		n = st.Size
	}
	if n > st.Size {
		return &kindError{kind: ErrBadOffset, msg: fmt.Sprintf("%d > %d", n, st.Size)}
	}
	d := xxhash.New()
	u.Resumed = "copy"
	rec, haveRec := meta{fd: int(src.Fd()), dirfd: u.dirfd, name: u.name}.readRecord(&st)
	if rd, ok := rec.digest(); haveRec && ok && n == st.Size {
		d, u.Resumed = rd, "record"
	}
	// Copy with pread/write (page cache to page cache), hashing unless
	// the record already gave the state.
	buf := make([]byte, hashBuf)
	for off := int64(0); off < n; {
		k, err := unix.Pread(int(src.Fd()), buf[:min(int64(len(buf)), n-off)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("pread", err)
		}
		if k == 0 {
			return fmt.Errorf("datapath: %s shrank while copying", u.vpath)
		}
		if u.Resumed == "copy" {
			d.Write(buf[:k])
		}
		if _, err := u.f.Write(buf[:k]); err != nil {
			return err
		}
		off += int64(k)
	}
	u.d, u.base = d, n
	return nil
}

// checkpoint records the digest state of the partial's first off bytes.
// Best effort: a lost checkpoint costs a longer re-hash, never a wrong
// digest (resumePartial only trusts one that lies within the file).
func (u *Upload) checkpoint(off int64, d *xxhash.Digest) {
	st, err := d.MarshalBinary()
	if err != nil {
		return
	}
	u.meta().set(xattrCkpt, checkpoint{Off: off, state: st}.marshal())
}

// Offset is where the client's bytes go.
func (u *Upload) Offset() int64 { return u.base }

// File is the partial, for progress reports (Stat).
func (u *Upload) File() *os.File { return u.f }

// Receive moves the client's bytes into the partial (the same movers as
// ReceiveWith), hashing them inline. After an error the bytes received so
// far stay in the partial and the digest covers them.
func (u *Upload) Receive(src net.Conn, o Options) (Result, error) {
	if u.writeOnly {
		return u.receive(src, o, hashTee)
	}
	return u.receive(src, o, hashAsync)
}

// uploadAllowed decides, from the folder's rights, whether an upload may
// start: a new name needs create; replacing an existing file (STOR, or a
// resume that cuts it) needs overwrite; extending it (APPE, or REST n +
// STOR with n its size) needs append or overwrite.
func uploadAllowed(r Rights, mode UploadMode, offset int64, finalExists bool, finalSize int64) error {
	switch {
	case !finalExists:
		if !r.Has(RightWrite) {
			return &kindError{kind: ErrNoRight, msg: "folder lacks the create right"}
		}
	case r.Has(RightOverwrite):
	case mode == UploadAppend || (mode == UploadStore && offset > 0 && offset == finalSize):
		if !r.Has(RightAppend) {
			return &kindError{kind: ErrNoOverwrite, cause: unix.EEXIST, msg: "folder lacks the append and overwrite rights"}
		}
	default:
		return &kindError{kind: ErrNoOverwrite, cause: unix.EEXIST}
	}
	return nil
}

func (u *Upload) receive(src net.Conn, o Options, mode hashMode) (Result, error) {
	h := newInline(int(u.f.Fd()), u.d, u.base, mode)
	h.ckpt = u.checkpoint
	h.start()
	o.hash = h
	res, err := ReceiveWith(u.f, src, o)
	herr := h.finish()
	u.base = h.off
	if err == nil && herr != nil {
		err = fmt.Errorf("receive: hashing: %w", herr)
	}
	return res, err
}

// Commit finishes a successful upload: it checks that the digest covers
// the whole file, records it (size, mtime, XXH64) on the file, and renames
// the partial over the final name. The Upload is released either way.
func (u *Upload) Commit() (Record, error) {
	if u.done {
		return Record{}, errors.New("datapath: upload already finished")
	}
	rec, err := u.commit()
	if err != nil {
		u.release(true)
		return Record{}, pathErr("commit", u.vpath, err)
	}
	u.release(false)
	return rec, nil
}

func (u *Upload) commit() (Record, error) {
	fd := int(u.f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Record{}, err
	}
	if st.Size != u.base {
		// Cannot happen with our movers; if it does, hash what is
		// really there rather than record a wrong digest.
		if st.Size < u.base {
			return Record{}, fmt.Errorf("partial shrank to %d while the digest covers %d", st.Size, u.base)
		}
		if err := hashRange(fd, u.d, u.base, st.Size, make([]byte, hashBuf), nil); err != nil {
			return Record{}, err
		}
		u.base = st.Size
	}
	if u.Durable {
		if err := unix.Fdatasync(fd); err != nil {
			return Record{}, os.NewSyscallError("fdatasync", err)
		}
	}
	state, _ := u.d.MarshalBinary()
	rec := Record{Size: st.Size, Mtime: st.Mtim.Nano(), Sum: u.d.Sum64(), state: state}
	m := u.meta()
	m.remove(xattrCkpt)
	fm := meta{fd: fd, dirfd: u.dirfd, name: u.name}
	// The record goes on the inode before the rename, so the name never
	// appears without it. A failure to write it is not fatal: the
	// digest is then recomputed when asked for.
	_ = fm.set(xattrRecord, rec.marshal())
	var flags uint
	if u.noReplace {
		flags = unix.RENAME_NOREPLACE
	}
	if err := unix.Renameat2(u.dirfd, u.pname, u.dirfd, u.name, flags); err != nil {
		if err == unix.EEXIST && u.mode != UploadUnique {
			return Record{}, &kindError{kind: ErrNoOverwrite, cause: unix.EEXIST, msg: "created meanwhile"}
		}
		return Record{}, os.NewSyscallError("renameat2", err)
	}
	if u.Durable {
		if dfd, err := openBeneath(u.dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
			unix.Fsync(dfd)
			unix.Close(dfd)
		}
	}
	return rec, nil
}

// Abort ends a failed upload: the partial stays, with a checkpoint of the
// digest of everything it holds, ready for REST + STOR. An upload that
// received nothing leaves nothing behind.
func (u *Upload) Abort() {
	if u.done {
		return
	}
	u.release(true)
}

// release closes the partial (dropping its lock) and the directory fd;
// keep=true checkpoints it first (an empty, fresh partial is removed).
func (u *Upload) release(keep bool) {
	if u.done {
		return
	}
	u.done = true
	if u.f != nil {
		if keep && u.d != nil {
			var st unix.Stat_t
			if unix.Fstat(int(u.f.Fd()), &st) == nil && st.Size == 0 {
				unix.Unlinkat(u.dirfd, u.pname, 0)
			} else {
				u.checkpoint(u.base, u.d)
			}
		} else if !keep && u.d == nil {
			// Failed before it began: a partial we just created, empty,
			// goes again; an existing one (busy, or a bad offset) stays.
			var st unix.Stat_t
			if unix.Fstat(int(u.f.Fd()), &st) == nil && st.Size == 0 {
				unix.Unlinkat(u.dirfd, u.pname, 0)
			}
		}
		u.f.Close()
	}
	unix.Close(u.dirfd)
}

// PartialSize reports the length of p's interrupted (or running) upload,
// which REST + STOR or APPE continues: fs.ErrNotExist when there is none.
// Needs RightWrite or RightRead.
func (t *Tree) PartialSize(p string) (int64, error) {
	const op = "size"
	tg, err := t.lock(op, p)
	if err != nil {
		return 0, err
	}
	defer t.mu.RUnlock()
	if r := t.rightsOf(tg); !r.Any(RightsWriting | RightRead) {
		return 0, kindErr(op, p, ErrNoRight, "folder lacks the read and write rights")
	}
	if t.reserved(tg) {
		return 0, pathErr(op, p, unix.ENOENT)
	}
	dirfd, name, err := openParent(op, tg)
	if err != nil {
		return 0, err
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, PartialPrefix+name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, resolveErr(op, p, err, false)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 {
		return 0, pathErr(op, p, unix.ENOENT)
	}
	return st.Size, nil
}

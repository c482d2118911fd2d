// Package sftp is the SFTP subsystem (SFTP v3, draft-ietf-secsh-filexfer-02,
// through github.com/pkg/sftp's request server) on the same accounts,
// folders, rights and data path as FTP: every path is resolved by
// datapath.Tree beneath the account's directory fds, uploads are atomic
// with the XXH64 digest recorded at commit, and audit events use the FTP
// engine's Event type so that the supervisor logs them the same way.
package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	pkgsftp "github.com/pkg/sftp"

	"github.com/sluice-ftp/sluice/datapath"
	"github.com/sluice-ftp/sluice/ftp"
)

// FS is what the subsystem needs of the account's tree (datapath.Tree).
type FS interface {
	Stat(path string) (fs.FileInfo, error)
	ReadDir(path string) ([]fs.FileInfo, error)
	Open(path string) (*os.File, error)
	Mkdir(path string) error
	Remove(path string) error
	Rmdir(path string) error
	Rename(from, to string) error
	Chtimes(path string, mtime time.Time) error
	Chmod(path string, mode fs.FileMode) error
	BeginUpload(path string, mode datapath.UploadMode, offset int64) (*datapath.Upload, error)
}

var _ FS = (*datapath.Tree)(nil)

// Server serves one SFTP channel.
type Server struct {
	FS     FS
	Events ftp.EventSink
	// Detail is added to every event (the SSH key's fingerprint).
	Detail string
	// Pacer, if set, paces one file's transfer ("in" or "out"): the
	// account's bandwidth share, as ftp.Account.Pacer.
	Pacer func(dir string) datapath.Pacer
	// Meter, if set, bounds every file transfer by the account's quotas,
	// as ftp.Account.Meter.
	Meter ftp.Meter

	mu      sync.Mutex
	sum     ftp.Summary
	uploads map[string]*writer // open uploads by path: SETSTAT applies after commit
}

// Serve runs the subsystem on ch until the client closes it.
func (s *Server) Serve(ch io.ReadWriteCloser) error {
	h := pkgsftp.Handlers{FileGet: s, FilePut: s, FileCmd: s, FileList: s}
	rs := pkgsftp.NewRequestServer(ch, h, pkgsftp.WithRSAllocator())
	err := rs.Serve()
	rs.Close()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// Summary reports the counters for the session's Close message.
func (s *Server) Summary() ftp.Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum
}

func (s *Server) emit(ev ftp.Event) {
	if s.Events == nil {
		return
	}
	ev.Time = time.Now()
	if s.Detail != "" {
		if ev.Detail != "" {
			ev.Detail += "; "
		}
		ev.Detail += s.Detail
	}
	s.mu.Lock()
	s.sum.Commands++
	s.mu.Unlock()
	s.Events.Emit(ev)
}

// clean checks a path from the client: valid UTF-8, no NUL, made
// absolute and clean here, once; the kernel resolves it beneath the
// folder (datapath.Tree).
func clean(p string) (string, error) {
	if !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0 {
		return "", pkgsftp.ErrSSHFxBadMessage
	}
	return path.Clean("/" + p), nil
}

// mapErr turns the tree's errors into SFTP status codes.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return os.ErrNotExist
	case errors.Is(err, datapath.ErrNoRight), errors.Is(err, datapath.ErrEscape), errors.Is(err, fs.ErrPermission),
		errors.Is(err, datapath.ErrCrossFolder):
		return os.ErrPermission
	}
	return fmt.Errorf("%w: %v", pkgsftp.ErrSSHFxFailure, err)
}

// Fileread opens a file for download.
func (s *Server) Fileread(r *pkgsftp.Request) (io.ReaderAt, error) {
	p, err := clean(r.Filepath)
	if err != nil {
		return nil, err
	}
	f, err := s.FS.Open(p)
	if err != nil {
		return nil, mapErr(err)
	}
	rd := &reader{s: s, f: f, path: p, start: time.Now(), pacer: s.pacer("out")}
	if s.Meter != nil {
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		m, err := s.Meter.Begin(context.Background(), ftp.MeterInfo{Dir: "out", Path: p, Existing: size})
		if err != nil {
			f.Close()
			s.emit(ftp.Event{Kind: "transfer", Command: "SFTP-READ", Path: p, Dir: "out", Code: quotaCode(err), Mover: "sftp", Detail: err.Error()})
			return nil, quotaErr(err)
		}
		rd.budget = &budget{m: m}
	}
	return rd, nil
}

// budget applies a Metering to SFTP reads and writes, which come at any
// offset and possibly concurrently: the bytes it counts are the bytes
// read (downloads) or the growth of the file (uploads).
type budget struct {
	m       ftp.Metering
	mu      sync.Mutex
	granted int64 // -1: unlimited
	used    int64
	started bool
	err     error
}

// take asks for n more bytes and returns how many of them may move, and
// the quota's error when that is fewer than n.
func (b *budget) take(n int64) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	for b.granted >= 0 && b.used+n > b.granted || !b.started {
		more, err := b.m.Next()
		b.started = true
		if err != nil {
			ok := max(b.granted-b.used, 0)
			b.used += ok
			b.err = err
			return ok, err
		}
		if more < 0 {
			b.granted = -1
			break
		}
		b.granted += more
	}
	b.used += n
	return n, nil
}

// quotaCode is the FTP-style code of a quota refusal (for the audit event).
func quotaCode(err error) int {
	var qe *ftp.QuotaError
	if errors.As(err, &qe) {
		return qe.Code
	}
	return 451
}

// quotaErr is a quota refusal as an SFTP status (SSH_FX_FAILURE with the
// reply's text: SFTP v3 has no quota status).
func quotaErr(err error) error {
	var qe *ftp.QuotaError
	if errors.As(err, &qe) {
		return fmt.Errorf("%w: %s", pkgsftp.ErrSSHFxFailure, qe.Msg)
	}
	return mapErr(err)
}

func (s *Server) pacer(dir string) datapath.Pacer {
	if s.Pacer == nil {
		return nil
	}
	return s.Pacer(dir)
}

type reader struct {
	s      *Server
	f      *os.File
	path   string
	start  time.Time
	n      atomic.Int64
	err    error
	pacer  datapath.Pacer
	budget *budget
}

func (r *reader) ReadAt(b []byte, off int64) (int, error) {
	if r.budget != nil {
		ok, qerr := r.budget.take(int64(len(b)))
		if qerr != nil {
			if ok == 0 {
				return 0, quotaErr(qerr)
			}
			b = b[:ok]
		}
	}
	n, err := r.f.ReadAt(b, off)
	r.n.Add(int64(n))
	if r.pacer != nil && n > 0 {
		if perr := r.pacer.Wait(n); perr != nil && err == nil {
			err = perr
		}
	}
	return n, err
}

func (r *reader) TransferError(err error) { r.err = err }

func (r *reader) Close() error {
	err := r.f.Close()
	n := r.n.Load()
	code := 226
	detail := ""
	if r.err != nil {
		code, detail = 426, r.err.Error()
	}
	if r.budget != nil {
		if qe := r.budget.err; qe != nil {
			code, detail = quotaCode(qe), qe.Error()
		}
		r.budget.m.End(n, false)
	}
	r.s.mu.Lock()
	r.s.sum.BytesOut += n
	if code == 226 {
		r.s.sum.FilesOut++
	}
	r.s.mu.Unlock()
	r.s.emit(ftp.Event{Kind: "transfer", Command: "SFTP-READ", Path: r.path, Dir: "out", Bytes: n,
		Duration: time.Since(r.start), Code: code, Mover: "sftp", Detail: detail})
	return err
}

// Filewrite starts an atomic upload: the bytes go to the hidden partial
// (in any order: SFTP clients keep many writes in flight), and Close
// commits it, hashing the range written from the page cache so that the
// file's XXH64 record covers exactly what is on disk. A connection lost
// mid-upload keeps the partial for a resume instead of committing it.
func (s *Server) Filewrite(r *pkgsftp.Request) (io.WriterAt, error) {
	p, err := clean(r.Filepath)
	if err != nil {
		return nil, err
	}
	fl := r.Pflags()
	mode, offset := datapath.UploadStore, int64(0)
	switch {
	case fl.Append:
		mode = datapath.UploadAppend
	case !fl.Trunc:
		// A resume (OpenSSH reput, rclone): keep what is there.
		if fi, err := s.FS.Stat(p); err == nil && fi.Mode().IsRegular() {
			offset = fi.Size()
		}
	}
	var m ftp.Metering
	if s.Meter != nil {
		info := ftp.MeterInfo{Dir: "in", Path: p, Mode: "store", Existing: -1, Offset: offset}
		if mode == datapath.UploadAppend {
			info.Mode = "append"
		}
		if fi, err := s.FS.Stat(p); err == nil && fi.Mode().IsRegular() {
			info.Existing = fi.Size()
		}
		if ps, ok := s.FS.(interface{ PartialSize(string) (int64, error) }); ok {
			if n, err := ps.PartialSize(p); err == nil {
				info.Partial, info.PartialSize = true, n
			}
		}
		if m, err = s.Meter.Begin(context.Background(), info); err != nil {
			s.emit(ftp.Event{Kind: "transfer", Command: "SFTP-WRITE", Path: p, Dir: "in", Code: quotaCode(err), Mover: "sftp", Detail: err.Error()})
			return nil, quotaErr(err)
		}
	}
	u, err := s.FS.BeginUpload(p, mode, offset)
	if err != nil {
		if m != nil {
			m.End(0, false)
		}
		return nil, mapErr(err)
	}
	w := &writer{s: s, u: u, f: u.File(), path: p, start: time.Now(), base: u.Offset(), end: u.Offset(), pacer: s.pacer("in")}
	if m != nil {
		w.budget = &budget{m: m}
	}
	s.mu.Lock()
	if s.uploads == nil {
		s.uploads = map[string]*writer{}
	}
	s.uploads[p] = w
	s.mu.Unlock()
	return w, nil
}

type writer struct {
	s     *Server
	u     *datapath.Upload
	f     *os.File
	path  string
	start time.Time
	base  int64
	n     atomic.Int64
	mu    sync.Mutex
	err   error
	// Attributes set (FSETSTAT) while the upload was open, applied to
	// the file once it is in place.
	mode  *fs.FileMode
	mtime *time.Time
	pacer datapath.Pacer
	// budget bounds the file's growth past end, the highest offset
	// written so far (writes arrive out of order and may overlap).
	budget *budget
	end    int64
}

func (w *writer) WriteAt(b []byte, off int64) (int, error) {
	if w.budget != nil {
		w.mu.Lock()
		grow := off + int64(len(b)) - w.end
		var qerr error
		if grow > 0 {
			var ok int64
			ok, qerr = w.budget.take(grow)
			w.end += ok
			if qerr != nil {
				b = b[:max(int64(len(b))-(grow-ok), 0)]
			}
		}
		w.mu.Unlock()
		if qerr != nil {
			n, _ := w.f.WriteAt(b, off)
			w.n.Add(int64(n))
			return n, quotaErr(qerr)
		}
	}
	n, err := w.f.WriteAt(b, off)
	w.n.Add(int64(n))
	if w.pacer != nil && n > 0 {
		if perr := w.pacer.Wait(n); perr != nil && err == nil {
			err = perr
		}
	}
	return n, err
}

func (w *writer) TransferError(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *writer) Close() error {
	w.mu.Lock()
	terr, mode, mtime := w.err, w.mode, w.mtime
	w.mu.Unlock()
	w.s.mu.Lock()
	if w.s.uploads[w.path] == w {
		delete(w.s.uploads, w.path)
	}
	w.s.mu.Unlock()
	n := w.n.Load()
	ev := ftp.Event{Kind: "transfer", Command: "SFTP-WRITE", Path: w.path, Dir: "in", Bytes: n, Mover: "sftp", Code: 226}
	var err error
	if w.budget != nil && w.budget.err != nil && terr == nil {
		terr = w.budget.err
	}
	if terr != nil {
		w.u.Abort()
		ev.Code, ev.Detail = 426, terr.Error()+"; partial kept for resume"
		err = terr
	} else if rec, cerr := w.u.Commit(); cerr != nil {
		ev.Code, ev.Detail = 451, cerr.Error()
		err = mapErr(cerr)
	} else {
		ev.Detail = "xxh64=" + rec.Hex()
		if mode != nil {
			_ = w.s.FS.Chmod(w.path, *mode)
		}
		if mtime != nil {
			_ = w.s.FS.Chtimes(w.path, *mtime)
		}
	}
	ev.Duration = time.Since(w.start)
	if w.budget != nil {
		if qe := w.budget.err; qe != nil {
			ev.Code = quotaCode(qe)
		}
		if warn := w.budget.m.End(n, ev.Code == 226); warn != "" {
			ev.Detail = strings.TrimPrefix(ev.Detail+"; "+warn, "; ")
		}
	}
	w.s.mu.Lock()
	w.s.sum.BytesIn += n
	if ev.Code == 226 {
		w.s.sum.FilesIn++
	}
	w.s.mu.Unlock()
	w.s.emit(ev)
	return err
}

// Filecmd: mkdir, rmdir, remove, rename, setstat. Links are refused: the
// tree never creates them.
func (s *Server) Filecmd(r *pkgsftp.Request) error {
	p, err := clean(r.Filepath)
	if err != nil {
		return err
	}
	ev := ftp.Event{Path: p, Code: 250}
	switch r.Method {
	case "Mkdir":
		ev.Kind, err = "mkdir", s.FS.Mkdir(p)
	case "Rmdir":
		ev.Kind, err = "delete", s.FS.Rmdir(p)
	case "Remove":
		if fi, serr := s.FS.Stat(p); serr == nil && fi.Mode().IsRegular() {
			ev.File, ev.Size = true, fi.Size()
		}
		ev.Kind, err = "delete", s.FS.Remove(p)
	case "Rename", "PosixRename":
		var to string
		if to, err = clean(r.Target); err != nil {
			return err
		}
		ev = ftp.RenameEvent(s.FS, p, to)
		ev.Code = 250
		err = s.FS.Rename(p, to)
	case "Setstat":
		return s.setstat(p, r)
	case "Symlink", "Link":
		return pkgsftp.ErrSSHFxOpUnsupported
	default:
		return pkgsftp.ErrSSHFxOpUnsupported
	}
	if err != nil {
		ev.Code, ev.Detail = 550, err.Error()
	}
	s.emit(ev)
	return mapErr(err)
}

// PosixRename (posix-rename@openssh.com) is Rename: the tree's rename
// replaces an existing target atomically anyway.
func (s *Server) PosixRename(r *pkgsftp.Request) error { return s.Filecmd(r) }

// setstat sets permission bits and the modification time. Owners are
// not changed (the account's uid owns its files), and a size is only
// accepted on a file being uploaded, where it is the size written.
func (s *Server) setstat(p string, r *pkgsftp.Request) error {
	fl := r.AttrFlags()
	a := r.Attributes()
	s.mu.Lock()
	w := s.uploads[p]
	s.mu.Unlock()
	if w != nil {
		// FSETSTAT on an open upload (scp, sftp put): the file is still
		// the hidden partial; keep the attributes for the commit.
		w.mu.Lock()
		if fl.Permissions {
			m := fs.FileMode(a.Mode) & 0o777
			w.mode = &m
		}
		if fl.Acmodtime {
			t := time.Unix(int64(a.Mtime), 0)
			w.mtime = &t
		}
		w.mu.Unlock()
		return nil
	}
	if fl.Size {
		return pkgsftp.ErrSSHFxOpUnsupported
	}
	if fl.Permissions {
		if err := s.FS.Chmod(p, fs.FileMode(a.Mode)&0o777); err != nil {
			return mapErr(err)
		}
	}
	if fl.Acmodtime {
		if err := s.FS.Chtimes(p, time.Unix(int64(a.Mtime), 0)); err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// Filelist: List, Stat (Lstat is the same: the tree refuses symlinks).
func (s *Server) Filelist(r *pkgsftp.Request) (pkgsftp.ListerAt, error) {
	p, err := clean(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "List":
		ents, err := s.FS.ReadDir(p)
		if err != nil {
			return nil, mapErr(err)
		}
		return lister(ents), nil
	case "Stat", "Lstat":
		fi, err := s.FS.Stat(p)
		if err != nil {
			return nil, mapErr(err)
		}
		return lister{fi}, nil
	}
	return nil, pkgsftp.ErrSSHFxOpUnsupported
}

type lister []fs.FileInfo

func (l lister) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if off+int64(n) >= int64(len(l)) {
		return n, io.EOF
	}
	return n, nil
}

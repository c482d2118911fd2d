package datapath

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Errors returned by Tree, always wrapped in an *fs.PathError that names the
// virtual path (never the storage path). Errors that come from the kernel
// also wrap the errno, so errors.Is(err, fs.ErrNotExist), fs.ErrExist and
// fs.ErrPermission work as with package os (syscall.Errno implements Is).
var (
	// ErrEscape: the path is not a clean absolute virtual path, or the
	// kernel refused to resolve it beneath the folder (EXDEV: `..` above the
	// folder, an absolute symlink, a symlink climbing out; ELOOP: a /proc
	// magic link, or a symlink loop — the kernel does not tell them apart).
	ErrEscape = errors.New("path escapes its folder")
	// ErrNotDir: a directory was expected (ENOTDIR).
	ErrNotDir = errors.New("not a directory")
	// ErrIsDir: a file was expected, or a rename would replace a directory.
	ErrIsDir = errors.New("is a directory")
	// ErrNoRight: the folder's Rights do not allow the operation, or the
	// path is a mount point or a synthetic directory, which no operation
	// may change.
	ErrNoRight = errors.New("not allowed")
	// ErrCrossFolder: rename between two mounts. Each mount is a separate
	// directory fd, possibly on separate file systems; a copy-and-delete
	// is the client's business.
	ErrCrossFolder = errors.New("rename across folders")
	// ErrNoOverwrite: the name exists and the folder's rights do not
	// include overwrite (a dropbox, an append-only folder). It also
	// matches fs.ErrExist.
	ErrNoOverwrite = fmt.Errorf("file exists and may not be overwritten: %w", fs.ErrExist)
)

// kindError pairs one of our sentinels with the errno behind it, so both
// errors.Is(err, ErrNotDir) and errors.Is(err, unix.ENOTDIR) hold.
type kindError struct {
	kind  error
	cause error // errno or nil
	msg   string
}

func (e *kindError) Error() string {
	s := e.kind.Error()
	if e.msg != "" {
		s += ": " + e.msg
	}
	return s
}

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func pathErr(op, vpath string, err error) error {
	return &fs.PathError{Op: op, Path: vpath, Err: err}
}

func kindErr(op, vpath string, kind error, msg string) error {
	return pathErr(op, vpath, &kindError{kind: kind, msg: msg})
}

// resolveErr maps an error of openat2 (or of an *at syscall on the final
// component when resolve is false) to the package's vocabulary.
func resolveErr(op, vpath string, err error, resolve bool) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return pathErr(op, vpath, err)
	}
	switch errno {
	case unix.EXDEV:
		if resolve {
			// RESOLVE_BENEATH: `..` above the root, an absolute
			// symlink, or a symlink whose target climbs out.
			return pathErr(op, vpath, &kindError{kind: ErrEscape, cause: errno})
		}
	case unix.ELOOP:
		if resolve {
			return pathErr(op, vpath, &kindError{kind: ErrEscape, cause: errno, msg: "magic link or symlink loop"})
		}
	case unix.ENOTDIR:
		return pathErr(op, vpath, &kindError{kind: ErrNotDir, cause: errno})
	case unix.EISDIR:
		return pathErr(op, vpath, &kindError{kind: ErrIsDir, cause: errno})
	}
	return pathErr(op, vpath, errno)
}

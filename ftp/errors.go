package ftp

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"syscall"

	"github.com/sluice-ftp/sluice/datapath"
)

// opKind tells replyForErr in which phase an error happened, because the
// same errno deserves a different reply before and during a transfer.
type opKind int

const (
	// opFile: a file-system command or the file-opening step of a transfer
	// command. Unclassified errors are 550 (RFC 959 "file unavailable").
	opFile opKind = iota
	// opTransfer: moving bytes. Data connection failures are 426, local
	// failures 451 (RFC 959 section 4.2, "Requested action aborted: local
	// error in processing").
	opTransfer
)

// replyForErr maps an error to the reply it deserves. It is the one place
// where FileSystem, datapath and network errors become reply codes, so a
// given failure reads the same whatever command hit it. subject is the
// virtual path (or name) the reply talks about; it never contains a host
// path, and the error text itself is not echoed (it may; it goes to the
// audit event's Detail instead).
func replyForErr(err error, subject string, op opKind) (int, string) {
	prefix := ""
	if subject != "" {
		prefix = subject + ": "
	}
	var re *replyError
	var qe *QuotaError
	switch {
	case errors.As(err, &re):
		return re.Code, prefix + re.Msg
	case errors.As(err, &qe):
		return qe.Code, prefix + qe.Msg
	case errors.Is(err, errBadUTF8):
		// RFC 959: 553 "File name not allowed".
		return 553, "File name not allowed: not valid UTF-8."
	case errors.Is(err, errNULInPath):
		return 501, "File name not allowed: contains NUL."
	case errors.Is(err, errEscape):
		return 550, prefix + "path leaves your tree."
	case errors.Is(err, datapath.ErrCorrupt):
		// verify_on_retr: the last chunk was withheld.
		return 451, prefix + "Requested action aborted: the file does not match the checksum recorded when it was stored (damaged on disk); transfer stopped before its end."
	case errors.Is(err, datapath.ErrHashTooLarge):
		return 552, prefix + "Range too large to hash on request; ask for a smaller RANG."
	case errors.Is(err, datapath.ErrNoOverwrite):
		return 550, prefix + "File exists and may not be overwritten."
	case errors.Is(err, datapath.ErrBusy):
		return 450, prefix + "An upload to this name is in progress; try again later."
	case errors.Is(err, errNoRight), errors.Is(err, fs.ErrPermission):
		return 550, prefix + "Permission denied."
	case isNoSpace(err):
		// RFC 959: 552 "exceeded storage allocation".
		return 552, prefix + "Insufficient storage space (disk full or quota exceeded)."
	case errors.Is(err, syscall.ENAMETOOLONG):
		return 553, prefix + "File name too long."
	}
	if op == opTransfer {
		if isNetErr(err) {
			return 426, "Connection closed; transfer aborted."
		}
		return 451, prefix + "Requested action aborted: local error in processing."
	}
	switch {
	case errors.Is(err, syscall.ENOTEMPTY):
		// Before fs.ErrExist: syscall.Errno counts ENOTEMPTY as "exists".
		return 550, prefix + "Directory not empty."
	case errors.Is(err, fs.ErrNotExist):
		return 550, prefix + "No such file or directory."
	case errors.Is(err, fs.ErrExist):
		return 550, prefix + "File exists."
	case errors.Is(err, errIsDir), errors.Is(err, syscall.EISDIR):
		return 550, prefix + "Is a directory."
	case errors.Is(err, errNotDir), errors.Is(err, syscall.ENOTDIR):
		return 550, prefix + "Not a directory."
	case errors.Is(err, errCrossFolder), errors.Is(err, syscall.EXDEV):
		return 550, prefix + "Cannot move across folders or file systems."
	case errors.Is(err, syscall.EROFS):
		return 550, prefix + "Read-only file system."
	case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.ETXTBSY):
		// RFC 959: 450 "file busy" (a transient condition).
		return 450, prefix + "File busy."
	case errors.Is(err, syscall.ELOOP):
		return 550, prefix + "Too many levels of symbolic links."
	case errors.Is(err, syscall.EINVAL):
		return 550, prefix + "Invalid argument."
	}
	return 550, prefix + "Requested action not taken."
}

// isNoSpace reports disk-full and quota-exceeded errors.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// isNetErr reports whether err came from the data connection rather than
// the file: the peer reset or closed it, a deadline passed, or we closed it
// (ABOR).
func isNetErr(err error) bool {
	// Not errors.As(err, *net.Error): syscall.Errno implements it, so every
	// file error would match.
	var oe *net.OpError
	return errors.As(err, &oe) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ETIMEDOUT)
}

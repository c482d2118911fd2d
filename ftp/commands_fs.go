package ftp

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// resolve turns a path argument into a clean virtual path, replying (and
// returning ok=false) when it is missing or refused. It also records the
// path for the command's audit event.
func (s *Session) resolve(arg string) (string, bool) {
	if arg == "" {
		s.reply(501, "Missing path argument.")
		return "", false
	}
	p, err := cleanPath(s.cwd, arg)
	if err != nil {
		code, msg := replyForErr(err, arg, opFile)
		s.reply(code, msg)
		return "", false
	}
	s.evPath = p
	return p, true
}

// resolveOrCwd is resolve with the working directory as the default.
func (s *Session) resolveOrCwd(arg string) (string, bool) {
	if arg == "" {
		s.evPath = s.cwd
		return s.cwd, true
	}
	return s.resolve(arg)
}

// allowed checks the account's rights at p before an operation, so the
// client gets a clear 550 rather than whatever errno the kernel's
// enforcement (which stays authoritative) would produce.
func (s *Session) allowed(p string, want datapath.Rights) bool {
	if s.fs.Rights(p).Has(want) {
		return true
	}
	s.reply(550, p+": Permission denied.")
	return false
}

// allowedAny is allowed for "one of these rights" (STOR needs create,
// overwrite or append; the file system decides which one applies).
func (s *Session) allowedAny(p string, want datapath.Rights) bool {
	if s.fs.Rights(p).Any(want) {
		return true
	}
	s.reply(550, p+": Permission denied.")
	return false
}

// gate asks the account's Gate (pre-upload, pre-download hooks run by the
// supervisor) whether op on p may go ahead; a refusal is a 550.
func (s *Session) gate(op, p string) bool {
	if s.acct == nil || s.acct.Gate == nil {
		return true
	}
	if err := s.acct.Gate(s.ctx, op, p); err != nil {
		s.reply(550, p+": Refused by server policy ("+op+" check).")
		s.evPath = p
		return false
	}
	return true
}

// fail replies for a FileSystem error and returns the code.
func (s *Session) fail(err error, subject string) int {
	code, msg := replyForErr(err, subject, opFile)
	s.reply(code, msg)
	return code
}

func (s *Session) cmdPWD(string) {
	s.reply(257, quotePath(s.cwd)+" is the current directory.")
}

func (s *Session) cmdCWD(arg string) {
	p, ok := s.resolve(arg)
	if !ok {
		return
	}
	s.changeDir(p)
}

// cmdCDUP is CWD ".." (RFC 959 section 4.1.1). At "/" it is refused like
// any other climb out of the tree.
func (s *Session) cmdCDUP(string) {
	p, err := cleanPath(s.cwd, "..")
	if err != nil {
		s.fail(err, s.cwd)
		return
	}
	s.evPath = p
	s.changeDir(p)
}

func (s *Session) changeDir(p string) {
	fi, err := s.fs.Stat(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	if !fi.IsDir() {
		s.reply(550, p+": Not a directory.")
		return
	}
	s.cwd = p
	s.reply(250, "Directory successfully changed.")
}

func (s *Session) cmdMKD(arg string) {
	s.fsChange(arg, "mkdir", datapath.RightMkdir, s.fs.Mkdir, func(p string) (int, string) {
		return 257, quotePath(p) + " created."
	})
}

func (s *Session) cmdRMD(arg string) {
	s.fsChange(arg, "rmdir", datapath.RightDelete, s.fs.Rmdir, func(string) (int, string) {
		return 250, "Remove directory operation successful."
	})
}

func (s *Session) cmdDELE(arg string) {
	s.fsChange(arg, "delete", datapath.RightDelete, s.fs.Remove, func(string) (int, string) {
		return 250, "Delete operation successful."
	})
}

// fsChange runs one file-system change on the argument's path: resolve,
// check the right, apply, reply, and emit the audit event either way.
func (s *Session) fsChange(arg, kind string, right datapath.Rights, apply func(string) error, ok func(p string) (int, string)) {
	p, valid := s.resolve(arg)
	if !valid || !s.allowed(p, right) {
		return
	}
	ev := Event{Kind: kind, Path: p}
	if kind == "delete" {
		if fi, err := s.fs.Stat(p); err == nil && fi.Mode().IsRegular() {
			ev.File, ev.Size = true, fi.Size()
		}
	}
	if err := apply(p); err != nil {
		ev.Code, ev.Detail = s.fail(err, p), err.Error()
	} else {
		code, msg := ok(p)
		s.reply(code, msg)
		ev.Code = code
	}
	s.emit(ev)
}

func (s *Session) cmdRNFR(arg string) {
	s.renameFrom = ""
	p, ok := s.resolve(arg)
	if !ok || !s.allowed(p, datapath.RightRename) {
		return
	}
	if _, err := s.fs.Stat(p); err != nil {
		s.fail(err, p)
		return
	}
	s.renameFrom = p
	s.reply(350, "Ready for RNTO.")
}

// cmdRNTO completes a rename started by the RNFR just before it.
func (s *Session) cmdRNTO(arg string) {
	from := s.renameFrom
	if from == "" {
		s.reply(503, "RNFR required first.")
		return
	}
	to, ok := s.resolve(arg)
	if !ok || !s.allowed(from, datapath.RightRename) || !s.allowed(to, datapath.RightRename) {
		return
	}
	ev := renameEvent(s.fs, from, to)
	if err := s.fs.Rename(from, to); err != nil {
		ev.Code, ev.Detail = s.fail(err, to), err.Error()
	} else {
		s.reply(250, "Rename successful.")
		ev.Code = 250
	}
	s.emit(ev)
}

// cmdSIZE: RFC 3659 section 4. Regular files only (550 otherwise). The size
// is the stored size even in TYPE A: computing the CRLF size would mean
// reading the whole file, and clients use SIZE for progress and REST, which
// we only support in TYPE I anyway.
func (s *Session) cmdSIZE(arg string) {
	p, ok := s.resolve(arg)
	if !ok || !s.allowed(p, datapath.RightRead) {
		return
	}
	fi, err := s.fs.Stat(p)
	if err != nil {
		// A name that exists only as an interrupted upload reports the
		// length a resume continues from: `curl -C -` sends SIZE, then
		// APPE from that offset (REST n + STOR works as well).
		if up, ok := s.fs.(Uploader); ok && errors.Is(err, fs.ErrNotExist) {
			if n, perr := up.PartialSize(p); perr == nil {
				s.replyf(213, "%d", n)
				return
			}
		}
		s.fail(err, p)
		return
	}
	if !fi.Mode().IsRegular() {
		s.reply(550, p+": not a regular file.")
		return
	}
	s.replyf(213, "%d", fi.Size())
}

// cmdMDTM: RFC 3659 section 3, time-val in UTC. The two-argument "MDTM
// time path" (set) form some servers accept is not: MFMT does that.
func (s *Session) cmdMDTM(arg string) {
	p, ok := s.resolve(arg)
	if !ok || !s.allowed(p, datapath.RightRead) {
		return
	}
	fi, err := s.fs.Stat(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	s.reply(213, fi.ModTime().UTC().Format(timeVal))
}

// timeVal is RFC 3659's time-val without fraction (section 2.3).
const timeVal = "20060102150405"

// cmdMFMT sets a modification time: "MFMT YYYYMMDDHHMMSS path"
// (draft-somers-ftp-mfxx), replying "213 Modify=time; path".
func (s *Session) cmdMFMT(arg string) {
	tv, rest, ok := strings.Cut(arg, " ")
	if !ok || rest == "" {
		s.reply(501, "Usage: MFMT YYYYMMDDHHMMSS path")
		return
	}
	t, err := parseTimeVal(tv)
	if err != nil {
		s.reply(501, "Bad time value; use YYYYMMDDHHMMSS (UTC).")
		return
	}
	p, ok := s.resolve(rest)
	if !ok || !s.allowedAny(p, datapath.RightsWriting) {
		return
	}
	if err := s.fs.Chtimes(p, t); err != nil {
		s.fail(err, p)
		return
	}
	s.replyf(213, "Modify=%s; %s", t.Format(timeVal), rest)
}

// parseTimeVal parses a time-val (RFC 3659 section 2.3): 14 digits, UTC,
// with an optional fraction of up to 9 digits.
func parseTimeVal(tv string) (time.Time, error) {
	main, frac, hasFrac := strings.Cut(tv, ".")
	if len(main) != 14 {
		return time.Time{}, fmt.Errorf("time-val %q: want 14 digits", tv)
	}
	for i := 0; i < len(main); i++ {
		if main[i] < '0' || main[i] > '9' {
			return time.Time{}, fmt.Errorf("time-val %q: not digits", tv)
		}
	}
	t, err := time.ParseInLocation(timeVal, main, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("time-val %q: %w", tv, err)
	}
	if hasFrac {
		if frac == "" || len(frac) > 9 {
			return time.Time{}, fmt.Errorf("time-val %q: bad fraction", tv)
		}
		ns := 0
		for i := 0; i < 9; i++ {
			ns *= 10
			if i < len(frac) {
				c := frac[i]
				if c < '0' || c > '9' {
					return time.Time{}, fmt.Errorf("time-val %q: bad fraction", tv)
				}
				ns += int(c - '0')
			}
		}
		t = t.Add(time.Duration(ns))
	}
	return t, nil
}

// cmdMLST describes one path over the control connection (RFC 3659
// section 7.2): "250-Listing p", " facts; p", "250 End".
func (s *Session) cmdMLST(arg string) {
	p, ok := s.resolveOrCwd(arg)
	if !ok || !s.allowed(p, datapath.RightList) {
		return
	}
	fi, err := s.fs.Stat(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	line := s.mlsxLine(fi, p, p, "")
	s.replyMulti(250, "Listing "+p, []string{line}, "End")
}

// cmdSTATPath lists a path over the control connection (RFC 959 STAT with
// an argument, 213), in the same ls form as LIST.
func (s *Session) cmdSTATPath(arg string) {
	p, ok := s.resolveOrCwd(stripListOptions(arg))
	if !ok || !s.allowed(p, datapath.RightList) {
		return
	}
	lines, err := s.lsLines(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	s.replyMulti(213, "Status of "+p+":", lines, "End of status")
}

// renameEvent is the event of a rename about to happen, with what the
// storage quota needs: whether it moves a regular file, and what it
// replaces.
func renameEvent(fsys interface {
	Stat(string) (fs.FileInfo, error)
}, from, to string) Event {
	ev := Event{Kind: "rename", Path: from, Path2: to}
	if fi, err := fsys.Stat(from); err == nil && fi.Mode().IsRegular() {
		ev.File, ev.Size = true, fi.Size()
	}
	if fi, err := fsys.Stat(to); err == nil && fi.Mode().IsRegular() {
		ev.Replaced, ev.ReplacedSize = true, fi.Size()
	}
	return ev
}

// RenameEvent is renameEvent for the SFTP subsystem.
func RenameEvent(fsys interface {
	Stat(string) (fs.FileInfo, error)
}, from, to string) Event {
	return renameEvent(fsys, from, to)
}

package ftp

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

type fakeInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	sys   any
}

func (f fakeInfo) Name() string       { return f.name }
func (f fakeInfo) Size() int64        { return f.size }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return f.mtime }
func (f fakeInfo) IsDir() bool        { return f.mode.IsDir() }
func (f fakeInfo) Sys() any           { return f.sys }

func TestLsLine(t *testing.T) {
	now := time.Date(2025, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		fi   fakeInfo
		want string
	}{
		{
			fakeInfo{name: "name", size: 1048576, mode: 0o644, mtime: time.Date(2025, 11, 23, 22, 55, 0, 0, time.UTC)},
			// The exact line from the design brief.
			"-rw-r--r--    1 ftp      ftp        1048576 Nov 23 22:55 name",
		},
		{
			fakeInfo{name: "old", size: 5, mode: 0o600, mtime: time.Date(2024, 3, 3, 1, 2, 0, 0, time.UTC)},
			"-rw-------    1 ftp      ftp              5 Mar  3  2024 old",
		},
		{
			fakeInfo{name: "pub", mode: fs.ModeDir | 0o755, mtime: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
				sys: &syscall.Stat_t{Nlink: 3}},
			"drwxr-xr-x    3 ftp      ftp              0 Jun  1 00:00 pub",
		},
		{
			// In the future by more than an hour: shown with its year.
			fakeInfo{name: "future", mode: 0o644, mtime: now.Add(48 * time.Hour)},
			"-rw-r--r--    1 ftp      ftp              0 Nov 26  2025 future",
		},
		{
			fakeInfo{name: "with space", size: 12345678901, mode: 0o644 | fs.ModeSetuid | fs.ModeSticky, mtime: now},
			"-rwSr--r-T    1 ftp      ftp      12345678901 Nov 24 10:00 with space",
		},
	}
	for _, tt := range tests {
		if got := lsLine(tt.fi, tt.fi.name, now); got != tt.want {
			t.Errorf("lsLine:\n got %q\nwant %q", got, tt.want)
		}
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[fs.FileMode]string{
		0o755 | fs.ModeDir:                    "drwxr-xr-x",
		0o644:                                 "-rw-r--r--",
		0o4755:                                "-rwxr-xr-x", // raw bits are not Go mode bits
		0o755 | fs.ModeSetuid | fs.ModeSetgid: "-rwsr-sr-x",
		0o1777 | fs.ModeDir:                   "drwxrwxrwx",
		0o777 | fs.ModeDir | fs.ModeSticky:    "drwxrwxrwt",
		0o777 | fs.ModeSymlink:                "lrwxrwxrwx",
		0o600 | fs.ModeNamedPipe:              "prw-------",
	} {
		if got := modeString(m); got != want {
			t.Errorf("modeString(%v) = %q, want %q", m, got, want)
		}
	}
	if got := unixMode(0o755 | fs.ModeSetuid | fs.ModeDir); got != 0o4755 {
		t.Errorf("unixMode = %o", got)
	}
}

func TestPermFact(t *testing.T) {
	all, none := datapath.RightsAll, datapath.RightsNone
	ro := datapath.RightList | datapath.RightRead
	tests := []struct {
		dir         bool
		own, parent datapath.Rights
		want        string
	}{
		{false, all, none, "adfrw"},
		{false, ro, none, "r"},
		{false, datapath.RightWrite, none, "aw"},
		{true, all, all, "cdeflmp"},
		{true, ro, all, "defl"},
		{true, all, datapath.RightList, "celmp"}, // a mount point under a synthetic dir
		{true, none, none, "e"},
	}
	for _, tt := range tests {
		if got := permFact(tt.dir, tt.own, tt.parent); got != tt.want {
			t.Errorf("permFact(%v, %v, %v) = %q, want %q", tt.dir, tt.own, tt.parent, got, tt.want)
		}
	}
}

func TestFactSet(t *testing.T) {
	f := parseFactSet("Type;SIZE;bogus;unix.mode;")
	if got := f.String(); got != "type;size;unix.mode;" {
		t.Errorf("String = %q", got)
	}
	if got := f.feat(); got != "type*;size*;modify;perm;unique;unix.mode*;" {
		t.Errorf("feat = %q", got)
	}
	if got := allFacts.feat(); got != "type*;size*;modify*;perm*;unique*;unix.mode*;" {
		t.Errorf("feat = %q", got)
	}
	if parseFactSet("") != 0 {
		t.Error("empty set expected")
	}
}

func TestStripListOptions(t *testing.T) {
	for in, want := range map[string]string{
		"":           "",
		"-a":         "",
		"-la":        "",
		"-l -a dir":  "dir",
		"-al  dir x": "dir x",
		"dir":        "dir",
		"-":          "-",
		"- x":        "- x",
		"-1x":        "-1x",
		" dir":       " dir",
		"-a -":       "-",
	} {
		if got := stripListOptions(in); got != want {
			t.Errorf("stripListOptions(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReplyForErr(t *testing.T) {
	pe := func(err error) error { return &fs.PathError{Op: "x", Path: "/p", Err: err} }
	tests := []struct {
		err  error
		op   opKind
		code int
		msg  string
	}{
		{pe(fs.ErrNotExist), opFile, 550, "/p: No such file or directory."},
		{pe(syscall.ENOENT), opFile, 550, "/p: No such file or directory."},
		{pe(fs.ErrExist), opFile, 550, "/p: File exists."},
		{pe(syscall.EACCES), opFile, 550, "/p: Permission denied."},
		{pe(errNoRight), opFile, 550, "/p: Permission denied."},
		{pe(errEscape), opFile, 550, "/p: path leaves your tree."},
		{errLeavesTree, opFile, 550, "/p: path leaves your tree."},
		{pe(errIsDir), opFile, 550, "/p: Is a directory."},
		{pe(errNotDir), opFile, 550, "/p: Not a directory."},
		{pe(syscall.ENOTEMPTY), opFile, 550, "/p: Directory not empty."},
		{pe(errCrossFolder), opFile, 550, "/p: Cannot move across folders or file systems."},
		{pe(syscall.ENOSPC), opFile, 552, "/p: Insufficient storage space (disk full or quota exceeded)."},
		{pe(syscall.EDQUOT), opTransfer, 552, "/p: Insufficient storage space (disk full or quota exceeded)."},
		{errBadUTF8, opFile, 553, "File name not allowed: not valid UTF-8."},
		{pe(syscall.EIO), opFile, 550, "/p: Requested action not taken."},
		{pe(syscall.EIO), opTransfer, 451, "/p: Requested action aborted: local error in processing."},
		{&net.OpError{Op: "write", Err: syscall.EPIPE}, opTransfer, 426, "Connection closed; transfer aborted."},
		{os.NewSyscallError("sendfile", syscall.ECONNRESET), opTransfer, 426, "Connection closed; transfer aborted."},
		{errors.Join(errors.New("receive"), net.ErrClosed), opTransfer, 426, "Connection closed; transfer aborted."},
	}
	for _, tt := range tests {
		code, msg := replyForErr(tt.err, "/p", tt.op)
		if code != tt.code || msg != tt.msg {
			t.Errorf("replyForErr(%v, %d) = %d %q, want %d %q", tt.err, tt.op, code, msg, tt.code, tt.msg)
		}
	}
}

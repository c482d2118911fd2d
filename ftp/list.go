package ftp

import (
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// dirEntry is one listed name with what it resolves to.
type dirEntry struct {
	name string
	fi   fs.FileInfo
}

// listDir reads dir and resolves symlinks by Stat, so that a link is shown
// as what it points to (clients then treat it like the file or directory it
// opens as). Links that do not resolve inside the tree — dangling, or
// escaping, which the FileSystem refuses — are left out: the client could not
// use them. Names with CR or LF are left out too: they cannot be named on
// the control connection (LF ends a command, and we refuse CR) and would
// break every line-based listing parser.
func (s *Session) listDir(dir string) ([]dirEntry, error) {
	infos, err := s.fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, 0, len(infos))
	for _, fi := range infos {
		name := fi.Name()
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "\r\n/") {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := s.fs.Stat(joinPath(dir, name))
			if err != nil {
				continue
			}
			fi = target
		}
		out = append(out, dirEntry{name: name, fi: fi})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// lsLines renders p in `ls -l` form: the entries of a directory, or the
// one line of a file.
func (s *Session) lsLines(p string) ([]string, error) {
	fi, err := s.fs.Stat(p)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if !fi.IsDir() {
		return []string{lsLine(fi, baseName(p), now)}, nil
	}
	ents, err := s.listDir(p)
	if err != nil {
		return nil, err
	}
	lines := make([]string, 0, len(ents))
	for _, e := range ents {
		lines = append(lines, lsLine(e.fi, e.name, now))
	}
	return lines, nil
}

// lsLine formats one entry the way `ls -l` (and vsftpd/ProFTPD) do, which
// is the format FileZilla, WinSCP, Apache Commons Net (UnixFTPEntryParser)
// and Go's jlaffaye/ftp parse:
//
//	-rw-r--r--    1 ftp      ftp        1048576 Nov 23 22:55 name
//
// Owner and group are always "ftp": the worker cannot (and should not) map
// uids to names. Times are UTC, like MDTM's.
func lsLine(fi fs.FileInfo, name string, now time.Time) string {
	nlink := uint64(1)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 0 {
		nlink = uint64(st.Nlink)
	}
	return fmt.Sprintf("%s %4d %-8s %-8s %9d %s %s",
		modeString(fi.Mode()), nlink, "ftp", "ftp", fi.Size(), lsTime(fi.ModTime(), now), name)
}

// lsTime is ls's date column: "Jan _2 15:04" for times in the last six
// months (and up to an hour ahead, for clock skew), "Jan _2  2006"
// otherwise, always 12 characters.
func lsTime(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.After(now.AddDate(0, -6, 0)) && !t.After(now.Add(time.Hour)) {
		return t.Format("Jan _2 15:04")
	}
	return t.Format("Jan _2  2006")
}

// modeString renders the ten-character mode column.
func modeString(m fs.FileMode) string {
	var b [10]byte
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	default:
		b[0] = '-'
	}
	const rwx = "rwxrwxrwx"
	perm := m.Perm()
	for i := 0; i < 9; i++ {
		if perm&(1<<uint(8-i)) != 0 {
			b[i+1] = rwx[i]
		} else {
			b[i+1] = '-'
		}
	}
	special := func(pos int, set bool, withX, withoutX byte) {
		if !set {
			return
		}
		if b[pos] == '-' {
			b[pos] = withoutX
		} else {
			b[pos] = withX
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b[:])
}

// unixMode is the numeric mode with the set-id and sticky bits.
func unixMode(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// factSet is the set of MLST facts a client asked for (RFC 3659 section
// 7.9, OPTS MLST).
type factSet uint8

const (
	factType factSet = 1 << iota
	factSize
	factModify
	factPerm
	factUnique
	factUnixMode

	allFacts = factType | factSize | factModify | factPerm | factUnique | factUnixMode
)

var factNames = []struct {
	f    factSet
	name string
}{
	{factType, "type"},
	{factSize, "size"},
	{factModify, "modify"},
	{factPerm, "perm"},
	{factUnique, "unique"},
	{factUnixMode, "unix.mode"},
}

// parseFactSet reads "type;size;" (case-insensitive); unknown facts are
// ignored, as RFC 3659 section 7.9 requires.
func parseFactSet(s string) factSet {
	var f factSet
	for _, name := range strings.Split(s, ";") {
		for _, fn := range factNames {
			if strings.EqualFold(strings.TrimSpace(name), fn.name) {
				f |= fn.f
			}
		}
	}
	return f
}

// String lists the selected facts, "type;size;".
func (f factSet) String() string {
	var b strings.Builder
	for _, fn := range factNames {
		if f&fn.f != 0 {
			b.WriteString(fn.name)
			b.WriteByte(';')
		}
	}
	return b.String()
}

// feat is the FEAT line's fact list: every supported fact, the selected
// ones marked with "*" (RFC 3659 section 7.8).
func (f factSet) feat() string {
	var b strings.Builder
	for _, fn := range factNames {
		b.WriteString(fn.name)
		if f&fn.f != 0 {
			b.WriteByte('*')
		}
		b.WriteByte(';')
	}
	return b.String()
}

// mlsxLine renders one MLSx entry: "fact=value;...; name". p is the entry's
// virtual path (for rights); name is what is printed after the facts; typ
// overrides the type fact ("cdir", "pdir") when set.
//
// modify carries whole seconds only: RFC 3659 allows a fraction, but
// jlaffaye/ftp and other parsers reject it.
func (s *Session) mlsxLine(fi fs.FileInfo, p, name, typ string) string {
	var b strings.Builder
	f := s.facts
	if f&factType != 0 {
		if typ == "" {
			typ = "file"
			if fi.IsDir() {
				typ = "dir"
			} else if !fi.Mode().IsRegular() {
				typ = "OS.unix=special"
			}
		}
		b.WriteString("type=" + typ + ";")
	}
	if f&factSize != 0 {
		fmt.Fprintf(&b, "size=%d;", fi.Size())
	}
	if f&factModify != 0 {
		b.WriteString("modify=" + fi.ModTime().UTC().Format(timeVal) + ";")
	}
	if f&factPerm != 0 {
		own, parent := s.fs.Rights(p), datapath.RightsNone
		if fi.IsDir() && p != "/" {
			parent = s.fs.Rights(parentDir(p))
		}
		b.WriteString("perm=" + permFact(fi.IsDir(), own, parent) + ";")
	}
	if f&factUnique != 0 {
		b.WriteString("unique=" + uniqueFact(fi, p) + ";")
	}
	if f&factUnixMode != 0 {
		fmt.Fprintf(&b, "unix.mode=%04o;", unixMode(fi.Mode()))
	}
	b.WriteByte(' ')
	b.WriteString(name)
	return b.String()
}

// permFact maps the account's rights to RFC 3659 section 7.5.5 perm
// letters. For a file (own = the rights of its folder): a (APPE) and w
// (STOR) need write, r read, d delete, f rename. For a directory, what
// happens inside it comes from its own rights — e (CWD) always, l list, c
// (create files) write, m mkdir, p (purge contents) delete — while deleting
// or renaming it is an operation in its parent: d, f from parent. (The two
// differ for a mount point, whose parent may be a read-only synthetic
// directory.)
func permFact(isDir bool, own, parent datapath.Rights) string {
	r := own
	var b strings.Builder
	add := func(c byte, ok bool) {
		if ok {
			b.WriteByte(c)
		}
	}
	if isDir {
		add('c', r.Has(datapath.RightWrite))
		add('d', parent.Has(datapath.RightDelete))
		add('e', true)
		add('f', parent.Has(datapath.RightRename))
		add('l', r.Has(datapath.RightList))
		add('m', r.Has(datapath.RightMkdir))
		add('p', r.Has(datapath.RightDelete))
	} else {
		add('a', r.Has(datapath.RightWrite))
		add('d', r.Has(datapath.RightDelete))
		add('f', r.Has(datapath.RightRename))
		add('r', r.Has(datapath.RightRead))
		add('w', r.Has(datapath.RightWrite))
	}
	return b.String()
}

// uniqueFact identifies the file (RFC 3659 section 7.5.2): device and inode
// when the FileInfo carries them, else a hash of the virtual path.
func uniqueFact(fi fs.FileInfo, p string) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%xU%x", uint64(st.Dev), uint64(st.Ino))
	}
	h := fnv.New64a()
	h.Write([]byte(p))
	return fmt.Sprintf("%x", h.Sum64())
}

// stripListOptions drops leading ls-style options ("-a", "-l", "-la") from
// a LIST/NLST/STAT argument: curl, lftp and others send "LIST -a", which
// is not RFC 959 but universal. A token counts as options only if it is "-"
// followed by letters, so a file named "-" is still a file; a file named
// "-a" cannot be listed by name (vsftpd and ProFTPD behave the same way).
func stripListOptions(arg string) string {
	rest := arg
	stripped := false
	for {
		t := strings.TrimLeft(rest, " ")
		if len(t) < 2 || t[0] != '-' {
			break
		}
		tok, after, _ := strings.Cut(t, " ")
		if !isLetters(tok[1:]) {
			break
		}
		rest, stripped = after, true
	}
	if stripped {
		return strings.TrimLeft(rest, " ")
	}
	return arg
}

func isLetters(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

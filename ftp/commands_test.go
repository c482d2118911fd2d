package ftp

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMiscCommands(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("f.txt", "hello")
	os.Chtimes(filepath.Join(s.dir, "f.txt"), time.Time{}, time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC))
	c := s.login("alice", "secret-pw")

	for _, tt := range []struct {
		cmd  string
		code int
	}{
		{"TYPE A", 200}, {"TYPE A N", 200}, {"TYPE I", 200}, {"TYPE L 8", 200}, {"type i", 200},
		{"TYPE A T", 504}, {"TYPE E", 504}, {"TYPE L 7", 504}, {"TYPE X", 501}, {"TYPE", 501},
		{"MODE S", 200}, {"MODE B", 504}, {"MODE Q", 501},
		{"STRU F", 200}, {"STRU R", 504}, {"STRU", 501},
		{"ALLO 1000", 202}, {"ACCT x", 202},
		{"OPTS UTF8 OFF", 200}, {"OPTS FOO", 501}, {"OPTS", 501},
		{"SITE", 501}, {"SITE CHMOD 600 f.txt", 200}, {"SITE CHMOD 4755 f.txt", 550},
		{"SITE CHMOD 9 f.txt", 501}, {"SITE CHMOD 644", 501}, {"SITE CHMOD 644 ../x", 550}, {"SITE CHMOD 644 f.txt", 200},
		{"REST x", 501}, {"REST -1", 501}, {"REST 10", 350},
		{"SIZE /", 550}, {"SIZE nope", 550},
		{"MDTM nope", 550},
		{"MFMT 2024 f.txt", 501}, {"MFMT 20241301000000 f.txt", 501},
		{"ABOR", 225},
		{"RNTO x", 503},
		{"HELP RETR", 214}, {"HELP FOO", 502},
		{"SMNT x", 502},
		{"CWD", 501},
	} {
		c.cmd(tt.cmd, tt.code)
	}
	if fi, _ := os.Stat(filepath.Join(s.dir, "f.txt")); fi.Mode().Perm() != 0o644 {
		t.Errorf("after SITE CHMOD 644, mode is %v", fi.Mode())
	}
	if got := c.cmd("SITE HELP", 214); got != "214-The following SITE commands are recognized.\n CHMOD\n HELP\n QUOTA\n214 Help OK." {
		t.Errorf("SITE HELP = %q", got)
	}
	if got := c.cmd("SITE FOO", 502); !strings.Contains(got, "SITE CHMOD, SITE QUOTA and SITE HELP") {
		t.Errorf("SITE FOO = %q", got)
	}
	// No Meter: no quota to report.
	if got := c.cmd("SITE QUOTA", 200); !strings.Contains(got, "No quota") {
		t.Errorf("SITE QUOTA = %q", got)
	}
	c.cmd("AVBL", 550)
	if got := c.cmd("SIZE f.txt", 213); got != "5" {
		t.Errorf("SIZE = %q", got)
	}
	if got := c.cmd("MDTM f.txt", 213); got != "20240203040506" {
		t.Errorf("MDTM = %q", got)
	}
	if got := c.cmd("MFMT 20200102030405 f.txt", 213); got != "Modify=20200102030405; f.txt" {
		t.Errorf("MFMT = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(s.dir, "f.txt")); !fi.ModTime().Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("MFMT set %v", fi.ModTime())
	}
	if got := c.cmd("PWD", 257); got != `"/" is the current directory.` {
		t.Errorf("PWD = %q", got)
	}
	c.cmd(`MKD a"b`, 257)
	c.cmd(`CWD a"b`, 250)
	if got := c.cmd("XPWD", 257); got != `"/a""b" is the current directory.` {
		t.Errorf("PWD quoting = %q", got)
	}
	c.cmd("CDUP", 250)
	c.cmd("CDUP", 550)
	c.cmd("CWD f.txt", 550)

	st := c.cmd("STAT", 211)
	for _, want := range []string{"211-FTP server status:", " Logged in as alice", " TYPE: BINARY", " No data connection", "211 End of status"} {
		if !strings.Contains(st, want) {
			t.Errorf("STAT lacks %q:\n%s", want, st)
		}
	}
	c.cmd("EPSV", 229)
	if st := c.cmd("STAT", 211); !strings.Contains(st, "passive, listening on port") {
		t.Errorf("STAT: %s", st)
	}
}

func TestPathEscapeRefused(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("sub/x", "x")
	c := s.login("alice", "secret-pw")
	for _, tt := range []struct{ cmd, want string }{
		{"CWD /../..", "550 /../..: path leaves your tree."},
		{"CWD ..", "550 ..: path leaves your tree."},
		{"RETR ../../etc/passwd", "550 ../../etc/passwd: path leaves your tree."},
		{"MKD sub/../../x", "550 sub/../../x: path leaves your tree."},
		{"CDUP", "550 /: path leaves your tree."},
		{"CWD ..\\..", "550 /..\\..: No such file or directory."},
		{"RETR \xc0\xae\xc0\xae/x", "553 File name not allowed: not valid UTF-8."},
		{"DELE sub/\x00", "501 Syntax error in parameters: NUL byte in argument."},
	} {
		c.send(tt.cmd)
		code, lines := c.read()
		if got := lines[0]; got != tt.want {
			t.Errorf("%q -> %d %q, want %q", tt.cmd, code, got, tt.want)
		}
	}
	c.cmd("CWD sub", 250)
	c.cmd("CWD ../sub/./", 250)
	if got := c.cmd("PWD", 257); got != `"/sub" is the current directory.` {
		t.Errorf("PWD = %q", got)
	}
	c.cmd("CWD ../..", 550)
	// Backslashes are file name characters.
	c.cmd(`MKD ..\x`, 257)
	if _, err := os.Stat(filepath.Join(s.dir, "sub", `..\x`)); err != nil {
		t.Error(err)
	}
}

func TestFileOperations(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("a.txt", "a")
	c := s.login("alice", "secret-pw")
	if got := c.cmd("MKD d1", 257); got != `"/d1" created.` {
		t.Errorf("MKD = %q", got)
	}
	c.cmd("MKD d1", 550)
	c.cmd("XMKD /d1/d2", 257)
	c.cmd("RMD d1", 550) // not empty
	c.cmd("XRMD d1/d2", 250)
	c.cmd("RNFR a.txt", 350)
	c.cmd("RNTO d1/b.txt", 250)
	c.cmd("RNFR nope", 550)
	c.cmd("RNTO x", 503)
	c.cmd("RNFR d1/b.txt", 350)
	c.cmd("NOOP", 200)
	c.cmd("RNTO x", 503) // RNTO must follow RNFR immediately
	c.cmd("DELE d1", 550)
	c.cmd("RMD d1/b.txt", 550)
	c.cmd("DELE d1/b.txt", 250)
	c.cmd("DELE d1/b.txt", 550)
	c.cmd("RMD d1", 250)
	if _, err := os.Stat(filepath.Join(s.dir, "d1")); !os.IsNotExist(err) {
		t.Errorf("d1 still there: %v", err)
	}
	c.quit()
	s.waitResult()
	var got []string
	for _, ev := range s.events.evs {
		if ev.Kind != "command" {
			got = append(got, fmt.Sprintf("%s %s %s %d", ev.Kind, ev.Path, ev.Path2, ev.Code))
		}
	}
	want := []string{
		"mkdir /d1  257", "mkdir /d1  550", "mkdir /d1/d2  257", "rmdir /d1  550", "rmdir /d1/d2  250",
		"rename /a.txt /d1/b.txt 250", "delete /d1  550", "rmdir /d1/b.txt  550",
		"delete /d1/b.txt  250", "delete /d1/b.txt  550", "rmdir /d1  250",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRights(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("pub/f.txt", "public")
	c := s.login("reader", "reader-pw")
	for _, cmd := range []string{"STOR x", "APPE x", "STOU", "DELE pub/f.txt", "RMD pub", "MKD new", "RNFR pub/f.txt", "MFMT 20200101000000 pub/f.txt"} {
		if got := c.cmd(cmd, 550); !strings.HasSuffix(got, "Permission denied.") {
			t.Errorf("%s: %q", cmd, got)
		}
	}
	if got := c.retr("pub/f.txt"); got != "public" {
		t.Errorf("RETR = %q", got)
	}
	lines := c.list("MLSD pub")
	if len(lines) != 1 || !strings.Contains(lines[0], ";perm=r;") {
		t.Errorf("MLSD = %q", lines)
	}
	lines = c.list("MLSD")
	if len(lines) != 1 || !strings.Contains(lines[0], ";perm=el;") {
		t.Errorf("MLSD / = %q", lines)
	}
}

func TestListings(t *testing.T) {
	s := newTestServer(t, nil)
	s.writeFile("dir/f1.txt", "12345")
	s.writeFile("dir/sub/x", "")
	s.writeFile("dir/.hidden", "h")
	old := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	recent := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for name, mt := range map[string]time.Time{"dir/f1.txt": old, "dir/.hidden": recent, "dir/sub": old} {
		if err := os.Chtimes(filepath.Join(s.dir, name), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f1.txt", filepath.Join(s.dir, "dir/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(s.dir, "dir/dangling")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.dir, "dir/bad\nname"), nil, 0o644)
	c := s.login("alice", "secret-pw")

	recentCol := recent.UTC().Format("Jan _2 15:04")
	wantLIST := []string{
		"-rw-r--r--    1 ftp      ftp              1 " + recentCol + " .hidden",
		"-rw-r--r--    1 ftp      ftp              5 May  6  2020 f1.txt",
		"-rw-r--r--    1 ftp      ftp              5 May  6  2020 link",
		"drwxr-xr-x    2 ftp      ftp           4096 May  6  2020 sub",
	}
	for _, cmd := range []string{"LIST dir", "LIST -a dir", "LIST -la dir", "LIST -l -a dir"} {
		got := c.list(cmd)
		// Directory sizes depend on the file system; normalise them.
		for i, l := range got {
			if strings.HasPrefix(l, "d") {
				got[i] = regexp.MustCompile(`ftp +\d+ `).ReplaceAllString(l, "ftp           4096 ")
			}
		}
		if strings.Join(got, "\n") != strings.Join(wantLIST, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", cmd, strings.Join(got, "\n"), strings.Join(wantLIST, "\n"))
		}
	}
	if got := c.list("LIST dir/f1.txt"); len(got) != 1 || !strings.HasSuffix(got[0], " May  6  2020 f1.txt") {
		t.Errorf("LIST file = %q", got)
	}
	c.cmd("CWD dir", 250)
	if got := c.list("NLST"); strings.Join(got, ",") != ".hidden,f1.txt,link,sub" {
		t.Errorf("NLST = %q", got)
	}
	c.cmd("CWD /", 250)
	if got := c.list("NLST dir/"); strings.Join(got, ",") != "dir/.hidden,dir/f1.txt,dir/link,dir/sub" {
		t.Errorf("NLST dir = %q", got)
	}
	if got := c.list("NLST dir/f1.txt"); strings.Join(got, ",") != "dir/f1.txt" {
		t.Errorf("NLST file = %q", got)
	}
	c.cmd("EPSV", 229)
	c.cmd("NLST nope", 550)

	mlsd := c.list("MLSD dir")
	if len(mlsd) != 4 {
		t.Fatalf("MLSD = %q", mlsd)
	}
	re := regexp.MustCompile(`^type=file;size=5;modify=20200506070809;perm=adfrw;unique=[0-9a-f]+U[0-9a-f]+;unix.mode=0644; f1.txt$`)
	if !re.MatchString(mlsd[1]) {
		t.Errorf("MLSD file line %q", mlsd[1])
	}
	if !strings.HasPrefix(mlsd[3], "type=dir;") || !strings.Contains(mlsd[3], ";perm=cdeflmp;") || !strings.HasSuffix(mlsd[3], "; sub") {
		t.Errorf("MLSD dir line %q", mlsd[3])
	}
	c.cmd("EPSV", 229)
	c.cmd("MLSD dir/f1.txt", 501)

	mlst := c.cmd("MLST dir/f1.txt", 250)
	lines := strings.Split(mlst, "\n")
	if len(lines) != 3 || lines[0] != "250-Listing /dir/f1.txt" || lines[2] != "250 End" ||
		!strings.HasPrefix(lines[1], " type=file;size=5;modify=20200506070809;") || !strings.HasSuffix(lines[1], "; /dir/f1.txt") {
		t.Errorf("MLST = %q", mlst)
	}
	c.cmd("OPTS MLST type;size;nonsense;", 200)
	if got := c.cmd("MLST dir/f1.txt", 250); got != "250-Listing /dir/f1.txt\n type=file;size=5; /dir/f1.txt\n250 End" {
		t.Errorf("MLST after OPTS = %q", got)
	}
	if feat := c.cmd("FEAT", 211); !strings.Contains(feat, " MLST type*;size*;modify;perm;unique;unix.mode;") {
		t.Errorf("FEAT after OPTS = %q", feat)
	}

	stat := c.cmd("STAT -la dir", 213)
	if !strings.HasPrefix(stat, "213-Status of /dir:\n") || !strings.Contains(stat, "\n -rw-r--r--    1 ftp      ftp              5 May  6  2020 f1.txt\n") || !strings.HasSuffix(stat, "\n213 End of status") {
		t.Errorf("STAT dir = %q", stat)
	}
}

func TestReplyHelpers(t *testing.T) {
	if got := sanitizeLine("a\r\n226 fake"); got != "a  226 fake" {
		t.Errorf("sanitizeLine = %q", got)
	}
	if got := quotePath(`/a "b"`); got != `"/a ""b"""` {
		t.Errorf("quotePath = %q", got)
	}
}

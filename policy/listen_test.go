package policy

import (
	"strings"
	"testing"
)

// TestListenClashes: implicit FTPS and SFTP addresses may not take an
// address another listener (or an earlier entry) already has.
func TestListenClashes(t *testing.T) {
	base := "[ftp]\nlisten = [\"127.0.0.1:2121\"]\n"
	for _, tc := range []struct{ src, want string }{
		{`implicit_listen = ["127.0.0.1:2121"]`, `ftp.implicit_listen[0]: "127.0.0.1:2121" clashes with "127.0.0.1:2121" (another FTP or FTPS listener)`},
		{`implicit_listen = ["0.0.0.0:2121"]`, `ftp.implicit_listen[0]: "0.0.0.0:2121" clashes`},
		{`implicit_listen = ["127.0.0.1:990", "127.0.0.1:990"]`, `ftp.implicit_listen[1]: "127.0.0.1:990" clashes with "127.0.0.1:990"`},
		{"implicit_listen = [\"127.0.0.1:990\"]\n[sftp]\nlisten = [\"127.0.0.1:990\"]", `sftp.listen[0]: "127.0.0.1:990" clashes with "127.0.0.1:990" (another listener)`},
		{"[sftp]\nlisten = [\"127.0.0.1:2222\", \"0.0.0.0:2222\"]", `sftp.listen[1]`},
		{`implicit_listen = ["nope"]`, `ftp.implicit_listen[0]`},
	} {
		_, err := Parse([]byte(base+tc.src), t.TempDir(), "t")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant …%s…", tc.src, err, tc.want)
		}
	}
	c, err := Parse([]byte(base+"implicit_listen = [\"127.0.0.1:990\"]\n[sftp]\nlisten = [\"127.0.0.1:2222\", \"[::1]:2222\"]"), t.TempDir(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.FTP.ImplicitListen) != 1 || len(c.SFTP.Listen) != 2 {
		t.Fatalf("implicit %v sftp %v", c.FTP.ImplicitListen, c.SFTP.Listen)
	}
}

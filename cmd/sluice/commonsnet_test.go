package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// commonsNetClient lists a directory with Apache Commons Net, whose LIST
// parser (picked from the SYST reply, as FileZilla's is) and MLSD parser
// are what most Java-based transfer tools use. It prints one line per
// entry: name|size|dir|mtime for LIST, then the same for MLSD.
const commonsNetClient = `
import org.apache.commons.net.ftp.*;

public class ListCheck {
    public static void main(String[] a) throws Exception {
        FTPClient c = new FTPClient();
        c.connect(a[0], Integer.parseInt(a[1]));
        if (!c.login("demo", "demo")) throw new RuntimeException("login: " + c.getReplyString());
        c.enterLocalPassiveMode();
        c.setControlEncoding("UTF-8");
        for (FTPFile f : c.listFiles("/list")) {
            if (f == null) { System.out.println("UNPARSED"); continue; }
            System.out.println("LIST|" + f.getName() + "|" + f.getSize() + "|" + f.isDirectory() + "|" + (f.getTimestamp() != null));
        }
        for (FTPFile f : c.mlistDir("/list")) {
            System.out.println("MLSD|" + f.getName() + "|" + f.getSize() + "|" + f.isDirectory() + "|" + (f.getTimestamp() != null));
        }
        c.logout();
    }
}
`

// TestCommonsNetParsesListings: Apache Commons Net parses every LIST and
// MLSD line (names with spaces and UTF-8, old and new dates, directories).
func TestCommonsNetParsesListings(t *testing.T) {
	java := needTool(t, "java")
	jar := "/usr/share/java/commons-net.jar"
	if _, err := os.Stat(jar); err != nil {
		t.Skipf("%s missing (Debian package libcommons-net-java; .ci/run installs it): skipping", jar)
	}
	s := startServer(t, serverOpts{})
	dir := filepath.Join(s.root, "list")
	os.MkdirAll(filepath.Join(dir, "a dir"), 0o755)
	want := map[string]string{
		"plain.txt":      "12|false",
		"with space.bin": "3|false",
		"été ü.txt":      "5|false",
		"a dir":          "|true",
		"old.iso":        "7|false",
	}
	os.WriteFile(filepath.Join(dir, "plain.txt"), make([]byte, 12), 0o644)
	os.WriteFile(filepath.Join(dir, "with space.bin"), make([]byte, 3), 0o644)
	os.WriteFile(filepath.Join(dir, "été ü.txt"), make([]byte, 5), 0o644)
	os.WriteFile(filepath.Join(dir, "old.iso"), make([]byte, 7), 0o644)
	// More than six months old: ls -l shows the year instead of the time.
	old := time.Now().AddDate(-2, 0, 0)
	os.Chtimes(filepath.Join(dir, "old.iso"), old, old)

	src := filepath.Join(t.TempDir(), "ListCheck.java")
	os.WriteFile(src, []byte(commonsNetClient), 0o644)
	out, err := runTool(t, 2*time.Minute, java, "-cp", jar, src, "127.0.0.1", strings.TrimPrefix(s.addr(), "127.0.0.1:"))
	if err != nil {
		t.Fatalf("java: %v\n%s", err, out)
	}
	for _, kind := range []string{"LIST", "MLSD"} {
		got := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if l == "UNPARSED" {
				t.Fatalf("Commons Net could not parse a LIST line:\n%s", out)
			}
			f := strings.Split(l, "|")
			if len(f) != 5 || f[0] != kind {
				continue
			}
			if f[4] != "true" {
				t.Errorf("%s %q: no timestamp parsed", kind, f[1])
			}
			size := f[2]
			if f[3] == "true" {
				size = "" // directory sizes are file-system specific
			}
			got[f[1]] = size + "|" + f[3]
		}
		var problems []string
		for name, w := range want {
			if got[name] != w {
				problems = append(problems, name+": got "+got[name]+", want "+w)
			}
		}
		if len(got) != len(want) {
			problems = append(problems, "entries: "+strings.Join(keys(got), ", "))
		}
		if len(problems) > 0 {
			t.Errorf("%s as parsed by Commons Net:\n%s\n(client output:\n%s)", kind, strings.Join(problems, "\n"), out)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package ftp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	ftpc "github.com/jlaffaye/ftp"

	"github.com/sluice-ftp/sluice/datapath"
)

// treeFS builds the production FileSystem, datapath.Tree, over dir.
func treeFS(t *testing.T, dir string) FileSystem {
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := datapath.NewTree([]datapath.Mount{{Path: "/", Dir: f, Rights: datapath.RightsAll}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree
}

// TestThirdPartyClient drives a session with github.com/jlaffaye/ftp, once
// over the os.Root test file system and once over the real datapath.Tree
// (openat2 confinement and the sendfile/splice movers).
func TestThirdPartyClient(t *testing.T) {
	for _, backend := range []string{"rootfs", "datapath"} {
		for _, mlsd := range []bool{true, false} {
			name := backend + "/LIST"
			if mlsd {
				name = backend + "/MLSD"
			}
			t.Run(name, func(t *testing.T) {
				s := newTestServer(t, func(s *testServer) {
					if backend == "datapath" {
						s.auth.fs = func(string) FileSystem { return treeFS(t, s.dir) }
					}
				})
				if backend == "datapath" {
					probe := treeFS(t, s.dir)
					if _, err := probe.Stat("/"); errors.Is(err, syscall.ENOSYS) {
						t.Skip("openat2 not available")
					}
				}
				clientRoundTrip(t, s, mlsd)
			})
		}
	}
}

func clientRoundTrip(t *testing.T, s *testServer, mlsd bool) {
	c, err := ftpc.Dial(s.addr, ftpc.DialWithTimeout(5*time.Second), ftpc.DialWithDisabledMLSD(!mlsd))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Login("alice", "wrong"); err == nil {
		t.Fatal("bad password accepted")
	}
	if err := c.Login("alice", "secret-pw"); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.MakeDir("docs"))
	must(c.ChangeDir("docs"))
	if dir, err := c.CurrentDir(); err != nil || dir != "/docs" {
		t.Fatalf("CurrentDir = %q, %v", dir, err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef\x00\xff\r\n"), 100000) // ~2 MB
	must(c.Stor("big.bin", bytes.NewReader(payload)))
	must(c.Stor("small.txt", strings.NewReader("hello")))

	r, err := c.Retr("big.bin")
	must(err)
	got, err := io.ReadAll(r)
	must(err)
	must(r.Close())
	if !bytes.Equal(got, payload) {
		t.Fatalf("RETR: %d bytes, want %d", len(got), len(payload))
	}

	r, err = c.RetrFrom("big.bin", 1000)
	must(err)
	got, _ = io.ReadAll(r)
	must(r.Close())
	if !bytes.Equal(got, payload[1000:]) {
		t.Fatal("REST+RETR content differs")
	}

	must(c.StorFrom("small.txt", strings.NewReader("LO!"), 3))
	must(c.Append("small.txt", strings.NewReader("+")))
	r, err = c.Retr("small.txt")
	must(err)
	got, _ = io.ReadAll(r)
	r.Close()
	if string(got) != "helLO!+" {
		t.Fatalf("small.txt = %q", got)
	}

	if size, err := c.FileSize("big.bin"); err != nil || size != int64(len(payload)) {
		t.Fatalf("FileSize = %d, %v", size, err)
	}
	mt := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	must(c.SetTime("small.txt", mt))
	if tm, err := c.GetTime("small.txt"); err != nil || !tm.Equal(mt) {
		t.Fatalf("GetTime = %v, %v", tm, err)
	}

	must(c.MakeDir("sub"))
	entries, err := c.List("")
	must(err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		switch e.Name {
		case "big.bin":
			if e.Type != ftpc.EntryTypeFile || e.Size != uint64(len(payload)) {
				t.Errorf("entry %+v", e)
			}
		case "small.txt":
			want := mt
			if !mlsd {
				want = mt.Truncate(24 * time.Hour) // ls format shows only the date of old files
			}
			if e.Type != ftpc.EntryTypeFile || e.Size != 7 || !e.Time.Equal(want) {
				t.Errorf("entry %+v (time %v)", e, e.Time)
			}
		case "sub":
			if e.Type != ftpc.EntryTypeFolder {
				t.Errorf("entry %+v", e)
			}
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "big.bin,small.txt,sub" {
		t.Fatalf("List = %q", names)
	}
	nl, err := c.NameList("")
	must(err)
	sort.Strings(nl)
	if strings.Join(nl, ",") != "big.bin,small.txt,sub" {
		t.Fatalf("NameList = %q", nl)
	}

	must(c.Rename("small.txt", "sub/moved.txt"))
	must(c.ChangeDirToParent())
	must(c.Delete("docs/sub/moved.txt"))
	must(c.RemoveDir("docs/sub"))
	if err := c.RemoveDir("docs"); err == nil {
		t.Fatal("RMD of a non-empty directory succeeded")
	}
	if err := c.ChangeDir("/.."); err == nil || !strings.Contains(err.Error(), "path leaves your tree") {
		t.Fatalf("CWD /.. = %v", err)
	}
	must(c.NoOp())
	must(c.Quit())

	res := s.waitResult()
	if res.err != nil {
		t.Errorf("Serve = %v", res.err)
	}
	sum := res.sum
	if sum.Account != "alice" || sum.FilesIn != 4 || sum.FilesOut != 3 || sum.LastCode != 221 ||
		sum.BytesIn != int64(len(payload))+5+3+1 || sum.BytesOut != int64(2*len(payload)-1000+7) {
		t.Errorf("summary %+v", sum)
	}
	var movers []string
	for _, ev := range s.events.kind("transfer") {
		if ev.Code != 226 || ev.Mover == "" || ev.Duration <= 0 {
			t.Errorf("transfer event %+v", ev)
		}
		movers = append(movers, ev.Command+":"+ev.Dir+":"+ev.Mover)
	}
	t.Logf("movers: %v", movers)
}

// TestDatapathEscapes checks the error mapping against the kernel-confined
// tree: symlinks out of the folder are refused by openat2, and the session
// reports them like a lexical escape.
func TestDatapathEscapes(t *testing.T) {
	s := newTestServer(t, nil)
	s.auth.fs = func(string) FileSystem { return treeFS(t, s.dir) }
	s.writeFile("in.txt", "inside")
	os.Symlink("/etc", s.dir+"/abs")
	os.Symlink("../../../../../../etc", s.dir+"/climb")
	os.Symlink("in.txt", s.dir+"/ok")
	c := s.login("alice", "secret-pw")
	c.cmd("EPSV", 229) // survives the refused RETRs: no transfer starts
	for _, tt := range []struct{ cmd, want string }{
		{"RETR abs/passwd", "550 /abs/passwd: path leaves your tree."},
		{"RETR climb/passwd", "550 /climb/passwd: path leaves your tree."},
		{"CWD climb", "550 /climb: path leaves your tree."},
		{"SIZE ok", "213 6"},
	} {
		c.send(tt.cmd)
		if _, lines := c.read(); lines[0] != tt.want {
			t.Errorf("%s: %q, want %q", tt.cmd, lines[0], tt.want)
		}
	}
	if got := c.list("NLST"); strings.Join(got, ",") != "in.txt,ok" {
		t.Errorf("NLST = %q (escaping links must not be listed)", got)
	}
}

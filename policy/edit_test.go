package policy

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/edit/*.golden")

// newHash is the PHC string the edit tests set (a hash of "new").
const newHash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0123456789abcdefghijklmnopqrstuvwxyzABCDEFE"

var dave = AccountSpec{
	Name:        "dave",
	Password:    newHash,
	UID:         1004,
	GID:         1005,
	AllowFrom:   []string{"10.0.0.0/8", "2001:db8::/32"},
	MaxSessions: 2,
	Disabled:    true,
	Folders: []FolderSpec{
		{Path: "/", Dir: "dave", Rights: []string{"list", "read"}},
		{Path: "/drop box", Dir: `/srv/ftp/"drop"\box`, Rights: []string{"all"}},
	},
}

// copyFixture copies testdata/edit/name to a temporary directory.
func copyEditFixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "edit", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sluice.toml")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readTestFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEditGolden applies each edit to a fixture and compares the whole
// file with a golden copy: the edited block changes and every other byte
// (comments, other tables, spacing, line endings) stays.
func TestEditGolden(t *testing.T) {
	cases := []struct {
		golden, fixture string
		edit            func(path string) error
	}{
		{"add-dave", "base.toml", func(p string) error { return AddAccount(p, dave) }},
		{"add-minimal", "base.toml", func(p string) error {
			return AddAccount(p, AccountSpec{Name: "erin", Password: newHash, Folders: []FolderSpec{{Path: "/", Dir: "erin", Rights: []string{"all"}}}})
		}},
		{"add-middle", "middle.toml", func(p string) error { return AddAccount(p, dave) }},
		{"add-empty", "empty.toml", func(p string) error { return AddAccount(p, dave) }},
		{"add-crlf", "crlf.toml", func(p string) error { return AddAccount(p, dave) }},
		{"passwd-alice", "base.toml", func(p string) error { return SetPassword(p, "alice", newHash) }},
		{"passwd-bob", "base.toml", func(p string) error { return SetPassword(p, "bob", newHash) }},
		{"passwd-carol", "base.toml", func(p string) error { return SetPassword(p, "carol", newHash) }},
		{"passwd-insert", "nopw.toml", func(p string) error { return SetPassword(p, "bob", newHash) }},
		{"passwd-crlf", "crlf.toml", func(p string) error { return SetPassword(p, "alice", newHash) }},
		{"del-alice", "base.toml", func(p string) error { return DeleteAccount(p, "alice") }},
		{"del-bob", "base.toml", func(p string) error { return DeleteAccount(p, "bob") }},
		{"del-carol", "base.toml", func(p string) error { return DeleteAccount(p, "carol") }},
		{"del-middle", "middle.toml", func(p string) error { return DeleteAccount(p, "alice") }},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			p := copyEditFixture(t, tc.fixture)
			if err := tc.edit(p); err != nil {
				t.Fatal(err)
			}
			got := readTestFile(t, p)
			gp := filepath.Join("testdata", "edit", tc.golden+".golden")
			if *updateGolden {
				if err := os.WriteFile(gp, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(gp)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("result differs from %s:\n--- got\n%s\n--- want\n%s", gp, got, want)
			}
			if _, err := Load(p); err != nil {
				t.Errorf("result does not load: %v", err)
			}
		})
	}
}

// TestEditSemantics checks each edit's meaning on the loaded result.
func TestEditSemantics(t *testing.T) {
	p := copyEditFixture(t, "base.toml")
	names := func() []string {
		accts, err := ListAccounts(p)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, a := range accts {
			n = append(n, a.Name)
		}
		return n
	}
	if got := names(); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("ListAccounts = %q", got)
	}
	if err := AddAccount(p, dave); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	d := c.Account("dave")
	if d == nil || d.Password != newHash || d.UID != 1004 || d.GID != 1005 || d.MaxSessions != 2 || !d.Disabled ||
		len(d.AllowFrom) != 2 || len(d.Folders) != 2 || d.Folders[1].Path != "/drop box" || d.Folders[1].Dir != `/srv/ftp/"drop"\box` {
		t.Errorf("added account = %+v", d)
	}
	if d.Folders[0].Dir != filepath.Join(filepath.Dir(p), "dave") {
		t.Errorf("relative dir = %q", d.Folders[0].Dir)
	}
	if err := SetPassword(p, "bob", newHash); err != nil {
		t.Fatal(err)
	}
	if err := DeleteAccount(p, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []string{"bob", "carol", "dave"}) {
		t.Errorf("after edits: %q", got)
	}
	c, _ = Load(p)
	if c.Account("bob").Password != newHash || c.Account("carol").Password == newHash {
		t.Error("SetPassword changed the wrong account")
	}
	// Defaults of AccountSpec: uid/gid written as 65534.
	if err := AddAccount(p, AccountSpec{Name: "f", Password: newHash, Folders: []FolderSpec{{Path: "/", Dir: "f", Rights: []string{"read"}}}}); err != nil {
		t.Fatal(err)
	}
	c, _ = Load(p)
	if f := c.Account("f"); f.UID != DefaultUID || f.GID != DefaultGID || f.MaxSessions != 0 || f.Disabled {
		t.Errorf("spec defaults: %+v", f)
	}
	if !strings.Contains(readTestFile(t, p), "name = \"f\"\npassword = \""+newHash+"\"\nuid = 65534\ngid = 65534\n") {
		t.Error("uid/gid not written explicitly")
	}
	// Delete every account: the file still loads (with a warning).
	for _, n := range names() {
		if err := DeleteAccount(p, n); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(); len(got) != 0 {
		t.Errorf("left: %q", got)
	}
	if text := readTestFile(t, p); !strings.HasSuffix(text, "passive_ports = \"50000-50100\"\n\n# ---- accounts ----\n\n# Alice: accounting, until 2027.\n\n# Bob: uploads only\n\n# end of file\n") {
		t.Errorf("after deleting all:\n%s", text)
	}
}

// TestEditRefusals checks that refused edits leave the file as it was.
func TestEditRefusals(t *testing.T) {
	cases := []struct {
		name, fixture string
		edit          func(p string) error
		is            error
		msg           string
	}{
		{"add duplicate", "base.toml", func(p string) error {
			return AddAccount(p, AccountSpec{Name: "bob", Password: newHash, Folders: dave.Folders})
		}, ErrAccountExists, ""},
		{"add duplicate case", "base.toml", func(p string) error {
			return AddAccount(p, AccountSpec{Name: "Bob", Password: newHash, Folders: dave.Folders})
		}, ErrAccountExists, ""},
		{"add bad right", "base.toml", func(p string) error {
			return AddAccount(p, AccountSpec{Name: "x", Password: newHash, Folders: []FolderSpec{{Path: "/", Dir: "x", Rights: []string{"wrte"}}}})
		}, nil, `account[3].folder[0].rights: unknown right "wrte"`},
		{"add no folders", "base.toml", func(p string) error { return AddAccount(p, AccountSpec{Name: "x", Password: newHash}) }, nil, "account[3].folder: missing"},
		{"add bad name", "base.toml", func(p string) error {
			return AddAccount(p, AccountSpec{Name: "a b", Password: newHash, Folders: dave.Folders})
		}, nil, "not a valid account name"},
		{"add plain password", "base.toml", func(p string) error {
			return AddAccount(p, AccountSpec{Name: "x", Password: "secret", Folders: dave.Folders})
		}, nil, "plain-text"},
		{"add to invalid file", "nopw.toml", func(p string) error { return AddAccount(p, dave) }, nil, "account[1].password: missing"},
		{"add injection", "base.toml", func(p string) error {
			return AddAccount(p, AccountSpec{Name: "x\"\n[server]\nname = \"pwned", Password: newHash, Folders: dave.Folders})
		}, nil, "not a valid account name"},
		{"passwd unknown", "base.toml", func(p string) error { return SetPassword(p, "zed", newHash) }, ErrNoSuchAccount, ""},
		{"passwd case", "base.toml", func(p string) error { return SetPassword(p, "Alice", newHash) }, ErrNoSuchAccount, ""},
		{"passwd plain", "base.toml", func(p string) error { return SetPassword(p, "alice", "secret") }, ErrMalformedHash, ""},
		{"delete unknown", "base.toml", func(p string) error { return DeleteAccount(p, "zed") }, ErrNoSuchAccount, ""},
		{"syntax error", "", func(p string) error {
			os.WriteFile(p, []byte("[ftp\n"), 0o600)
			return DeleteAccount(p, "a")
		}, nil, "fix it by hand"},
		{"inline accounts", "", func(p string) error {
			os.WriteFile(p, []byte(`account = [{name = "a", password = "`+testHash+`", folder = [{path = "/", dir = "d", rights = ["read"]}]}]`+"\n"), 0o600)
			return DeleteAccount(p, "a")
		}, nil, "not all written as [[account]] tables"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p string
			if tc.fixture != "" {
				p = copyEditFixture(t, tc.fixture)
			} else {
				p = filepath.Join(t.TempDir(), "sluice.toml")
				os.WriteFile(p, nil, 0o600)
			}
			err := tc.edit(p) // may rewrite p first (fixture "")
			before := ""
			if tc.fixture != "" {
				b, _ := os.ReadFile(filepath.Join("testdata", "edit", tc.fixture))
				before = string(b)
			} else {
				before = readTestFile(t, p)
			}
			if err == nil {
				t.Fatal("edit accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if got := readTestFile(t, p); got != before {
				t.Errorf("file changed:\n%s", got)
			}
			ents, _ := os.ReadDir(filepath.Dir(p))
			if len(ents) != 1 {
				t.Errorf("stray files: %v", ents)
			}
		})
	}
}

func TestEditAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.toml")
	data, _ := os.ReadFile("testdata/edit/base.toml")
	os.WriteFile(real, data, 0o600)
	if err := os.Chmod(real, 0o640); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(real)
	// Edit through a symlink: the link stays a link, its target changes.
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink("real.toml", link); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(link, "alice", newHash); err != nil {
		t.Fatal(err)
	}
	li, err := os.Lstat(link)
	if err != nil || li.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("symlink replaced: %v %v", li.Mode(), err)
	}
	after, err := os.Stat(real)
	if err != nil {
		t.Fatal(err)
	}
	if after.Mode() != before.Mode() {
		t.Errorf("mode %v, want %v", after.Mode(), before.Mode())
	}
	if os.SameFile(before, after) {
		t.Error("file rewritten in place, not replaced by rename")
	}
	if !strings.Contains(readTestFile(t, real), newHash) {
		t.Error("target not edited")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("temporary files left: %v", ents)
	}
	// A reader that opened the file before the edit still reads the old,
	// complete content (rename, not truncate-and-write).
	f, err := os.Open(real)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := readTestFile(t, real)
	if err := DeleteAccount(real, "bob"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(old)+10)
	n, _ := f.Read(buf)
	if string(buf[:n]) != old {
		t.Error("open reader saw the new content")
	}
}

func TestWriteFileAtomicFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.toml")
	os.WriteFile(p, []byte("old"), 0o600)
	fi, _ := os.Stat(p)
	// Renaming over a directory fails: the original stays, no temp file.
	target := filepath.Join(dir, "sub")
	os.Mkdir(target, 0o700)
	os.WriteFile(filepath.Join(target, "keep"), nil, 0o600)
	if err := writeFileAtomic(target, []byte("new"), fi); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("left behind: %v", ents)
	}
	if readTestFile(t, p) != "old" {
		t.Error("original changed")
	}
}

// TestEditConcurrent runs many edits at once: the lock serialises them, so
// none is lost.
func TestEditConcurrent(t *testing.T) {
	p := copyEditFixture(t, "base.toml")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = AddAccount(p, AccountSpec{Name: fmt.Sprintf("u%d", i), Password: newHash, Folders: dave.Folders})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("add %d: %v", i, err)
		}
	}
	accts, err := ListAccounts(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 3+n {
		t.Errorf("%d accounts, want %d", len(accts), 3+n)
	}
}

func TestTOMLString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\there", "nl\nx", "cr\rx", "\x00\x01\x1f\x7f", "üñí ✓", "$argon2id$v=19$m=1"} {
		raw, prob := decodeRaw([]byte("k = " + tomlString(s) + "\n"))
		if prob != nil {
			t.Errorf("tomlString(%q) = %s: %v", s, tomlString(s), prob)
			continue
		}
		if raw["k"] != s {
			t.Errorf("round trip of %q gave %q", s, raw["k"])
		}
	}
}

// TestEditBOM checks a file that starts with a UTF-8 byte order mark.
func TestEditBOM(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bom.toml")
	text := "\ufeff" + acctTOML("a") + acctTOML("b")
	os.WriteFile(p, []byte(text), 0o600)
	if err := SetPassword(p, "a", newHash); err != nil {
		t.Fatal(err)
	}
	if err := DeleteAccount(p, "b"); err != nil {
		t.Fatal(err)
	}
	want := "\ufeff" + strings.Replace(acctTOML("a"), testHash, newHash, 1)
	if got := readTestFile(t, p); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

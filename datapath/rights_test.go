package datapath

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func rightsTree(t *testing.T, r Rights) (*Tree, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTree([]Mount{{Path: "/", Dir: d, Rights: r}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, dir
}

func TestRightWords(t *testing.T) {
	for word, want := range map[string]Rights{"write": RightsWriting, "create": RightWrite, "append-only": RightAppend, "overwrite": RightOverwrite} {
		if r, ok := RightByName(word); !ok || r != want {
			t.Errorf("%q = %v", word, r)
		}
	}
	if s := (RightList | RightRead | RightsWriting | RightMkdir).String(); s != "list,read,write,mkdir" {
		t.Errorf("String = %q", s)
	}
	if s := (RightWrite | RightAppend).String(); s != "create,append" {
		t.Errorf("String = %q", s)
	}
}

// A dropbox (create only): new names upload, hashed without reading the
// file back; existing names are never replaced, appended or resumed.
func TestDropboxUploads(t *testing.T) {
	tr, dir := rightsTree(t, RightWrite)
	data := []byte("log line\n")
	for _, o := range []Options{{}, {ASCII: true}} {
		name := "/a.log"
		if o.ASCII {
			name = "/b.log"
		}
		u, err := tr.BeginUpload(name, UploadStore, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !u.writeOnly {
			t.Fatal("dropbox upload not write-only")
		}
		if _, err := push(t, u, data, o); err != nil {
			t.Fatal(err)
		}
		rec, err := u.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Sum != xxhash.Sum64(data) {
			t.Errorf("%s: digest %x", name, rec.Sum)
		}
	}
	if _, err := tr.BeginUpload("/a.log", UploadStore, 0); !errors.Is(err, ErrNoOverwrite) || !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrite: %v", err)
	}
	if _, err := tr.BeginUpload("/a.log", UploadAppend, 0); !errors.Is(err, ErrNoOverwrite) {
		t.Errorf("append: %v", err)
	}
	// APPE of a new name is a create; resuming a dropbox upload is not
	// possible (it would read the partial back).
	u, err := tr.BeginUpload("/d.log", UploadAppend, 0)
	if err != nil {
		t.Fatal(err)
	}
	u.Abort()
	if _, err := tr.BeginUpload("/d.log", UploadStore, 3); !errors.Is(err, ErrNoRight) {
		t.Errorf("resume: %v", err)
	}
	if _, err := tr.Create("/a.log", os.O_TRUNC); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create O_TRUNC: %v", err)
	}
	// The name appears while the upload runs: the commit refuses to
	// replace it and keeps the partial.
	u, err = tr.BeginUpload("/c.log", UploadStore, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push(t, u, data, Options{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "c.log"), []byte("first"), 0o644)
	if _, err := u.Commit(); !errors.Is(err, ErrNoOverwrite) {
		t.Errorf("commit over a new file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "c.log")); string(b) != "first" {
		t.Errorf("c.log replaced: %q", b)
	}
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if err := tr.Rename("/b.log", "/x"); !errors.Is(err, ErrNoRight) {
		t.Errorf("rename without the right: %v", err)
	}
}

func TestAppendOnlyAndOverwrite(t *testing.T) {
	tr, dir := rightsTree(t, RightAppend|RightRename)
	os.WriteFile(filepath.Join(dir, "f"), []byte("abc"), 0o644)
	os.WriteFile(filepath.Join(dir, "g"), []byte("g"), 0o644)
	if _, err := tr.BeginUpload("/new", UploadStore, 0); !errors.Is(err, ErrNoRight) {
		t.Errorf("append-only create: %v", err)
	}
	if _, err := tr.BeginUpload("/f", UploadStore, 0); !errors.Is(err, ErrNoOverwrite) {
		t.Errorf("append-only truncate: %v", err)
	}
	if _, err := tr.BeginUpload("/f", UploadStore, 1); !errors.Is(err, ErrNoOverwrite) {
		t.Errorf("append-only cut: %v", err)
	}
	u, err := tr.BeginUpload("/f", UploadAppend, 0)
	if err != nil {
		t.Fatal(err)
	}
	push(t, u, []byte("def"), Options{})
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "abcdef" {
		t.Errorf("f = %q", b)
	}
	if err := tr.Rename("/g", "/f"); !errors.Is(err, ErrNoOverwrite) {
		t.Errorf("rename over without overwrite: %v", err)
	}
	f, err := tr.Create("/f", os.O_APPEND)
	if err != nil {
		t.Fatalf("Create O_APPEND: %v", err)
	}
	f.Close()

	tr2, dir2 := rightsTree(t, RightOverwrite)
	os.WriteFile(filepath.Join(dir2, "f"), []byte("old"), 0o644)
	if _, err := tr2.BeginUpload("/new", UploadStore, 0); !errors.Is(err, ErrNoRight) {
		t.Errorf("overwrite-only create: %v", err)
	}
	u, err = tr2.BeginUpload("/f", UploadStore, 0)
	if err != nil {
		t.Fatal(err)
	}
	push(t, u, []byte("new"), Options{})
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
}

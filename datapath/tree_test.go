package datapath

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func openDir(t testing.TB, p string) *os.File {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustWrite(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func readAll(t testing.TB, f *os.File) string {
	t.Helper()
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fixture lays out:
//
//	base/outside/secret.txt          not mounted
//	base/pub   → /pub    list,read   with traversal bait
//	base/in    → /in     all
//	base/drop  → /drop   write only
//	base/look  → /look   list only
//	base/y     → /deep/x/y  all
//
// There is no "/" mount: "/", "/deep" and "/deep/x" are synthetic.
type fixture struct {
	base string
	tree *Tree
}

func (f *fixture) at(rel string) string { return filepath.Join(f.base, rel) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{base: base}
	mustWrite(t, f.at("outside/secret.txt"), "outside")
	mustWrite(t, f.at("pub/hello.txt"), "hello")
	mustWrite(t, f.at("pub/sub/inner.txt"), "inner")
	mustSymlink(t, "sub/inner.txt", f.at("pub/ok"))
	mustSymlink(t, "sub", f.at("pub/okdir"))
	mustSymlink(t, "../hello.txt", f.at("pub/sub/back"))
	mustSymlink(t, "/etc", f.at("pub/abs"))
	mustSymlink(t, f.at("outside/secret.txt"), f.at("pub/absfile"))
	mustSymlink(t, f.at("pub/hello.txt"), f.at("pub/absinside"))
	mustSymlink(t, "../outside", f.at("pub/up"))
	mustSymlink(t, "../../../../../../../../etc", f.at("pub/upfar"))
	mustSymlink(t, "sub/../../outside/secret.txt", f.at("pub/zigzag"))
	mustSymlink(t, "../in", f.at("pub/sib"))
	mustSymlink(t, "/proc/self/root", f.at("pub/magic"))
	mustSymlink(t, "nope", f.at("pub/dangling"))
	mustSymlink(t, "loop", f.at("pub/loop"))
	if err := unix.Mkfifo(f.at("pub/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f.at("in/hello.txt"), "in-hello")
	mustWrite(t, f.at("drop/.keep"), "")
	mustWrite(t, f.at("look/seen.txt"), "seen")
	mustWrite(t, f.at("y/deep.txt"), "deep")
	tree, err := NewTree([]Mount{
		{Path: "/pub", Dir: openDir(t, f.at("pub")), Rights: RightList | RightRead},
		{Path: "/in", Dir: openDir(t, f.at("in")), Rights: RightsAll},
		{Path: "/drop", Dir: openDir(t, f.at("drop")), Rights: RightWrite},
		{Path: "/look", Dir: openDir(t, f.at("look")), Rights: RightList},
		{Path: "/deep/x/y", Dir: openDir(t, f.at("y")), Rights: RightsAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	f.tree = tree
	return f
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func TestTraversal(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	tests := []struct {
		path string
		want error  // for Open
		data string // content when want == nil
	}{
		// not clean / not absolute: refused before the kernel sees them
		{"/pub/../outside/secret.txt", ErrEscape, ""},
		{"/pub/sub/../../outside/secret.txt", ErrEscape, ""},
		{"/..", ErrEscape, ""},
		{"pub/hello.txt", ErrEscape, ""},
		{"/pub/./hello.txt", ErrEscape, ""},
		{"/pub//hello.txt", ErrEscape, ""},
		{"/pub/hello.txt/", ErrEscape, ""},
		{"/pub/hello\x00.txt", ErrEscape, ""},
		{"", ErrEscape, ""},
		// symlinks the kernel refuses under RESOLVE_BENEATH
		{"/pub/abs/passwd", ErrEscape, ""},
		{"/pub/absfile", ErrEscape, ""},
		{"/pub/absinside", ErrEscape, ""}, // absolute, even though it points inside
		{"/pub/up/secret.txt", ErrEscape, ""},
		{"/pub/upfar/passwd", ErrEscape, ""},
		{"/pub/zigzag", ErrEscape, ""},
		{"/pub/sib/hello.txt", ErrEscape, ""}, // a sibling mount's storage
		{"/pub/magic/etc/passwd", ErrEscape, ""},
		{"/pub/loop", ErrEscape, ""},
		// symlinks that stay inside work
		{"/pub/ok", nil, "inner"},
		{"/pub/okdir/inner.txt", nil, "inner"},
		{"/pub/sub/back", nil, "hello"},
		{"/pub/hello.txt", nil, "hello"},
		// odd files
		{"/pub/dangling", fs.ErrNotExist, ""},
		{"/pub/fifo", fs.ErrPermission, ""}, // and it must not block
		{"/pub/sub", ErrIsDir, ""},
		{"/pub", ErrIsDir, ""},
		{"/pub/hello.txt/x", ErrNotDir, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			file, err := tr.Open(tc.path)
			wantErr(t, "Open", err, tc.want)
			if err == nil {
				if got := readAll(t, file); got != tc.data {
					t.Errorf("read %q, want %q", got, tc.data)
				}
			}
			if tc.want == ErrEscape {
				_, err := tr.Stat(tc.path)
				wantErr(t, "Stat", err, ErrEscape)
				_, err = tr.ReadDir(tc.path)
				wantErr(t, "ReadDir", err, ErrEscape)
			}
		})
	}
	// Mutations through an escaping symlink (on a mount that allows them).
	mustSymlink(t, "../outside", f.at("in/up"))
	mustSymlink(t, f.at("outside"), f.at("in/abs"))
	for _, dir := range []string{"/in/up", "/in/abs"} {
		w, err := tr.Create(dir+"/new.txt", 0)
		if err == nil {
			w.Close()
		}
		wantErr(t, "Create "+dir, err, ErrEscape)
		wantErr(t, "Mkdir "+dir, tr.Mkdir(dir+"/newdir"), ErrEscape)
		wantErr(t, "Remove "+dir, tr.Remove(dir+"/secret.txt"), ErrEscape)
		wantErr(t, "Rename "+dir, tr.Rename(dir+"/secret.txt", "/in/stolen"), ErrEscape)
		wantErr(t, "Rename into "+dir, tr.Rename("/in/hello.txt", dir+"/planted"), ErrEscape)
		wantErr(t, "Chtimes "+dir, tr.Chtimes(dir+"/secret.txt", time.Unix(1, 0)), ErrEscape)
		wantErr(t, "Chtimes link "+dir, tr.Chtimes(dir, time.Unix(1, 0)), ErrEscape)
	}
	// A dangling final symlink is followed by O_CREAT, but only beneath.
	mustSymlink(t, "../outside/planted.txt", f.at("in/plant"))
	mustSymlink(t, "created2.txt", f.at("in/fine2"))
	_, err := tr.Create("/in/plant", 0)
	wantErr(t, "Create via dangling escaping link", err, ErrEscape)
	w, err := tr.Create("/in/fine2", os.O_EXCL)
	wantErr(t, "Create O_EXCL via dangling link", err, fs.ErrExist)
	w, err = tr.Create("/in/fine2", 0)
	wantErr(t, "Create via dangling inside link", err, nil)
	if err == nil {
		w.Close()
		if _, err := os.Stat(f.at("in/created2.txt")); err != nil {
			t.Error("link target not created")
		}
	}
	ents, _ := os.ReadDir(f.at("outside"))
	if len(ents) != 1 {
		t.Errorf("outside was modified: %v", ents)
	}
	if fi, _ := os.Stat(f.at("outside/secret.txt")); fi.ModTime().Unix() == 1 {
		t.Error("outside mtime changed")
	}
	// Remove of an escaping symlink removes the link, never the target.
	wantErr(t, "Remove link", tr.Remove("/in/up"), nil)
	if _, err := os.Stat(f.at("outside/secret.txt")); err != nil {
		t.Error(err)
	}
}

// TestMagicLinks mounts /proc/self itself: only RESOLVE_NO_MAGICLINKS stops
// "root", "cwd" and "fd/N" from leading anywhere.
func TestMagicLinks(t *testing.T) {
	tree, err := NewTree([]Mount{{Path: "/", Dir: openDir(t, "/proc/self"), Rights: RightList | RightRead}})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	for _, p := range []string{"/root/etc/passwd", "/cwd", "/exe", "/fd/0", "/root"} {
		_, err := tree.Open(p)
		wantErr(t, "Open "+p, err, ErrEscape)
		_, err = tree.Stat(p)
		wantErr(t, "Stat "+p, err, ErrEscape)
	}
	f, err := tree.Open("/status") // ordinary files still work
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestSwapDirForSymlink replaces a directory by a symlink to the outside
// between two operations: the second is refused by the kernel.
func TestSwapDirForSymlink(t *testing.T) {
	for _, target := range []string{"abs", "rel"} {
		t.Run(target, func(t *testing.T) {
			f := newFixture(t)
			tr := f.tree
			mustWrite(t, f.at("in/d/secret.txt"), "inside")
			if fi, err := tr.Stat("/in/d/secret.txt"); err != nil || fi.Size() != 6 {
				t.Fatal(fi, err)
			}
			if err := os.Rename(f.at("in/d"), f.at("in/d.old")); err != nil {
				t.Fatal(err)
			}
			link := f.at("outside")
			if target == "rel" {
				link = "../outside"
			}
			mustSymlink(t, link, f.at("in/d"))
			_, err := tr.Stat("/in/d/secret.txt")
			wantErr(t, "Stat after swap", err, ErrEscape)
			_, err = tr.Open("/in/d/secret.txt")
			wantErr(t, "Open after swap", err, ErrEscape)
			_, err = tr.ReadDir("/in/d")
			wantErr(t, "ReadDir after swap", err, ErrEscape)
			wantErr(t, "Remove after swap", tr.Remove("/in/d/secret.txt"), ErrEscape)
			if _, err := os.Stat(f.at("outside/secret.txt")); err != nil {
				t.Fatal("outside file removed")
			}
		})
	}
}

// TestSwapRace flips a directory and an escaping symlink as fast as it can
// while another goroutine opens through it: every successful open must be
// of the inside file.
func TestSwapRace(t *testing.T) {
	f := newFixture(t)
	mustWrite(t, f.at("in/d/secret.txt"), "inside")
	if err := os.Rename(f.at("in/d"), f.at("in/real")); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "real", f.at("in/good"))
	mustSymlink(t, "../outside", f.at("in/bad"))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			src := f.at("in/good")
			if i%2 == 1 {
				src = f.at("in/bad")
			}
			// link(2) a copy then rename over d: d is always there,
			// alternately a dir symlink inside and one outside.
			tmp := f.at("in/tmp")
			os.Remove(tmp)
			l, _ := os.Readlink(src)
			os.Symlink(l, tmp)
			os.Rename(tmp, f.at("in/d"))
		}
	}()
	var ok, refused int
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		file, err := f.tree.Open("/in/d/secret.txt")
		if err != nil {
			if !errors.Is(err, ErrEscape) && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("unexpected %v", err)
			}
			refused++
			continue
		}
		if got := readAll(t, file); got != "inside" {
			t.Fatalf("read %q through the swapped path", got)
		}
		ok++
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d opens inside, %d refused", ok, refused)
	if ok == 0 || refused == 0 {
		t.Logf("race not exercised both ways (ok=%d refused=%d)", ok, refused)
	}
}

func TestOps(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	step := func(what string, err, want error) {
		t.Helper()
		wantErr(t, what, err, want)
	}
	create := func(p string, flag int, data string) error {
		w, err := tr.Create(p, flag)
		if err != nil {
			return err
		}
		defer w.Close()
		_, err = w.WriteString(data)
		return err
	}
	content := func(p string) string {
		t.Helper()
		r, err := tr.Open(p)
		if err != nil {
			t.Fatalf("Open %s: %v", p, err)
		}
		return readAll(t, r)
	}

	step("Create", create("/in/a.txt", 0, "one"), nil)
	if got := content("/in/a.txt"); got != "one" {
		t.Errorf("content %q", got)
	}
	fi, err := os.Stat(f.at("in/a.txt"))
	if err != nil || fi.Mode().Perm()&^0o644 != 0 {
		t.Errorf("mode %v %v", fi.Mode(), err)
	}
	step("Create O_APPEND", create("/in/a.txt", os.O_APPEND, "two"), nil)
	if got := content("/in/a.txt"); got != "onetwo" {
		t.Errorf("append: %q", got)
	}
	step("Create O_TRUNC", create("/in/a.txt", os.O_TRUNC, "3"), nil)
	if got := content("/in/a.txt"); got != "3" {
		t.Errorf("trunc: %q", got)
	}
	step("Create O_EXCL exists", create("/in/a.txt", os.O_EXCL, "x"), fs.ErrExist)
	step("Create bad flag", create("/in/b.txt", os.O_RDWR, "x"), unix.EINVAL)
	step("Create missing dir", create("/in/no/b.txt", 0, "x"), fs.ErrNotExist)
	step("Create on file/x", create("/in/a.txt/b", 0, "x"), ErrNotDir)
	step("Mkdir", tr.Mkdir("/in/d"), nil)
	if fi, err := os.Stat(f.at("in/d")); err != nil || !fi.IsDir() {
		t.Fatal(fi, err)
	}
	step("Mkdir exists", tr.Mkdir("/in/d"), fs.ErrExist)
	step("Mkdir missing parent", tr.Mkdir("/in/no/d"), fs.ErrNotExist)
	step("Create on dir", create("/in/d", 0, "x"), ErrIsDir)
	_, err = tr.Open("/in/d")
	step("Open dir", err, ErrIsDir)
	_, err = tr.Open("/in/none")
	step("Open missing", err, fs.ErrNotExist)
	_, err = tr.Stat("/in/none")
	step("Stat missing", err, fs.ErrNotExist)
	_, err = tr.Stat("/in/a.txt/x")
	step("Stat under file", err, ErrNotDir)
	_, err = tr.ReadDir("/in/a.txt")
	step("ReadDir file", err, ErrNotDir)
	step("Create in subdir", create("/in/d/f.txt", 0, "f"), nil)

	fi2, err := tr.Stat("/in/d/f.txt")
	if err != nil || fi2.Size() != 1 || fi2.Name() != "f.txt" || !fi2.Mode().IsRegular() {
		t.Errorf("Stat: %v %v", fi2, err)
	}
	if st, ok := fi2.Sys().(*syscall.Stat_t); !ok || st.Size != 1 || st.Nlink != 1 {
		t.Errorf("Sys: %#v", fi2.Sys())
	}

	step("Remove dir", tr.Remove("/in/d"), ErrIsDir)
	step("Rmdir non-empty", tr.Rmdir("/in/d"), unix.ENOTEMPTY)
	step("Rmdir file", tr.Rmdir("/in/a.txt"), ErrNotDir)
	step("Remove missing", tr.Remove("/in/none"), fs.ErrNotExist)

	// Rename: files replace files, nothing replaces a directory.
	step("Rename", tr.Rename("/in/a.txt", "/in/b.txt"), nil)
	step("Rename into dir", tr.Rename("/in/b.txt", "/in/d/b.txt"), nil)
	step("Rename over file", tr.Rename("/in/hello.txt", "/in/d/b.txt"), nil)
	if got := content("/in/d/b.txt"); got != "in-hello" {
		t.Errorf("after replace: %q", got)
	}
	step("Mkdir e", tr.Mkdir("/in/e"), nil)
	step("Rename file over dir", tr.Rename("/in/d/b.txt", "/in/e"), ErrIsDir)
	step("Mkdir g", tr.Mkdir("/in/g"), nil)
	step("Rename dir over empty dir", tr.Rename("/in/d", "/in/g"), ErrIsDir)
	step("Rename dir over file", tr.Rename("/in/g", "/in/d/b.txt"), fs.ErrExist)
	step("Rename dir", tr.Rename("/in/d", "/in/d2"), nil)
	step("Rename dir into itself", tr.Rename("/in/d2", "/in/d2/sub"), unix.EINVAL)
	step("Rename missing", tr.Rename("/in/none", "/in/x"), fs.ErrNotExist)
	step("Rename across folders", tr.Rename("/in/d2/b.txt", "/drop/b.txt"), ErrCrossFolder)
	step("Rename to synthetic", tr.Rename("/in/d2/b.txt", "/b.txt"), ErrNoRight)
	step("Rename to nowhere", tr.Rename("/in/d2/b.txt", "/nope/b.txt"), fs.ErrNotExist)

	// Symlinks: Remove and Rename act on the link.
	mustSymlink(t, "d2/b.txt", f.at("in/link"))
	step("Rename link", tr.Rename("/in/link", "/in/link2"), nil)
	if l, err := os.Readlink(f.at("in/link2")); err != nil || l != "d2/b.txt" {
		t.Errorf("link moved wrong: %q %v", l, err)
	}
	step("Rmdir link to dir", tr.Rmdir("/in/link2"), ErrNotDir)
	mustSymlink(t, "d2", f.at("in/dlink"))
	step("Rmdir symlink to dir", tr.Rmdir("/in/dlink"), ErrNotDir)
	step("Remove symlink to dir", tr.Remove("/in/dlink"), nil)
	step("Remove link", tr.Remove("/in/link2"), nil)
	if _, err := os.Stat(f.at("in/d2/b.txt")); err != nil {
		t.Error("link target removed")
	}

	// Chtimes follows a symlink beneath the folder.
	mt := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	step("Chtimes", tr.Chtimes("/in/d2/b.txt", mt), nil)
	if fi, _ := os.Stat(f.at("in/d2/b.txt")); !fi.ModTime().Equal(mt) {
		t.Errorf("mtime %v", fi.ModTime())
	}
	mustSymlink(t, "d2/b.txt", f.at("in/tl"))
	mt2 := mt.Add(time.Hour)
	step("Chtimes via link", tr.Chtimes("/in/tl", mt2), nil)
	if fi, _ := os.Stat(f.at("in/d2/b.txt")); !fi.ModTime().Equal(mt2) {
		t.Errorf("mtime via link %v", fi.ModTime())
	}
	step("Chtimes dir", tr.Chtimes("/in/d2", mt), nil)
	step("Chtimes missing", tr.Chtimes("/in/none", mt), fs.ErrNotExist)

	step("Remove", tr.Remove("/in/d2/b.txt"), nil)
	step("Remove f", tr.Remove("/in/d2/f.txt"), nil)
	step("Rmdir", tr.Rmdir("/in/d2"), nil)
	step("Rmdir missing", tr.Rmdir("/in/d2"), fs.ErrNotExist)

	// Mount points are part of the layout.
	step("Remove mount", tr.Remove("/in"), ErrNoRight)
	step("Rmdir mount", tr.Rmdir("/in"), ErrNoRight)
	step("Rmdir nested mount", tr.Rmdir("/deep/x/y"), ErrNoRight)
	step("Rename mount", tr.Rename("/deep/x/y", "/deep/x/z"), ErrNoRight)
	step("Rename onto mount", tr.Rename("/deep/x/y/deep.txt", "/deep/x/y"), ErrNoRight)
	step("Mkdir mount", tr.Mkdir("/in"), fs.ErrExist)
	step("Mkdir synthetic", tr.Mkdir("/newtop"), ErrNoRight)
	step("Create synthetic", create("/top.txt", 0, "x"), ErrNoRight)
	step("Chtimes synthetic", tr.Chtimes("/deep", mt), ErrNoRight)
	step("Rmdir synthetic", tr.Rmdir("/deep"), ErrNoRight)
	_, err = tr.Open("/deep")
	step("Open synthetic", err, ErrIsDir)
	_, err = tr.Open("/top.txt")
	step("Open absent in synthetic", err, fs.ErrNotExist)
	step("Remove absent in synthetic", tr.Remove("/top.txt"), ErrNoRight)

	// ReadDir of /in after all that.
	names := listNames(t, tr, "/in")
	want := []string{"e", "g", "tl"}
	if !equal(names, want) {
		t.Errorf("ReadDir /in = %v, want %v", names, want)
	}
}

func listNames(t *testing.T, tr *Tree, p string) []string {
	t.Helper()
	fis, err := tr.ReadDir(p)
	if err != nil {
		t.Fatalf("ReadDir %s: %v", p, err)
	}
	var names []string
	for _, fi := range fis {
		names = append(names, fi.Name())
	}
	return names
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadDirEntries(t *testing.T) {
	f := newFixture(t)
	fis, err := f.tree.ReadDir("/pub")
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]fs.FileMode{}
	for _, fi := range fis {
		modes[fi.Name()] = fi.Mode()
	}
	want := map[string]fs.FileMode{
		"hello.txt": 0,
		"ok":        0,              // followed: regular file
		"okdir":     fs.ModeDir,     // followed: directory
		"sub":       fs.ModeDir,     //
		"abs":       fs.ModeSymlink, // escaping: Lstat info
		"absfile":   fs.ModeSymlink,
		"absinside": fs.ModeSymlink,
		"up":        fs.ModeSymlink,
		"upfar":     fs.ModeSymlink,
		"zigzag":    fs.ModeSymlink,
		"sib":       fs.ModeSymlink,
		"magic":     fs.ModeSymlink,
		"dangling":  fs.ModeSymlink,
		"loop":      fs.ModeSymlink,
		"fifo":      fs.ModeNamedPipe,
	}
	if len(modes) != len(want) {
		t.Errorf("got %d entries, want %d: %v", len(modes), len(want), modes)
	}
	for name, typ := range want {
		m, ok := modes[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if m.Type() != typ {
			t.Errorf("%s: type %v, want %v", name, m.Type(), typ)
		}
	}
	if !sort.SliceIsSorted(fis, func(i, j int) bool { return fis[i].Name() < fis[j].Name() }) {
		t.Error("not sorted")
	}
	for _, fi := range fis {
		if fi.Name() == "ok" && fi.Size() != 5 {
			t.Errorf("ok: size %d, want the target's 5", fi.Size())
		}
	}
}

func TestRights(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	mustWrite(t, f.at("drop/old.txt"), "old")
	type opfn func() error
	create := func(p string) opfn {
		return func() error {
			w, err := tr.Create(p, 0)
			if err == nil {
				w.Close()
			}
			return err
		}
	}
	open := func(p string) opfn {
		return func() error {
			r, err := tr.Open(p)
			if err == nil {
				r.Close()
			}
			return err
		}
	}
	stat := func(p string) opfn { return func() error { _, err := tr.Stat(p); return err } }
	list := func(p string) opfn { return func() error { _, err := tr.ReadDir(p); return err } }
	tests := []struct {
		name string
		op   opfn
		want error
	}{
		{"pub open", open("/pub/hello.txt"), nil},
		{"pub stat", stat("/pub/hello.txt"), nil},
		{"pub list", list("/pub"), nil},
		{"pub create", create("/pub/new"), ErrNoRight},
		{"pub create existing", create("/pub/hello.txt"), ErrNoRight},
		{"pub mkdir", func() error { return tr.Mkdir("/pub/d") }, ErrNoRight},
		{"pub remove", func() error { return tr.Remove("/pub/hello.txt") }, ErrNoRight},
		{"pub rmdir", func() error { return tr.Rmdir("/pub/sub") }, ErrNoRight},
		{"pub rename", func() error { return tr.Rename("/pub/hello.txt", "/pub/h") }, ErrNoRight},
		{"pub chtimes", func() error { return tr.Chtimes("/pub/hello.txt", time.Now()) }, ErrNoRight},
		{"drop create", create("/drop/up.bin"), nil},
		{"drop open", open("/drop/old.txt"), ErrNoRight},
		{"drop list", list("/drop"), ErrNoRight},
		{"drop stat file", stat("/drop/old.txt"), ErrNoRight},
		{"drop stat mount point", stat("/drop"), nil},
		{"drop remove", func() error { return tr.Remove("/drop/old.txt") }, ErrNoRight},
		{"drop chtimes", func() error { return tr.Chtimes("/drop/old.txt", time.Now()) }, nil},
		{"look list", list("/look"), nil},
		{"look stat", stat("/look/seen.txt"), nil},
		{"look open", open("/look/seen.txt"), ErrNoRight},
		{"synthetic list", list("/deep"), nil},
		{"synthetic stat", stat("/deep/x"), nil},
		{"deep create", create("/deep/x/y/n.txt"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.name, tc.op(), tc.want) })
	}
	if _, err := os.Stat(f.at("pub/new")); err == nil {
		t.Error("file created without the right")
	}
	rights := map[string]Rights{
		"/":               RightList,
		"/deep":           RightList,
		"/deep/x":         RightList,
		"/deep/x/y":       RightsAll,
		"/deep/x/y/a/b":   RightsAll,
		"/pub":            RightList | RightRead,
		"/pub/any/thing":  RightList | RightRead,
		"/drop/x":         RightWrite,
		"/public":         RightsNone,
		"/nope":           RightsNone,
		"/pub/../in":      RightsNone,
		"relative":        RightsNone,
		"/deep/xx":        RightsNone,
		"/deep/x/y2/file": RightsNone,
	}
	for p, want := range rights {
		if got := tr.Rights(p); got != want {
			t.Errorf("Rights(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestSyntheticRoot(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	if got, want := listNames(t, tr, "/"), []string{"deep", "drop", "in", "look", "pub"}; !equal(got, want) {
		t.Errorf("/ = %v, want %v", got, want)
	}
	if got, want := listNames(t, tr, "/deep"), []string{"x"}; !equal(got, want) {
		t.Errorf("/deep = %v, want %v", got, want)
	}
	if got, want := listNames(t, tr, "/deep/x"), []string{"y"}; !equal(got, want) {
		t.Errorf("/deep/x = %v, want %v", got, want)
	}
	if got, want := listNames(t, tr, "/deep/x/y"), []string{"deep.txt"}; !equal(got, want) {
		t.Errorf("/deep/x/y = %v, want %v", got, want)
	}
	fis, _ := tr.ReadDir("/")
	for _, fi := range fis {
		if !fi.IsDir() {
			t.Errorf("%s not a dir", fi.Name())
		}
	}
	for _, p := range []string{"/", "/deep", "/deep/x", "/pub"} {
		fi, err := tr.Stat(p)
		if err != nil || !fi.IsDir() {
			t.Errorf("Stat %s: %v %v", p, fi, err)
		}
	}
	for _, p := range []string{"/nope", "/deep/y", "/publ"} {
		_, err := tr.Stat(p)
		wantErr(t, "Stat "+p, err, fs.ErrNotExist)
		_, err = tr.ReadDir(p)
		wantErr(t, "ReadDir "+p, err, fs.ErrNotExist)
	}
}

func TestRootMountWithSubMounts(t *testing.T) {
	base := t.TempDir()
	mustWrite(t, filepath.Join(base, "root/readme"), "r")
	mustWrite(t, filepath.Join(base, "root/pub"), "a real file shadowed by the mount")
	mustWrite(t, filepath.Join(base, "pub/p.txt"), "p")
	mustWrite(t, filepath.Join(base, "pubx/x.txt"), "x")
	mustWrite(t, filepath.Join(base, "in/i.txt"), "i")
	tr, err := NewTree([]Mount{
		{Path: "/", Dir: openDir(t, filepath.Join(base, "root")), Rights: RightsAll},
		{Path: "/pub", Dir: openDir(t, filepath.Join(base, "pub")), Rights: RightList | RightRead},
		{Path: "/public", Dir: openDir(t, filepath.Join(base, "pubx")), Rights: RightList},
		{Path: "/pub/in", Dir: openDir(t, filepath.Join(base, "in")), Rights: RightWrite},
		{Path: "/a/b", Dir: openDir(t, filepath.Join(base, "in")), Rights: RightList},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got, want := listNames(t, tr, "/"), []string{"a", "pub", "public", "readme"}; !equal(got, want) {
		t.Errorf("/ = %v, want %v", got, want)
	}
	fi, err := tr.Stat("/pub")
	if err != nil || !fi.IsDir() {
		t.Errorf("/pub: %v %v", fi, err)
	}
	if got, want := listNames(t, tr, "/pub"), []string{"in", "p.txt"}; !equal(got, want) {
		t.Errorf("/pub = %v, want %v", got, want)
	}
	if got, want := listNames(t, tr, "/public"), []string{"x.txt"}; !equal(got, want) {
		t.Errorf("/public = %v, want %v", got, want)
	}
	// "/a" does not exist in the root storage: synthetic, leading to /a/b.
	if got, want := listNames(t, tr, "/a"), []string{"b"}; !equal(got, want) {
		t.Errorf("/a = %v, want %v", got, want)
	}
	if fi, err := tr.Stat("/a"); err != nil || !fi.IsDir() {
		t.Errorf("Stat /a: %v %v", fi, err)
	}
	wantErr(t, "Rmdir /a", tr.Rmdir("/a"), ErrNoRight)
	wantErr(t, "Mkdir /a", tr.Mkdir("/a"), fs.ErrExist)
	// Longest prefix by components.
	cases := map[string]Rights{
		"/pub/p.txt":    RightList | RightRead,
		"/pub/in/i.txt": RightWrite,
		"/pub/inx":      RightList | RightRead,
		"/public/x.txt": RightList,
		"/publicx":      RightsAll,
		"/readme":       RightsAll,
		"/a/b/i.txt":    RightList,
		"/a/c":          RightsAll,
	}
	for p, want := range cases {
		if got := tr.Rights(p); got != want {
			t.Errorf("Rights(%q) = %v, want %v", p, got, want)
		}
	}
	r, err := tr.Open("/pub/p.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); got != "p" {
		t.Errorf("/pub/p.txt = %q", got)
	}
	_, err = tr.Open("/public/x.txt")
	wantErr(t, "Open /public/x.txt (list only)", err, ErrNoRight)
	_, err = tr.Stat("/pub/x.txt")
	wantErr(t, "Stat /pub/x.txt", err, fs.ErrNotExist)
	wantErr(t, "Rename across", tr.Rename("/readme", "/pub/in/readme"), ErrCrossFolder)
	wantErr(t, "Rename to mount", tr.Rename("/readme", "/pub"), ErrCrossFolder)
	wantErr(t, "Rename in root", tr.Rename("/readme", "/readme2"), nil)
	wantErr(t, "Rename over virtual /a", tr.Rename("/readme2", "/a"), ErrNoRight)
}

func TestNewTreeValidation(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "file"), "")
	bad := [][]Mount{
		{{Path: "pub", Dir: openDir(t, dir)}},
		{{Path: "/pub/", Dir: openDir(t, dir)}},
		{{Path: "/pub/../x", Dir: openDir(t, dir)}},
		{{Path: "", Dir: openDir(t, dir)}},
		{{Path: "/a", Dir: openDir(t, dir)}, {Path: "/a", Dir: openDir(t, dir)}},
		{{Path: "/a", Dir: nil}},
	}
	for i, mounts := range bad {
		if _, err := NewTree(mounts); err == nil {
			t.Errorf("case %d: accepted %+v", i, mounts)
		}
		for _, m := range mounts {
			if m.Dir != nil {
				if _, err := m.Dir.Stat(); err == nil {
					t.Errorf("case %d: Dir not closed after a failed NewTree", i)
				}
			}
		}
	}
	file, err := os.Open(filepath.Join(dir, "file"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTree([]Mount{{Path: "/", Dir: file}}); !errors.Is(err, ErrNotDir) {
		t.Errorf("regular file as a mount: %v", err)
	}
	empty, err := NewTree(nil)
	if err != nil {
		t.Fatal(err)
	}
	if names := listNames(t, empty, "/"); len(names) != 0 {
		t.Errorf("empty tree lists %v", names)
	}
}

func TestClose(t *testing.T) {
	f := newFixture(t)
	if err := f.tree.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := f.tree.Stat("/pub/hello.txt")
	wantErr(t, "Stat after Close", err, fs.ErrClosed)
	if r := f.tree.Rights("/pub"); r != RightsNone {
		t.Errorf("Rights after Close = %v", r)
	}
	if err := f.tree.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLargeFile checks that openat2 gets O_LARGEFILE semantics (files past
// 2 GiB open and stat correctly).
func TestLargeFile(t *testing.T) {
	f := newFixture(t)
	big, err := os.Create(f.at("in/big"))
	if err != nil {
		t.Fatal(err)
	}
	const size = 3 << 30
	if err := big.Truncate(size); err != nil {
		t.Fatal(err)
	}
	big.Close()
	r, err := f.tree.Open("/in/big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fi, err := r.Stat()
	if err != nil || fi.Size() != size {
		t.Fatalf("size %v %v", fi, err)
	}
	w, err := f.tree.Create("/in/big", os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}

func TestErrorsCarryVirtualPath(t *testing.T) {
	f := newFixture(t)
	_, err := f.tree.Open("/pub/up/secret.txt")
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "/pub/up/secret.txt" {
		t.Fatalf("%v", err)
	}
	if msg := err.Error(); strings.Contains(msg, f.base) {
		t.Errorf("error leaks the storage path: %s", msg)
	}
	if !errors.Is(err, unix.EXDEV) {
		t.Errorf("errno lost: %v", err)
	}
}

package datapath

import (
	"io/fs"
	"os"
	"testing"
)

func TestChmod(t *testing.T) {
	f := newFixture(t)
	tr := f.tree
	mustWrite(t, f.at("in/sub/x.txt"), "x")
	mustSymlink(t, "../hello.txt", f.at("in/sub/link"))
	tests := []struct {
		path string
		mode fs.FileMode
		want error
	}{
		{"/in/hello.txt", 0o600, nil},
		{"/in/sub", 0o700, nil},
		{"/in/sub/link", 0o640, nil},          // a link inside the folder: its target changes
		{"/in/hello.txt", 0o4755, ErrNoRight}, // setuid refused
		{"/in/hello.txt", fs.ModeSticky | 0o755, ErrNoRight},
		{"/pub/hello.txt", 0o600, ErrNoRight}, // read-only folder
		{"/in", 0o777, ErrNoRight},            // mount point keeps its mode
		{"/", 0o777, ErrNoRight},              // synthetic directory
		{"/pub/absfile", 0o600, ErrNoRight},   // no write right, whatever the link
		{"/in/nope", 0o600, fs.ErrNotExist},
		{"/in/../pub/hello.txt", 0o600, ErrEscape}, // not a clean path
	}
	for _, tt := range tests {
		wantErr(t, "chmod "+tt.path, tr.Chmod(tt.path, tt.mode), tt.want)
	}
	check := func(rel string, want fs.FileMode) {
		t.Helper()
		fi, err := os.Stat(f.at(rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), want)
		}
	}
	check("in/hello.txt", 0o640) // set to 0600, then through the link to 0640
	check("in/sub", 0o700)
	check("pub/hello.txt", 0o644)
	check("outside/secret.txt", 0o644)

	// A symlink that leaves the folder is refused by the kernel.
	mustSymlink(t, "../../outside/secret.txt", f.at("in/sub/out"))
	wantErr(t, "chmod escaping link", tr.Chmod("/in/sub/out", 0o600), ErrEscape)
	check("outside/secret.txt", 0o644)
}

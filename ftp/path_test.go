package ftp

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		cwd, arg string
		want     string
		err      error
	}{
		{"/", "a", "/a", nil},
		{"/", "/a/b/", "/a/b", nil},
		{"/x", "a", "/x/a", nil},
		{"/x", "..", "/", nil},
		{"/x/y", "../z", "/x/z", nil},
		{"/", ".", "/", nil},
		{"/", "/", "/", nil},
		{"/", "//a//./b", "/a/b", nil},
		{"/", "a/..", "/", nil},
		{"/x", "/a", "/a", nil},
		{"/", "..\\..\\etc", "/..\\..\\etc", nil}, // backslash is a name character
		{"/", "...", "/...", nil},
		{"/", " a ", "/ a ", nil},
		{"/", "~", "/~", nil},
		{"/", "..", "", errLeavesTree},
		{"/", "/../..", "", errLeavesTree},
		{"/", "../../etc/passwd", "", errLeavesTree},
		{"/x", "../..", "", errLeavesTree},
		{"/x", "/a/../../b", "", errLeavesTree},
		{"/", "a/../../b", "", errLeavesTree},
		{"/", "\xc0\xae\xc0\xae/x", "", errBadUTF8}, // overlong "..": invalid UTF-8
		{"/", "a\xffb", "", errBadUTF8},
		{"/", "a\x00b", "", errNULInPath},
		{"relative", "a", "/a", nil}, // malformed cwd acts as "/"
		{"/a/../..", "b", "", errLeavesTree},
	}
	for _, tt := range tests {
		got, err := cleanPath(tt.cwd, tt.arg)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("cleanPath(%q, %q) err = %v, want %v", tt.cwd, tt.arg, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanPath(%q, %q) = %q, %v; want %q", tt.cwd, tt.arg, got, err, tt.want)
		}
	}
	if !errors.Is(errLeavesTree, errEscape) {
		t.Error("errLeavesTree must wrap the file system's escape error")
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range [][2]string{{"/", "a/b"}, {"/x", "../.."}, {"/", "..\\.."}, {"/a b", "./c/../d/"}, {"/", "\xc0\xae"}, {"/", "//"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, cwd, arg string) {
		p, err := cleanPath(cwd, arg)
		if err != nil {
			if !errors.Is(err, errLeavesTree) && !errors.Is(err, errBadUTF8) && !errors.Is(err, errNULInPath) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !strings.HasPrefix(p, "/") {
			t.Fatalf("%q: not absolute", p)
		}
		if p != "/" && strings.HasSuffix(p, "/") {
			t.Fatalf("%q: trailing slash", p)
		}
		if strings.Contains(p, "//") || strings.ContainsRune(p, 0) || !utf8.ValidString(p) {
			t.Fatalf("%q: not clean", p)
		}
		for _, c := range strings.Split(p[1:], "/") {
			if c == "." || c == ".." {
				t.Fatalf("%q: has a %q component", p, c)
			}
		}
		// Idempotent, and independent of the cwd once absolute.
		if q, err := cleanPath("/elsewhere", p); err != nil || q != p {
			t.Fatalf("cleanPath(%q) = %q, %v", p, q, err)
		}
		// An argument without ".." never climbs: the result extends the
		// cwd (when absolute) or the root.
		if !strings.Contains(arg, "..") && !strings.HasPrefix(arg, "/") && strings.HasPrefix(cwd, "/") && utf8.ValidString(cwd) && !strings.Contains(cwd, "..") && !strings.ContainsRune(cwd, 0) {
			base, _ := cleanPath("/", cwd)
			if base != "/" && p != base && !strings.HasPrefix(p, base+"/") {
				t.Fatalf("cleanPath(%q, %q) = %q escapes cwd %q", cwd, arg, p, base)
			}
		}
	})
}

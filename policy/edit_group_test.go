package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGroupEdit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.toml")
	orig := "# my server\n[ftp]\nactive = false\n\n# the accounts\n[[account]]\nname = \"a\"\npassword = \"" + demoHash0 + "\"\n  [[account.folder]]\n  path = \"/\"\n  dir = \"d\"\n  rights = [\"all\"]\n"
	if err := os.WriteFile(p, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AddGroup(p, GroupSpec{Name: "branch", Roles: []string{"dropbox"}, Folders: []GroupFolderSpec{{Path: "/logs", Dir: "logs"}, {Path: "/pub", Dir: "pub", Role: "reader"}}}); err != nil {
		t.Fatal(err)
	}
	if err := AddGroup(p, GroupSpec{Name: "Branch"}); !errors.Is(err, ErrGroupExists) {
		t.Errorf("duplicate: %v", err)
	}
	if err := AddGroup(p, GroupSpec{Name: "bad", Roles: []string{"nosuch"}}); err == nil {
		t.Error("unknown role accepted")
	}
	if err := AddAccount(p, AccountSpec{Name: "paris", Password: demoHash0, Groups: []string{"branch"}}); err != nil {
		t.Fatal(err)
	}
	gs, members, err := ListGroups(p)
	if err != nil || len(gs) != 1 || len(gs[0].Folders) != 2 || strings.Join(members["branch"], ",") != "paris" {
		t.Fatalf("groups %+v members %v err %v", gs, members, err)
	}
	c, _ := Load(p)
	if a := c.Account("paris"); len(a.Folders) != 2 || a.Folders[0].Dir != filepath.Join(dir, "logs") {
		t.Errorf("paris = %+v", a.Folders)
	}
	if err := DeleteGroup(p, "branch"); !errors.Is(err, ErrGroupInUse) {
		t.Errorf("delete in use: %v", err)
	}
	if err := DeleteAccount(p, "paris"); err != nil {
		t.Fatal(err)
	}
	if err := DeleteGroup(p, "branch"); err != nil {
		t.Fatal(err)
	}
	if err := DeleteGroup(p, "branch"); !errors.Is(err, ErrNoSuchGroup) {
		t.Errorf("delete again: %v", err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != orig {
		t.Errorf("after add+del:\n%s\nwant\n%s", got, orig)
	}
}

package policy

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const examplePath = "../sluice.example.toml"

// TestExampleConfig checks sluice.example.toml: it loads, with no problem
// and no warning but the one its placeholder account is meant to give.
func TestExampleConfig(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := filepath.Abs("..")
	a := c.Account("alice")
	if len(c.Accounts) != 1 || a == nil || len(a.Folders) != 2 || a.Folders[0].Dir != filepath.Join(base, "var/ftp/alice") {
		t.Errorf("accounts = %+v", c.Accounts)
	}
	if ok, _ := VerifyPassword(a.Password, "alice"); ok {
		t.Error("the example account's password is guessable")
	}
	for _, w := range c.Warnings() {
		if !strings.Contains(w, "config file") { // the checkout's file mode is not ours to choose
			t.Errorf("warning: %s", w)
		}
	}
}

// TestExampleShowsDefaults checks that the example sets every key of
// [server], [log], [ftp] and [limits] to its default, as it says.
func TestExampleShowsDefaults(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "/base", "example")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(nil, "/base", "empty")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Server, d.Server) || !reflect.DeepEqual(c.Log, d.Log) ||
		!reflect.DeepEqual(c.FTP, d.FTP) || !reflect.DeepEqual(c.Limits, d.Limits) || !reflect.DeepEqual(c.TLS, d.TLS) || !reflect.DeepEqual(c.SFTP, d.SFTP) {
		t.Errorf("example values are not the defaults:\nexample %+v %+v %+v %+v\ndefault %+v %+v %+v %+v",
			c.Server, c.Log, c.FTP, c.Limits, d.Server, d.Log, d.FTP, d.Limits)
	}
	// The example's account sets every account key to its default too.
	a := c.Accounts[0]
	if a.UID != DefaultUID || a.GID != DefaultGID || len(a.AllowFrom) != 0 || a.MaxSessions != 0 || a.Disabled || a.TLS != "optional" || !a.TLSReuse || len(a.AuthorizedKeys) != 0 {
		t.Errorf("example account is not at its defaults: %+v", a)
	}
}

// TestExampleHasEveryKey checks that every key the schema knows appears in
// the example, so that a key added to the schema is documented.
func TestExampleHasEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	raw, prob := decodeRaw(data)
	if prob != nil {
		t.Fatal(prob)
	}
	p := &cfgParser{ps: &problemList{known: map[string][]string{}}, base: "/base"}
	p.config(raw)
	if len(p.ps.list) > 0 {
		t.Fatalf("problems: %v", p.ps.list)
	}
	lookup := map[string]map[string]any{"": raw}
	for _, k := range []string{"server", "log", "ftp", "limits", "hooks", "tls", "sftp", "metrics", "accounting"} {
		lookup[k], _ = raw[k].(map[string]any)
	}
	acct := rawAccounts(raw)[0]
	lookup["account[0]"] = acct
	lookup["account[0].folder[0]"] = rawAccounts(map[string]any{"account": acct["folder"]})[0]
	// The keys of a command hook and of a webhook, together.
	if hs := rawTables(raw, "hook"); len(hs) > 0 {
		all := map[string]any{}
		for _, h := range hs {
			maps.Copy(all, h)
		}
		lookup["hook[0]"] = all
	}
	for _, k := range []string{"role", "group"} {
		if l := rawAccounts(map[string]any{"account": raw[k]}); len(l) > 0 {
			lookup[k+"[0]"] = l[0]
			if f := rawAccounts(map[string]any{"account": l[0]["folder"]}); len(f) > 0 {
				lookup[k+"[0].folder[0]"] = f[0]
			}
		}
	}
	for path, keys := range p.ps.known {
		m, ok := lookup[path]
		if !ok {
			continue // the second folder
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("the example does not show %s", strings.TrimPrefix(path+"."+k, "."))
			}
		}
	}
	var paths []string
	for path := range p.ps.known {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	if want := []string{"", "account[0]", "account[0].folder[0]", "account[0].folder[1]", "accounting", "ftp", "group[0]", "group[0].folder[0]", "hook[0]", "hook[1]", "hooks", "limits", "log", "metrics", "role[0]", "server", "sftp", "tls"}; !slices.Equal(paths, want) {
		t.Errorf("tables walked = %q, want %q", paths, want)
	}
}

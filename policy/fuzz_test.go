package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addSeedFiles(f *testing.F) {
	for _, p := range []string{"default.toml", "../sluice.example.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	files, _ := filepath.Glob("testdata/edit/*")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("[ftp]\nlisten = [\"127.0.0.1:21\", \"[::1]:21\"]\npassive_ports = \"1-2\"\n"))
	f.Add([]byte("[[account]]\nname = \"a\"\n[[account.folder]]\nrights = [\"wrte\"]\n"))
	f.Add([]byte("account = [{name = 1}]\n[limits]\nidle_timeout = \"9999999999h\"\n"))
	f.Add([]byte("x = \"\"\"\n[[account]]\n\"\"\"\n[[account]]\n"))
}

// FuzzParse: Parse never panics, and what it accepts is consistent.
func FuzzParse(f *testing.F) {
	addSeedFiles(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "/base", "fuzz")
		if err != nil {
			if c != nil {
				t.Fatal("config and error")
			}
			if ce, ok := err.(*ConfigError); !ok || len(ce.Problems) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *ConfigError", err, err)
			}
			return
		}
		if len(c.FTP.Listen) == 0 || c.FTP.PassivePortMin < 1024 || c.FTP.PassivePortMin > c.FTP.PassivePortMax {
			t.Fatalf("accepted bad ftp: %+v", c.FTP)
		}
		demo := false
		for i := range c.Accounts {
			a := &c.Accounts[i]
			if a.UID == 0 || a.GID == 0 || len(a.Folders) == 0 || CheckPasswordHash(a.Password) != nil || c.Account(a.Name) != a {
				t.Fatalf("accepted bad account: %+v", a)
			}
			for _, fo := range a.Folders {
				if !strings.HasPrefix(fo.Path, "/") || !strings.HasPrefix(fo.Dir, "/") || fo.Rights == 0 {
					t.Fatalf("accepted bad folder: %+v", fo)
				}
			}
			demo = demo || strings.EqualFold(a.Name, "demo")
		}
		if !demo { // Warnings would run argon2id for a demo account: too slow here
			c.Warnings()
		}
	})
}

// FuzzVerifyPHC: VerifyPassword never panics, never matches a malformed
// string, and agrees with CheckPasswordHash.
func FuzzVerifyPHC(f *testing.F) {
	f.Add(refHash, "correct horse")
	f.Add(demoHash0, "demo")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA", "")
	f.Add("$argon2id$v=19$m=104857600,t=1,p=1$c2FsdHNhbHQ$c2FsdHNhbHRzYWx0c2FsdA", "x")
	f.Add("$argon2id$v=19$m=4096,t=3,p=1$$", "x")
	f.Add("$$$$$", "")
	f.Add("plain", "plain")
	f.Fuzz(func(t *testing.T, phc, pw string) {
		h, perr := parsePHC(phc)
		if perr == nil && (h.m > 64*1024 || h.t > 4) {
			return // valid but too costly to hash in a fuzz loop
		}
		ok, err := VerifyPassword(phc, pw)
		if (err == nil) != (perr == nil) || (err == nil) != (CheckPasswordHash(phc) == nil) {
			t.Fatalf("VerifyPassword error %v, parse error %v", err, perr)
		}
		if err != nil && ok {
			t.Fatal("malformed hash matched")
		}
		if perr == nil && formatPHC(h) != phc {
			t.Fatalf("accepted a non-canonical spelling: %q (canonical %q)", phc, formatPHC(h))
		}
	})
}

// FuzzScanTOML: on any valid TOML, the line scanner does not panic, its
// lines tile the document, and it finds one block per [[account]] table.
func FuzzScanTOML(f *testing.F) {
	addSeedFiles(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, prob := decodeRaw(data)
		if prob != nil {
			return
		}
		doc := string(data)
		lines, err := scanTOMLLines(doc)
		if err != nil {
			t.Fatalf("valid TOML not scanned: %v", err)
		}
		checkCover(t, doc, lines)
		blocks := findAccountBlocks(lines)
		if _, inline := raw["account"].([]any); !inline && len(blocks) != len(rawAccounts(raw)) {
			t.Fatalf("%d blocks for %d accounts", len(blocks), len(rawAccounts(raw)))
		}
	})
}

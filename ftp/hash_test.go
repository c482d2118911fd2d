package ftp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/sluice-ftp/sluice/datapath"
)

// treeServer is a test server whose accounts get a real datapath.Tree (the
// production FileSystem, with atomic uploads and digests).
func treeServer(t *testing.T) *testServer {
	return newTestServer(t, func(s *testServer) {
		s.auth.fs = func(string) FileSystem {
			d, err := os.Open(s.dir)
			if err != nil {
				t.Error(err)
				return nil
			}
			tr, err := datapath.NewTree([]datapath.Mount{{Path: "/", Dir: d, Rights: datapath.RightsAll}})
			if err != nil {
				t.Error(err)
				return nil
			}
			return tr
		}
	})
}

func TestAtomicUploadCommands(t *testing.T) {
	s := treeServer(t)
	c := s.login("alice", "secret-pw")
	c.cmd("TYPE I", 200)
	c.stor("STOR", "r.txt", "0123456789")
	c.cmd("REST 4", 350)
	c.stor("STOR", "r.txt", "xy")
	if got := s.readFile("r.txt"); got != "0123xy" {
		t.Errorf("REST+STOR = %q", got)
	}
	c.cmd("REST 7", 350)
	c.cmd("EPSV", 229)
	c.cmd("STOR r.txt", 554)
	c.cmd("REST 1", 350)
	c.cmd("STOR missing.txt", 550)
	c.stor("APPE", "r.txt", "zz")
	c.stor("APPE", "new.txt", "created")
	if got := s.readFile("r.txt") + s.readFile("new.txt"); got != "0123xyzzcreated" {
		t.Errorf("APPE = %q", got)
	}
	if got := c.cmd("HASH r.txt", 213); got != fmt.Sprintf("XXH64 0-8 %016x r.txt", xxhash.Sum64String("0123xyzz")) {
		t.Errorf("HASH = %q", got)
	}
	c.cmd("STOU", 425) // no data connection

	// An upload cut short leaves no file, only a hidden partial that SIZE
	// reports and APPE continues (what `curl -C -` does).
	d := c.epsv()
	c.cmd("STOR cut.bin", 150)
	io.WriteString(d, "first half|")
	waitFor(t, func() bool { return partialSize(s.dir, "cut.bin") == 11 })
	c.send("ABOR")
	c.expect(426)
	c.expect(226)
	d.Close()
	c.cmd("SIZE cut.bin", 213)
	for _, l := range c.list("LIST") {
		if strings.Contains(l, datapath.PartialPrefix) {
			t.Errorf("listing shows the partial: %q", l)
		}
	}
	c.cmd("RETR "+datapath.PartialPrefix+"cut.bin", 550)
	size := c.cmd("SIZE cut.bin", 213)
	if size != "11" {
		t.Logf("partial has %s bytes (ABOR raced)", size)
	}
	// REST at the partial's size + STOR finishes it.
	c.cmd("REST "+size, 350)
	c.stor("STOR", "cut.bin", "first half|second half"[len("first half|")-(11-atoi(size)):])
	if got := s.readFile("cut.bin"); got != "first half|second half" {
		t.Errorf("resumed upload = %q", got)
	}
	if ents, _ := os.ReadDir(s.dir); len(ents) != 3 {
		t.Errorf("directory holds %d entries, want 3 (no partials left)", len(ents))
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func TestHashCommands(t *testing.T) {
	s := treeServer(t)
	data := strings.Repeat("sluice checks every byte. ", 1000)
	s.writeFile("d/f.txt", data)
	c := s.login("alice", "secret-pw")
	sum := sha256.Sum256([]byte(data))
	c.cmd("OPTS HASH", 200)
	if got := c.cmd("OPTS HASH sha-256", 200); got != "SHA-256" {
		t.Errorf("OPTS HASH = %q", got)
	}
	c.cmd("OPTS HASH BLAKE3", 504)
	if feat := c.cmd("FEAT", 211); !strings.Contains(feat, " HASH XXH64;SHA-256*;SHA-1;MD5;CRC32\n") {
		t.Errorf("FEAT after OPTS HASH:\n%s", feat)
	}
	want := fmt.Sprintf("SHA-256 0-%d %s d/f.txt", len(data), hex.EncodeToString(sum[:]))
	if got := c.cmd("HASH d/f.txt", 213); got != want {
		t.Errorf("HASH = %q, want %q", got, want)
	}
	part := sha256.Sum256([]byte(data[100:1000]))
	c.cmd("RANG 100 999", 350)
	if got := c.cmd("HASH d/f.txt", 213); got != "SHA-256 100-1000 "+hex.EncodeToString(part[:])+" d/f.txt" {
		t.Errorf("RANG+HASH = %q", got)
	}
	c.cmd("HASH d/f.txt", 213) // RANG is consumed
	c.cmd("RANG 5 4", 501)
	c.cmd("RANG 0 999999", 350)
	if got := c.cmd("HASH d/f.txt", 213); !strings.HasPrefix(got, "SHA-256 0-26000 ") {
		t.Errorf("RANG past the end is cut to the file: %q", got)
	}
	c.cmd("RANG 26001 26002", 350)
	c.cmd("HASH d/f.txt", 501)
	c.cmd("HASH d/none", 550)
	c.cmd("HASH d", 550)
	if got := c.cmd("XSHA256 d/f.txt 100 1000", 250); got != strings.ToUpper(hex.EncodeToString(part[:])) {
		t.Errorf("XSHA256 range = %q", got)
	}
	c.cmd("XCRC d/f.txt", 250)
	c.cmd("XMD5 d/f.txt", 250)
	c.cmd("XSHA1 d/f.txt", 250)
	c.cmd("OPTS HASH XXH64", 200)
	if got := c.cmd("HASH d/f.txt", 213); !strings.Contains(got, fmt.Sprintf("%016x", xxhash.Sum64String(data))) {
		t.Errorf("HASH XXH64 = %q", got)
	}
}

func partialSize(dir, name string) int64 {
	fi, err := os.Stat(dir + "/" + datapath.PartialPrefix + name)
	if err != nil {
		return -1
	}
	return fi.Size()
}

package datapath

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

func uploadTree(t *testing.T) (*Tree, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTree([]Mount{{Path: "/", Dir: d, Rights: RightsAll}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, dir
}

// push sends data through a loopback TCP connection into u.
func push(t *testing.T, u *Upload, data []byte, o Options) (Result, error) {
	t.Helper()
	server, client := tcpPair(t, false)
	go func() {
		client.Write(data)
		client.CloseWrite()
	}()
	return u.Receive(server, o)
}

func wantRecord(t *testing.T, tr *Tree, p string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(treeDir(t, tr), p))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Fatalf("%s: content differs (%d bytes, want %d)", p, len(got), len(data))
	}
	r, err := tr.Hash(p, XXH64, 0, -1, HashOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != "record" {
		t.Errorf("%s: XXH64 from %s, want the record", p, r.Source)
	}
	if want := xxhash.Sum64(data); r.Hex() != fmtHex(want) {
		t.Fatalf("%s: XXH64 %s want %016x", p, r.Hex(), want)
	}
}

func fmtHex(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}

var treeDirs = map[*Tree]string{}

func treeDir(t *testing.T, tr *Tree) string { return treeDirs[tr] }

func TestUploadLifecycle(t *testing.T) { testUploadLifecycle(t) }

// TestUploadSidecar runs the same story on a "file system" without user
// xattrs: records and checkpoints go to .sluice-meta.NAME sidecars.
func TestUploadSidecar(t *testing.T) {
	testNoXattr = true
	defer func() { testNoXattr = false }()
	testUploadLifecycle(t)
}

func testUploadLifecycle(t *testing.T) {
	tr, dir := uploadTree(t)
	treeDirs[tr] = dir
	data := randomBytes(3<<20+12345, 7)

	// A fresh upload, cut after 1 MiB: the final name does not exist,
	// the partial is hidden and resumable.
	u, err := tr.BeginUpload("/a.bin", UploadStore, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push(t, u, data[:1<<20], Options{}); err != nil {
		t.Fatal(err)
	}
	u.Abort()
	if _, err := tr.Stat("/a.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("final name visible before commit: %v", err)
	}
	if ents, _ := tr.ReadDir("/"); len(ents) != 0 {
		t.Fatalf("listing shows %v", ents[0].Name())
	}
	if _, err := tr.Stat("/" + PartialPrefix + "a.bin"); !errors.Is(err, ErrNoRight) {
		t.Fatalf("partial reachable by name: %v", err)
	}
	if n, err := tr.PartialSize("/a.bin"); err != nil || n != 1<<20 {
		t.Fatalf("PartialSize = %d, %v", n, err)
	}
	// Another session cannot take the partial while one holds it.
	u, err = tr.BeginUpload("/a.bin", UploadStore, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if u.Resumed != "checkpoint" {
		t.Errorf("resumed from %q", u.Resumed)
	}
	if _, err := tr.BeginUpload("/a.bin", UploadStore, 1<<20); !errors.Is(err, ErrBusy) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second writer: %v", err)
	}
	if _, err := push(t, u, data[1<<20:2<<20], Options{}); err != nil {
		t.Fatal(err)
	}
	u.Abort()

	// A killed worker: the partial is longer than its checkpoint.
	pf, _ := os.OpenFile(filepath.Join(dir, PartialPrefix+"a.bin"), os.O_WRONLY|os.O_APPEND, 0)
	pf.Write(data[2<<20 : 2<<20+777])
	pf.Close()
	u, err = tr.BeginUpload("/a.bin", UploadStore, 2<<20+777)
	if err != nil {
		t.Fatal(err)
	}
	if u.Resumed != "checkpoint+rehash" {
		t.Errorf("resumed from %q", u.Resumed)
	}
	if _, err := push(t, u, data[2<<20+777:], Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	wantRecord(t, tr, "/a.bin", data)
	if _, err := os.Stat(filepath.Join(dir, PartialPrefix+"a.bin")); !os.IsNotExist(err) {
		t.Fatalf("partial left behind: %v", err)
	}

	// REST n < size + STOR of a complete file: prefix copied, digest
	// recomputed; APPE continues from the record.
	u, err = tr.BeginUpload("/a.bin", UploadStore, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push(t, u, data[1000:2000], Options{}); err != nil {
		t.Fatal(err)
	}
	u.Commit()
	wantRecord(t, tr, "/a.bin", data[:2000])
	u, err = tr.BeginUpload("/a.bin", UploadAppend, 0)
	if err != nil || u.Resumed != "record" || u.Offset() != 2000 {
		t.Fatalf("APPE: %v %q %d", err, u.Resumed, u.Offset())
	}
	if _, err := push(t, u, data[2000:], Options{ASCII: false}); err != nil {
		t.Fatal(err)
	}
	u.Commit()
	wantRecord(t, tr, "/a.bin", data)

	// Offsets past what there is.
	if _, err := tr.BeginUpload("/a.bin", UploadStore, int64(len(data))+1); !errors.Is(err, ErrBadOffset) {
		t.Fatalf("REST beyond end: %v", err)
	}
	if _, err := tr.BeginUpload("/none", UploadStore, 5); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("REST on a missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, PartialPrefix+"none")); !os.IsNotExist(err) {
		t.Fatalf("failed upload left a partial: %v", err)
	}

	// MFMT keeps the record valid; a rewrite outside sluice does not.
	if err := tr.Chtimes("/a.bin", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if !testNoXattr { // sidecar records are not re-stamped: recomputed instead
		wantRecord(t, tr, "/a.bin", data)
	}
	os.WriteFile(filepath.Join(dir, "a.bin"), []byte("rot"), 0o644)
	if r, _ := tr.Hash("/a.bin", XXH64, 0, -1, HashOptions{}); r.Source != "computed" || r.Hex() != fmtHex(xxhash.Sum64String("rot")) {
		t.Fatalf("stale record used: %+v", r)
	}
}

func TestUploadHashModes(t *testing.T) {
	tr, dir := uploadTree(t)
	treeDirs[tr] = dir
	data := randomBytes(5<<20+3, 9)
	for _, m := range []hashMode{hashAsync, hashSerial, hashTee} {
		for _, wrap := range []bool{false, true} {
			u, err := tr.BeginUpload("/m.bin", UploadStore, 0)
			if err != nil {
				t.Fatal(err)
			}
			server, client := tcpPair(t, false)
			go func() {
				client.Write(data)
				client.CloseWrite()
			}()
			var c net.Conn = server
			if wrap {
				c = wrapConn{Conn: server, max: 1000}
			}
			if _, err := u.receive(c, Options{}, m); err != nil {
				t.Fatal(err)
			}
			if _, err := u.Commit(); err != nil {
				t.Fatal(err)
			}
			wantRecord(t, tr, "/m.bin", data)
		}
	}
}

func TestHashAlgorithms(t *testing.T) {
	tr, dir := uploadTree(t)
	data := []byte("The quick brown fox jumps over the lazy dog")
	os.WriteFile(filepath.Join(dir, "f"), data, 0o644)
	want := map[Algo]string{
		SHA256: "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
		SHA1:   "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
		MD5:    "9e107d9d372bb6826bd81d3542a419d6",
		CRC32:  "414fa339",
		XXH64:  "0b242d361fda71bc",
	}
	for a, w := range want {
		for i := 0; i < 2; i++ { // computed, then cached
			r, err := tr.Hash("/f", a, 0, -1, HashOptions{})
			if err != nil || r.Hex() != w {
				t.Errorf("%s: %s %v, want %s", a, r.Hex(), err, w)
			}
			if i == 1 && r.Source == "computed" {
				t.Errorf("%s: not cached", a)
			}
		}
	}
	r, err := tr.Hash("/f", MD5, 4, 9, HashOptions{})
	if err != nil || r.Hex() != hexOf(MD5, data[4:9]) {
		t.Errorf("range: %s %v", r.Hex(), err)
	}
	if _, err := tr.Hash("/f", SHA256, 0, -1, HashOptions{Limit: 10}); err != nil {
		t.Errorf("cached answers ignore the limit: %v", err)
	}
	if _, err := tr.Hash("/f", SHA1, 1, -1, HashOptions{Limit: 10}); !errors.Is(err, ErrHashTooLarge) {
		t.Errorf("limit: %v", err)
	}
}

func hexOf(a Algo, p []byte) string {
	h := NewHash(a)
	h.Write(p)
	return HashResult{Sum: h.Sum(nil)}.Hex()
}

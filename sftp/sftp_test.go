package sftp

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/sluice-ftp/sluice/datapath"
	"github.com/sluice-ftp/sluice/ftp"
)

type events struct {
	mu  sync.Mutex
	evs []ftp.Event
}

func (e *events) Emit(ev ftp.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

// pair serves a tree over an in-memory connection and returns a client.
func pair(t *testing.T, rights datapath.Rights) (*pkgsftp.Client, string, *events) {
	c, dir, ev, _ := pairConn(t, rights)
	return c, dir, ev
}

func pairConn(t *testing.T, rights datapath.Rights) (*pkgsftp.Client, string, *events, net.Conn) {
	t.Helper()
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := datapath.NewTree([]datapath.Mount{{Path: "/", Dir: d, Rights: rights}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tree.Close() })
	ev := &events{}
	a, b := net.Pipe()
	srv := &Server{FS: tree, Events: ev}
	go srv.Serve(a)
	c, err := pkgsftp.NewClientPipe(b, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, dir, ev, b
}

func TestRoundTrip(t *testing.T) {
	c, dir, ev := pair(t, datapath.RightsAll)
	data := make([]byte, 3<<20)
	rand.Read(data)
	f, err := c.Create("/a.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Out of order, as pipelining clients write.
	if _, err := f.WriteAt(data[1<<20:], 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[:1<<20], 0); err != nil {
		t.Fatal(err)
	}
	// Not visible before the handle is closed: atomic upload.
	if _, err := os.Stat(filepath.Join(dir, "a.bin")); !os.IsNotExist(err) {
		t.Fatalf("upload visible before close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "a.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes, err %v", len(got), err)
	}
	r, err := c.Open("/a.bin")
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes, err %v", len(back), err)
	}
	if err := c.Mkdir("/d"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("/a.bin", "/d/b.bin"); err != nil {
		t.Fatal(err)
	}
	if fis, err := c.ReadDir("/d"); err != nil || len(fis) != 1 || fis[0].Name() != "b.bin" {
		t.Fatalf("readdir: %v %v", fis, err)
	}
	if _, err := c.Stat("/../../etc/passwd"); err == nil {
		t.Fatal("stat above the root succeeded")
	}
	if err := c.Symlink("/d/b.bin", "/l"); err == nil {
		t.Fatal("symlink allowed")
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var sawDigest bool
	for _, e := range ev.evs {
		if e.Kind == "transfer" && e.Dir == "in" && strings.HasPrefix(e.Detail, "xxh64=") {
			sawDigest = true
		}
	}
	if !sawDigest {
		t.Errorf("no upload event with its digest: %+v", ev.evs)
	}
}

func TestRights(t *testing.T) {
	c, dir, _ := pair(t, datapath.RightList|datapath.RightRead)
	os.WriteFile(filepath.Join(dir, "r.txt"), []byte("x"), 0o644)
	if _, err := c.Create("/w.txt"); err == nil {
		t.Error("upload into a read-only folder")
	}
	if err := c.Remove("/r.txt"); err == nil {
		t.Error("delete in a read-only folder")
	}
	if err := c.Mkdir("/m"); err == nil {
		t.Error("mkdir in a read-only folder")
	}
}

// TestDroppedUpload: a connection lost in the middle of an upload keeps
// the partial for a resume and never shows a truncated file under the
// final name (invariant 8).
func TestDroppedUpload(t *testing.T) {
	c, dir, ev, conn := pairConn(t, datapath.RightsAll)
	f, err := c.Create("/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	for i := 0; i < 200; i++ {
		ev.mu.Lock()
		n := len(ev.evs)
		ev.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "big.bin")); !os.IsNotExist(err) {
		t.Fatalf("a dropped upload was committed: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, datapath.PartialPrefix+"big.bin")); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("partial: %v %v", fi, err)
	}
}

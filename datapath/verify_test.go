package datapath

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// TestSendCheck: a file that matches its digest is sent whole; one whose
// bytes changed behind the record stops before its last chunk with
// ErrCorrupt, so the client never has it all; an offset hashes the prefix
// first.
func TestSendCheck(t *testing.T) {
	const size = 10<<20 + 123 // three 4 MiB chunks
	data := randomBytes(size, 11)
	sum := xxhash.Sum64(data)
	bad := append([]byte(nil), data...)
	bad[5<<20] ^= 1 // one flipped bit in the middle
	for _, copyMover := range []bool{false, true} {
		for _, c := range []struct {
			name    string
			content []byte
			off     int64
			corrupt bool
		}{
			{"intact", data, 0, false},
			{"intact from an offset", data, 6 << 20, false},
			{"corrupt", bad, 0, true},
			{"corrupt before the offset", bad, 8 << 20, true},
		} {
			t.Run(fmt.Sprintf("copy=%v/%s", copyMover, c.name), func(t *testing.T) {
				src := tempFile(t, c.content)
				server, client := tcpPair(t, false)
				var dst net.Conn = server
				if copyMover {
					dst = wrapConn{Conn: server}
				}
				got := make(chan int64, 1)
				go func() {
					n, _ := io.Copy(io.Discard, client)
					got <- n
				}()
				res, err := SendWith(dst, src, c.off, Options{Verify: &SendCheck{Size: size, Sum: sum}})
				server.Close()
				n := <-got
				if c.corrupt {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("err = %v, want ErrCorrupt", err)
					}
					if n >= size-c.off {
						t.Fatalf("the client got all %d bytes of a corrupt file", n)
					}
					return
				}
				if err != nil || n != size-c.off || res.Bytes != n {
					t.Fatalf("intact file: %v, sent %d of %d", err, n, size-c.off)
				}
			})
		}
	}
}

// TestRecordOf: an upload's record is found for the file while its size
// and mtime are unchanged, not after.
func TestRecordOf(t *testing.T) {
	tree, dir := uploadTree(t)
	u, err := tree.BeginUpload("/f.bin", UploadStore, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(100_000, 5)
	if _, err := push(t, u, data, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	f, err := tree.Open("/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, ok := tree.RecordOf("/f.bin", f)
	if !ok || r.Sum != xxhash.Sum64(data) || r.Size != int64(len(data)) {
		t.Fatalf("record %+v %v", r, ok)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(dir+"/f.bin", later, later)
	if _, ok := tree.RecordOf("/f.bin", f); ok {
		t.Fatal("a record survived an mtime change")
	}
}

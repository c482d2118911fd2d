package datapath

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
)

var errQuota = errors.New("quota reached")

// grants is a Budget that hands out a fixed list of grants, then errQuota.
type grants struct {
	list  []int64
	calls int
}

func (g *grants) Next() (int64, error) {
	g.calls++
	if len(g.list) == 0 {
		return 0, errQuota
	}
	n := g.list[0]
	g.list = g.list[1:]
	return n, nil
}

// TestBudgetReceive: every receive mover stops exactly at the grants:
// an upload that fits exactly succeeds without asking again, one byte
// more fails with the budget's error and writes not a byte beyond.
func TestBudgetReceive(t *testing.T) {
	movers := []struct {
		name  string
		conn  func(net.Conn) net.Conn
		ascii bool
		mover string
	}{
		{"splice", func(c net.Conn) net.Conn { return c }, false, MoverSplice},
		{"copy", func(c net.Conn) net.Conn { return wrapConn{Conn: c, max: 1000} }, false, MoverCopy},
		{"ascii", func(c net.Conn) net.Conn { return c }, true, MoverCopy},
	}
	cases := []struct {
		name   string
		size   int
		grants []int64
		want   int // bytes in the file
		err    bool
		calls  int
	}{
		{"empty upload asks nothing", 0, nil, 0, false, 0},
		{"exact fit", 300_000, []int64{300_000}, 300_000, false, 1},
		{"exact fit in pieces", 300_000, []int64{7, 100_000, 199_993}, 300_000, false, 3},
		{"one byte over", 300_001, []int64{300_000}, 300_000, true, 2},
		{"nothing granted", 10, nil, 0, true, 1},
		{"generous", 1000, []int64{1 << 40}, 1000, false, 1},
	}
	for _, m := range movers {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				data := randomBytes(c.size, uint64(c.size)+7)
				if m.ascii {
					for i := range data {
						if data[i] == '\r' || data[i] == '\n' {
							data[i] = 'x' // no conversion: bytes in = bytes out
						}
					}
				}
				server, client := tcpPair(t, false)
				dst := newDst(t)
				feed(client, data, 64<<10)
				g := &grants{list: c.grants}
				res, err := ReceiveWith(dst, m.conn(server), Options{ASCII: m.ascii, Budget: g})
				if c.err != errors.Is(err, errQuota) {
					t.Fatalf("err = %v", err)
				}
				if !c.err && err != nil {
					t.Fatal(err)
				}
				checkFile(t, dst, data[:c.want])
				if res.Bytes != int64(c.want) || res.Mover != m.mover {
					t.Errorf("result %+v, want %d bytes by %s", res, c.want, m.mover)
				}
				if g.calls != c.calls {
					t.Errorf("Next called %d times, want %d", g.calls, c.calls)
				}
			})
		}
	}
}

// TestBudgetSend: sendfile and the copy mover send exactly the grants,
// and ask only while the file has bytes left.
func TestBudgetSend(t *testing.T) {
	cases := []struct {
		name   string
		size   int
		off    int64
		grants []int64
		want   int
		err    bool
		calls  int
	}{
		{"exact fit", 500_000, 0, []int64{500_000}, 500_000, false, 1},
		{"from an offset", 500_000, 100_000, []int64{400_000}, 400_000, false, 1},
		{"pieces", 500_000, 0, []int64{1, 299_999, 200_000}, 500_000, false, 3},
		{"short", 500_000, 0, []int64{123_456}, 123_456, true, 2},
		{"nothing", 10, 0, nil, 0, true, 1},
		{"empty file asks nothing", 0, 0, nil, 0, false, 0},
	}
	for _, copyMover := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("copy=%v/%s", copyMover, c.name), func(t *testing.T) {
				data := randomBytes(c.size, 3)
				src := tempFile(t, data)
				server, client := tcpPair(t, false)
				var dst net.Conn = server
				if copyMover {
					dst = wrapConn{Conn: server}
				}
				got := make(chan []byte, 1)
				go func() {
					b, _ := io.ReadAll(client)
					got <- b
				}()
				g := &grants{list: c.grants}
				res, err := SendWith(dst, src, c.off, Options{Budget: g})
				server.Close()
				b := <-got
				if c.err != errors.Is(err, errQuota) || (!c.err && err != nil) {
					t.Fatalf("err = %v", err)
				}
				if len(b) != c.want || res.Bytes != int64(c.want) || string(b) != string(data[c.off:c.off+int64(c.want)]) {
					t.Fatalf("sent %d (result %d), want %d", len(b), res.Bytes, c.want)
				}
				if g.calls != c.calls {
					t.Errorf("Next called %d times, want %d", g.calls, c.calls)
				}
			})
		}
	}
}

// TestBudgetUpload: an atomic upload refused for its quota keeps exactly
// the granted bytes in its partial, for a resume.
func TestBudgetUpload(t *testing.T) {
	tree, dir := uploadTree(t)
	u, err := tree.BeginUpload("/f.bin", UploadStore, 0)
	if err != nil {
		t.Fatal(err)
	}
	server, client := tcpPair(t, false)
	data := randomBytes(200_000, 9)
	feed(client, data, 50_000)
	_, err = u.Receive(server, Options{Budget: &grants{list: []int64{150_000}}})
	if !errors.Is(err, errQuota) {
		t.Fatalf("err = %v", err)
	}
	u.Abort()
	if _, err := os.Stat(dir + "/f.bin"); err == nil {
		t.Fatal("committed")
	}
	fi, err := os.Stat(dir + "/" + PartialPrefix + "f.bin")
	if err != nil || fi.Size() != 150_000 {
		t.Fatalf("partial: %v %v", fi, err)
	}
}

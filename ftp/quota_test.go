package ftp

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
)

// byteQuota is a Meter with one storage quota for uploads and a refusal
// list for downloads: the supervisor's rules in miniature.
type byteQuota struct {
	mu        sync.Mutex
	limit     int64
	used      int64
	chunk     int64
	refuseOut bool
	ends      []int64
}

func (q *byteQuota) Begin(_ context.Context, t MeterInfo) (Metering, error) {
	if t.Dir == "out" && q.refuseOut {
		return nil, &QuotaError{Code: 550, Msg: "Download quota reached."}
	}
	return &byteMetering{q: q, dir: t.Dir}, nil
}

func (q *byteQuota) Quota(context.Context) (QuotaStatus, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return QuotaStatus{BytesUsed: q.used, BytesLimit: q.limit, FilesUsed: 1, FilesLimit: 10}, nil
}

type byteMetering struct {
	q       *byteQuota
	dir     string
	granted int64
}

func (m *byteMetering) Next() (int64, error) {
	q := m.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if m.dir == "out" {
		return 1 << 40, nil
	}
	room := q.limit - q.used - m.granted
	if room <= 0 {
		return 0, &QuotaError{Code: 552, Msg: "Storage quota exceeded."}
	}
	g := min(room, q.chunk)
	m.granted += g
	return g, nil
}

func (m *byteMetering) End(moved int64, committed bool) string {
	q := m.q
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ends = append(q.ends, moved)
	if m.dir != "in" {
		return ""
	}
	q.used += moved
	if q.used*100/q.limit >= 80 {
		return "Quota warning: 80% of your quota used."
	}
	return ""
}

// TestMeteredTransfers: the Meter bounds uploads to the byte (the file
// keeps exactly what fit), its refusals are the replies, a
// warning rides on the 226, and AVBL and SITE QUOTA report it.
func TestMeteredTransfers(t *testing.T) {
	q := &byteQuota{limit: 100, chunk: 7}
	s := newTestServer(t, func(s *testServer) { s.auth.meter = q })
	s.writeFile("f.txt", "hello")
	c := s.login("alice", "secret-pw")
	c.cmd("TYPE I", 200)

	c.stor("STOR", "a.bin", strings.Repeat("a", 70)) // 10 grants of 7
	if got := c.cmd("AVBL", 213); got != "30" {
		t.Fatalf("AVBL = %q", got)
	}
	// 20 more: the warning line comes with the 226.
	d := c.epsv()
	c.cmd("STOR b.bin", 150)
	io.WriteString(d, strings.Repeat("b", 20))
	d.Close()
	code, lines := c.read()
	if code != 226 || len(lines) != 2 || !strings.Contains(lines[1], "Quota warning") {
		t.Fatalf("226 with a warning: %d %q", code, lines)
	}
	// 15 more with 10 left: 552, and the partial holds exactly 10.
	d = c.epsv()
	c.cmd("STOR c.bin", 150)
	io.WriteString(d, strings.Repeat("c", 15))
	d.Close()
	if got := c.expect(552); !strings.Contains(got, "Storage quota exceeded") {
		t.Fatalf("over the quota: %q", got)
	}
	// This test file system writes in place (no Uploader), so c.bin
	// itself holds what fit; with datapath.Tree it is the hidden partial
	// (TestStorageQuota in cmd/sluice).
	var partial int64 = -1
	entries, _ := os.ReadDir(s.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "c.bin") {
			fi, _ := e.Info()
			partial = fi.Size()
		}
	}
	if partial != 10 {
		t.Fatalf("partial of the refused upload: %d bytes, want the 10 that fit", partial)
	}
	if got := c.cmd("SITE QUOTA", 200); !strings.Contains(got, "Storage: 100 B of 100 B used (100%), 0 B left") || !strings.Contains(got, "Files: 1 of 10 used") {
		t.Fatalf("SITE QUOTA = %q", got)
	}
	q.refuseOut = true
	c.epsv()
	if got := c.cmd("RETR f.txt", 550); !strings.Contains(got, "Download quota reached") {
		t.Fatalf("refused download: %q", got)
	}
	q.mu.Lock()
	ends := q.ends
	q.mu.Unlock()
	if len(ends) != 3 || ends[0] != 70 || ends[1] != 20 || ends[2] != 10 {
		t.Errorf("End saw %v, want [70 20 10]", ends)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 8_500_000: "8.5 MB", 10_000_000_000: "10.0 GB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

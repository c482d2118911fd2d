package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/accounting"
)

func transferSize() int64 {
	if testing.Short() {
		return 256 << 20
	}
	return 1 << 30
}

// tcpStat returns a counter of the Tcp: line of /proc/net/snmp.
func tcpStat(field string) int64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return -1
	}
	defer f.Close()
	var names []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) == 0 || fs[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = fs
			continue
		}
		for i, n := range names {
			if n == field && i < len(fs) {
				v, _ := strconv.ParseInt(fs[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

// transfer runs one case between this process (outside the accounted
// cgroups, like the FTP client) and a helper in cg. It returns the bytes
// the helper sent and received, as the helper's own syscalls counted them.
func transfer(t *testing.T, cg, network, mode string, n int64, streams int) (sent, recv int64) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, streams+1)
	peer := func(c *net.TCPConn, send bool) {
		defer wg.Done()
		defer c.Close()
		var err error
		if send {
			var m int64
			m, err = sendN(c, n)
			mu.Lock()
			recv += m
			mu.Unlock()
		} else {
			var m int64
			m, err = recvAll(c)
			mu.Lock()
			sent += m
			mu.Unlock()
		}
		if err != nil {
			errc <- err
		}
	}
	switch mode {
	case "dial-send", "dial-recv":
		l, err := listenTCP(network)
		if err != nil {
			t.Skipf("%s: %v", network, err)
		}
		defer l.Close()
		args := []string{network, l.Addr().String()}
		if mode == "dial-send" {
			args = append(args, fmt.Sprint(n))
		}
		args = append(args, fmt.Sprint(streams))
		h := startHelper(t, cg, nil, nil, mode, args...)
		for range streams {
			c, err := l.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go peer(c, mode == "dial-recv")
		}
		wg.Wait()
		h.wait(t)
	case "listen-send", "listen-recv":
		h := startHelper(t, cg, nil, nil, mode, network, fmt.Sprint(n))
		c, err := dialTCP(network, h.line(t))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		peer(c, mode == "listen-recv")
		h.wait(t)
	}
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	return sent, recv
}

// TestExactCount: the counters equal, to the byte, what the helper's
// data connections moved, in both directions, IPv4 and IPv6, for
// connections the helper dialed (PORT) and accepted (PASV), with parallel
// streams (loopback reorders and retransmits spuriously: the sequence
// numbers keep the count exact).
func TestExactCount(t *testing.T) {
	e := newEnv(t)
	n := transferSize()
	for _, network := range []string{"tcp4", "tcp6"} {
		for _, tc := range []struct {
			mode    string
			streams int
		}{
			{"dial-send", 1}, {"dial-recv", 1}, {"listen-send", 1}, {"listen-recv", 1},
			{"dial-send", 4}, {"dial-recv", 4},
		} {
			name := fmt.Sprintf("%s/%s/x%d", network, tc.mode, tc.streams)
			t.Run(name, func(t *testing.T) {
				acct := fmt.Sprintf("%s-%s-%d", network, tc.mode, tc.streams)
				cg := e.account(acct)
				size := n
				if tc.streams > 1 {
					size = n / int64(tc.streams)
				}
				retrans := tcpStat("RetransSegs")
				start := time.Now()
				sent, recv := transfer(t, cg, network, tc.mode, size, tc.streams)
				el := time.Since(start)
				want := size * int64(tc.streams)
				if sent+recv != want {
					t.Fatalf("moved %d+%d bytes, want %d", sent, recv, want)
				}
				c := e.counters(acct)
				t.Logf("%d bytes in %v (%.2f GiB/s), %d retransmitted segments system-wide; counters %+v",
					want, el.Round(time.Millisecond), float64(want)/el.Seconds()/(1<<30), tcpStat("RetransSegs")-retrans, c)
				if c.BytesOut != uint64(sent) || c.BytesIn != uint64(recv) {
					t.Errorf("counters in %d out %d, want in %d out %d", c.BytesIn, c.BytesOut, recv, sent)
				}
				if c.Conns != 0 || c.ConnsIn != 0 || c.ConnsOut != 0 {
					t.Errorf("live connections after close: %+v", c)
				}
				if c.ConnsTotal != uint64(tc.streams) {
					t.Errorf("conns_total %d, want %d", c.ConnsTotal, tc.streams)
				}
			})
		}
	}
	// This process's ends of the connections are not below the attach
	// point: totals hold only the helpers' bytes.
	var sum accounting.Counters
	all, err := e.acct.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		sum.BytesIn += c.BytesIn
		sum.BytesOut += c.BytesOut
	}
	tot, err := e.acct.Totals()
	if err != nil {
		t.Fatal(err)
	}
	if tot.BytesIn != sum.BytesIn || tot.BytesOut != sum.BytesOut {
		t.Errorf("totals %+v, sum of accounts %+v", tot, sum)
	}
}

// TestControlConnectionNotCounted: a connection accepted outside the
// account cgroups (the supervisor accepts the control connection) and
// handed to a process in the account's cgroup is not counted: a socket
// belongs to the cgroup it was created in.
func TestControlConnectionNotCounted(t *testing.T) {
	e := newEnv(t)
	cg := e.account("ctl")
	l, err := listenTCP("tcp4")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := dialTCP("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	f, err := server.File()
	server.Close()
	if err != nil {
		t.Fatal(err)
	}
	const n = 8 << 20
	h := startHelper(t, cg, nil, []*os.File{f}, "fd-send", fmt.Sprint(n))
	f.Close()
	got, err := recvAll(client)
	if err != nil || got != n {
		t.Fatalf("received %d, %v", got, err)
	}
	h.wait(t)
	if c := e.counters("ctl"); c.BytesOut != 0 || c.BytesIn != 0 || c.ConnsTotal != 0 {
		t.Fatalf("control connection counted: %+v", c)
	}
}

func fdSendHelper(args []string) error {
	n, _ := strconv.ParseInt(args[0], 10, 64)
	f := os.NewFile(3, "conn")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := sendN(c.(*net.TCPConn), n)
	fmt.Println(m)
	return err
}

// TestPersistence: Snapshot → file → Restore brings every counter back
// in a fresh map (reboot), and a reload over the pinned maps (restart,
// even kill -9) keeps counting where it was.
func TestPersistence(t *testing.T) {
	e := newEnv(t)
	cg := e.account("p")
	const n = 3<<20 + 17
	transfer(t, cg, "tcp4", "dial-send", n, 1)
	if err := e.acct.SetRate("p", accounting.Rates{In: 1, Out: 2}); err != nil {
		t.Fatal(err)
	}
	before := e.counters("p")
	if before.BytesOut != n {
		t.Fatalf("counted %d, want %d", before.BytesOut, n)
	}
	path := t.TempDir() + "/accounting.json"
	if err := e.acct.Save(path); err != nil {
		t.Fatal(err)
	}

	// Restart: close (links detach), load again over the pinned maps.
	e.acct.Close()
	e.load()
	if !e.acct.Reused() {
		t.Fatal("pinned maps not reused")
	}
	if c := e.counters("p"); c.Persistent() != before.Persistent() {
		t.Fatalf("after reload %+v, want %+v", c, before)
	}
	if r, err := e.acct.View("p"); err != nil {
		t.Fatal(err)
	} else {
		rates, _ := r.Rates()
		r.Close()
		if rates != (accounting.Rates{In: 1, Out: 2}) {
			t.Fatalf("rates after reload %+v", rates)
		}
	}
	transfer(t, cg, "tcp4", "dial-recv", n, 1)
	if c := e.counters("p"); c.BytesOut != n || c.BytesIn != n {
		t.Fatalf("after reload and a transfer: %+v", c)
	}

	// Reboot: the pins are gone; the snapshot restores.
	e.acct.Close()
	e.acct = nil
	if err := Unpin(e.pinDir); err != nil {
		t.Fatal(err)
	}
	e.load()
	if e.acct.Reused() {
		t.Fatal("maps reused after unpin")
	}
	s, err := accounting.LoadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.acct.Restore(s); err != nil {
		t.Fatal(err)
	}
	if _, err := e.acct.AddAccount("p", cg); err != nil {
		t.Fatal(err)
	}
	if c := e.counters("p"); c.Persistent() != before.Persistent() {
		t.Fatalf("after restore %+v, want %+v", c, before.Persistent())
	}
	transfer(t, cg, "tcp6", "dial-send", n, 1)
	if c := e.counters("p"); c.BytesOut != 2*n {
		t.Fatalf("after restore and a transfer: %+v", c)
	}
}

// TestReadOnlyView: a process without privileges holding the read-only
// fds (as a worker does) can read but not update or delete, and cannot
// open the pins.
func TestReadOnlyView(t *testing.T) {
	e := newEnv(t)
	e.account("ro")
	if err := e.acct.SetRate("ro", accounting.Rates{Out: 1000}); err != nil {
		t.Fatal(err)
	}
	v, err := e.acct.View("ro")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	files, err := v.Files()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	h := startHelper(t, "", &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}, files,
		"ro-update", e.pinDir, fmt.Sprint(v.CgroupID()))
	if got := h.line(t); got != "ok" {
		t.Fatal(got)
	}
	h.wait(t)
	if r, _ := v.Rates(); r.Out != 1000 {
		t.Fatalf("rates changed: %+v", r)
	}
}

func roUpdateHelper(args []string) error {
	pinDir := args[0]
	cgid, _ := strconv.ParseUint(args[1], 10, 64)
	v, err := NewViewFromFDs(3, 4, 5, cgid)
	if err != nil {
		return err
	}
	defer v.Close()
	share, err := v.Share(accounting.Out)
	if err != nil {
		return fmt.Errorf("read through the view: %w", err)
	}
	if share != 1000 {
		return fmt.Errorf("share %d, want 1000", share)
	}
	var problems []string
	if err := v.limits.Put(cgid, acctSluiceLimits{RateOut: 1 << 40}); err == nil {
		problems = append(problems, "limits update succeeded")
	} else if !errors.Is(err, os.ErrPermission) {
		problems = append(problems, "limits update: "+err.Error())
	}
	if err := v.accounts.Delete(cgid); err == nil {
		problems = append(problems, "accounts delete succeeded")
	}
	if err := v.accounts.Put(cgid, acctSluiceAccount{}); err == nil {
		problems = append(problems, "accounts update succeeded")
	}
	if err := v.totals.Put(uint32(0), acctSluiceAccount{}); err == nil {
		problems = append(problems, "totals update succeeded")
	}
	if _, err := OpenView(pinDir, cgid); err == nil {
		problems = append(problems, "opened the pins as an unprivileged user")
	}
	if len(problems) > 0 {
		fmt.Println(strings.Join(problems, "; "))
		return nil
	}
	fmt.Println("ok")
	return nil
}

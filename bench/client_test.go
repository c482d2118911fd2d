package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFTP is just enough of a server to drive the client's data paths:
// USER/PASS/TYPE/EPSV/PASV/RETR/STOR/NLST/LIST/DELE/QUIT over files in dir.
type fakeFTP struct {
	ln       net.Listener
	dir      string
	noEPSV   bool
	mu       sync.Mutex
	received map[string]int64
}

func startFake(t *testing.T, dir string) *fakeFTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFTP{ln: ln, dir: dir, received: map[string]int64{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeFTP) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(s string) { fmt.Fprintf(c, "%s\r\n", s) }
	say("220-welcome\r\n220 ready")
	var pasv net.Listener
	data := func() net.Conn {
		if pasv == nil {
			return nil
		}
		d, err := pasv.Accept()
		pasv.Close()
		pasv = nil
		if err != nil {
			return nil
		}
		return d
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch cmd {
		case "USER":
			say("331 password")
		case "PASS":
			if arg != "pw" {
				say("530 no")
				continue
			}
			say("230 ok")
		case "TYPE":
			say("200 ok")
		case "EPSV", "PASV":
			if cmd == "EPSV" && f.noEPSV {
				say("500 what")
				continue
			}
			pasv, _ = net.Listen("tcp", "127.0.0.1:0")
			p := pasv.Addr().(*net.TCPAddr).Port
			if cmd == "EPSV" {
				say(fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", p))
			} else {
				say(fmt.Sprintf("227 Entering Passive Mode (127,0,0,1,%d,%d)", p>>8, p&255))
			}
		case "RETR":
			fh, err := os.Open(filepath.Join(f.dir, arg))
			if err != nil {
				say("550 no such file")
				continue
			}
			say("150 here it comes")
			d := data()
			io.Copy(d, fh)
			fh.Close()
			d.Close()
			say("226 done")
		case "STOR":
			say("150 send it")
			d := data()
			n, _ := io.Copy(io.Discard, d)
			d.Close()
			f.mu.Lock()
			f.received[arg] = n
			f.mu.Unlock()
			say("226 done")
		case "NLST", "LIST":
			ents, _ := os.ReadDir(filepath.Join(f.dir, arg))
			say("150 listing")
			d := data()
			if cmd == "NLST" {
				fmt.Fprintf(d, ".\r\n..\r\n")
			}
			for _, e := range ents {
				fmt.Fprintf(d, "%s/%s\r\n", arg, e.Name())
			}
			d.Close()
			say("226 done")
		case "DELE":
			say("250 gone")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

func TestClientAgainstFake(t *testing.T) {
	dir := t.TempDir()
	payload := make([]byte, 3<<20+123)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(dir, "big.img"), payload, 0o644)
	os.Mkdir(filepath.Join(dir, "small"), 0o755)
	for i := range 5 {
		os.WriteFile(filepath.Join(dir, "small", fmt.Sprintf("f%d", i)), payload[:4096], 0o644)
	}
	for _, noEPSV := range []bool{false, true} {
		f := startFake(t, dir)
		f.noEPSV = noEPSV
		tg, err := ParseTarget("ftp://me:pw@" + f.ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		tg.Timeout = 5 * time.Second
		ctx := context.Background()
		c, err := Dial(ctx, tg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(); err != nil {
			t.Fatal(err)
		}
		var counted int64
		n, err := c.Retr(ctx, "big.img", func(k int64) { counted += k })
		if err != nil || n != int64(len(payload)) || counted != n {
			t.Fatalf("RETR (noEPSV=%v): n=%d counted=%d err=%v", noEPSV, n, counted, err)
		}
		if _, err := c.Retr(ctx, "missing", nil); err == nil || !strings.Contains(err.Error(), "550") {
			t.Errorf("RETR of a missing file: %v", err)
		}
		src, err := UploadSource(filepath.Join(t.TempDir(), "up.bin"), 5<<20)
		if err != nil {
			t.Fatal(err)
		}
		n, err = c.Stor(ctx, "up.bin", src, 5<<20, nil)
		src.Close()
		if err != nil || n != 5<<20 {
			t.Fatalf("STOR: %d %v", n, err)
		}
		f.mu.Lock()
		got := f.received["up.bin"]
		f.mu.Unlock()
		if got != 5<<20 {
			t.Errorf("server received %d bytes", got)
		}
		names, err := c.Names(ctx, "small")
		if err != nil || len(names) != 5 || names[0] != "f0" {
			t.Errorf("NLST: %v %v", names, err)
		}
		if _, _, err := c.Cmd("MLSD small", 150); err == nil {
			t.Error("502 accepted as 150")
		}
		if err := c.Quit(); err != nil {
			t.Error(err)
		}
	}
}

func TestRunnerAgainstFake(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "big.img"), make([]byte, 1<<20), 0o644)
	os.Mkdir(filepath.Join(dir, "small"), 0o755)
	os.WriteFile(filepath.Join(dir, "small", "a"), make([]byte, 4096), 0o644)
	f := startFake(t, dir)
	tg, _ := ParseTarget("ftp://me:pw@" + f.ln.Addr().String() + "/")
	cfg := QuickConfig()
	cfg.FanoutFile, cfg.FanoutSmallFile, cfg.Clients = "big.img", "", []int{1, 4}
	cfg.UploadSize, cfg.UploadSource = 1<<20, filepath.Join(t.TempDir(), "src")
	cfg.LoginDuration, cfg.SmallDuration = 200*time.Millisecond, 200*time.Millisecond
	r := &Runner{Target: tg, Cfg: cfg, Probe: TreeProbe{Pid: os.Getpid()}}
	ctx := context.Background()
	var all []Result
	for _, w := range []string{WRetr, WStor, WFanout, WLoginSeq, WLoginPar, WSmall, WMLSD} {
		all = append(all, r.Run(ctx, w, 1)...)
	}
	byW := map[string]Result{}
	for _, res := range all {
		byW[res.Workload] = res
	}
	for _, w := range []string{WRetr, WStor, "fanout/1", "fanout/4", WLoginSeq, WLoginPar, WSmall} {
		res, ok := byW[w]
		if !ok || res.Err != "" || res.Value <= 0 || res.ServerCPU < 0 {
			t.Errorf("%s: %+v", w, res)
		}
	}
	if res := byW["fanout/4"]; res.Bytes != 4<<20 || res.Clients != 4 {
		t.Errorf("fan-out of 4 moved %d bytes", res.Bytes)
	}
	if res := byW[WMLSD]; !res.Unsupported {
		t.Errorf("502 for MLSD should read as unsupported: %+v", res)
	}
}

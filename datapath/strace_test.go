package datapath

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// The strace test re-executes the test binary as a helper that performs one
// transfer, under `strace -f -e trace=sendfile,splice`, and checks from the
// kernel's side which mover ran: the Result fields could lie, the syscall
// trace cannot. (Go's own zero-copy paths are easy to lose to a wrapper
// that hides ReadFrom; see KERNEL-NOTES.)
const straceHelperEnv = "SLUICE_DATAPATH_STRACE_HELPER"

func TestStraceHelper(t *testing.T) {
	mode := os.Getenv(straceHelperEnv)
	if mode == "" {
		t.Skip("helper for TestStraceMovers")
	}
	data := randomBytes(8<<20, 11)
	src := tempFile(t, data)
	server, client := tcpPair(t, false)
	switch mode {
	case "send":
		// The client reads with read(2) (io.Discard), so any
		// sendfile/splice in the trace is the server's.
		go io.Copy(io.Discard, client)
		res, err := Send(server, src, 0, false)
		if err != nil || res.Mover != MoverSendfile {
			t.Fatalf("%+v %v", res, err)
		}
	case "receive":
		// The client writes from memory (write(2)).
		go func() {
			client.Write(data)
			client.CloseWrite()
		}()
		dst := newDst(t)
		res, err := Receive(dst, server, false)
		if err != nil || res.Mover != MoverSplice {
			t.Fatalf("%+v %v", res, err)
		}
	}
}

func TestStraceMovers(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed: mover syscalls not verified")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sendfileRE := regexp.MustCompile(`(?m)^\d+ +sendfile\(\d+, \d+, \[\d+\] => \[\d+\], \d+\) = [1-9]`)
	spliceRE := regexp.MustCompile(`(?m)^\d+ +splice\(\d+, NULL, \d+, NULL, \d+, SPLICE_F_MOVE(\|SPLICE_F_NONBLOCK)?\) = [1-9]`)
	for _, mode := range []string{"send", "receive"} {
		t.Run(mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "trace")
			cmd := exec.Command(strace, "-f", "-qq", "-o", out, "-e", "trace=sendfile,splice",
				exe, "-test.run=^TestStraceHelper$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), straceHelperEnv+"="+mode)
			if b, err := cmd.CombinedOutput(); err != nil {
				if bytes.Contains(b, []byte("PTRACE_TRACEME")) || bytes.Contains(b, []byte("Operation not permitted")) {
					t.Skipf("strace cannot trace here: %s", b)
				}
				t.Fatalf("helper: %v\n%s", err, b)
			}
			trace, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			sendfiles := len(sendfileRE.FindAll(trace, -1))
			splices := len(spliceRE.FindAll(trace, -1))
			t.Logf("%s: %d sendfile, %d splice calls moving data", mode, sendfiles, splices)
			switch mode {
			case "send":
				if sendfiles == 0 || splices != 0 {
					t.Errorf("Send: want sendfile only\n%s", head(trace))
				}
			case "receive":
				// socket → pipe and pipe → file, at least one each
				if splices < 2 || sendfiles != 0 {
					t.Errorf("Receive: want splice only\n%s", head(trace))
				}
			}
		})
	}
}

func head(b []byte) []byte {
	if len(b) > 2000 {
		return b[:2000]
	}
	return b
}

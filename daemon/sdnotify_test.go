package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotifier(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		name := filepath.Join(t.TempDir(), "notify")
		env := name
		if abstract {
			name = "\x00sluice-test-" + filepath.Base(t.TempDir())
			env = "@" + name[1:]
		}
		l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", env)
		t.Setenv("WATCHDOG_USEC", "3000000")
		n := newNotifier()
		if n.watchdog != 1500*time.Millisecond {
			t.Errorf("watchdog interval %v, want half of WATCHDOG_USEC", n.watchdog)
		}
		if os.Getenv("NOTIFY_SOCKET") != "" {
			t.Errorf("NOTIFY_SOCKET left in the environment for workers to inherit")
		}
		if err := n.ready("serving"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		l.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := l.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := string(buf[:k])
		if !strings.HasPrefix(got, "READY=1\n") || !strings.Contains(got, "STATUS=serving") || !strings.Contains(got, "MAINPID=") {
			t.Errorf("abstract=%v: got %q", abstract, got)
		}
		l.Close()
	}
	// Without NOTIFY_SOCKET nothing is sent and nothing fails.
	t.Setenv("NOTIFY_SOCKET", "")
	if err := newNotifier().ready("x"); err != nil {
		t.Fatal(err)
	}
}

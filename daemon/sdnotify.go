package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// notifier speaks systemd's sd_notify protocol: datagrams of "KEY=VALUE"
// lines to the unix socket named by $NOTIFY_SOCKET (an abstract socket
// when it starts with '@'). It needs no libsystemd; without
// $NOTIFY_SOCKET (no systemd, or Type=simple) every call is a no-op.
type notifier struct {
	addr *net.UnixAddr
	// watchdog is half of $WATCHDOG_USEC when systemd asked for pings
	// (systemd.service(5): ping at least every WATCHDOG_USEC/2).
	watchdog time.Duration
}

func newNotifier() *notifier {
	n := &notifier{}
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return n
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		// WATCHDOG_PID, when set, names the process meant to ping.
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(us) * time.Microsecond / 2
		}
	}
	// Workers must not inherit these: they are for the supervisor only.
	os.Unsetenv("NOTIFY_SOCKET")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	return n
}

// send delivers one state update; errors are returned for logging only:
// a lost notification must never stop the server.
func (n *notifier) send(state string) error {
	if n.addr == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// ready says the listeners are bound and the server accepts.
func (n *notifier) ready(status string) error {
	return n.send("READY=1\nSTATUS=" + status + "\nMAINPID=" + strconv.Itoa(os.Getpid()))
}

// status updates the one-line status `systemctl status` shows.
func (n *notifier) status(status string) error { return n.send("STATUS=" + status) }

func (n *notifier) stopping() error { return n.send("STOPPING=1") }

package daemon

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Denial is one sandbox denial the kernel logged for a process: a
// syscall refused by seccomp (audit record type 1326, logged because the
// filters carry SECCOMP_FILTER_FLAG_LOG) or an access refused by Landlock
// (type 1423, when the kernel's audit subsystem is on).
type Denial struct {
	Kind   string // "seccomp" or "landlock"
	PID    int
	Detail string // "syscall=41", or Landlock's "blockers=…"
}

// parseDenial reads one kernel log record. The audit text is the
// kernel's; fields a process controls (comm, exe, paths) come after pid
// and are quoted or hex-encoded by audit, so the first " pid=" is the
// kernel's.
func parseDenial(rec string) (Denial, bool) {
	var d Denial
	switch {
	case strings.Contains(rec, "audit: type=1326 "):
		d.Kind = "seccomp"
	case strings.Contains(rec, "audit: type=1423 "):
		d.Kind = "landlock"
	default:
		return d, false
	}
	i := strings.Index(rec, " pid=")
	if i < 0 {
		return d, false
	}
	v := rec[i+5:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	pid, err := strconv.Atoi(v)
	if err != nil || pid <= 0 {
		return d, false
	}
	d.PID = pid
	key := " syscall="
	if d.Kind == "landlock" {
		key = " blockers="
	}
	if i := strings.Index(rec, key); i >= 0 {
		v := rec[i+1:]
		if j := strings.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
		d.Detail = v
	}
	return d, true
}

// WatchDenials reads the kernel log (/dev/kmsg; root) from now on and
// calls found for every sandbox denial of a process that mine accepts,
// until ctx ends. It returns an error if the log cannot be read.
func WatchDenials(ctx context.Context, mine func(pid int) bool, found func(Denial)) error {
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	// Only what is logged from now on.
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		// One record per read (kmsg semantics); a record is at most
		// 8 KiB (PRINTK_MESSAGE_MAX 2 KiB plus the dictionary).
		buf := make([]byte, 8192)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if errors.Is(err, syscall.EPIPE) {
					continue // records overwritten before we read them
				}
				return // closed (ctx) or the log is gone
			}
			if d, ok := parseDenial(string(buf[:n])); ok && mine(d.PID) {
				found(d)
			}
		}
	}()
	return nil
}

// maxDeniedLines bounds the audit lines about one worker's denials: a
// compromised worker probing its sandbox could otherwise flood the log.
// The metric counts them all.
const maxDeniedLines = 20

// isWorker reports whether pid is one of our workers.
func (s *Server) isWorker(pid int) bool { return s.workerByPID(pid) != nil }

func (s *Server) workerByPID(pid int) *worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.workers {
		if w.cmd.Process != nil && w.cmd.Process.Pid == pid {
			return w
		}
	}
	return nil
}

// sandboxDenied records a denial the kernel logged for a worker: the
// metric, and an audit line (the first maxDeniedLines per worker). A
// well-behaved worker never hits its sandbox, so each one is worth a
// look.
func (s *Server) sandboxDenied(d Denial) {
	w := s.workerByPID(d.PID)
	if w == nil {
		return
	}
	s.metrics.sandboxDenied(d.Kind)
	w.mu.Lock()
	w.denials++
	n, si, phase := w.denials, w.sess, w.phase
	w.mu.Unlock()
	if n > maxDeniedLines {
		return
	}
	e := s.logs.Audit.Warn().Str("event", "sandbox.denied").Str("mechanism", d.Kind).Int("pid", d.PID).
		Str("phase", phase.String()).Str("detail", d.Detail)
	if si.ID != "" {
		e = e.Str("session", si.ID).Str("remote", si.Remote)
	}
	if si.Account != "" {
		e = e.Str("account", si.Account)
	}
	if n == maxDeniedLines {
		e = e.Bool("further_denials_not_logged", true)
	}
	e.Send()
}

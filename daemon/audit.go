package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/sluice-ftp/sluice/ftp"
)

// Logs holds the supervisor's two streams: the operational log (start-up,
// warnings, worker trouble) and the audit log (one JSON line per session
// event). With audit = "stdout" both share standard output; with a file the
// audit stream goes there and the operational log stays on stdout, which is
// what journald collects.
type Logs struct {
	Ops   zerolog.Logger
	Audit zerolog.Logger

	auditFile *reopenFile
	xfer      *xferlog
}

// reopenFile is a log file that can be reopened under the same name
// (SIGUSR1 after logrotate moved it). Every write holds the lock and goes
// to the current file whole: a line goes either to the old file (renamed
// by logrotate, still open) or to the new one, never half to each, and
// none is lost between the rename and the reopen.
type reopenFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openReopenable(path string) (*reopenFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	return &reopenFile{path: path, f: f}, nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

func (r *reopenFile) WriteString(s string) (int, error) { return r.Write([]byte(s)) }

// reopen opens path again and switches to it; on failure the old file
// stays in use.
func (r *reopenFile) reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// LogOptions are the [log] settings the daemon acts on.
type LogOptions struct {
	Audit   string // "stdout" or a path
	Format  string // auto | json | pretty
	Level   string // debug | info | warn | error
	Xferlog string // optional path
}

// OpenLogs opens the configured destinations. Files are opened for append
// with O_APPEND so that lines from concurrent writers never interleave
// mid-line (each zerolog event is one write).
func OpenLogs(o LogOptions, stdout io.Writer) (*Logs, error) {
	lvl, err := zerolog.ParseLevel(o.Level)
	if err != nil || o.Level == "" {
		lvl = zerolog.InfoLevel
	}
	pretty := o.Format == "pretty"
	if o.Format == "" || o.Format == "auto" {
		if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			pretty = true
		}
	}
	var out io.Writer = zerolog.SyncWriter(stdout)
	if pretty {
		out = zerolog.ConsoleWriter{Out: stdout, TimeFormat: "15:04:05.000"}
	}
	l := &Logs{Ops: zerolog.New(out).Level(lvl).With().Timestamp().Logger()}
	l.Audit = l.Ops
	if o.Audit != "" && o.Audit != "stdout" {
		f, err := openReopenable(o.Audit)
		if err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		l.auditFile = f
		l.Audit = zerolog.New(f).With().Timestamp().Logger()
	}
	if o.Xferlog != "" {
		f, err := openReopenable(o.Xferlog)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("open xferlog: %w", err)
		}
		l.xfer = &xferlog{f: f}
	}
	return l, nil
}

// Reopen reopens the audit log and the xferlog files (SIGUSR1).
func (l *Logs) Reopen() error {
	var errs []error
	if l.auditFile != nil {
		if err := l.auditFile.reopen(); err != nil {
			errs = append(errs, fmt.Errorf("reopen audit log: %w", err))
		}
	}
	if l.xfer != nil {
		if err := l.xfer.f.reopen(); err != nil {
			errs = append(errs, fmt.Errorf("reopen xferlog: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close closes the log files.
func (l *Logs) Close() {
	if l.auditFile != nil {
		l.auditFile.Close()
	}
	if l.xfer != nil {
		l.xfer.f.Close()
	}
}

// sessionInfo is what the audit log says about a session in every line.
type sessionInfo struct {
	ID       string
	Remote   string
	Listener string
	Account  string
}

// event writes one audit event from a worker. Strings come from a worker
// (untrusted): zerolog escapes them as JSON strings, so they cannot forge
// lines or fields.
func (l *Logs) event(s sessionInfo, ev ftp.Event) {
	e := l.Audit.Info().Str("event", ev.Kind).Str("session", s.ID).Str("remote", s.Remote)
	if s.Account != "" {
		e = e.Str("account", s.Account)
	}
	if ev.Command != "" {
		e = e.Str("command", ev.Command)
	}
	if ev.Path != "" {
		e = e.Str("path", ev.Path)
	}
	if ev.Path2 != "" {
		e = e.Str("path2", ev.Path2)
	}
	if ev.Kind == "transfer" {
		secs := ev.Duration.Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(ev.Bytes) / secs
		}
		e = e.Str("direction", ev.Dir).Int64("bytes", ev.Bytes).
			Float64("duration_s", ev.Duration.Seconds()).Float64("rate_bps", rate).Str("mover", ev.Mover)
		if ev.Fallback != "" {
			e = e.Str("fallback", ev.Fallback)
		}
	}
	if ev.Code != 0 {
		e = e.Int("code", ev.Code)
	}
	if ev.Detail != "" {
		e = e.Str("detail", ev.Detail)
	}
	e.Send()
	if ev.Kind == "transfer" && l.xfer != nil {
		l.xfer.write(s, ev)
	}
}

// xferlog writes the wu-ftpd transfer log format that existing log
// analysers read (xferlog(5)).
type xferlog struct {
	mu sync.Mutex
	f  *reopenFile
}

func (x *xferlog) write(s sessionInfo, ev ftp.Event) {
	host := s.Remote
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = strings.Trim(host[:i], "[]")
	}
	dir := "o"
	if ev.Dir == "in" {
		dir = "i"
	}
	status := "c"
	if ev.Code != 226 && ev.Code != 250 {
		status = "i"
	}
	secs := int64(ev.Duration.Round(time.Second) / time.Second)
	// The file name field may not contain spaces in the classic format;
	// wu-ftpd replaced them with underscores, and so do we.
	name := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return '_'
		}
		return r
	}, ev.Path)
	line := fmt.Sprintf("%s %d %s %d %s b _ %s r %s ftp 0 * %s\n",
		ev.Time.Format("Mon Jan _2 15:04:05 2006"), secs, host, ev.Bytes, name, dir, s.Account, status)
	x.mu.Lock()
	x.f.WriteString(line)
	x.mu.Unlock()
}

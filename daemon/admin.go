package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/daemon/ipc"
)

// AdminSocket is the name of the admin socket in state_dir.
const AdminSocket = "admin.sock"

// AdminRequest is one line of JSON sent to the admin socket.
type AdminRequest struct {
	Op      string `json:"op"`                // status | kick | ban
	Session string `json:"session,omitempty"` // kick: a session id …
	Account string `json:"account,omitempty"` // … or every session of an account
	IP      string `json:"ip,omitempty"`      // ban
	For     string `json:"for,omitempty"`     // ban duration (Go syntax); default ban_duration
}

// AdminResponse is the one-line JSON answer.
type AdminResponse struct {
	OK       bool              `json:"ok"`
	Error    string            `json:"error,omitempty"`
	Sessions []SessionStatus   `json:"sessions,omitempty"`
	Accounts []AccountStatus   `json:"accounts,omitempty"`
	Idle     int               `json:"idle_workers"`
	Kicked   int               `json:"kicked,omitempty"`
	Banned   []BannedAddress   `json:"banned,omitempty"`
	Server   *ServerStatusLine `json:"server,omitempty"`
}

// ServerStatusLine is the server-wide part of `sluice status`.
type ServerStatusLine struct {
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Config  string    `json:"config"`
	// Accounting is "ebpf" or "userspace"; AccountingNote says why not
	// eBPF.
	Accounting     string `json:"accounting"`
	AccountingNote string `json:"accounting_note,omitempty"`
}

// SessionStatus is one live session.
type SessionStatus struct {
	ID        string    `json:"id"`
	Account   string    `json:"account,omitempty"`
	Remote    string    `json:"remote"`
	Protocol  string    `json:"protocol"`
	Phase     string    `json:"phase"`
	PID       int       `json:"pid"`
	Since     time.Time `json:"since"`
	BytesIn   int64     `json:"bytes_in"`
	BytesOut  int64     `json:"bytes_out"`
	Transfers int       `json:"transfers"`
	LastPath  string    `json:"last_path,omitempty"`
	Current   *Transfer `json:"current,omitempty"`
}

// Transfer is the transfer a session is running, as of its last progress
// report (about once a second).
type Transfer struct {
	Command   string  `json:"command"`
	Path      string  `json:"path"`
	Direction string  `json:"direction"`
	Bytes     int64   `json:"bytes"`
	Size      int64   `json:"size,omitempty"` // downloads: bytes to send
	Seconds   float64 `json:"seconds"`
	Rate      float64 `json:"rate_bps"`
}

// AccountStatus is one account: its live sessions (Sessions, BytesIn and
// BytesOut sum them), its accounting counters (every data byte since the
// counters began, across restarts), the rate over the last second, its
// live data connections, and its quotas.
type AccountStatus struct {
	Account  string `json:"account"`
	Sessions int    `json:"sessions"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
	// From the accounting counters.
	TotalIn   uint64         `json:"total_in"`
	TotalOut  uint64         `json:"total_out"`
	RateIn    float64        `json:"rate_in_bps"`
	RateOut   float64        `json:"rate_out_bps"`
	DataConns uint64         `json:"data_conns"`
	Quota     *ipc.QuotaInfo `json:"quota,omitempty"`
}

// BannedAddress is one entry of the ban list.
type BannedAddress struct {
	IP    string    `json:"ip"`
	Until time.Time `json:"until"`
}

// serveAdmin answers requests on the admin socket: a unix socket in
// state_dir, mode 0600, and every connection's peer credentials are
// checked (SO_PEERCRED) against root or the supervisor's own uid, so file
// permissions are not the only guard. One request per connection.
func (s *Server) serveAdmin(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	path := filepath.Join(dir, AdminSocket)
	os.Remove(path) // a stale socket of a previous run
	old := unix.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			go s.adminConn(c)
		}
	}()
	s.logs.Ops.Info().Str("socket", path).Msg("admin socket ready (sluice status)")
	return nil
}

func peerUID(c *net.UnixConn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

func (s *Server) adminConn(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	enc := json.NewEncoder(c)
	uid, err := peerUID(c)
	if err != nil || (uid != 0 && int(uid) != os.Geteuid()) {
		enc.Encode(AdminResponse{Error: "permission denied: the admin socket is for root"})
		return
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	var req AdminRequest
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		enc.Encode(AdminResponse{Error: "bad request: " + err.Error()})
		return
	}
	enc.Encode(s.admin(req))
}

func (s *Server) admin(req AdminRequest) AdminResponse {
	switch req.Op {
	case "status":
		return s.status()
	case "kick":
		if req.Session == "" && req.Account == "" {
			return AdminResponse{Error: "kick needs a session id or an account"}
		}
		n := 0
		for _, w := range s.liveWorkers() {
			w.mu.Lock()
			match := (req.Session != "" && w.sess.ID == req.Session) || (req.Account != "" && w.sess.Account == req.Account)
			w.mu.Unlock()
			if !match {
				continue
			}
			n++
			// Ask for a clean end (421 after the current reply), then make
			// sure of it.
			w.ipc.Send(ipc.Shutdown{Deadline: time.Now()})
			go func() {
				select {
				case <-w.exited:
				case <-time.After(2 * time.Second):
					w.kill("kicked by the administrator")
				}
			}()
			s.logs.Audit.Info().Str("event", "session.kicked").Str("session", w.sess.ID).Str("account", w.sess.Account).Send()
		}
		if n == 0 {
			return AdminResponse{Error: "no such session"}
		}
		return AdminResponse{OK: true, Kicked: n}
	case "ban":
		ip, err := netip.ParseAddr(req.IP)
		if err != nil {
			return AdminResponse{Error: fmt.Sprintf("ban: %q is not an IP address", req.IP)}
		}
		d := s.config().Limits.BanDuration
		if req.For != "" {
			if d, err = time.ParseDuration(req.For); err != nil || d <= 0 {
				return AdminResponse{Error: fmt.Sprintf("ban: bad duration %q", req.For)}
			}
		}
		s.auth.ban(ip.Unmap(), d)
		s.logs.Audit.Warn().Str("event", "ban").Str("remote", ip.Unmap().String()).Float64("for_s", d.Seconds()).Str("by", "admin").Send()
		return AdminResponse{OK: true}
	}
	return AdminResponse{Error: fmt.Sprintf("unknown op %q (status, kick, ban)", req.Op)}
}

func (s *Server) liveWorkers() []*worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*worker, 0, len(s.workers))
	for w := range s.workers {
		out = append(out, w)
	}
	return out
}

func (s *Server) status() AdminResponse {
	cfg := s.config()
	r := AdminResponse{OK: true, Idle: len(s.idle), Server: &ServerStatusLine{PID: os.Getpid(), Started: s.started, Config: cfg.Source,
		Accounting: s.meter.mode, AccountingNote: s.meter.reason}}
	accts := map[string]*AccountStatus{}
	for _, w := range s.liveWorkers() {
		w.mu.Lock()
		if w.phase != phasePreAuth && w.phase != phasePostAuth {
			w.mu.Unlock()
			continue
		}
		st := SessionStatus{
			ID: w.sess.ID, Account: w.sess.Account, Remote: w.sess.Remote, Protocol: listenerProtocol(w.sess.Listener),
			Phase: w.phase.String(), PID: w.pid(), Since: w.opened,
			BytesIn: w.bytesIn, BytesOut: w.bytesOut, Transfers: w.transfers, LastPath: w.lastPath,
		}
		if c := w.current; c != nil {
			st.Current = &Transfer{Command: c.Command, Path: c.Path, Direction: c.Dir, Bytes: c.Bytes,
				Size: c.Size, Seconds: c.Duration.Seconds()}
			if c.Duration > 0 {
				st.Current.Rate = float64(c.Bytes) / c.Duration.Seconds()
			}
		}
		w.mu.Unlock()
		r.Sessions = append(r.Sessions, st)
		if st.Account != "" {
			a := accts[st.Account]
			if a == nil {
				a = &AccountStatus{Account: st.Account}
				accts[st.Account] = a
			}
			a.Sessions++
			a.BytesIn += st.BytesIn
			a.BytesOut += st.BytesOut
		}
	}
	sort.Slice(r.Sessions, func(i, j int) bool { return r.Sessions[i].Since.Before(r.Sessions[j].Since) })
	// Every account with a session, a byte counted or a quota.
	for i := range cfg.Accounts {
		acct := &cfg.Accounts[i]
		c := s.meter.counters(acct.Name)
		a := accts[acct.Name]
		quota := s.meter.usage.tracked(acct.Name) || acct.Limits.TransferQuotaIn != 0 || acct.Limits.TransferQuotaOut != 0
		if a == nil && c.BytesIn == 0 && c.BytesOut == 0 && !quota {
			continue
		}
		if a == nil {
			a = &AccountStatus{Account: acct.Name}
			accts[acct.Name] = a
		}
		a.TotalIn, a.TotalOut, a.DataConns = c.BytesIn, c.BytesOut, c.Conns
		a.RateIn, a.RateOut = s.meter.rate(acct.Name)
		if quota {
			q := s.quotaInfo(acct, nil)
			a.Quota = &q
		}
	}
	for _, a := range accts {
		r.Accounts = append(r.Accounts, *a)
	}
	sort.Slice(r.Accounts, func(i, j int) bool { return r.Accounts[i].Account < r.Accounts[j].Account })
	r.Banned = s.auth.bannedList()
	return r
}

// AdminCall sends one request to the admin socket in dir.
func AdminCall(dir string, req AdminRequest) (AdminResponse, error) {
	path := filepath.Join(dir, AdminSocket)
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return AdminResponse{}, fmt.Errorf("connect to %s (is the server running, and are you root?): %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return AdminResponse{}, err
	}
	var resp AdminResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return AdminResponse{}, fmt.Errorf("read answer: %w", err)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

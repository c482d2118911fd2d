package policy

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PolicyReport is what `sluice policy show` prints: for the pre-login
// phase and for each account's post-login phase, everything the worker is
// confined by. It is built from the functions the supervisor and worker
// call (LandlockLayer1/2, PreLoginSeccomp/PostLoginSeccomp, WorkerRlimits,
// WorkerCaps), so it cannot drift from what is applied.
type PolicyReport struct {
	Source         string        `json:"source"`
	RequireSandbox bool          `json:"require_sandbox"`
	Phases         []PhaseReport `json:"phases"`
	Never          []NeverRule   `json:"never_allowed"`
}

// NeverRule is one entry of NeverAllowed.
type NeverRule struct {
	Name string `json:"syscall"`
	Why  string `json:"why"`
}

// PhaseReport is one phase of one worker.
type PhaseReport struct {
	Title        string          `json:"title"`
	Phase        string          `json:"phase"` // pre-login | post-login
	Account      string          `json:"account,omitempty"`
	When         string          `json:"when"`
	Identity     string          `json:"uid_gid"`
	Groups       string          `json:"groups"`
	Capabilities string          `json:"capabilities"`
	Descriptors  string          `json:"descriptors"`
	Landlock     []LayerReport   `json:"landlock"`
	SeccompName  string          `json:"seccomp_filter"`
	Seccomp      []SeccompReport `json:"seccomp"`
	NotAllowed   []string        `json:"not_allowed_any_more,omitempty"`
	Rlimits      []string        `json:"rlimits"`
	Limits       []string        `json:"session_limits"`
	// Access is the account's resolved roles, groups and role limits
	// (post-login phases only).
	Access *AccessReport `json:"access,omitempty"`
}

// AccessReport is what policy.Resolve made of an account.
type AccessReport struct {
	Roles   []string `json:"roles"`
	Groups  []string `json:"groups"`
	Folders []string `json:"folders"`
	Limits  []string `json:"role_limits"`
}

func accessReport(a *Account) *AccessReport {
	r := &AccessReport{Roles: a.Roles, Groups: a.Groups, Limits: a.Limits.Describe()}
	for _, f := range a.Folders {
		from := "account"
		switch {
		case f.Source != "" && f.Role != "":
			from = f.Source + ", role " + f.Role
		case f.Source != "":
			from = f.Source
		case f.Role != "":
			from = "role " + f.Role
		}
		r.Folders = append(r.Folders, fmt.Sprintf("%s → %s: %s (from %s)", f.Path, f.Dir, f.Rights, from))
	}
	return r
}

// LayerReport is one Landlock layer.
type LayerReport struct {
	Name       string       `json:"name"`
	HandledFS  []string     `json:"handled_fs"`
	HandledNet []string     `json:"handled_net"`
	Scoped     []string     `json:"scoped"`
	Paths      []PathReport `json:"paths"`
	BindPorts  string       `json:"tcp_bind,omitempty"`
	Connect    string       `json:"tcp_connect,omitempty"`
	Note       string       `json:"note,omitempty"`
}

// PathReport is one Landlock path rule.
type PathReport struct {
	Path   string   `json:"path"`
	Access []string `json:"access"`
	Why    string   `json:"why"`
}

// SeccompReport is one allow-list rule.
type SeccompReport struct {
	Name  string   `json:"syscall"`
	Group string   `json:"group"`
	Args  []string `json:"args,omitempty"`
	Why   string   `json:"why"`
}

// Report builds the policy of cfg for the named accounts (all of them
// when names is empty), in root mode.
func Report(cfg *Config, names []string) PolicyReport {
	rep := PolicyReport{Source: cfg.Source, RequireSandbox: cfg.Server.RequireSandbox}
	pre := PreLoginSpec(cfg, true)
	preRules := PreLoginSeccomp(pre, 0)
	caps := make([]string, len(WorkerCaps))
	for i, c := range WorkerCaps {
		caps[i] = capName(c)
	}
	rep.Phases = append(rep.Phases, PhaseReport{
		Title:        "pre-login (every worker)",
		Phase:        "pre-login",
		When:         "from before the first client byte until the password is accepted",
		Identity:     fmt.Sprintf("worker_uid %d / worker_gid %d", cfg.Server.WorkerUID, cfg.Server.WorkerGID),
		Groups:       "none",
		Capabilities: strings.Join(caps, ", ") + " (effective, permitted, ambient) — needed to become the account; setresuid/setresgid are pinned to the account ids below",
		Descriptors:  "the client connection and the IPC socket; no file or directory",
		Landlock:     []LayerReport{layerReport("layer 1 (all storage roots, ports)", LandlockLayer1(cfg))},
		SeccompName:  "filter 1",
		Seccomp:      seccompReport(preRules),
		Rlimits:      rlimitReport(),
		Limits:       limitReport(cfg, nil),
	})
	for _, n := range names {
		a := cfg.Account(n)
		if a == nil {
			continue
		}
		spec := PostLoginSpec(a, true)
		post := PostLoginSeccomp(spec, 0)
		var folders []string
		for _, f := range a.Folders {
			folders = append(folders, fmt.Sprintf("%s → %s (%s)", f.Path, f.Dir, f.Rights))
		}
		ph := PhaseReport{
			Access:       accessReport(a),
			Title:        "post-login: account " + a.Name,
			Phase:        "post-login",
			Account:      a.Name,
			When:         "after the password is accepted and the uid switch is verified, before the first file operation",
			Identity:     fmt.Sprintf("%d / %d (real, effective, saved)", a.UID, a.GID),
			Groups:       "none (setgroups([]))",
			Capabilities: "none: effective, permitted, inheritable and ambient sets all 0, every thread",
			Descriptors:  "the client connection, the IPC socket, one directory fd per folder: " + strings.Join(folders, "; "),
			Landlock: []LayerReport{
				layerReport("layer 1 (inherited)", LandlockLayer1(cfg)),
				layerReport("layer 2 ("+a.Name+"'s folders)", LandlockLayer2(a)),
			},
			SeccompName: "filter 2 (filter 1 stays installed: both must allow)",
			Seccomp:     seccompReport(post),
			NotAllowed:  removed(preRules, post),
			Rlimits:     rlimitReport(),
			Limits:      limitReport(cfg, a),
		}
		if !spec.Write {
			ph.SeccompName += "; read-only account: no file-changing syscalls"
		}
		rep.Phases = append(rep.Phases, ph)
	}
	for _, n := range NeverAllowed {
		rep.Never = append(rep.Never, NeverRule{n.Name, n.Why})
	}
	return rep
}

func layerReport(name string, l LandlockLayer) LayerReport {
	r := LayerReport{Name: name, HandledFS: FSAccessNames(l.HandledFS)}
	if l.HandledNet&llBindTCP != 0 {
		r.HandledNet = append(r.HandledNet, "bind_tcp")
	}
	if l.HandledNet&llConnectTCP != 0 {
		r.HandledNet = append(r.HandledNet, "connect_tcp")
	}
	if l.Scoped&llScopeSignal != 0 {
		r.Scoped = append(r.Scoped, "signal")
	}
	if l.Scoped&llScopeAbstractUnix != 0 {
		r.Scoped = append(r.Scoped, "abstract_unix_socket")
	}
	for _, p := range l.Paths {
		r.Paths = append(r.Paths, PathReport{Path: p.Path, Access: FSAccessNames(p.Access), Why: p.Why})
	}
	if l.HandledNet&llBindTCP != 0 {
		var ports []uint16
		for _, p := range l.Ports {
			if p.Access&llBindTCP != 0 {
				ports = append(ports, p.Port)
			}
		}
		r.BindPorts = portRanges(ports)
		if r.BindPorts == "" {
			r.BindPorts = "none"
		}
		r.Connect = l.ConnectNote
	} else if l.HandledNet == 0 && l.Scoped == 0 {
		r.Note = "files only; network and scopes stay as layer 1 set them"
	}
	return r
}

// portRanges renders sorted ports as "0, 50000-50100".
func portRanges(ports []uint16) string {
	var parts []string
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", ports[i], ports[j]))
		} else {
			s := strconv.Itoa(int(ports[i]))
			if ports[i] == 0 {
				s = "0 (any free port: active mode binds the local address)"
			}
			parts = append(parts, s)
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func seccompReport(rules []SyscallRule) []SeccompReport {
	order := map[string]int{GroupRuntime: 0, GroupNet: 1, GroupFSRead: 2, GroupFSWrite: 3, GroupLogin: 4}
	out := make([]SeccompReport, 0, len(rules))
	for g := 0; g < 5; g++ {
		for _, r := range rules {
			if order[r.Group] != g {
				continue
			}
			sr := SeccompReport{Name: r.Name, Group: r.Group, Why: r.Why}
			for _, a := range r.Args {
				sr.Args = append(sr.Args, FormatArgRule(a))
			}
			out = append(out, sr)
		}
	}
	return out
}

// removed lists the syscalls of pre that post no longer allows at all.
func removed(pre, post []SyscallRule) []string {
	have := map[string]bool{}
	for _, r := range post {
		have[r.Name] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, r := range pre {
		if !have[r.Name] && !seen[r.Name] {
			out = append(out, r.Name)
			seen[r.Name] = true
		}
	}
	return out
}

func rlimitReport() []string {
	var out []string
	for _, r := range WorkerRlimits {
		out = append(out, fmt.Sprintf("%s=%d", r.Name, r.Value))
	}
	return out
}

func limitReport(cfg *Config, a *Account) []string {
	l := cfg.Limits
	out := []string{
		fmt.Sprintf("max_sessions=%d", l.MaxSessions),
		fmt.Sprintf("max_sessions_per_ip=%d", l.MaxSessionsPerIP),
		fmt.Sprintf("login_timeout=%s", l.LoginTimeout),
		fmt.Sprintf("idle_timeout=%s", l.IdleTimeout),
		fmt.Sprintf("data_timeout=%s", l.DataTimeout),
		fmt.Sprintf("max_login_attempts=%d", l.MaxLoginAttempts),
		fmt.Sprintf("ban_after_failures=%d in %s → %s", l.BanAfterFailures, l.BanWindow, l.BanDuration),
	}
	if a != nil {
		m := a.MaxSessions
		if m == 0 {
			m = l.MaxSessionsPerAccount
		}
		out = append(out, fmt.Sprintf("max_sessions for %s=%d (0: unlimited)", a.Name, m))
		if len(a.AllowFrom) > 0 {
			var nets []string
			for _, p := range a.AllowFrom {
				nets = append(nets, p.String())
			}
			out = append(out, "allow_from="+strings.Join(nets, ","))
		}
	}
	return out
}

func capName(c uintptr) string {
	switch c {
	case unix.CAP_SETUID:
		return "CAP_SETUID"
	case unix.CAP_SETGID:
		return "CAP_SETGID"
	}
	return fmt.Sprintf("cap %d", c)
}

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/sluice-ftp/sluice/bpf"
	"github.com/sluice-ftp/sluice/daemon"
	"io"
	"path/filepath"
	"strings"

	"github.com/sluice-ftp/sluice/policy"
)

// cmdPolicy is `sluice policy show|check`: the worker sandbox, printed from
// the same data the supervisor and the workers apply.
func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: sluice policy show [--config FILE] [--account NAME] [--json]\n       sluice policy check [--config FILE] [--json]\n")
		return 2
	}
	fs := flag.NewFlagSet("policy "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (TOML); without it, the embedded demo default")
	asJSON := fs.Bool("json", false, "print JSON")
	var account *string
	if args[0] == "show" {
		account = fs.String("account", "", "only this account")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var cfg *policy.Config
	if *cfgPath == "" {
		cfg = policy.Default()
	} else {
		var err error
		if cfg, err = policy.Load(*cfgPath); err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 1
		}
	}
	switch args[0] {
	case "show":
		return policyShow(cfg, *account, *asJSON, stdout, stderr)
	case "check":
		return policyCheck(cfg, *asJSON, stdout)
	}
	fmt.Fprintf(stderr, "sluice policy: unknown subcommand %q (show, check)\n", args[0])
	return 2
}

func policyShow(cfg *policy.Config, account string, asJSON bool, stdout, stderr io.Writer) int {
	var names []string
	for _, a := range cfg.Accounts {
		if account == "" || a.Name == account {
			names = append(names, a.Name)
		}
	}
	if account != "" && len(names) == 0 {
		fmt.Fprintf(stderr, "sluice policy show: no account %q in %s\n", account, cfg.Source)
		return 1
	}
	rep := policy.Report(cfg, names)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	w := &textOut{w: stdout}
	w.f("Worker sandbox policy — %s\n", cfg.Source)
	w.f("(derived from the tables the supervisor and the workers apply; root mode. In developer mode —\n")
	w.f(" supervisor not root — there is no uid switch and no capabilities to drop; the rest is the same.)\n")
	w.f("require_sandbox = %v: %s\n", rep.RequireSandbox, ifText(rep.RequireSandbox,
		"the server refuses to start where this cannot be enforced",
		"DOWNGRADED: the server starts anyway and warns on every session"))
	for _, ph := range rep.Phases {
		w.f("\n═══ %s ═══\n", ph.Title)
		w.f("  when:          %s\n", ph.When)
		w.f("  uid/gid:       %s\n", ph.Identity)
		w.f("  groups:        %s\n", ph.Groups)
		w.f("  capabilities:  %s\n", ph.Capabilities)
		w.f("  no_new_privs:  yes, every thread;  dumpable: no\n")
		w.f("  descriptors:   %s\n", ph.Descriptors)
		if a := ph.Access; a != nil {
			w.f("  roles:         %s\n", orNone(a.Roles))
			w.f("  member of:     %s\n", orNone(a.Groups))
			for _, f := range a.Folders {
				w.f("  folder:        %s\n", f)
			}
			if len(a.Limits) > 0 {
				w.f("  role limits:   %s\n", strings.Join(a.Limits, "; "))
			}
		}
		for _, l := range ph.Landlock {
			w.f("  Landlock %s (handles: files=%s; net=%s; scoped=%s)\n", l.Name, strings.Join(l.HandledFS, ","), orNone(l.HandledNet), orNone(l.Scoped))
			if len(l.Paths) == 0 {
				w.f("    (no file rule)\n")
			}
			for _, p := range l.Paths {
				w.f("    path %-40s %s\n", p.Path, strings.Join(p.Access, ","))
				w.f("         %-40s ↳ %s\n", "", p.Why)
			}
			if l.BindPorts != "" {
				w.f("    tcp bind:    %s\n", l.BindPorts)
			}
			if l.Connect != "" {
				w.f("    tcp connect: %s\n", l.Connect)
			}
			if l.Note != "" {
				w.f("    note: %s\n", l.Note)
			}
		}
		w.f("  seccomp %s: default EPERM, logged; clone3 → ENOSYS; other architectures killed; %d rules\n", ph.SeccompName, len(ph.Seccomp))
		group := ""
		for _, r := range ph.Seccomp {
			if r.Group != group {
				group = r.Group
				w.f("    [%s]\n", group)
			}
			w.f("      %-22s %s\n", r.Name, r.Why)
			if len(r.Args) > 0 {
				w.f("      %-22s   only if %s\n", "", strings.Join(r.Args, " and "))
			}
		}
		if len(ph.NotAllowed) > 0 {
			w.f("    not allowed here (allowed in the previous phase): %s\n", strings.Join(ph.NotAllowed, ", "))
		}
		w.f("  rlimits:       %s\n", strings.Join(ph.Rlimits, "; "))
		w.f("  session limits: %s\n", strings.Join(ph.Limits, "; "))
	}
	w.f("\nNever allowed, in any phase (absent from every allow-list):\n")
	for _, n := range rep.Never {
		w.f("  %-18s %s\n", n.Name, n.Why)
	}
	return 0
}

func policyCheck(cfg *policy.Config, asJSON bool, stdout io.Writer) int {
	inv := policy.Probe()
	missing := policy.MissingRequired(inv)
	code := 0
	if len(missing) > 0 && cfg.Server.RequireSandbox {
		code = 1
	}
	acct := accountingCheck(cfg)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			RequireSandbox bool               `json:"require_sandbox"`
			Invariants     []policy.Invariant `json:"invariants"`
			Missing        []string           `json:"missing_required"`
			Accounting     accountingReport   `json:"accounting"`
		}{cfg.Server.RequireSandbox, inv, missing, acct})
		return code
	}
	for _, i := range inv {
		mark := "ENFORCED "
		if !i.Enforced {
			mark = "NOT      "
			if i.Required {
				mark = "MISSING  "
			}
		}
		req := "optional"
		if i.Required {
			req = "required"
		}
		fmt.Fprintf(stdout, "%s %-36s (%s) %s\n", mark, i.Name, req, i.Detail)
	}
	switch {
	case len(missing) == 0:
		fmt.Fprintln(stdout, "\nEvery required invariant can be enforced here.")
	case cfg.Server.RequireSandbox:
		fmt.Fprintf(stdout, "\n%d required invariant(s) cannot be enforced: `sluice serve` refuses to start with require_sandbox = true.\n", len(missing))
	default:
		fmt.Fprintf(stdout, "\n%d required invariant(s) cannot be enforced; require_sandbox = false: the server starts and warns on every session.\n", len(missing))
	}
	fmt.Fprintf(stdout, "\nAccounting (accounting.mode = %q): %s\n", acct.Configured, acct.Would)
	if acct.Running != "" {
		fmt.Fprintf(stdout, "The running daemon counts in mode: %s\n", acct.Running)
	}
	return code
}

// accountingReport is what `policy check` says about accounting: the
// configured mode, what a start here would use, and the running daemon's.
type accountingReport struct {
	Configured string `json:"configured"`
	Mode       string `json:"mode"`              // what a start would use: ebpf or userspace ("" if it would refuse)
	Would      string `json:"would"`             // explained
	Running    string `json:"running,omitempty"` // the running daemon's mode, if one answers
}

func accountingCheck(cfg *policy.Config) accountingReport {
	r := accountingReport{Configured: cfg.Accounting.Mode}
	var why error
	if cfg.Accounting.Mode != policy.AcctUserspace {
		root := cfg.Accounting.Cgroup
		probe := root
		if root == "" {
			for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
				if bpf.IsCgroup2(p) {
					root, probe = filepath.Join(p, "sluice"), p
					break
				}
			}
		}
		if root == "" {
			why = fmt.Errorf("%w: no cgroup v2 mount", bpf.ErrUnavailable)
		} else {
			if !bpf.IsCgroup2(probe) {
				probe = filepath.Dir(probe) // made at start
			}
			why = bpf.Probe(bpf.Options{CgroupPath: probe, PinDir: cfg.Accounting.PinDir})
		}
		if why == nil {
			r.Mode, r.Would = policy.AcctEBPF, fmt.Sprintf("eBPF: programs would attach to %s, maps pinned in %s", root, cfg.Accounting.PinDir)
		}
	} else {
		why = errors.New("configured")
	}
	if r.Mode == "" {
		if cfg.Accounting.Mode == policy.AcctEBPF {
			r.Would = "sluice serve would refuse to start: " + why.Error()
		} else {
			r.Mode, r.Would = policy.AcctUserspace, "user space, from the workers' byte counts ("+why.Error()+")"
		}
	}
	if st, err := daemon.AdminCall(cfg.Server.StateDir, daemon.AdminRequest{Op: "status"}); err == nil && st.Server != nil {
		r.Running = st.Server.Accounting
		if st.Server.AccountingNote != "" {
			r.Running += " (" + st.Server.AccountingNote + ")"
		}
	}
	return r
}

type textOut struct{ w io.Writer }

func (t *textOut) f(format string, args ...any) { fmt.Fprintf(t.w, format, args...) }

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

func ifText(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

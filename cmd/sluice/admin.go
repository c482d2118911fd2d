package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluice-ftp/sluice/daemon"
	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/policy"
)

// cmdAdmin is `sluice status`, `sluice kick` and `sluice ban`: requests to
// the running server's admin socket (root only), found through the
// config's state_dir.
func cmdAdmin(op string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(op, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the server's configuration file (for its state_dir); default: the embedded one")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	banFor := fs.String("for", "", "ban: how long (e.g. 1h); default the config's ban_duration")
	var target string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
	}
	var cfg *policy.Config
	if *cfgPath == "" {
		cfg = policy.Default()
	} else {
		var err error
		if cfg, err = policy.Load(*cfgPath); err != nil {
			fmt.Fprintf(stderr, "sluice %s: %v\n", op, err)
			return 1
		}
	}
	req := daemon.AdminRequest{Op: op}
	switch op {
	case "kick":
		if target == "" {
			fmt.Fprintln(stderr, "usage: sluice kick SESSION-ID|ACCOUNT [--config FILE]")
			return 2
		}
		// Session ids look like "3f9848-12"; anything else is an account.
		if i := strings.LastIndexByte(target, '-'); i > 0 && isDigits(target[i+1:]) && len(target[:i]) == 6 {
			req.Session = target
		} else {
			req.Account = target
		}
	case "ban":
		if target == "" {
			fmt.Fprintln(stderr, "usage: sluice ban IP [--for DURATION] [--config FILE]")
			return 2
		}
		req.IP, req.For = target, *banFor
	}
	resp, err := daemon.AdminCall(cfg.Server.StateDir, req)
	if err != nil {
		fmt.Fprintf(stderr, "sluice %s: %v\n", op, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(resp)
		return 0
	}
	switch op {
	case "kick":
		fmt.Fprintf(stdout, "kicked %d session(s)\n", resp.Kicked)
	case "ban":
		fmt.Fprintf(stdout, "%s banned\n", target)
	case "status":
		printStatus(stdout, resp)
	}
	return 0
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func printStatus(w io.Writer, r daemon.AdminResponse) {
	if r.Server != nil {
		fmt.Fprintf(w, "sluice pid %d, up %s, config %s; %d sessions, %d idle workers; accounting: %s\n",
			r.Server.PID, time.Since(r.Server.Started).Round(time.Second), r.Server.Config, len(r.Sessions), r.Idle, r.Server.Accounting)
		if r.Server.AccountingNote != "" {
			fmt.Fprintf(w, "  (not eBPF: %s)\n", r.Server.AccountingNote)
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tACCOUNT\tCLIENT\tPHASE\tPID\tFOR\tIN\tOUT\tLAST FILE")
	for _, s := range r.Sessions {
		acct := s.Account
		if acct == "" {
			acct = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, acct, s.Remote, s.Phase, s.PID,
			time.Since(s.Since).Round(time.Second), humanBytes(s.BytesIn), humanBytes(s.BytesOut), s.LastPath)
	}
	tw.Flush()
	var running []daemon.SessionStatus
	for _, s := range r.Sessions {
		if s.Current != nil {
			running = append(running, s)
		}
	}
	if len(running) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SESSION\tTRANSFER\tDONE\tRATE\tFILE")
		for _, s := range running {
			c := s.Current
			done := humanBytes(c.Bytes)
			if c.Size > 0 {
				done += fmt.Sprintf(" of %s (%.0f%%)", humanBytes(c.Size), 100*float64(c.Bytes)/float64(c.Size))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/s\t%s\n", s.ID, c.Command, done, humanBytes(int64(c.Rate)), c.Path)
		}
		tw.Flush()
	}
	if len(r.Accounts) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tSESSIONS\tTOTAL IN\tTOTAL OUT\tRATE IN\tRATE OUT\tQUOTA")
		for _, a := range r.Accounts {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s/s\t%s/s\t%s\n", a.Account, a.Sessions, humanBytes(int64(a.TotalIn)), humanBytes(int64(a.TotalOut)),
				humanBytes(int64(a.RateIn)), humanBytes(int64(a.RateOut)), quotaSummary(a.Quota))
		}
		tw.Flush()
	}
	if len(r.Banned) > 0 {
		fmt.Fprintln(w)
		for _, b := range r.Banned {
			fmt.Fprintf(w, "banned %s for %s more\n", b.IP, time.Until(b.Until).Round(time.Second))
		}
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// cmdReload is `sluice reload [--binary]`: SIGHUP (configuration) or
// SIGUSR2 (binary upgrade) to the running supervisor, found through its
// admin socket.
func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the server's configuration file (for its state_dir); default: the embedded one")
	binary := fs.Bool("binary", false, "start the installed binary as the new supervisor, handing over the listeners; sessions finish on the old one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := policy.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = policy.Load(*cfgPath); err != nil {
			fmt.Fprintf(stderr, "sluice reload: %v\n", err)
			return 1
		}
	}
	resp, err := daemon.AdminCall(cfg.Server.StateDir, daemon.AdminRequest{Op: "status"})
	if err != nil || resp.Server == nil {
		fmt.Fprintf(stderr, "sluice reload: %v\n", err)
		return 1
	}
	sig, what := syscall.SIGHUP, "configuration reload"
	if *binary {
		sig, what = syscall.SIGUSR2, "binary upgrade"
	}
	if err := syscall.Kill(resp.Server.PID, sig); err != nil {
		fmt.Fprintf(stderr, "sluice reload: signal pid %d: %v\n", resp.Server.PID, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s requested from pid %d; the server log says how it went\n", what, resp.Server.PID)
	return 0
}

// quotaSummary renders an account's quotas in one cell.
func quotaSummary(q *ipc.QuotaInfo) string {
	if q == nil {
		return "-"
	}
	var parts []string
	if q.BytesLimit > 0 {
		parts = append(parts, fmt.Sprintf("%s of %s (%d%%)", humanBytes(q.BytesUsed), humanBytes(q.BytesLimit), q.BytesUsed*100/q.BytesLimit))
	}
	if q.FilesLimit > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d files", q.FilesUsed, q.FilesLimit))
	}
	if q.InLimit > 0 {
		parts = append(parts, fmt.Sprintf("up %s of %s/%s", humanBytes(q.InUsed), humanBytes(q.InLimit), q.Period))
	}
	if q.OutLimit > 0 {
		parts = append(parts, fmt.Sprintf("down %s of %s/%s", humanBytes(q.OutUsed), humanBytes(q.OutLimit), q.Period))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

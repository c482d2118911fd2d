package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-ftp/sluice/bench"
)

const benchUsage = `Usage: sluice bench [flags] URL

Measures an FTP or FTPS server — any server, not only sluice. URL is
ftp://user:pass@host:port/dir, ftps://… (implicit TLS), ftpes://… (AUTH TLS)
or raw://host:port (a server that just sends a file on connect: a baseline).
Paths below are relative to /dir, which must hold:
  -file (retr, ftps-retr), -fanout-file (fanout), -small-dir (small),
  -list-dir (list, mlsd), a writable -upload-dir (stor).
Workloads: retr stor fanout login-seq login-par small list mlsd idle ftps-retr
Downloads are spliced to /dev/null and uploads sent with sendfile from a
page-cached file, so the client is not the limit; its own CPU is reported.
Server CPU and memory need the server on this machine: -server-cgroup or
-server-pid.

Flags:
`

func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	def := bench.DefaultConfig()
	workloads := fs.String("w", "retr,stor,fanout,login-seq,login-par,small,list,mlsd,idle,ftps-retr", "workloads, comma separated (those that do not apply are skipped)")
	quick := fs.Bool("quick", false, "the reduced set: fewer fan-out points, shorter timed runs, 512 MiB upload")
	reps := fs.Int("reps", 3, "repetitions of each workload (the report shows medians)")
	name := fs.String("name", "", "server label in the report (default: host:port)")
	file := fs.String("file", def.File, "large file for retr and ftps-retr")
	fanFile := fs.String("fanout-file", def.FanoutFile, "file every fan-out client downloads")
	fanSmall := fs.String("fanout-small-file", "", "smaller file used above -fanout-big-max clients (default: the same file)")
	fanBigMax := fs.Int("fanout-big-max", def.FanoutBigMax, "client count above which -fanout-small-file is used")
	clients := fs.String("clients", "1-256", "fan-out client counts: N,M,… or LO-HI (powers of two)")
	smallDir := fs.String("small-dir", def.SmallDir, "directory of small files")
	listDir := fs.String("list-dir", def.ListDir, "directory with many entries")
	uploadDir := fs.String("upload-dir", def.UploadDir, "writable directory for stor (the file is deleted afterwards)")
	uploadSize := fs.String("upload-size", "", "bytes to upload, e.g. 2G, 512M (default 2G, quick 512M)")
	tlsURL := fs.String("tls-url", "", "the same server with TLS, for ftps-retr (default: URL with scheme ftpes, when URL is ftp://)")
	insecure := fs.Bool("insecure", false, "do not verify the server's TLS certificate (self-signed test servers)")
	loginPar := fs.Int("login-parallel", def.LoginParallel, "parallel clients of login-par")
	idle := fs.Int("idle-sessions", 0, "sessions held open by idle (default 50, quick 16)")
	cg := fs.String("server-cgroup", "", "cgroup v2 directory of the server under test (measures its CPU and memory, forked sessions included)")
	pid := fs.Int("server-pid", 0, "pid of the server under test (its /proc tree; misses re-parented sessions)")
	jsonOut := fs.String("json", "", "write the report as JSON to this file (- for stdout)")
	mdOut := fs.String("md", "", "write the Markdown table to this file instead of stdout")
	svgDir := fs.String("svg", "", "write charts (bench-fanout.svg, bench-throughput.svg, bench-cpu.svg) into this directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	t, err := bench.ParseTarget(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "sluice bench: %v\n", err)
		return 2
	}
	if *name != "" {
		t.Name = *name
	}
	cfg := def
	if *quick {
		cfg = bench.QuickConfig()
	}
	cfg.File, cfg.FanoutFile, cfg.FanoutSmallFile, cfg.FanoutBigMax = *file, *fanFile, *fanSmall, *fanBigMax
	cfg.SmallDir, cfg.ListDir, cfg.UploadDir, cfg.LoginParallel = *smallDir, *listDir, *uploadDir, *loginPar
	if flagSet(fs, "clients") || !*quick {
		if cfg.Clients, err = bench.ParseClients(*clients); err != nil {
			fmt.Fprintf(stderr, "sluice bench: %v\n", err)
			return 2
		}
	}
	if *uploadSize != "" {
		if cfg.UploadSize, err = parseSize(*uploadSize); err != nil {
			fmt.Fprintf(stderr, "sluice bench: -upload-size: %v\n", err)
			return 2
		}
	}
	if *idle > 0 {
		cfg.IdleSessions = *idle
	}
	if *insecure && t.TLSConfig != nil {
		t.TLSConfig.InsecureSkipVerify = true
	}
	r := &bench.Runner{Target: t, Cfg: cfg, Progress: bench.NewProgress(stderr)}
	switch {
	case *tlsURL != "":
		if r.TLSTarget, err = bench.ParseTarget(*tlsURL); err != nil {
			fmt.Fprintf(stderr, "sluice bench: -tls-url: %v\n", err)
			return 2
		}
	case t.TLS != bench.TLSNone:
		r.TLSTarget = t
	case !t.Raw:
		tt := *t
		tt.TLS = bench.TLSExplicit
		host, _, _ := net.SplitHostPort(t.Addr)
		tt.TLSConfig = &tls.Config{ServerName: host}
		r.TLSTarget = &tt
	}
	if r.TLSTarget != nil && *insecure {
		if r.TLSTarget.TLSConfig == nil {
			r.TLSTarget.TLSConfig = &tls.Config{}
		}
		r.TLSTarget.TLSConfig.InsecureSkipVerify = true
	}
	cpuMethod := "none: the server is not measured (give -server-cgroup or -server-pid)"
	switch {
	case *cg != "":
		r.Probe = bench.CgroupProbe{Dir: *cg}
	case *pid > 0:
		r.Probe = bench.TreeProbe{Pid: *pid}
	}
	if r.Probe != nil {
		if _, err := r.Probe.CPU(); err != nil {
			fmt.Fprintf(stderr, "sluice bench: server probe: %v\n", err)
			return 2
		}
		cpuMethod = r.Probe.Describe()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var results []bench.Result
	for rep := 1; rep <= *reps && ctx.Err() == nil; rep++ {
		for _, w := range strings.Split(*workloads, ",") {
			w = strings.TrimSpace(w)
			if w == "" || !r.Applies(w) {
				continue
			}
			for _, res := range r.Run(ctx, w, rep) {
				results = append(results, res)
				line := fmt.Sprintf("rep %d %-14s %10s %-8s client CPU %.2fs", rep, res.Workload, bench.FormatValue(res.Value), res.Unit, res.ClientCPU)
				if res.ServerCPU >= 0 {
					line += fmt.Sprintf(", server CPU %.2fs", res.ServerCPU)
				}
				if res.Err != "" {
					line += "  ERROR: " + res.Err
				}
				fmt.Fprintln(stderr, line)
			}
		}
	}
	rep := bench.NewReport(bench.Meta{
		Date:      time.Now().UTC().Format(time.RFC3339),
		Command:   "sluice bench " + strings.Join(args, " "),
		Kernel:    kernelRelease(),
		GoVersion: runtime.Version(),
		Reps:      *reps,
		CPUMethod: cpuMethod,
	}, []string{t.Name}, results)
	code := 0
	for _, s := range rep.Summaries {
		if s.N == 0 {
			code = 1
		}
	}
	md := stdout
	if *jsonOut == "-" && *mdOut == "" {
		md = io.Discard // stdout is the JSON's
	}
	if *mdOut != "" {
		f, err := os.Create(*mdOut)
		if err != nil {
			fmt.Fprintf(stderr, "sluice bench: %v\n", err)
			return 1
		}
		defer f.Close()
		md = f
	}
	fmt.Fprintf(md, "Server CPU: %s.\n\n", cpuMethod)
	if err := rep.WriteMarkdown(md); err != nil {
		fmt.Fprintf(stderr, "sluice bench: %v\n", err)
		return 1
	}
	if *jsonOut != "" {
		if err := writeTo(*jsonOut, stdout, rep.WriteJSON); err != nil {
			fmt.Fprintf(stderr, "sluice bench: %v\n", err)
			return 1
		}
	}
	if *svgDir != "" {
		for name, svg := range map[string]string{
			"bench-fanout.svg": rep.FanoutSVG(), "bench-throughput.svg": rep.ThroughputSVG(), "bench-cpu.svg": rep.CPUSVG(),
		} {
			if err := os.WriteFile(filepath.Join(*svgDir, name), []byte(svg), 0o644); err != nil {
				fmt.Fprintf(stderr, "sluice bench: %v\n", err)
				return 1
			}
		}
	}
	return code
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func writeTo(path string, stdout io.Writer, fn func(io.Writer) error) error {
	if path == "-" {
		return fn(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parseSize reads 2G, 512M, 4K or a plain byte count (binary units).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want N, NK, NM or NG", s)
	}
	return n * mult, nil
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

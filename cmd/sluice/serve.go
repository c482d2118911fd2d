package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sluice-ftp/sluice/daemon"
	"github.com/sluice-ftp/sluice/policy"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (TOML); without it, the embedded demo default")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var cfg *policy.Config
	if *cfgPath == "" {
		cfg = policy.Default()
	} else {
		var err error
		cfg, err = policy.Load(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "sluice: %v\n", err)
			return 1
		}
	}
	if *check {
		fmt.Fprintf(stdout, "%s: configuration OK (%d accounts, listening on %s)\n",
			cfg.Source, len(cfg.Accounts), listenList(cfg))
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		return 0
	}
	srv, err := daemon.New(cfg, daemon.Options{ConfigPath: *cfgPath, Stdout: stdout})
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = srv.Run(ctx, func(addrs []string) {
		if *cfgPath != "" {
			return
		}
		// The embedded default is for trying sluice out: say how.
		fmt.Fprintf(stderr, "\nsluice is running with the embedded demo configuration (loopback only).\n"+
			"  curl ftp://demo:demo@127.0.0.1:2121/\n"+
			"  curl -T file ftp://demo:demo@127.0.0.1:2121/\n"+
			"  lftp -u demo,demo 127.0.0.1 -p 2121\n"+
			"  curl 'ftp://demo:demo@[::1]:2121/'\n"+
			"Files are served from %s. Stop with Ctrl-C.\n\n", demoDir(cfg))
	})
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return 1
	}
	return 0
}

func demoDir(cfg *policy.Config) string {
	if a := cfg.Account("demo"); a != nil && len(a.Folders) > 0 {
		return a.Folders[0].Dir
	}
	return "?"
}

func cmdWorker() int { return daemon.RunWorker() }

func listenList(cfg *policy.Config) string {
	var out []string
	for _, ap := range cfg.FTP.Listen {
		out = append(out, ap.String())
	}
	return strings.Join(out, ", ")
}

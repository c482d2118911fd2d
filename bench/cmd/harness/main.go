// Command harness is `make bench` and `make bench-quick`: it compares
// sluice with the peers installed by bench/install-peers.sh and a raw
// sendfile baseline, and writes docs/benchmarks.md and the charts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sluice-ftp/sluice/bench/harness"
)

func main() {
	// The baseline server is this binary, started again in its cgroup.
	if len(os.Args) == 4 && os.Args[1] == "-serve-raw" {
		if err := harness.ServeRaw(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintf(os.Stderr, "serve-raw: %v\n", err)
			os.Exit(1)
		}
		return
	}
	quick := flag.Bool("quick", false, "the reduced set (bench-quick)")
	reps := flag.Int("reps", 0, "repetitions (default 5, quick 2)")
	servers := flag.String("servers", "sluice,vsftpd,proftpd,pure-ftpd,baseline", "servers to compare; the first is the subject of the ratios")
	sluiceBin := flag.String("sluice", "bin/sluice", "sluice binary")
	peers := flag.String("peers", "/var/lib/sluice-bench/peers", "where install-peers.sh unpacked the peers")
	data := flag.String("data", "/var/lib/sluice-bench/data", "data set directory (the bench account's home)")
	user := flag.String("user", "sluicebench", "account every server serves")
	pass := flag.String("pass", "sluicebench", "its password")
	out := flag.String("out", "docs/benchmarks.md", "page to write (charts and JSON go beside it)")
	render := flag.String("render", "", "measure nothing: render the page and charts again from this bench-results.json")
	flag.Parse()
	if *render != "" {
		r, err := harness.ReadReport(*render)
		if err != nil {
			fatal(err)
		}
		if err := harness.WriteDocs(r, *out); err != nil {
			fatal(err)
		}
		fmt.Printf("wrote %s from %s\n", *out, *render)
		return
	}

	o := harness.FullOptions()
	if *quick {
		o = harness.QuickOptions()
	}
	if *reps > 0 {
		o.Reps = *reps
	}
	o.Servers = strings.Split(*servers, ",")
	o.Peers, o.Data, o.User, o.Pass = *peers, *data, *user, *pass
	var err error
	if o.Sluice, err = filepath.Abs(*sluiceBin); err != nil {
		fatal(err)
	}
	if o.Self, err = os.Executable(); err != nil {
		fatal(err)
	}
	target := "bench"
	if *quick {
		target = "bench-quick"
	}
	o.Command = "make " + target + "  # go run ./bench/cmd/harness " + strings.Join(os.Args[1:], " ")
	o.Log, o.Stderr = os.Stdout, os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r, err := harness.Run(ctx, o)
	if err != nil {
		fatal(err)
	}
	if err := harness.WriteDocs(r, *out); err != nil {
		fatal(err)
	}
	if err := r.WriteMarkdown(os.Stdout); err != nil {
		fatal(err)
	}
	fmt.Printf("\nwrote %s\n", *out)
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "harness: %v\n", err)
	os.Exit(1)
}

package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/sluice-ftp/sluice/datapath"
)

// cmdVerify recomputes the XXH64 of files (directories are walked) and
// compares it with the digest recorded at upload, to find bit rot.
// Exit status: 0 all recorded digests match, 1 a mismatch (or, with
// --strict, a file without a valid record), 2 usage or I/O errors.
func cmdVerify(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("verify", flag.ContinueOnError)
	fl.SetOutput(stderr)
	quiet := fl.Bool("quiet", false, "print mismatches and errors only")
	strict := fl.Bool("strict", false, "fail on files without a valid digest record too")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice verify [--quiet] [--strict] PATH...")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return 2
	}
	var files []string
	var total int64
	status := 0
	for _, root := range fl.Args() {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if datapath.Reserved(d.Name()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					total += fi.Size()
				}
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "sluice verify: %v\n", err)
			status = 2
		}
	}
	bar := newProgress(stderr, total)
	var ok, bad, none int
	for _, p := range files {
		base := bar.done
		res, err := datapath.Verify(p, func(n int64) { bar.set(base + n) })
		bar.set(base + res.Size)
		switch {
		case err != nil:
			bar.clear()
			fmt.Fprintf(stderr, "ERROR     %s: %v\n", p, err)
			status = 2
		case res.Status == "mismatch":
			bad++
			bar.clear()
			fmt.Fprintf(stdout, "MISMATCH  %s  recorded %016x  actual %016x\n", p, res.Stored, res.Actual)
			status = max(status, 1)
		case res.Status == "no-record":
			none++
			if !*quiet || *strict {
				bar.clear()
				fmt.Fprintf(stdout, "NO-RECORD %s\n", p)
			}
			if *strict {
				status = max(status, 1)
			}
		default:
			ok++
			if !*quiet {
				bar.clear()
				fmt.Fprintf(stdout, "OK        %s  %016x\n", p, res.Actual)
			}
		}
	}
	bar.clear()
	if !*quiet {
		fmt.Fprintf(stdout, "%d ok, %d mismatched, %d without a record\n", ok, bad, none)
	}
	return status
}

// progress draws a one-line bar on stderr when it is a terminal.
type progress struct {
	w     io.Writer
	tty   bool
	total int64
	done  int64
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, total int64) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, total: total, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *progress) set(n int64) {
	p.done = n
	if !p.tty || time.Since(p.last) < 100*time.Millisecond || p.total == 0 {
		return
	}
	p.last = time.Now()
	const width = 40
	k := int(int64(width) * min(n, p.total) / p.total)
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%% of %d MiB", strings.Repeat("#", k), strings.Repeat(".", width-k),
		100*float64(min(n, p.total))/float64(p.total), p.total>>20)
	p.shown = true
}

func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
		p.last = time.Time{}
	}
}

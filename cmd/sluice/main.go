// Command sluice is the whole server in one binary: the supervisor
// (`serve`), the session worker it re-executes (`worker`), and the
// operator's tools (`user`, `version`).
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

const usage = `sluice — a hardened, high-throughput FTP server

Usage:
  sluice serve [--config FILE] [--check]   run the server (embedded demo default without --config)
  sluice user add NAME --config FILE [--dir DIR] [--path /] [--rights LIST] [--uid N] [--gid N] [--allow-from CIDRS] [--groups LIST] [--roles LIST] [--password-stdin]
  sluice group add NAME --config FILE [--roles LIST] [--allow-from CIDRS] [--folder /vpath=DIR[:rights|@role]]...
  sluice group del|list [NAME] --config FILE
  sluice user passwd NAME --config FILE [--password-stdin]
  sluice user del NAME --config FILE
  sluice user list --config FILE
  sluice bench [flags] URL                 measure an FTP/FTPS server (sluice bench -h)
  sluice policy show [--config FILE] [--account NAME] [--json]   the worker sandbox, phase by phase
  sluice policy check [--config FILE] [--json]                    what this kernel can enforce
  sluice verify [--quiet] [--strict] PATH...   recompute stored XXH64 digests (bit rot); exit 1 on a mismatch
  sluice status [--config FILE] [--json]       live sessions and per-account usage (root, admin socket)
  sluice kick SESSION|ACCOUNT [--config FILE]  end a session, or every session of an account
  sluice ban IP [--for DURATION] [--config FILE]   refuse an address (default: ban_duration)
  sluice reload [--binary] [--config FILE]     reload the configuration, or upgrade the binary in place
  sluice man sluice.8|sluice.toml.5            print a man page (roff)
  sluice version

sluice worker is internal: the supervisor starts it for each session.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "worker":
		return cmdWorker()
	case "user":
		return cmdUser(args[1:], stdin, stdout, stderr)
	case "group":
		return cmdGroup(args[1:], stdout, stderr)
	case "policy":
		return cmdPolicy(args[1:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	case "verify":
		return cmdVerify(args[1:], stdout, stderr)
	case "status", "kick", "ban":
		return cmdAdmin(args[0], args[1:], stdout, stderr)
	case "reload":
		return cmdReload(args[1:], stdout, stderr)
	case "man":
		return cmdMan(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "sluice %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
	return 2
}

package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseEditArgs parses the arguments of `sluice user|group SUB`: the name
// may come before or after the flags, --config is required, and every
// subcommand but list needs a name. noun is what the name names
// ("account", "group") for the messages. ok is false when the caller
// should exit 2 (the message has been printed).
func parseEditArgs(fs *flag.FlagSet, cfgPath *string, cmd, sub, noun string, args []string, stderr io.Writer) (name string, ok bool) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if *cfgPath == "" {
		fmt.Fprintf(stderr, "sluice %s %s: --config FILE is required (%ss are kept in the config file)\n", cmd, sub, noun)
		return "", false
	}
	if sub != "list" && name == "" {
		fmt.Fprintf(stderr, "sluice %s %s: which %s? (sluice %s %s NAME --config FILE)\n", cmd, sub, noun, cmd, sub)
		return "", false
	}
	return name, true
}

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/sluice-ftp/sluice/policy"
)

// cmdUser edits the accounts of a config file: `sluice user add|passwd|del|list`.
func cmdUser(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: sluice user add|passwd|del|list NAME --config FILE\n")
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file to edit (required)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	var dir, vpath, rights, allow, groups, roles *string
	var uid, gid *uint
	var maxSess *int
	if sub == "add" {
		dir = fs.String("dir", "", "storage directory of the account's folder (required)")
		vpath = fs.String("path", "/", "virtual path of that folder")
		rights = fs.String("rights", "all", "comma-separated rights: list,read,write (= create,overwrite,append),delete,rename,mkdir or all")
		allow = fs.String("allow-from", "", "comma-separated CIDR networks the account may log in from (default: any)")
		uid = fs.Uint("uid", policy.DefaultUID, "system uid of the account's sessions (when run as root)")
		gid = fs.Uint("gid", policy.DefaultGID, "system gid of the account's sessions")
		maxSess = fs.Int("max-sessions", 0, "maximum concurrent sessions (0: the server default)")
		groups = fs.String("groups", "", "comma-separated groups the account belongs to (then --dir is optional)")
		roles = fs.String("roles", "", "comma-separated roles of the account")
	}
	name, ok := parseEditArgs(fs, cfgPath, "user", sub, "account", args, stderr)
	if !ok {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "sluice user %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "list":
		accts, err := policy.ListAccounts(*cfgPath)
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tUID:GID\tSTATE\tFOLDERS")
		for _, a := range accts {
			state := "enabled"
			if a.Disabled {
				state = "disabled"
			}
			var folders []string
			for _, f := range a.Folders {
				folders = append(folders, fmt.Sprintf("%s=%s (%s)", f.Path, f.Dir, f.Rights))
			}
			fmt.Fprintf(tw, "%s\t%d:%d\t%s\t%s\n", a.Name, a.UID, a.GID, state, strings.Join(folders, "; "))
		}
		tw.Flush()
		return 0
	case "del":
		if err := policy.DeleteAccount(*cfgPath, name); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "account %s deleted from %s; send SIGHUP to a running server to apply\n", name, *cfgPath)
		return 0
	case "add", "passwd":
		pw, err := readPassword(stdin, stderr, *pwStdin)
		if err != nil {
			return fail(err)
		}
		phc, err := policy.HashPassword(pw)
		if err != nil {
			return fail(err)
		}
		if sub == "passwd" {
			if err := policy.SetPassword(*cfgPath, name, phc); err != nil {
				return fail(err)
			}
			fmt.Fprintf(stdout, "password of %s changed in %s; send SIGHUP to a running server to apply\n", name, *cfgPath)
			return 0
		}
		if *dir == "" && *groups == "" {
			fmt.Fprintln(stderr, "sluice user add: --dir DIR is required (the account's storage directory), unless --groups gives it folders")
			return 2
		}
		spec := policy.AccountSpec{
			Name: name, Password: phc, UID: uint32(*uid), GID: uint32(*gid), MaxSessions: *maxSess,
			Groups: splitList(*groups), Roles: splitList(*roles),
		}
		if *dir != "" {
			spec.Folders = []policy.FolderSpec{{Path: *vpath, Dir: *dir, Rights: splitList(*rights)}}
		}
		spec.AllowFrom = splitList(*allow)
		if err := policy.AddAccount(*cfgPath, spec); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "account %s added to %s; send SIGHUP to a running server to apply\n", name, *cfgPath)
		return 0
	}
	fmt.Fprintf(stderr, "sluice user: unknown subcommand %q (add, passwd, del, list)\n", sub)
	return 2
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// readPassword reads a new password: from the terminal twice without echo,
// or one line of stdin with --password-stdin (for scripts).
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password")
		}
		return pw, nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("standard input is not a terminal: use --password-stdin")
	}
	fmt.Fprint(stderr, "New password: ")
	a, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(stderr, "Repeat password: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords do not match")
	}
	if len(a) == 0 {
		return "", errors.New("empty password")
	}
	return string(a), nil
}

package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/sluice-ftp/sluice/policy"
)

// folderFlags collects repeated --folder /vpath=DIR[:rights|@role].
type folderFlags []policy.GroupFolderSpec

func (f *folderFlags) String() string { return fmt.Sprint(len(*f)) }

func (f *folderFlags) Set(s string) error {
	vp, rest, ok := strings.Cut(s, "=")
	if !ok || vp == "" || rest == "" {
		return fmt.Errorf("%q: want /vpath=DIR, /vpath=DIR:rights,… or /vpath=DIR@role", s)
	}
	spec := policy.GroupFolderSpec{Path: vp, Dir: rest}
	if d, role, ok := strings.Cut(rest, "@"); ok {
		spec.Dir, spec.Role = d, role
	} else if d, rights, ok := strings.Cut(rest, ":"); ok {
		spec.Dir, spec.Rights = d, splitList(rights)
	}
	*f = append(*f, spec)
	return nil
}

// cmdGroup edits the groups of a config file: `sluice group add|del|list`.
func cmdGroup(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage: sluice group add|del|list NAME --config FILE\n")
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("group "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file to edit (required)")
	var roles, allow *string
	var folders folderFlags
	if sub == "add" {
		roles = fs.String("roles", "", "comma-separated roles of the group's members (reader, dropbox, partner, admin, or a [[role]])")
		allow = fs.String("allow-from", "", "comma-separated CIDR networks the members may log in from (default: not set)")
		fs.Var(&folders, "folder", "a folder of the group: /vpath=DIR (the group's roles' rights), /vpath=DIR:list,read or /vpath=DIR@role; repeatable")
	}
	name, ok := parseEditArgs(fs, cfgPath, "group", sub, "group", args, stderr)
	if !ok {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "sluice group %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "list":
		groups, members, err := policy.ListGroups(*cfgPath)
		if err != nil {
			return fail(err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLES\tMEMBERS\tFOLDERS")
		for _, g := range groups {
			var fl []string
			for _, f := range g.Folders {
				r := "roles"
				switch {
				case !f.Inherit:
					r = f.Rights.String()
				case f.Role != "":
					r = "role " + f.Role
				}
				fl = append(fl, fmt.Sprintf("%s=%s (%s)", f.Path, f.Dir, r))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, orNone(g.Roles), orNone(members[g.Name]), strings.Join(fl, "; "))
		}
		tw.Flush()
		return 0
	case "del":
		if err := policy.DeleteGroup(*cfgPath, name); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "group %s deleted from %s; send SIGHUP to a running server to apply\n", name, *cfgPath)
		return 0
	case "add":
		spec := policy.GroupSpec{Name: name, Roles: splitList(*roles), AllowFrom: splitList(*allow), Folders: folders}
		if err := policy.AddGroup(*cfgPath, spec); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "group %s added to %s; send SIGHUP to a running server to apply\n", name, *cfgPath)
		return 0
	}
	fmt.Fprintf(stderr, "sluice group: unknown subcommand %q (add, del, list)\n", sub)
	return 2
}

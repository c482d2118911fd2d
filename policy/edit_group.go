package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Errors of the group editing functions.
var (
	ErrNoSuchGroup = errors.New("no such group")
	ErrGroupExists = errors.New("group already exists")
	ErrGroupInUse  = errors.New("group has members")
)

// GroupSpec is a new group for AddGroup.
type GroupSpec struct {
	Name      string
	Roles     []string
	AllowFrom []string
	Folders   []GroupFolderSpec
}

// GroupFolderSpec is one folder of a GroupSpec: Rights or Role (or
// neither: the group's roles decide).
type GroupFolderSpec struct {
	Path, Dir string
	Rights    []string
	Role      string
}

// ListGroups loads the config file at path and returns its groups and
// the accounts that are members of each.
func ListGroups(path string) ([]Group, map[string][]string, error) {
	c, err := Load(path)
	if err != nil {
		return nil, nil, err
	}
	members := map[string][]string{}
	for _, a := range c.Accounts {
		for _, g := range a.Groups {
			members[g] = append(members[g], a.Name)
		}
	}
	return c.Groups, members, nil
}

// AddGroup appends a [[group]] block to the config file at path (after
// the last group, else before the first account, else at the end).
func AddGroup(path string, g GroupSpec) error {
	return editConfig(path, func(doc string, raw map[string]any, _ []map[string]any, ablocks []accountBlock, lines []tomlLine) (string, func(map[string]any) bool, error) {
		groups := rawTables(raw, "group")
		if findRawAccount(groups, g.Name, true) >= 0 {
			return "", nil, fmt.Errorf("add group %q: %w", g.Name, ErrGroupExists)
		}
		nl := docNewline(doc)
		text, err := g.tomlBlock(nl)
		if err != nil {
			return "", nil, fmt.Errorf("add group %q: %w", g.Name, err)
		}
		var out string
		switch blocks := findBlocks(lines, "group"); {
		case len(blocks) > 0:
			at := lines[blocks[len(blocks)-1].contentEnd-1].end
			prefix := nl
			if !endsWithNewline(doc[:at]) {
				prefix += nl
			}
			out = doc[:at] + prefix + text + doc[at:]
		case len(ablocks) > 0:
			// Before the first account and the comments right above it.
			h := ablocks[0].header
			for h > 0 && lines[h-1].kind == tlComment {
				h--
			}
			at := lines[h].start
			out = doc[:at] + text + nl + doc[at:]
		default:
			prefix := ""
			if doc != "" && !endsWithNewline(doc) {
				prefix = nl
			}
			if t := doc + prefix; t != "" && !strings.HasSuffix(t, "\n\n") && !strings.HasSuffix(t, "\r\n\r\n") {
				prefix += nl
			}
			out = doc + prefix + text
		}
		n := len(groups)
		verify := func(newRaw map[string]any) bool {
			ng := rawTables(newRaw, "group")
			return len(ng) == n+1 && sameAccounts(ng[:n], groups) && ng[n]["name"] == g.Name &&
				sameOutsideTable(raw, newRaw, "group")
		}
		return out, verify, nil
	})
}

// DeleteGroup removes the [[group]] block of group name. A group that
// accounts still list is refused (the file would not load).
func DeleteGroup(path, name string) error {
	return editConfig(path, func(doc string, raw map[string]any, accts []map[string]any, _ []accountBlock, lines []tomlLine) (string, func(map[string]any) bool, error) {
		groups := rawTables(raw, "group")
		i := findRawAccount(groups, name, false)
		if i < 0 {
			return "", nil, fmt.Errorf("delete group %q: %w", name, ErrNoSuchGroup)
		}
		var members []string
		for _, a := range accts {
			if gs, ok := a["groups"].([]any); ok && slices.Contains(gs, any(name)) {
				members = append(members, fmt.Sprint(a["name"]))
			}
		}
		if len(members) > 0 {
			return "", nil, fmt.Errorf("delete group %q: %w: %s (remove it from their groups first)", name, ErrGroupInUse, strings.Join(members, ", "))
		}
		blocks := findBlocks(lines, "group")
		if len(blocks) != len(groups) {
			return "", nil, fmt.Errorf("delete group %q: the groups are not all written as [[group]] tables; edit the file by hand", name)
		}
		b := blocks[i]
		from, to := lines[b.header].start, len(doc)
		end := b.contentEnd
		if b.header == 0 || lines[b.header-1].kind == tlBlank {
			end = b.end
		}
		if end < len(lines) {
			to = lines[end].start
		}
		out := doc[:from] + doc[to:]
		verify := func(newRaw map[string]any) bool {
			want := slices.Delete(slices.Clone(groups), i, i+1)
			return sameAccounts(rawTables(newRaw, "group"), want) && sameOutsideTable(raw, newRaw, "group")
		}
		return out, verify, nil
	})
}

func rawTables(raw map[string]any, k string) []map[string]any {
	return rawAccounts(map[string]any{"account": raw[k]})
}

func sameOutsideTable(a, b map[string]any, k string) bool {
	ca, cb := map[string]any{}, map[string]any{}
	for kk, v := range a {
		if kk != k {
			ca[kk] = v
		}
	}
	for kk, v := range b {
		if kk != k {
			cb[kk] = v
		}
	}
	return sameOutside(ca, cb) && sameAccounts(rawAccounts(a), rawAccounts(b))
}

func (g GroupSpec) tomlBlock(nl string) (string, error) {
	all := append(append([]string{g.Name}, g.Roles...), g.AllowFrom...)
	for _, f := range g.Folders {
		all = append(append(all, f.Path, f.Dir, f.Role), f.Rights...)
	}
	for _, s := range all {
		if !utf8.ValidString(s) {
			return "", errors.New("not valid UTF-8")
		}
	}
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString(nl)
	}
	line("[[group]]")
	line("name = %s", tomlString(g.Name))
	if len(g.Roles) > 0 {
		line("roles = %s", tomlStrings(g.Roles))
	}
	if len(g.AllowFrom) > 0 {
		line("allow_from = %s", tomlStrings(g.AllowFrom))
	}
	for _, f := range g.Folders {
		b.WriteString(nl)
		line("  [[group.folder]]")
		line("  path = %s", tomlString(f.Path))
		line("  dir = %s", tomlString(f.Dir))
		if len(f.Rights) > 0 {
			line("  rights = %s", tomlStrings(f.Rights))
		}
		if f.Role != "" {
			line("  role = %s", tomlString(f.Role))
		}
	}
	return b.String(), nil
}

package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/sluice-ftp/sluice/datapath"
)

// Bounds of the role and group tables.
const (
	maxRoles          = 256
	maxGroups         = 1024
	maxNamesPerList   = 64
	maxTimeWindows    = 32
	maxFoldersPerGrp  = maxFoldersPerAcct
	maxRateOrQuota    = 1 << 62
	protocolWordsText = "ftp, ftps, sftp"
)

// roles parses [[role]] over the built-in roles.
func (p *cfgParser) roles(root *tomlTable) map[string]*Role {
	out := map[string]*Role{}
	for _, r := range BuiltinRoles() {
		out[r.Name] = &r
	}
	tables := root.subArray("role")
	if len(tables) > maxRoles {
		root.ps.add("role", "%d roles; at most %d", len(tables), maxRoles)
		tables = nil
	}
	seen := map[string]int{}
	for i, t := range tables {
		var r Role
		if !p.entityName(t, &r.Name, "role") {
			t.finish()
			continue
		}
		if j, dup := seen[r.Name]; dup {
			t.ps.add(t.key("name"), "%q duplicates role[%d]", r.Name, j)
		}
		seen[r.Name] = i
		if names, ok := p.rightsList(t, true); ok {
			r.Rights = names
		}
		p.accessLimits(t, &r.Limits, true)
		t.finish()
		out[r.Name] = &r
	}
	return out
}

// groups parses [[group]].
func (p *cfgParser) groups(root *tomlTable, roles map[string]*Role) (map[string]*Group, []Group) {
	out := map[string]*Group{}
	tables := root.subArray("group")
	if len(tables) > maxGroups {
		root.ps.add("group", "%d groups; at most %d", len(tables), maxGroups)
		tables = nil
	}
	list := make([]Group, 0, len(tables))
	for _, t := range tables {
		var g Group
		if !p.entityName(t, &g.Name, "group") {
			t.finish()
			continue
		}
		if _, dup := out[g.Name]; dup {
			t.ps.add(t.key("name"), "%q is defined twice", g.Name)
		}
		p.roleNames(t, "roles", &g.Roles, roles)
		p.accessLimits(t, &g.Limits, true)
		fts := t.subArray("folder")
		if len(fts) > maxFoldersPerGrp {
			t.ps.add(t.key("folder"), "%d folders; at most %d per group", len(fts), maxFoldersPerGrp)
			fts = nil
		}
		seen := map[string]bool{}
		for _, ft := range fts {
			f, ok := p.folder(ft, true)
			ft.finish()
			if ok && f.Inherit && f.Role == "" && len(g.Roles) == 0 {
				ft.ps.add(ft.key("rights"), `missing: give the folder rights or a role, or the group roles`)
				ok = false
			}
			if ok && f.Role != "" && roles[f.Role] == nil {
				ft.ps.add(ft.key("role"), "unknown role %q", f.Role)
				ok = false
			}
			if !ok {
				continue
			}
			if seen[f.Path] {
				ft.ps.add(ft.key("path"), "%q is listed twice in this group", f.Path)
				continue
			}
			seen[f.Path] = true
			g.Folders = append(g.Folders, f)
		}
		t.finish()
		list = append(list, g)
	}
	for i := range list {
		out[list[i].Name] = &list[i]
	}
	return out, list
}

// entityName reads the name of a role or group.
func (p *cfgParser) entityName(t *tomlTable, dst *string, what string) bool {
	if !t.str("name", dst) {
		if _, present := t.m["name"]; !present {
			t.ps.add(t.key("name"), "missing: every %s needs a name", what)
		}
		return false
	}
	if !accountNameRE.MatchString(*dst) || (*dst)[0] == '-' || *dst == "." || *dst == ".." {
		t.ps.add(t.key("name"), "%q is not a valid %s name (1..64 of a-z A-Z 0-9 . _ -, not starting with -)", *dst, what)
		return false
	}
	return true
}

// rightsList reads a "rights" key into bits.
func (p *cfgParser) rightsList(t *tomlTable, required bool) (datapath.Rights, bool) {
	var names []string
	if !t.strList("rights", &names) {
		if _, present := t.m["rights"]; !present && required {
			t.ps.add(t.key("rights"), `missing: e.g. ["list", "read"]`)
		}
		return 0, false
	}
	var r datapath.Rights
	ok := true
	seen := map[string]bool{}
	for _, n := range names {
		b, known := datapath.RightByName(n)
		switch {
		case !known:
			t.ps.add(t.key("rights"), "unknown right %q (want %s)", n, datapath.RightWords)
			ok = false
		case seen[n]:
			t.ps.add(t.key("rights"), "right %q is listed twice", n)
			ok = false
		}
		seen[n] = true
		r |= b
	}
	if len(names) == 0 {
		t.ps.add(t.key("rights"), "is empty: list at least one of %s", datapath.RightWords)
		ok = false
	}
	return r, ok
}

// roleNames reads a list of role (k = "roles") names that must exist.
func (p *cfgParser) roleNames(t *tomlTable, k string, dst *[]string, roles map[string]*Role) {
	var names []string
	if !t.strList(k, &names) {
		return
	}
	if len(names) > maxNamesPerList {
		t.ps.add(t.key(k), "%d names; at most %d", len(names), maxNamesPerList)
		return
	}
	for i, n := range names {
		switch {
		case roles != nil && roles[n] == nil:
			t.ps.add(fmt.Sprintf("%s[%d]", t.key(k), i), "unknown role %q (built in: reader, dropbox, partner, admin; or define a [[role]])", n)
			continue
		case slices.Contains(*dst, n):
			t.ps.add(fmt.Sprintf("%s[%d]", t.key(k), i), "%q is listed twice", n)
			continue
		}
		*dst = append(*dst, n)
	}
}

// accessLimits reads the limit keys shared by roles, groups and accounts.
// Accounts read allow_from and max_sessions themselves (their historical
// keys, with their own checks): withSessions is false for them.
func (p *cfgParser) accessLimits(t *tomlTable, l *AccessLimits, withSessions bool) {
	if withSessions {
		t.intIn("max_sessions", &l.MaxSessions, 0, maxSessionsBound)
		var from []string
		if t.strList("allow_from", &from) {
			l.AllowFrom = p.allowList(t, from)
		}
	}
	var protos []string
	if t.strList("protocols", &protos) {
		l.Protocols = []string{}
		for i, s := range protos {
			if !isOneOf(s, ProtoFTP, ProtoFTPS, ProtoSFTP) {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("protocols"), i), "unknown protocol %q (want %s)", s, protocolWordsText)
				continue
			}
			if !slices.Contains(l.Protocols, s) {
				l.Protocols = append(l.Protocols, s)
			}
		}
		if len(protos) == 0 {
			t.ps.add(t.key("protocols"), "is empty: no session could ever log in (use disabled = true for that)")
		}
	}
	var tls bool
	if t.boolean("require_tls", &tls) {
		l.RequireTLS = &tls
	}
	var wins []string
	if t.strList("time_windows", &wins) {
		if len(wins) > maxTimeWindows {
			t.ps.add(t.key("time_windows"), "%d windows; at most %d", len(wins), maxTimeWindows)
			wins = nil
		}
		l.TimeWindows = []TimeWindow{}
		for i, s := range wins {
			w, err := ParseTimeWindow(s)
			if err != nil {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("time_windows"), i), "%v", err)
				continue
			}
			l.TimeWindows = append(l.TimeWindows, w)
		}
		if len(wins) == 0 {
			t.ps.add(t.key("time_windows"), "is empty: no login would ever be allowed (leave the key out for \"always\")")
		}
	}
	t.integer("upload_rate", &l.UploadRate, 0, maxRateOrQuota)
	t.integer("download_rate", &l.DownloadRate, 0, maxRateOrQuota)
	t.integer("quota_bytes", &l.QuotaBytes, 0, maxRateOrQuota)
	t.integer("quota_files", &l.QuotaFiles, 0, maxRateOrQuota)
	t.integer("session_upload_rate", &l.SessionUploadRate, 0, maxRateOrQuota)
	t.integer("session_download_rate", &l.SessionDownloadRate, 0, maxRateOrQuota)
	t.integer("transfer_quota_in", &l.TransferQuotaIn, 0, maxRateOrQuota)
	t.integer("transfer_quota_out", &l.TransferQuotaOut, 0, maxRateOrQuota)
	if t.str("transfer_quota_period", &l.TransferQuotaPeriod) && !isOneOf(l.TransferQuotaPeriod, PeriodDay, PeriodMonth) {
		t.ps.add(t.key("transfer_quota_period"), "unknown period %q (want day or month)", l.TransferQuotaPeriod)
		l.TransferQuotaPeriod = ""
	}
}

// allowList parses allow_from entries.
func (p *cfgParser) allowList(t *tomlTable, from []string) []netip.Prefix {
	if len(from) > maxAllowFrom {
		t.ps.add(t.key("allow_from"), "%d networks; at most %d", len(from), maxAllowFrom)
		return nil
	}
	out := []netip.Prefix{}
	for i, s := range from {
		pr, err := parseAllow(s)
		if err != nil {
			t.ps.add(fmt.Sprintf("%s[%d]", t.key("allow_from"), i), "%v", err)
			continue
		}
		out = append(out, pr)
	}
	return out
}

// resolveAccounts applies Resolve to every account, reporting problems at
// the account's key.
func (p *cfgParser) resolveAccounts(c *Config, levels []AccountLevel, accts []*tomlTable, groups map[string]*Group, roles map[string]*Role) {
	for i := range c.Accounts {
		if i >= len(levels) || i >= len(accts) {
			break
		}
		a := &c.Accounts[i]
		res, err := Resolve(levels[i], groups, roles)
		if err != nil {
			p.ps.add(accts[i].key("groups"), "%v", err)
			continue
		}
		a.Roles = res.Roles
		a.Folders = res.Folders
		a.Limits = res.Limits
		a.AllowFrom = res.Limits.AllowFrom
		a.MaxSessions = res.Limits.MaxSessions
		switch {
		case len(a.Folders) == 0 && len(levels[i].Groups) > 0:
			p.ps.add(accts[i].key("folder"), "no folders: neither the account nor its groups (%s) have a folder", strings.Join(levels[i].Groups, ", "))
		case len(a.Folders) > maxFoldersPerAcct:
			p.ps.add(accts[i].key("folder"), "%d folders with its groups'; at most %d per account", len(a.Folders), maxFoldersPerAcct)
		}
	}
}

package policy

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

func TestResolve(t *testing.T) {
	yes := true
	roles := map[string]*Role{}
	for _, r := range BuiltinRoles() {
		roles[r.Name] = &r
	}
	roles["slow"] = &Role{Name: "slow", Rights: datapath.RightList, Limits: AccessLimits{MaxSessions: 1, UploadRate: 100, Protocols: []string{"sftp"}}}
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	wan := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	groups := map[string]*Group{
		"branches": {Name: "branches", Roles: []string{"dropbox"},
			Folders: []Folder{{Path: "/logs", Dir: "/srv/logs", Inherit: true}, {Path: "/pub", Dir: "/srv/pub", Role: "reader", Inherit: true}},
			Limits:  AccessLimits{AllowFrom: lan, MaxSessions: 5}},
		"ops": {Name: "ops", Roles: []string{"admin", "slow"},
			Folders: []Folder{{Path: "/logs", Dir: "/srv/logs", Inherit: true}},
			Limits:  AccessLimits{AllowFrom: wan, RequireTLS: &yes}},
		"bad": {Name: "bad", Roles: []string{"nosuch"}},
	}
	f := func(p, d string, r datapath.Rights, src string) Folder {
		return Folder{Path: p, Dir: d, Rights: r, Source: src}
	}
	pub := Folder{Path: "/pub", Dir: "/srv/pub", Rights: datapath.RightList | datapath.RightRead, Role: "reader", Source: "group branches"}
	tests := []struct {
		name    string
		in      AccountLevel
		want    Resolved
		wantErr string
	}{
		{name: "plain account, rights as written",
			in:   AccountLevel{Folders: []Folder{{Path: "/", Dir: "/srv/a", Rights: datapath.RightsAll}}},
			want: Resolved{Folders: []Folder{f("/", "/srv/a", datapath.RightsAll, "")}}},
		{name: "group folders take the group's roles or their own role",
			in: AccountLevel{Groups: []string{"branches"}},
			want: Resolved{Roles: []string{"dropbox"},
				Folders: []Folder{f("/logs", "/srv/logs", datapath.RightWrite, "group branches"), pub},
				Limits:  AccessLimits{AllowFrom: lan, MaxSessions: 5}}},
		{name: "account overrides group: folder and limits",
			in: AccountLevel{Groups: []string{"branches"}, Folders: []Folder{{Path: "/logs", Dir: "/srv/mine", Rights: datapath.RightsAll}}, Limits: AccessLimits{MaxSessions: 1}},
			want: Resolved{Roles: []string{"dropbox"},
				Folders: []Folder{f("/logs", "/srv/mine", datapath.RightsAll, ""), pub},
				Limits:  AccessLimits{AllowFrom: lan, MaxSessions: 1}}},
		{name: "first group wins over later ones; roles fill what groups leave",
			in: AccountLevel{Groups: []string{"ops", "branches"}},
			want: Resolved{Roles: []string{"admin", "slow", "dropbox"},
				Folders: []Folder{f("/logs", "/srv/logs", datapath.RightsAll, "group ops"), pub},
				Limits:  AccessLimits{AllowFrom: wan, RequireTLS: &yes, MaxSessions: 5, UploadRate: 100, Protocols: []string{"sftp"}}}},
		{name: "account roles give inheriting account folders their rights",
			in: AccountLevel{Roles: []string{"reader", "dropbox"}, Folders: []Folder{{Path: "/", Dir: "/srv/a", Inherit: true}}},
			want: Resolved{Roles: []string{"reader", "dropbox"},
				Folders: []Folder{f("/", "/srv/a", datapath.RightList|datapath.RightRead|datapath.RightWrite, "")}}},
		{name: "role defaults apply when nothing overrides",
			in:   AccountLevel{Roles: []string{"slow"}, Folders: []Folder{{Path: "/", Dir: "/d", Inherit: true}}},
			want: Resolved{Roles: []string{"slow"}, Folders: []Folder{f("/", "/d", datapath.RightList, "")}, Limits: AccessLimits{MaxSessions: 1, UploadRate: 100, Protocols: []string{"sftp"}}}},
		{name: "unknown group", in: AccountLevel{Groups: []string{"nope"}}, wantErr: `unknown group "nope"`},
		{name: "unknown role in group", in: AccountLevel{Groups: []string{"bad"}}, wantErr: `group "bad": unknown role "nosuch"`},
		{name: "folder without any rights", in: AccountLevel{Folders: []Folder{{Path: "/", Dir: "/d", Inherit: true}}}, wantErr: "has no rights"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.in, groups, roles)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestTimeWindow(t *testing.T) {
	at := func(day, hm string) time.Time {
		d, _ := time.Parse("2006-01-02 15:04", day+" "+hm)
		return d
	}
	// 2026-11-23 is a Monday.
	tests := []struct {
		spec string
		t    time.Time
		in   bool
	}{
		{"mon-fri 08:00-18:00", at("2026-11-23", "08:00"), true},
		{"mon-fri 08:00-18:00", at("2026-11-23", "18:00"), false},
		{"mon-fri 08:00-18:00", at("2026-11-22", "12:00"), false}, // Sunday
		{"sat,sun 00:00-24:00", at("2026-11-22", "23:59"), true},
		{"22:00-06:00", at("2026-11-23", "05:59"), true},
		{"fri 22:00-06:00", at("2026-11-28", "05:00"), true}, // Saturday morning, started Friday
		{"fri 22:00-06:00", at("2026-11-27", "05:00"), false},
		{"fri-mon 10:00-11:00", at("2026-11-22", "10:30"), true}, // wraps the week
	}
	for _, tc := range tests {
		w, err := ParseTimeWindow(tc.spec)
		if err != nil {
			t.Fatalf("%q: %v", tc.spec, err)
		}
		if got := w.Contains(tc.t); got != tc.in {
			t.Errorf("%q contains %s = %v, want %v", tc.spec, tc.t.Format("Mon 15:04"), got, tc.in)
		}
	}
	for _, bad := range []string{"", "mon", "xyz 08:00-09:00", "08:00-08:00", "25:00-26:00", "8-9", "mon fri 08:00-09:00"} {
		if _, err := ParseTimeWindow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseGroupsAndRoles(t *testing.T) {
	c, err := Parse([]byte(`
[[role]]
name = "uploader"
rights = ["create", "append"]
time_windows = ["mon-fri 08:00-18:00"]

[[group]]
name = "branch"
roles = ["uploader"]
allow_from = ["10.0.0.0/8"]
  [[group.folder]]
  path = "/logs"
  dir = "/srv/logs"

[[account]]
name = "paris"
password = "`+demoHash0+`"
groups = ["branch"]

[[account]]
name = "legacy"
password = "`+demoHash0+`"
  [[account.folder]]
  path = "/"
  dir = "/srv/legacy"
  rights = ["list", "read", "write"]
`), "/", "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Account("paris")
	if len(p.Folders) != 1 || p.Folders[0].Rights != datapath.RightWrite|datapath.RightAppend || p.Folders[0].Dir != "/srv/logs" {
		t.Errorf("paris folders = %+v", p.Folders)
	}
	if len(p.AllowFrom) != 1 || len(p.Limits.TimeWindows) != 1 || !reflect.DeepEqual(p.Roles, []string{"uploader"}) {
		t.Errorf("paris limits = %+v roles %v", p.Limits, p.Roles)
	}
	if l := c.Account("legacy"); l.Folders[0].Rights != datapath.RightList|datapath.RightRead|datapath.RightsWriting {
		t.Errorf("legacy rights = %v", l.Folders[0].Rights)
	}
	for _, tc := range []struct{ text, key, msg string }{
		{"[[account]]\nname = \"a\"\npassword = \"" + demoHash0 + "\"\ngroups = [\"nope\"]\n", "account[0].groups[0]", `unknown group "nope"`},
		{"[[account]]\nname = \"a\"\npassword = \"" + demoHash0 + "\"\nroles = [\"nope\"]\n[[account.folder]]\npath = \"/\"\ndir = \"/d\"\n", "account[0].roles[0]", `unknown role "nope"`},
		{"[[role]]\nname = \"r\"\nrights = [\"fly\"]\n", "role[0].rights", `unknown right "fly"`},
		{"[[group]]\nname = \"g\"\nprotocols = [\"gopher\"]\n", "group[0].protocols[0]", `unknown protocol "gopher"`},
		{"[[group]]\nname = \"g\"\ntime_windows = [\"whenever\"]\n", "group[0].time_windows[0]", "not a time window"},
		{"[[group]]\nname = \"g\"\n[[group.folder]]\npath = \"/\"\ndir = \"/d\"\n", "group[0].folder[0].rights", "missing"},
	} {
		_, err := Parse([]byte(tc.text), "/", "t.toml")
		if err == nil || !strings.Contains(err.Error(), tc.key+": ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: err = %v, want %s: …%s…", tc.text, err, tc.key, tc.msg)
		}
	}
}

// TestMergeAccountingLimits: rates and quotas resolve field by field
// (account over group over role), a transfer quota without a period is
// monthly, and Metered says whether a session must announce transfers.
func TestMergeAccountingLimits(t *testing.T) {
	cases := []struct {
		name    string
		levels  []AccessLimits
		want    AccessLimits
		metered bool
	}{
		{"nothing", []AccessLimits{{}, {}}, AccessLimits{}, false},
		{"account over role", []AccessLimits{{DownloadRate: 10}, {DownloadRate: 20, UploadRate: 5}},
			AccessLimits{DownloadRate: 10, UploadRate: 5}, true},
		{"session caps", []AccessLimits{{}, {SessionUploadRate: 7}}, AccessLimits{SessionUploadRate: 7}, true},
		{"transfer quota defaults to monthly", []AccessLimits{{TransferQuotaOut: 100}},
			AccessLimits{TransferQuotaOut: 100, TransferQuotaPeriod: PeriodMonth}, true},
		{"period from a lower level", []AccessLimits{{TransferQuotaIn: 1}, {TransferQuotaPeriod: PeriodDay}},
			AccessLimits{TransferQuotaIn: 1, TransferQuotaPeriod: PeriodDay}, true},
		{"a period alone meters nothing", []AccessLimits{{TransferQuotaPeriod: PeriodDay}},
			AccessLimits{TransferQuotaPeriod: PeriodDay}, false},
		{"storage quota", []AccessLimits{{}, {QuotaFiles: 3}}, AccessLimits{QuotaFiles: 3}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ptrs []*AccessLimits
			for i := range c.levels {
				ptrs = append(ptrs, &c.levels[i])
			}
			got := mergeLimits(ptrs)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("merged %+v, want %+v", got, c.want)
			}
			if got.Metered() != c.metered {
				t.Errorf("Metered() = %v", got.Metered())
			}
		})
	}
}

package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// Role is a named set of rights over folders plus limits: [[role]] in the
// file, or one of the built-in roles (BuiltinRoles).
type Role struct {
	Name    string
	Rights  datapath.Rights
	Limits  AccessLimits
	Builtin bool
}

// Group is one [[group]]: accounts that list it get its roles, its folders
// (each with its own rights, role or the group's roles' rights) and its
// limits, unless the account sets them itself.
type Group struct {
	Name    string
	Roles   []string
	Folders []Folder
	Limits  AccessLimits
}

// AccessLimits are the limits a role, a group or an account may set. A
// zero (nil) field is "not set here": the next level down decides (account
// over group over role, then the server's defaults). Bandwidth and quotas
// are resolved and carried for the accounting layer, which enforces them.
type AccessLimits struct {
	MaxSessions  int            // concurrent sessions; 0: not set
	AllowFrom    []netip.Prefix // source networks; nil: not set (anywhere)
	Protocols    []string       // "ftp", "ftps", "sftp"; nil: not set (all)
	RequireTLS   *bool          // plain FTP refused; nil: not set
	TimeWindows  []TimeWindow   // when logins are allowed; nil: not set (always)
	UploadRate   int64          // bytes/s; 0: not set (unlimited)
	DownloadRate int64          // bytes/s; 0: not set (unlimited)
	QuotaBytes   int64          // 0: not set
	QuotaFiles   int64          // 0: not set
	// Per-session caps (bytes/s; 0: not set), beside the account's
	// shared UploadRate/DownloadRate.
	SessionUploadRate   int64
	SessionDownloadRate int64
	// Transfer quotas: bytes the account may upload (In) or download
	// (Out) per TransferQuotaPeriod ("day" or "month", UTC). 0: not set.
	TransferQuotaIn     int64
	TransferQuotaOut    int64
	TransferQuotaPeriod string
}

// Metered reports whether anything limits the account's transfers
// (rates or quotas): its worker then announces every transfer to the
// supervisor.
func (l *AccessLimits) Metered() bool {
	return l.UploadRate != 0 || l.DownloadRate != 0 || l.SessionUploadRate != 0 || l.SessionDownloadRate != 0 ||
		l.QuotaBytes != 0 || l.QuotaFiles != 0 || l.TransferQuotaIn != 0 || l.TransferQuotaOut != 0
}

// Protocols a session can come in by.
const (
	ProtoFTP  = "ftp"
	ProtoFTPS = "ftps"
	ProtoSFTP = "sftp"
)

// TimeWindow is one "mon-fri 08:00-18:00" entry, in the server's local
// time. From > To wraps past midnight (the day is the one it starts on).
type TimeWindow struct {
	Days     uint8 // bit d = time.Weekday d
	From, To int   // minutes since 00:00; To may be 1440
	Spec     string
}

// BuiltinRoles are the roles every configuration has. A [[role]] of the
// same name replaces one.
func BuiltinRoles() []Role {
	return []Role{
		// Distribution mirrors: browse and download.
		{Name: "reader", Rights: datapath.RightList | datapath.RightRead, Builtin: true},
		// Upload-only: new files, never listed, read back or replaced
		// (log archives from branch offices).
		{Name: "dropbox", Rights: datapath.RightWrite, Builtin: true},
		// A partner's own folder: read and write, make directories and
		// rename, no delete.
		{Name: "partner", Rights: datapath.RightList | datapath.RightRead | datapath.RightsWriting |
			datapath.RightMkdir | datapath.RightRename, Builtin: true},
		// Everything in its folders.
		{Name: "admin", Rights: datapath.RightsAll, Builtin: true},
	}
}

// AccountLevel is what an account says about itself, before resolution:
// its own roles, its groups, its folders (a folder may leave its rights to
// the roles: Folder.Inherit) and its limits.
type AccountLevel struct {
	Roles   []string
	Groups  []string
	Folders []Folder
	Limits  AccessLimits
}

// Resolved is the outcome of Resolve.
type Resolved struct {
	Roles   []string // the account's roles, then its groups' roles, without repeats
	Folders []Folder // the account's folders, then its groups' (a path the account has is the account's)
	Limits  AccessLimits
}

// Resolve computes an account's effective folders, rights and limits from
// its own settings, its groups and the roles. It is pure. The rules:
//
//   - Folders: the account's own, then each group's in the order the
//     account lists the groups; a virtual path already present keeps the
//     earlier one (account over group, first group over later ones).
//   - A folder's rights: its own `rights`, else its `role`'s rights, else
//     the union of the rights of the roles of the level that declares it
//     (an account folder: all the account's effective roles; a group
//     folder: the group's roles).
//   - Limits, field by field: the account's value if set, else the first
//     group (in order) that sets it, else the first role (in Roles order)
//     that sets it, else unset.
func Resolve(a AccountLevel, groups map[string]*Group, roles map[string]*Role) (Resolved, error) {
	var r Resolved
	var gs []*Group
	seenRole := map[string]bool{}
	addRole := func(n string) error {
		if _, ok := roles[n]; !ok {
			return fmt.Errorf("unknown role %q", n)
		}
		if !seenRole[n] {
			seenRole[n] = true
			r.Roles = append(r.Roles, n)
		}
		return nil
	}
	for _, n := range a.Roles {
		if err := addRole(n); err != nil {
			return r, err
		}
	}
	for _, n := range a.Groups {
		g, ok := groups[n]
		if !ok {
			return r, fmt.Errorf("unknown group %q", n)
		}
		gs = append(gs, g)
		for _, rn := range g.Roles {
			if err := addRole(rn); err != nil {
				return r, fmt.Errorf("group %q: %w", n, err)
			}
		}
	}
	union := func(names []string) datapath.Rights {
		var v datapath.Rights
		for _, n := range names {
			if ro := roles[n]; ro != nil {
				v |= ro.Rights
			}
		}
		return v
	}
	seenPath := map[string]bool{}
	add := func(f Folder, levelRights datapath.Rights, level string) error {
		if seenPath[f.Path] {
			return nil
		}
		switch {
		case !f.Inherit:
		case f.Role != "":
			ro, ok := roles[f.Role]
			if !ok {
				return fmt.Errorf("%s folder %q: unknown role %q", level, f.Path, f.Role)
			}
			f.Rights = ro.Rights
		default:
			f.Rights = levelRights
		}
		if f.Rights == 0 {
			return fmt.Errorf("%s folder %q has no rights: give it rights or a role, or give the %s a role", level, f.Path, strings.Fields(level)[0])
		}
		f.Inherit = false
		seenPath[f.Path] = true
		r.Folders = append(r.Folders, f)
		return nil
	}
	all := union(r.Roles)
	for _, f := range a.Folders {
		if err := add(f, all, "account"); err != nil {
			return r, err
		}
	}
	for _, g := range gs {
		gr := union(g.Roles)
		for _, f := range g.Folders {
			f.Source = "group " + g.Name
			if err := add(f, gr, "group "+g.Name); err != nil {
				return r, err
			}
		}
	}
	levels := []*AccessLimits{&a.Limits}
	for _, g := range gs {
		levels = append(levels, &g.Limits)
	}
	for _, n := range r.Roles {
		levels = append(levels, &roles[n].Limits)
	}
	r.Limits = mergeLimits(levels)
	return r, nil
}

// mergeLimits takes each field from the first level that sets it.
func mergeLimits(levels []*AccessLimits) AccessLimits {
	var out AccessLimits
	for i := len(levels) - 1; i >= 0; i-- {
		l := levels[i]
		if l.MaxSessions != 0 {
			out.MaxSessions = l.MaxSessions
		}
		if l.AllowFrom != nil {
			out.AllowFrom = l.AllowFrom
		}
		if l.Protocols != nil {
			out.Protocols = l.Protocols
		}
		if l.RequireTLS != nil {
			out.RequireTLS = l.RequireTLS
		}
		if l.TimeWindows != nil {
			out.TimeWindows = l.TimeWindows
		}
		if l.UploadRate != 0 {
			out.UploadRate = l.UploadRate
		}
		if l.DownloadRate != 0 {
			out.DownloadRate = l.DownloadRate
		}
		if l.QuotaBytes != 0 {
			out.QuotaBytes = l.QuotaBytes
		}
		if l.QuotaFiles != 0 {
			out.QuotaFiles = l.QuotaFiles
		}
		if l.SessionUploadRate != 0 {
			out.SessionUploadRate = l.SessionUploadRate
		}
		if l.SessionDownloadRate != 0 {
			out.SessionDownloadRate = l.SessionDownloadRate
		}
		if l.TransferQuotaIn != 0 {
			out.TransferQuotaIn = l.TransferQuotaIn
		}
		if l.TransferQuotaOut != 0 {
			out.TransferQuotaOut = l.TransferQuotaOut
		}
		if l.TransferQuotaPeriod != "" {
			out.TransferQuotaPeriod = l.TransferQuotaPeriod
		}
	}
	if out.TransferQuotaPeriod == "" && (out.TransferQuotaIn != 0 || out.TransferQuotaOut != 0) {
		out.TransferQuotaPeriod = PeriodMonth
	}
	return out
}

// AllowsProtocol reports whether a session by proto may log in.
func (l *AccessLimits) AllowsProtocol(proto string) bool {
	if l.Protocols != nil && !slices.Contains(l.Protocols, proto) {
		return false
	}
	if l.RequireTLS != nil && *l.RequireTLS && proto == ProtoFTP {
		return false
	}
	return true
}

// AllowsTime reports whether t lies in one of the time windows (always
// true without any).
func (l *AccessLimits) AllowsTime(t time.Time) bool {
	if l.TimeWindows == nil {
		return true
	}
	for _, w := range l.TimeWindows {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// Contains reports whether t (in its own location) lies in the window.
func (w TimeWindow) Contains(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	on := func(d time.Weekday) bool { return w.Days&(1<<d) != 0 }
	if w.From < w.To {
		return on(day) && m >= w.From && m < w.To
	}
	// Wraps past midnight.
	return (on(day) && m >= w.From) || (on((day+6)%7) && m < w.To)
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseTimeWindow parses "08:00-18:00" (every day), "mon-fri 08:00-18:00"
// or "sat,sun 00:00-24:00".
func ParseTimeWindow(s string) (TimeWindow, error) {
	w := TimeWindow{Spec: s}
	bad := fmt.Errorf("%q is not a time window such as \"mon-fri 08:00-18:00\" or \"22:00-06:00\"", s)
	f := strings.Fields(s)
	var days, hours string
	switch len(f) {
	case 1:
		days, hours = "sun-sat", f[0]
	case 2:
		days, hours = strings.ToLower(f[0]), f[1]
	default:
		return w, bad
	}
	for _, part := range strings.Split(days, ",") {
		a, b, isRange := strings.Cut(part, "-")
		da, db := slices.Index(dayNames, a), slices.Index(dayNames, b)
		if !isRange {
			db = da
		}
		if da < 0 || db < 0 {
			return w, bad
		}
		for d := da; ; d = (d + 1) % 7 {
			w.Days |= 1 << d
			if d == db {
				break
			}
		}
	}
	from, to, ok := strings.Cut(hours, "-")
	if !ok {
		return w, bad
	}
	var err1, err2 error
	w.From, err1 = parseClock(from)
	w.To, err2 = parseClock(to)
	if err1 != nil || err2 != nil || w.From == w.To || w.From == 1440 {
		return w, bad
	}
	return w, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("bad clock %q", s)
	}
	return hh*60 + mm, nil
}

// Describe renders the limits that are set, for `policy show`.
func (l *AccessLimits) Describe() []string {
	var out []string
	if l.MaxSessions != 0 {
		out = append(out, fmt.Sprintf("max_sessions=%d", l.MaxSessions))
	}
	if l.AllowFrom != nil {
		var ps []string
		for _, p := range l.AllowFrom {
			ps = append(ps, p.String())
		}
		out = append(out, "allow_from="+strings.Join(ps, ","))
	}
	if l.Protocols != nil {
		out = append(out, "protocols="+strings.Join(l.Protocols, ","))
	}
	if l.RequireTLS != nil {
		out = append(out, fmt.Sprintf("require_tls=%t", *l.RequireTLS))
	}
	if l.TimeWindows != nil {
		var ws []string
		for _, w := range l.TimeWindows {
			ws = append(ws, w.Spec)
		}
		out = append(out, "time_windows="+strings.Join(ws, "; "))
	}
	if l.UploadRate != 0 {
		out = append(out, fmt.Sprintf("upload_rate=%d B/s", l.UploadRate))
	}
	if l.DownloadRate != 0 {
		out = append(out, fmt.Sprintf("download_rate=%d B/s", l.DownloadRate))
	}
	if l.QuotaBytes != 0 {
		out = append(out, fmt.Sprintf("quota_bytes=%d", l.QuotaBytes))
	}
	if l.QuotaFiles != 0 {
		out = append(out, fmt.Sprintf("quota_files=%d", l.QuotaFiles))
	}
	if l.SessionUploadRate != 0 {
		out = append(out, fmt.Sprintf("session_upload_rate=%d B/s", l.SessionUploadRate))
	}
	if l.SessionDownloadRate != 0 {
		out = append(out, fmt.Sprintf("session_download_rate=%d B/s", l.SessionDownloadRate))
	}
	if l.TransferQuotaIn != 0 {
		out = append(out, fmt.Sprintf("transfer_quota_in=%d per %s", l.TransferQuotaIn, l.TransferQuotaPeriod))
	}
	if l.TransferQuotaOut != 0 {
		out = append(out, fmt.Sprintf("transfer_quota_out=%d per %s", l.TransferQuotaOut, l.TransferQuotaPeriod))
	}
	if l.TransferQuotaPeriod != "" && l.TransferQuotaIn == 0 && l.TransferQuotaOut == 0 {
		out = append(out, "transfer_quota_period="+l.TransferQuotaPeriod)
	}
	return out
}

package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-ftp/sluice/accounting"
	"github.com/sluice-ftp/sluice/datapath"
	"github.com/sluice-ftp/sluice/policy"
)

func TestPeriods(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	cases := []struct {
		kind, id string
		end      time.Time
	}{
		{policy.PeriodDay, "2026-12-31", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{policy.PeriodMonth, "2026-12", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"", "2026-12", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		if got := period(c.kind, at); got != c.id {
			t.Errorf("period(%q) = %q, want %q", c.kind, got, c.id)
		}
		if got := periodEnd(c.kind, at); !got.Equal(c.end) {
			t.Errorf("periodEnd(%q) = %v, want %v", c.kind, got, c.end)
		}
	}
	// A local time is a UTC period.
	paris := time.FixedZone("CET", 3600)
	if got := period(policy.PeriodDay, time.Date(2027, 1, 1, 0, 30, 0, 0, paris)); got != "2026-12-31" {
		t.Errorf("00:30 CET on Jan 1 is %q in UTC", got)
	}
}

// TestPeriodUsage: a transfer quota counts from the counters at the start
// of the period, and a new period starts from the counters then.
func TestPeriodUsage(t *testing.T) {
	m := &meter{user: accounting.NewLedger(), periods: map[string]periodMark{}, inKernel: map[string]bool{}}
	m.user.AddAccount("a")
	m.user.Add("a", accounting.Out, 100)
	day1 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if in, out := m.periodUsage("a", policy.PeriodDay, day1); in != 0 || out != 0 {
		t.Fatalf("first look: %d %d; the period starts now", in, out)
	}
	m.user.Add("a", accounting.Out, 40)
	m.user.Add("a", accounting.In, 5)
	if in, out := m.periodUsage("a", policy.PeriodDay, day1.Add(time.Hour)); in != 5 || out != 40 {
		t.Fatalf("same day: %d %d", in, out)
	}
	if in, out := m.periodUsage("a", policy.PeriodDay, day1.Add(24*time.Hour)); in != 0 || out != 0 {
		t.Fatalf("next day: %d %d", in, out)
	}
}

func TestOutermost(t *testing.T) {
	got := outermost([]string{"/srv/a/in", "/srv/b", "/srv/a", "/srv/ab", "/srv/a"})
	if want := []string{"/srv/a", "/srv/ab", "/srv/b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("outermost = %v, want %v", got, want)
	}
}

// TestUsageTracker: scanning, path mapping with nested folders, deltas to
// every directory that holds a file, reservations and the room left.
func TestUsageTracker(t *testing.T) {
	root := t.TempDir()
	top, in := filepath.Join(root, "top"), filepath.Join(root, "top", "in")
	os.MkdirAll(in, 0o755)
	os.WriteFile(filepath.Join(top, "a"), make([]byte, 100), 0o644)
	os.WriteFile(filepath.Join(in, "b"), make([]byte, 50), 0o644)
	os.WriteFile(filepath.Join(in, ".sluice-partial.c"), make([]byte, 7), 0o644)
	os.WriteFile(filepath.Join(in, datapath.MetaPrefix+"b"), make([]byte, 64), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(top, "link"))
	cfg := &policy.Config{Accounts: []policy.Account{{
		Name:   "x",
		Limits: policy.AccessLimits{QuotaBytes: 1000, QuotaFiles: 10},
		Folders: []policy.Folder{
			{Path: "/", Dir: top, Rights: datapath.RightsAll},
			{Path: "/drop", Dir: in, Rights: datapath.RightWrite, QuotaBytes: 60},
		},
	}}}
	u := newUsageTracker(zerolog.Nop())
	u.configure(cfg)
	real, f := u.realPath("x", "/drop/sub/f")
	if !u.wait("x", f) {
		t.Fatal("the scans did not finish")
	}
	if real != filepath.Join(in, "sub/f") || f == nil || f.Path != "/drop" {
		t.Fatalf("realPath = %q %+v", real, f)
	}
	st := u.status("x", f)
	// The account counts top once (in lies inside it): a, b and the partial.
	if st.bytes != 157 || st.files != 3 || st.fBytes != 57 || st.fFiles != 2 {
		t.Fatalf("scanned %+v", st)
	}
	if r := st.room(); r != 3 {
		t.Fatalf("room = %d: the folder's 60 bytes minus 57", r)
	}
	u.add(real, 0, 1, 3) // a new partial with 3 bytes reserved
	st = u.status("x", f)
	if st.room() != 0 || st.overBytes() || st.fFiles != 3 || st.files != 4 {
		t.Fatalf("after the reservation %+v room %d", st, st.room())
	}
	u.add(real, 3, 0, -3) // written
	u.add(real, 1, 0, 0)  // one more byte than the grant: over
	if st = u.status("x", f); !st.overBytes() {
		t.Fatalf("61 of 60 bytes in the folder is over: %+v", st)
	}
	// Outside the folder only the account's quota applies.
	realTop, ft := u.realPath("x", "/a")
	if realTop != filepath.Join(top, "a") || ft.Path != "/" {
		t.Fatalf("realPath(/a) = %q %+v", realTop, ft)
	}
	if r := u.status("x", ft).room(); r != 1000-161 {
		t.Fatalf("account room = %d", r)
	}
}

// TestMeterStateRoundTrip: accounting.json keeps the kernel's and the
// ledger's counters and the periods; a corrupt file is an error.
func TestMeterStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := &meter{user: accounting.NewLedger(), path: filepath.Join(dir, "accounting.json"), mode: policy.AcctUserspace,
		periods: map[string]periodMark{"a": {Period: "2026-11", In: 1, Out: 2}}, inKernel: map[string]bool{}}
	m.user.AddAccount("a")
	m.user.Add("a", accounting.In, 10)
	m.user.Add("a", accounting.Out, 20)
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	st, err := loadMeterState(m.path)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.User["a"]; c.BytesIn != 10 || c.BytesOut != 20 || st.Periods["a"].Out != 2 || st.Mode != policy.AcctUserspace {
		t.Fatalf("loaded %+v", st)
	}
	if st, err := loadMeterState(filepath.Join(dir, "missing.json")); err != nil || st.User != nil {
		t.Fatalf("a missing file is a first start: %+v %v", st, err)
	}
	os.WriteFile(m.path, []byte(`{"version":1,"unknown":true}`), 0o600)
	if _, err := loadMeterState(m.path); err == nil {
		t.Fatal("an unknown field was accepted")
	}
}

// TestCarry: after a handover the old supervisor writes only what it
// counted since, and the new one adds it in once.
func TestCarry(t *testing.T) {
	dir := t.TempDir()
	old := &meter{log: zerolog.Nop(), user: accounting.NewLedger(), path: filepath.Join(dir, "accounting.json"), periods: map[string]periodMark{}, inKernel: map[string]bool{}}
	old.user.AddAccount("a")
	old.user.Add("a", accounting.In, 100)
	old.handOver()
	old.user.Add("a", accounting.In, 7)
	old.close()
	st, _ := loadMeterState(old.path)
	if st.User["a"].BytesIn != 100 {
		t.Fatalf("the handover file holds %d, want 100", st.User["a"].BytesIn)
	}
	nw := &meter{log: zerolog.Nop(), user: accounting.NewLedger(), path: old.path, periods: map[string]periodMark{}, inKernel: map[string]bool{}}
	nw.user.Restore(accounting.Snapshot{Accounts: st.User})
	nw.user.AddAccount("a")
	nw.mergeCarry()
	nw.mergeCarry()
	if c, _ := nw.user.Counters("a"); c.BytesIn != 107 {
		t.Fatalf("after the carry: %d, want 107", c.BytesIn)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, carryPrefix+"*")); len(files) != 0 {
		t.Fatalf("carry files left: %v", files)
	}
}

// TestBeginDelta: what an upload does to the disk before its first byte,
// case by case as datapath.BeginUpload does it.
func TestBeginDelta(t *testing.T) {
	cases := []struct {
		name         string
		x            meterXfer
		bytes, files int64
	}{
		{"new file", meterXfer{mode: "store", existing: -1}, 0, 1},
		{"replace a file", meterXfer{mode: "store", existing: 500}, 0, 1},
		{"STOR over a partial, from scratch", meterXfer{mode: "store", existing: -1, partial: true, psize: 300}, -300, 0},
		{"REST 200 over a 300-byte partial", meterXfer{mode: "store", existing: -1, partial: true, psize: 300, offset: 200}, -100, 0},
		{"REST 300 resumes the partial", meterXfer{mode: "store", existing: -1, partial: true, psize: 300, offset: 300}, 0, 0},
		{"REST 100 on a complete file copies its prefix", meterXfer{mode: "store", existing: 500, offset: 100}, 100, 1},
		{"APPE onto a complete file copies it", meterXfer{mode: "append", existing: 500}, 500, 1},
		{"APPE of an interrupted upload continues it", meterXfer{mode: "append", existing: -1, partial: true, psize: 300}, 0, 0},
		{"APPE of a new name", meterXfer{mode: "append", existing: -1}, 0, 1},
		{"APPE onto a file with a stale partial", meterXfer{mode: "append", existing: 500, partial: true, psize: 40}, 460, 0},
	}
	for _, c := range cases {
		if b, f := c.x.beginDelta(); b != c.bytes || f != c.files {
			t.Errorf("%s: %d bytes, %d files; want %d, %d", c.name, b, f, c.bytes, c.files)
		}
	}
}

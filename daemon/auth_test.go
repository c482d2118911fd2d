package daemon

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/policy"
)

// testConfig builds a config with two accounts through the real parser.
func testConfig(t *testing.T, limits string) *policy.Config {
	t.Helper()
	h := func(pw string) string {
		s, err := policy.HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dir := t.TempDir()
	src := fmt.Sprintf(`
[ftp]
listen = ["127.0.0.1:2121"]
[limits]
%s
[[account]]
name = "alice"
password = %q
max_sessions = 2
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["all"]
[[account]]
name = "lan"
password = %q
allow_from = ["10.0.0.0/8"]
  [[account.folder]]
  path = "/"
  dir = %q
  rights = ["read", "list"]
`, limits, h("wonderland"), dir, h("office"), dir)
	cfg, err := policy.Parse([]byte(src), dir, "test")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var (
	ipA = netip.MustParseAddr("192.0.2.1")
	ipB = netip.MustParseAddr("192.0.2.2")
)

func TestAuthBroker(t *testing.T) {
	cfg := testConfig(t, "ban_after_failures = 3\nban_window = \"1m\"\nban_duration = \"10m\"")
	b := newAuthBroker(cfg)
	now := time.Unix(1_800_000_000, 0)
	b.now = func() time.Time { return now }

	// Good login, counted against the account's limit of 2.
	if r := b.check(ipA, "alice", "wonderland", policy.ProtoFTP); r.account == nil {
		t.Fatalf("good login refused: %+v", r)
	}
	if r := b.check(ipA, "alice", "wonderland", policy.ProtoFTP); r.account == nil {
		t.Fatalf("second session refused: %+v", r)
	}
	if r := b.check(ipA, "alice", "wonderland", policy.ProtoFTP); r.account != nil || r.code != 421 || !strings.Contains(r.msg, "Too many sessions") {
		t.Fatalf("third session: %+v, want 421 too many sessions", r)
	}
	b.release("alice")
	if r := b.check(ipA, "alice", "wonderland", policy.ProtoFTP); r.account == nil {
		t.Fatalf("after a release, login refused: %+v", r)
	}

	// Wrong password, unknown user and a disallowed source all look alike;
	// the third failure within the window bans. The ban holds even for a
	// right password, and lifts after ban_duration.
	for i, c := range []struct{ user, pass string }{{"alice", "nope"}, {"nobody", "x"}, {"lan", "office"}} {
		r := b.check(ipB, c.user, c.pass, policy.ProtoFTP)
		want := authResult{code: 530, msg: "Login incorrect.", failed: true}
		if i == 2 {
			want = authResult{code: 421, msg: "Too many failed logins from your address; try again later.", banned: true, failed: true}
		}
		if r != want {
			t.Fatalf("%s/%s: %+v, want %+v", c.user, c.pass, r, want)
		}
	}
	if !b.banned(ipB) {
		t.Fatal("3 failures did not ban")
	}
	if r := b.check(ipB, "alice", "wonderland", policy.ProtoFTP); !r.banned || r.code != 421 {
		t.Fatalf("banned address logged in: %+v", r)
	}
	if b.banned(ipA) {
		t.Fatal("the ban spilled over to another address")
	}
	now = now.Add(11 * time.Minute)
	if b.banned(ipB) {
		t.Fatal("ban did not lift after ban_duration")
	}

	// Failures outside the window do not add up.
	ipC := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 5; i++ {
		b.check(ipC, "alice", "bad", policy.ProtoFTP)
		now = now.Add(40 * time.Second)
	}
	if b.banned(ipC) {
		t.Fatal("failures spread beyond ban_window banned the address")
	}
}

func TestCredentialCache(t *testing.T) {
	cfg := testConfig(t, "")
	b := newAuthBroker(cfg)
	key := b.credKey("alice", "wonderland")
	if r := b.check(ipA, "alice", "wonderland", policy.ProtoFTP); r.account == nil {
		t.Fatal("login refused")
	}
	b.release("alice")
	if _, ok := b.cache[key]; !ok {
		t.Fatal("verified credential not cached")
	}
	// A cache hit must be fast: far below one argon2id verification.
	start := time.Now()
	for i := 0; i < 100; i++ {
		if r := b.check(ipA, "alice", "wonderland", policy.ProtoFTP); r.account == nil {
			t.Fatal("cached login refused")
		}
		b.release("alice")
	}
	if per := time.Since(start) / 100; per > 5*time.Millisecond {
		t.Errorf("cached login took %v each: the cache is not used", per)
	}
	// The cache never answers for a different password.
	if r := b.check(ipA, "alice", "wonderland2", policy.ProtoFTP); r.account != nil {
		t.Fatal("wrong password accepted")
	}
	// Reload drops the cache and changes the secret.
	old := b.secret
	b.reload(testConfig(t, ""))
	if len(b.cache) != 0 || b.secret == old {
		t.Fatal("reload kept cached credentials")
	}
}

func TestRequestTable(t *testing.T) {
	cases := []struct {
		typ   ipc.Type
		phase phase
		count int
		ok    bool
	}{
		{ipc.TReady, phaseSpawned, 0, true},
		{ipc.TReady, phaseSpawned, 1, false},
		{ipc.TReady, phasePreAuth, 0, false},
		{ipc.TAuthRequest, phaseIdle, 0, false},
		{ipc.TAuthRequest, phasePreAuth, 0, true},
		{ipc.TAuthRequest, phasePostAuth, 1, true},
		{ipc.TEvent, phasePreAuth, 0, false},
		{ipc.TEvent, phasePostAuth, 1000, true},
		{ipc.TClose, phasePreAuth, 0, true},
		{ipc.TClose, phasePostAuth, 1, false},
		{ipc.TClose, phaseClosed, 0, false},
		{ipc.TStart, phasePreAuth, 0, false},      // supervisor → worker only
		{ipc.TAuthReply, phasePostAuth, 0, false}, // supervisor → worker only
		{ipc.TShutdown, phasePostAuth, 0, false},
		{ipc.Type(99), phasePostAuth, 0, false},
	}
	for _, c := range cases {
		err := allowed(c.typ, c.phase, c.count)
		if (err == nil) != c.ok {
			t.Errorf("%s in %s (count %d): err=%v, want ok=%v", c.typ, c.phase, c.count, err, c.ok)
		}
	}
}

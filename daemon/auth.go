package daemon

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/sluice-ftp/sluice/policy"
)

// authBroker checks credentials for workers. It holds the only copy of the
// password hashes (invariant 5), the ban list and the per-account session
// counts.
//
// argon2id costs tens of milliseconds by design, which would cap a login
// storm near 50 logins/s per core. A short-lived cache of verified
// credentials lets repeated logins skip the KDF: the key is an HMAC of the
// name and password under a per-process random secret, so the cache holds
// no password and no offline-attackable hash of one (the secret never leaves
// this process). The cache is dropped on reload, which is also how a
// password change (sluice user passwd + SIGHUP) takes effect.
type authBroker struct {
	mu       sync.Mutex
	cfg      *policy.Config
	secret   [32]byte
	cache    map[[32]byte]cacheEntry
	ttl      time.Duration
	failures map[netip.Addr][]time.Time
	bans     map[netip.Addr]time.Time
	sessions map[string]int // logged-in sessions per account
	now      func() time.Time
}

type cacheEntry struct {
	account string
	expires time.Time
}

// credentialCacheTTL bounds how long a verified password is honoured
// without running the KDF again.
const credentialCacheTTL = 5 * time.Minute

func newAuthBroker(cfg *policy.Config) *authBroker {
	b := &authBroker{
		cfg:      cfg,
		cache:    map[[32]byte]cacheEntry{},
		ttl:      credentialCacheTTL,
		failures: map[netip.Addr][]time.Time{},
		bans:     map[netip.Addr]time.Time{},
		sessions: map[string]int{},
		now:      time.Now,
	}
	rand.Read(b.secret[:])
	return b
}

// reload swaps the configuration and drops every cached credential.
func (b *authBroker) reload(cfg *policy.Config) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg = cfg
	clear(b.cache)
	rand.Read(b.secret[:])
}

// authResult is the broker's verdict.
type authResult struct {
	account *policy.Account
	code    int    // reply code on failure: 530 or 421
	msg     string // reply text on failure
	banned  bool   // the client is banned: close the connection
	failed  bool   // counted as a failed login (bad name or password)
}

// banned reports whether ip may not connect now.
func (b *authBroker) banned(ip netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.bans[ip]
	if !ok {
		return false
	}
	if b.now().After(until) {
		delete(b.bans, ip)
		return false
	}
	return true
}

// check verifies a login from ip. It does not sleep: the caller applies the
// failure delay, so the broker's lock is never held across it.
func (b *authBroker) check(ip netip.Addr, user, pass, proto string) authResult {
	if b.banned(ip) {
		return authResult{code: 421, msg: "Too many failed logins from your address; try again later.", banned: true}
	}
	b.mu.Lock()
	cfg := b.cfg
	key := b.credKey(user, pass)
	ce, cached := b.cache[key]
	b.mu.Unlock()

	acct := cfg.Account(user)
	ok := false
	switch {
	case acct == nil || acct.Disabled:
		// Spend the same time as a real check so that valid names cannot
		// be told from invalid ones by timing.
		policy.VerifyPassword(dummyHash(), pass)
	case cached && ce.account == acct.Name && b.now().Before(ce.expires):
		ok = true
	default:
		ok, _ = policy.VerifyPassword(acct.Password, pass)
		if ok {
			b.mu.Lock()
			if b.cfg == cfg { // not reloaded meanwhile
				b.cache[key] = cacheEntry{account: acct.Name, expires: b.now().Add(b.ttl)}
			}
			b.mu.Unlock()
		}
	}
	if !ok {
		return b.fail(ip, cfg)
	}
	if !acct.AllowedFrom(ip) {
		// Same reply as a bad password: do not confirm the account exists.
		return b.fail(ip, cfg)
	}
	// Role limits (policy.Resolve): the password was right, so saying
	// why is no oracle.
	if !acct.Limits.AllowsProtocol(proto) {
		name := map[string]string{policy.ProtoFTP: "plain FTP", policy.ProtoFTPS: "FTPS", policy.ProtoSFTP: "SFTP"}[proto]
		return authResult{code: 530, msg: fmt.Sprintf("This account may not log in over %s (its roles require TLS or another protocol).", name)}
	}
	if !acct.Limits.AllowsTime(b.now()) {
		return authResult{code: 530, msg: "Logins to this account are not allowed at this time of day."}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	max := acct.MaxSessions
	if max == 0 {
		max = cfg.Limits.MaxSessionsPerAccount
	}
	if max > 0 && b.sessions[acct.Name] >= max {
		return authResult{code: 421, msg: "Too many sessions for this account; try again later."}
	}
	b.sessions[acct.Name]++
	delete(b.failures, ip)
	return authResult{account: acct}
}

// checkKey is check for SSH public-key authentication: the worker's SSH
// server verified the signature (or, with query, none was made yet); the
// broker decides whether that key may log in to user. A refused key
// counts as a failed login (toward the ban); query makes no session slot.
func (b *authBroker) checkKey(ip netip.Addr, user string, key []byte, query bool) authResult {
	if b.banned(ip) {
		return authResult{code: 421, msg: "Too many failed logins from your address; try again later.", banned: true}
	}
	b.mu.Lock()
	cfg := b.cfg
	b.mu.Unlock()
	acct := cfg.Account(user)
	ok := false
	if acct != nil && !acct.Disabled && acct.AllowedFrom(ip) {
		for _, k := range acct.AuthorizedKeys {
			if subtle.ConstantTimeCompare(k, key) == 1 {
				ok = true
			}
		}
	}
	if !ok {
		if query {
			return b.fail(ip, cfg)
		}
		// A login with a key that the query accepted moments ago:
		// only a reload can refuse it now. Not a guess.
		return authResult{code: 530, msg: "Login incorrect."}
	}
	// The same role limits as a password login (check).
	if !acct.Limits.AllowsProtocol(policy.ProtoSFTP) {
		return authResult{code: 530, msg: "This account may not log in over SFTP (its roles allow other protocols)."}
	}
	if !acct.Limits.AllowsTime(b.now()) {
		return authResult{code: 530, msg: "Logins to this account are not allowed at this time of day."}
	}
	if query {
		return authResult{account: acct}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	max := acct.MaxSessions
	if max == 0 {
		max = cfg.Limits.MaxSessionsPerAccount
	}
	if max > 0 && b.sessions[acct.Name] >= max {
		return authResult{code: 421, msg: "Too many sessions for this account; try again later."}
	}
	b.sessions[acct.Name]++
	delete(b.failures, ip)
	return authResult{account: acct}
}

// release ends one logged-in session of account.
func (b *authBroker) release(account string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sessions[account] > 1 {
		b.sessions[account]--
	} else {
		delete(b.sessions, account)
	}
}

func (b *authBroker) fail(ip netip.Addr, cfg *policy.Config) authResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	window := cfg.Limits.BanWindow
	fs := b.failures[ip][:0:0]
	for _, t := range b.failures[ip] {
		if now.Sub(t) < window {
			fs = append(fs, t)
		}
	}
	fs = append(fs, now)
	b.failures[ip] = fs
	if n := cfg.Limits.BanAfterFailures; n > 0 && len(fs) >= n {
		b.bans[ip] = now.Add(cfg.Limits.BanDuration)
		delete(b.failures, ip)
		return authResult{code: 421, msg: "Too many failed logins from your address; try again later.", banned: true, failed: true}
	}
	return authResult{code: 530, msg: "Login incorrect.", failed: true}
}

func (b *authBroker) credKey(user, pass string) [32]byte {
	m := hmac.New(sha256.New, b.secret[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

// gc drops expired bans, failures and cache entries.
func (b *authBroker) gc() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for ip, until := range b.bans {
		if now.After(until) {
			delete(b.bans, ip)
		}
	}
	for ip, fs := range b.failures {
		if len(fs) == 0 || now.Sub(fs[len(fs)-1]) > b.cfg.Limits.BanWindow {
			delete(b.failures, ip)
		}
	}
	for k, e := range b.cache {
		if now.After(e.expires) {
			delete(b.cache, k)
		}
	}
}

// dummyHash is verified against when the account does not exist, so that a
// failed login costs the same whether or not the name is valid.
// It is computed on first use, not at init: workers run this binary too and
// must not pay for a KDF at start-up.
var dummyHash = sync.OnceValue(func() string {
	h, err := policy.HashPassword("sluice-timing-equaliser")
	if err != nil {
		panic(err)
	}
	return h
})

// bannedCount is the number of addresses banned now (metrics).
func (b *authBroker) bannedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	now := b.now()
	for _, until := range b.bans {
		if now.Before(until) {
			n++
		}
	}
	return n
}

// ban adds ip to the ban list for d (sluice ban).
func (b *authBroker) ban(ip netip.Addr, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bans[ip] = b.now().Add(d)
}

// bannedList lists the bans in force, soonest to expire first.
func (b *authBroker) bannedList() []BannedAddress {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []BannedAddress
	for ip, until := range b.bans {
		if now.Before(until) {
			out = append(out, BannedAddress{IP: ip.String(), Until: until})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Until.Before(out[j].Until) })
	return out
}

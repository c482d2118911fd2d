package accounting

import (
	"fmt"
	"sync"
	"time"
)

// Ledger is the user-space accounting mode, used when eBPF is unavailable
// (not root, no cgroup v2, old kernel): the same counters, limits and
// shares as the kernel maps, kept by the supervisor from what workers
// report. It counts what the movers moved (datapath.Result.Bytes, the
// sendfile/splice return values) — data connections only, so control
// traffic is excluded by construction — but it trusts the workers'
// reports, which the kernel mode does not need to. Safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	acc     map[string]*ledgerEntry
	global  Rates
	totals  Counters
	pending map[string]Counters // restored, not yet registered
}

type ledgerEntry struct {
	c     Counters
	rates Rates
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{acc: map[string]*ledgerEntry{}, pending: map[string]Counters{}}
}

// Mode names the accounting mode ("userspace").
func (l *Ledger) Mode() string { return "userspace" }

// AddAccount registers name; restored counters (see Restore) apply.
// Registering twice is a no-op.
func (l *Ledger) AddAccount(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entry(name)
}

func (l *Ledger) entry(name string) *ledgerEntry {
	e := l.acc[name]
	if e == nil {
		e = &ledgerEntry{c: l.pending[name].Persistent()}
		delete(l.pending, name)
		l.acc[name] = e
	}
	return e
}

// Add records n payload bytes moved by one of name's data connections.
// Workers report as they go (per chunk or per transfer); the supervisor
// calls Add.
func (l *Ledger) Add(name string, d Direction, n uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(name)
	if d == In {
		e.c.BytesIn += n
		l.totals.BytesIn += n
	} else {
		e.c.BytesOut += n
		l.totals.BytesOut += n
	}
}

// Open records a live data connection of name moving data in direction d
// and returns the function that ends it (idempotent).
func (l *Ledger) Open(name string, d Direction) (done func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(name)
	for _, c := range []*Counters{&e.c, &l.totals} {
		c.Conns++
		c.ConnsTotal++
		if d == In {
			c.ConnsIn++
		} else {
			c.ConnsOut++
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, c := range []*Counters{&e.c, &l.totals} {
				c.Conns--
				if d == In {
					c.ConnsIn--
				} else {
					c.ConnsOut--
				}
			}
		})
	}
}

// Counters returns name's counters.
func (l *Ledger) Counters(name string) (Counters, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.acc[name]
	if e == nil {
		return Counters{}, fmt.Errorf("accounting: unknown account %q", name)
	}
	return e.c, nil
}

// All returns the counters of every registered account.
func (l *Ledger) All() map[string]Counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]Counters, len(l.acc))
	for n, e := range l.acc {
		m[n] = e.c
	}
	return m
}

// Totals returns the sums over every account.
func (l *Ledger) Totals() Counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.totals
}

// SetRate sets name's bandwidth limits.
func (l *Ledger) SetRate(name string, r Rates) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entry(name).rates = r
}

// SetGlobalRate sets the limits shared by every connection.
func (l *Ledger) SetGlobalRate(r Rates) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global = r
}

// Share is what one of name's connections in direction d may use now —
// the value the supervisor pushes into that worker's ShareBox whenever a
// connection opens or closes (or a limit changes).
func (l *Ledger) Share(name string, d Direction) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(name)
	return MinRate(Share(e.rates.Get(d), e.c.Live(d)), Share(l.global.Get(d), l.totals.Live(d)))
}

// Snapshot returns the persistent counters of every account, including
// restored ones not registered since.
func (l *Ledger) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Snapshot{Version: SnapshotVersion, Mode: l.Mode(), Time: time.Now().UTC(), Accounts: map[string]Counters{}}
	for n, c := range l.pending {
		s.Accounts[n] = c.Persistent()
	}
	for n, e := range l.acc {
		s.Accounts[n] = e.c.Persistent()
	}
	return s
}

// Restore loads the counters of a snapshot. Counters only grow, so for an
// account already counting, each field keeps the larger value.
func (l *Ledger) Restore(s Snapshot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, c := range s.Accounts {
		if e := l.acc[n]; e != nil {
			e.c.BytesIn = max(e.c.BytesIn, c.BytesIn)
			e.c.BytesOut = max(e.c.BytesOut, c.BytesOut)
			e.c.ConnsTotal = max(e.c.ConnsTotal, c.ConnsTotal)
			continue
		}
		l.pending[n] = c.Persistent()
	}
}

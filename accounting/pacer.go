package accounting

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// ShareSource tells a connection its current share of the limits that
// apply to it: the account's rate divided by the account's live
// connections in that direction, capped by the global rate divided by all
// live connections. 0 means unlimited.
//
// In eBPF mode the source is a bpf.View: read-only fds of the kernel maps,
// so a worker computes its own share from state it cannot write. In
// user-space mode it is a ShareBox that the supervisor keeps up to date.
type ShareSource interface {
	Share(d Direction) (uint64, error)
}

// ShareFunc adapts a function to ShareSource.
type ShareFunc func(d Direction) (uint64, error)

// Share implements ShareSource.
func (f ShareFunc) Share(d Direction) (uint64, error) { return f(d) }

// ShareBox is a ShareSource whose values are pushed by someone else (the
// supervisor, in user-space mode). Safe for concurrent use.
type ShareBox struct {
	in, out atomic.Uint64
}

// Set stores the share for direction d.
func (b *ShareBox) Set(d Direction, rate uint64) {
	if d == In {
		b.in.Store(rate)
	} else {
		b.out.Store(rate)
	}
}

// Share implements ShareSource.
func (b *ShareBox) Share(d Direction) (uint64, error) {
	if d == In {
		return b.in.Load(), nil
	}
	return b.out.Load(), nil
}

// PacerConfig configures a Pacer.
type PacerConfig struct {
	// Source gives the account/global share; nil for none.
	Source ShareSource
	// Direction of the transfer: Out paces sendfile chunks (RETR), In
	// paces the splice reads (STOR).
	Direction Direction
	// SessionRate is the per-session limit in bytes per second, 0 for none.
	SessionRate uint64
	// Burst is how far (in time at the current rate) a connection that
	// fell behind (descheduled, a slow peer) may catch up at full speed:
	// 200 ms by default.
	Burst time.Duration
	// Refresh is how often the share is re-read: 20 ms by default. The
	// share changes as connections of the account come and go.
	Refresh time.Duration
	// Apply, if set, switches the pacer to kernel pacing: instead of
	// sleeping, Wait calls Apply with the rate whenever it changes (e.g.
	// bpf.PacingSetter, which sets SO_MAX_PACING_RATE on the socket).
	// Only meaningful for Out; 0 means unlimited.
	Apply func(rate uint64) error
	// Context cancels waits (ABOR, shutdown): Wait returns its error.
	Context context.Context
}

// Pacer is a token bucket whose rate is the connection's current share
// (see ShareSource), refreshed as the share changes. It implements
// datapath.Pacer: the mover calls Wait(n) after moving n bytes.
//
// Measured (KERNEL-NOTES): pacing the sender — by a token bucket around
// 1 MiB sendfile chunks or by SO_MAX_PACING_RATE — and pacing the reads of
// an upload hold the target rate without a retransmit; dropping packets
// stalls TCP at 15–25 % of the target. Pacer never drops anything.
type Pacer struct {
	c PacerConfig

	mu      sync.Mutex
	rate    uint64
	applied uint64
	hasApp  bool
	fetched time.Time
	tat     time.Time // theoretical arrival time of the next byte
	srcErr  error
}

// NewPacer returns a pacer for one transfer.
func NewPacer(c PacerConfig) *Pacer {
	if c.Burst <= 0 {
		c.Burst = 200 * time.Millisecond
	}
	if c.Refresh <= 0 {
		c.Refresh = 20 * time.Millisecond
	}
	if c.Context == nil {
		c.Context = context.Background()
	}
	return &Pacer{c: c}
}

// Rate returns the rate in force at the last Wait (0: unlimited).
func (p *Pacer) Rate() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

// refresh re-reads the share if it is older than Refresh. A failing
// source keeps the last known rate (the transfer is not aborted because a
// map lookup failed) and the error is reported by Err.
func (p *Pacer) refresh(now time.Time) {
	if !p.fetched.IsZero() && now.Sub(p.fetched) < p.c.Refresh {
		return
	}
	p.fetched = now
	share := uint64(0)
	if p.c.Source != nil {
		s, err := p.c.Source.Share(p.c.Direction)
		if err != nil {
			p.srcErr = err
			return
		}
		share = s
	}
	p.rate = MinRate(share, p.c.SessionRate)
}

// Err returns the last error of the share source, if any.
func (p *Pacer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.srcErr
}

// Wait accounts for n bytes just moved and blocks until the rate allows
// more. It returns the context's error if the context ends first.
func (p *Pacer) Wait(n int) error {
	if err := p.c.Context.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	now := time.Now()
	p.refresh(now)
	rate := p.rate
	if p.c.Apply != nil {
		var err error
		if !p.hasApp || rate != p.applied {
			err = p.c.Apply(rate)
			if err == nil {
				p.applied, p.hasApp = rate, true
			}
		}
		p.mu.Unlock()
		return err
	}
	if rate == 0 || n <= 0 {
		p.tat = now
		p.mu.Unlock()
		return nil
	}
	if p.tat.IsZero() {
		p.tat = now // no credit at the start: Burst is for catching up
	}
	if floor := now.Add(-p.c.Burst); p.tat.Before(floor) {
		p.tat = floor
	}
	p.tat = p.tat.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	d := p.tat.Sub(now)
	p.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.c.Context.Done():
		return p.c.Context.Err()
	}
}

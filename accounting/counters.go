package accounting

import "fmt"

// Direction of a transfer, seen from the server.
type Direction int

const (
	// In is client → server (STOR, APPE, STOU).
	In Direction = iota
	// Out is server → client (RETR, listings).
	Out
)

func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Counters is the state of one account (or of all of them).
type Counters struct {
	BytesIn    uint64 `json:"bytes_in"`    // data payload received
	BytesOut   uint64 `json:"bytes_out"`   // data payload sent
	Conns      uint64 `json:"conns"`       // live data connections
	ConnsIn    uint64 `json:"conns_in"`    // live connections receiving
	ConnsOut   uint64 `json:"conns_out"`   // live connections sending
	ConnsTotal uint64 `json:"conns_total"` // data connections ever opened
}

// Rates are bandwidth limits in bytes per second; 0 means unlimited.
type Rates struct {
	In  uint64 `json:"in"`
	Out uint64 `json:"out"`
}

// Get returns the rate of one direction.
func (r Rates) Get(d Direction) uint64 {
	if d == In {
		return r.In
	}
	return r.Out
}

// Live returns the live connections moving data in direction d.
func (c Counters) Live(d Direction) uint64 {
	if d == In {
		return c.ConnsIn
	}
	return c.ConnsOut
}

// Share is a connection's part of rate when live connections share it:
// rate ÷ live, rounded up, with live counted at least 1 (the asking
// connection itself, before the kernel has seen its first byte). 0
// (unlimited) stays 0.
func Share(rate, live uint64) uint64 {
	if rate == 0 {
		return 0
	}
	if live < 1 {
		live = 1
	}
	return (rate + live - 1) / live
}

// MinRate returns the tighter of two limits, where 0 means unlimited.
func MinRate(a, b uint64) uint64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	case a < b:
		return a
	}
	return b
}

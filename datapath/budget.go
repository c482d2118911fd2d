package datapath

import "fmt"

// Budget bounds the bytes one transfer may move: the storage and transfer
// quotas of the account, held by the supervisor across all its sessions.
// Next is called when every byte granted so far has moved and the
// transfer has more to move: a download with file left to send, an
// upload whose client sent at least one more byte (so an upload that
// fits its grant exactly never asks, and succeeds). It returns how many
// more bytes may move (> 0), or an error that ends the transfer;
// errors.Is and errors.As find that error in the mover's.
//
// The movers never move a byte beyond the grants: the partial file of an
// upload refused for its quota holds exactly the bytes granted.
type Budget interface {
	Next() (int64, error)
}

// allowance is a mover's view of its Budget: the bytes left of the
// grants. A nil *allowance (no Budget) allows everything.
type allowance struct {
	b    Budget
	left int64
}

func newAllowance(b Budget) *allowance {
	if b == nil {
		return nil
	}
	return &allowance{b: b}
}

// refill asks the budget until it grants something.
func (a *allowance) refill() error {
	for a.left <= 0 {
		n, err := a.b.Next()
		if err != nil {
			return err
		}
		if n <= 0 {
			return fmt.Errorf("quota budget granted %d bytes", n)
		}
		a.left += n
	}
	return nil
}

// cap bounds a chunk to what is left (left > 0).
func (a *allowance) cap(chunk int) int {
	return int(min(int64(chunk), a.left))
}

// use records n bytes moved.
func (a *allowance) use(n int) {
	if a != nil {
		a.left -= int64(n)
	}
}

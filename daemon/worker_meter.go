package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-ftp/sluice/accounting"
	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/datapath"
	"github.com/sluice-ftp/sluice/ftp"
)

// pacer is the account's pacer for one transfer of a metered session: a
// token bucket at the share the supervisor last pushed for the direction
// (the account's rate over its running transfers, the global one, the
// session cap), re-read as it changes. HASH reads are paced like
// downloads.
func (w *workerSession) pacer(dir string) datapath.Pacer {
	d := accounting.Out
	if dir == "in" {
		d = accounting.In
	}
	return accounting.NewPacer(accounting.PacerConfig{Source: &w.shares, Direction: d})
}

// meterTimeout bounds one Meter exchange; the supervisor answers at once
// unless it is counting a directory's usage for the first time.
const meterTimeout = 2 * time.Minute

// workerMeter is ftp.Meter over IPC: the supervisor holds every quota of
// the account, across its sessions.
type workerMeter struct{ w *workerSession }

// call sends one Meter and waits for its Grant.
func (m workerMeter) call(ctx context.Context, req ipc.Meter) (ipc.Grant, error) {
	w := m.w
	w.meterMu.Lock()
	defer w.meterMu.Unlock()
	select {
	case <-w.grants: // stale: its asker gave up
	default:
	}
	if err := w.ipc.Send(req); err != nil {
		return ipc.Grant{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, meterTimeout)
	defer cancel()
	select {
	case g := <-w.grants:
		return g, nil
	case <-ctx.Done():
		return ipc.Grant{}, errors.New("no answer from the supervisor about the account's quota")
	}
}

func refusal(g ipc.Grant) error {
	return &ftp.QuotaError{Code: g.Code, Msg: g.Msg}
}

// Begin implements ftp.Meter.
func (m workerMeter) Begin(ctx context.Context, t ftp.MeterInfo) (ftp.Metering, error) {
	id := m.w.meterID.Add(1)
	g, err := m.call(ctx, ipc.Meter{Op: ipc.MeterBegin, ID: id, Dir: t.Dir, Path: t.Path, Mode: t.Mode, Existing: t.Existing,
		Partial: t.Partial, PartialSize: t.PartialSize, Offset: t.Offset})
	if err != nil {
		return nil, err
	}
	if !g.OK {
		return nil, refusal(g)
	}
	return &metering{m: m, id: id, first: g.Bytes}, nil
}

// Quota implements ftp.Meter.
func (m workerMeter) Quota(ctx context.Context) (ftp.QuotaStatus, error) {
	g, err := m.call(ctx, ipc.Meter{Op: ipc.MeterQuery})
	if err != nil {
		return ftp.QuotaStatus{}, err
	}
	if !g.OK || g.Quota == nil {
		return ftp.QuotaStatus{}, refusal(g)
	}
	q := g.Quota
	return ftp.QuotaStatus{BytesUsed: q.BytesUsed, BytesLimit: q.BytesLimit, FilesUsed: q.FilesUsed, FilesLimit: q.FilesLimit,
		Period: q.Period, InUsed: q.InUsed, InLimit: q.InLimit, OutUsed: q.OutUsed, OutLimit: q.OutLimit}, nil
}

// unlimited is what Next grants when no quota bounds the transfer.
const unlimited = 1 << 62

// metering is one metered transfer (ftp.Metering, datapath.Budget).
type metering struct {
	m       workerMeter
	id      uint64
	first   int64 // Begin's grant: -1 unlimited, 0 none yet
	started bool
	granted int64 // bytes granted so far: all used when Next is called
}

// Next implements datapath.Budget: the mover has used every byte granted
// so far and asks for more.
func (x *metering) Next() (int64, error) {
	if !x.started {
		x.started = true
		switch {
		case x.first < 0:
			x.granted = unlimited
			return unlimited, nil
		case x.first > 0:
			x.granted = x.first
			return x.first, nil
		}
	}
	g, err := x.m.call(context.Background(), ipc.Meter{Op: ipc.MeterMore, ID: x.id, Used: x.granted})
	if err != nil {
		return 0, err
	}
	if !g.OK {
		return 0, refusal(g)
	}
	if g.Bytes < 0 {
		x.granted = unlimited
		return unlimited, nil
	}
	x.granted += g.Bytes
	return g.Bytes, nil
}

// End implements ftp.Metering.
func (x *metering) End(moved int64, committed bool) string {
	g, err := x.m.call(context.Background(), ipc.Meter{Op: ipc.MeterEnd, ID: x.id, Used: moved, Committed: committed})
	if err != nil || !g.OK {
		return ""
	}
	return g.Warning
}

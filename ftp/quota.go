package ftp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-ftp/sluice/datapath"
)

// Meter is the account's accounting: told of every transfer before it
// starts, it holds storage and transfer quotas across all the account's
// sessions (in a worker, the supervisor decides: ipc.Meter).
type Meter interface {
	// Begin is asked before the 150 reply. A *QuotaError refuses the
	// transfer with its reply.
	Begin(ctx context.Context, t MeterInfo) (Metering, error)
	// Quota reports the account's standing (AVBL, SITE QUOTA).
	Quota(ctx context.Context) (QuotaStatus, error)
}

// MeterInfo describes a transfer about to start.
type MeterInfo struct {
	Dir  string // "in" (upload) or "out" (download)
	Path string // virtual path
	// Uploads: Mode is "store" (a new file, or one that replaces the
	// existing file when complete) or "append"; Existing is the size of
	// the file under that name (-1: none); Partial, whether a resumable
	// partial of it was already there. Downloads: Existing is the
	// number of bytes to send.
	Mode     string
	Existing int64
	Partial  bool
	// PartialSize is that partial's length; Offset the REST offset.
	PartialSize int64
	Offset      int64
}

// Metering is one metered transfer: the datapath.Budget its mover asks
// for bytes, and End, told how it finished.
type Metering interface {
	datapath.Budget
	// End settles the transfer: moved bytes, and whether an upload was
	// committed under its name. It returns a line to add to the 226
	// reply (a quota warning), or "".
	End(moved int64, committed bool) string
}

// QuotaError refuses a transfer, or ends one, for a quota: Code and Msg
// are the reply (552 for storage, 451 or 550 for a transfer quota).
type QuotaError struct {
	Code int
	Msg  string
}

func (e *QuotaError) Error() string { return e.Msg }

// QuotaStatus is an account's standing against its quotas; a zero limit
// is "none".
type QuotaStatus struct {
	BytesUsed, BytesLimit int64
	FilesUsed, FilesLimit int64
	Period                string // of the transfer quotas: "day" or "month"
	InUsed, InLimit       int64
	OutUsed, OutLimit     int64
}

// errNoMeter: the account has no quota to report.
var errNoMeter = errors.New("no quota")

// meterBegin asks the account's Meter whether a transfer may start. It
// returns nil, true when there is no Meter; on a refusal it has replied.
func (s *Session) meterBegin(info MeterInfo) (Metering, bool) {
	if s.acct == nil || s.acct.Meter == nil {
		return nil, true
	}
	m, err := s.acct.Meter.Begin(s.ctx, info)
	if err != nil {
		code, msg := replyForErr(err, info.Path, opFile)
		s.reply(code, msg)
		return nil, false
	}
	return m, true
}

// uploadInfo describes an upload to p for Begin: what is there now. It
// costs two lookups, so only a metered session asks.
func (s *Session) uploadInfo(p, mode string, offset int64) MeterInfo {
	info := MeterInfo{Dir: "in", Path: p, Mode: mode, Existing: -1, Offset: offset}
	if s.acct == nil || s.acct.Meter == nil {
		return info
	}
	if fi, err := s.fs.Stat(p); err == nil && fi.Mode().IsRegular() {
		info.Existing = fi.Size()
	}
	if up, ok := s.fs.(Uploader); ok {
		if n, err := up.PartialSize(p); err == nil {
			info.Partial, info.PartialSize = true, n
		}
	}
	return info
}

// cmdAVBL answers AVBL (draft-peterson-streamlined-ftp-command-extensions):
// the bytes the account may still store, from its storage quota.
func (s *Session) cmdAVBL(arg string) {
	q, err := s.quota()
	if err != nil {
		s.reply(550, "AVBL: no storage quota applies to this account, so there is no figure to report.")
		return
	}
	if q.BytesLimit == 0 {
		s.reply(550, "AVBL: no storage quota applies to this account, so there is no figure to report.")
		return
	}
	s.reply(213, strconv.FormatInt(max(q.BytesLimit-q.BytesUsed, 0), 10))
}

// siteQuota answers SITE QUOTA: every quota of the account, used and left.
func (s *Session) siteQuota() {
	q, err := s.quota()
	if err != nil {
		if errors.Is(err, errNoMeter) {
			s.reply(200, "No quota applies to this account.")
		} else {
			s.reply(451, "Quota unavailable: "+err.Error())
		}
		return
	}
	s.replyMulti(200, "Quota for "+s.acct.Name+":", quotaLines(q), "End of quota.")
}

func (s *Session) quota() (QuotaStatus, error) {
	if s.acct == nil || s.acct.Meter == nil {
		return QuotaStatus{}, errNoMeter
	}
	return s.acct.Meter.Quota(s.ctx)
}

// quotaLines renders a status, one quota per line.
func quotaLines(q QuotaStatus) []string {
	var out []string
	line := func(what string, used, limit int64, unit func(int64) string) {
		if limit == 0 {
			out = append(out, fmt.Sprintf("%s: %s used, no limit", what, unit(used)))
			return
		}
		out = append(out, fmt.Sprintf("%s: %s of %s used (%d%%), %s left", what, unit(used), unit(limit),
			Percent(used, limit), unit(max(limit-used, 0))))
	}
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	line("Storage", q.BytesUsed, q.BytesLimit, HumanBytes)
	line("Files", q.FilesUsed, q.FilesLimit, count)
	if q.InLimit != 0 || q.OutLimit != 0 {
		line("Uploaded this "+q.Period, q.InUsed, q.InLimit, HumanBytes)
		line("Downloaded this "+q.Period, q.OutUsed, q.OutLimit, HumanBytes)
	}
	return out
}

// Percent is used as a whole percentage of limit (0 without a limit).
func Percent(used, limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	return used * 100 / limit
}

// HumanBytes renders n as "1.5 GB" (SI units, as MB/s elsewhere).
func HumanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// replyWithWarning sends a final reply with an extra line (a quota
// warning) before it, as a multi-line reply of the same code.
func (s *Session) replyWithWarning(code int, msg, warning string) {
	if warning == "" {
		s.reply(code, msg)
		return
	}
	s.replyMulti(code, msg, nil, strings.TrimSpace(warning))
}

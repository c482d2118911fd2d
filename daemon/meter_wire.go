package daemon

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluice-ftp/sluice/accounting"
	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/ftp"
	"github.com/sluice-ftp/sluice/policy"
)

// grantChunk is the most bytes one Grant gives a transfer. Transfer quotas
// are checked against the counters at each grant, so parallel transfers of
// one account can overshoot a transfer quota by at most this much each;
// storage grants are reserved, so they never overshoot.
const grantChunk = 16 << 20

// maxMeterXfers bounds the transfers a worker may have open at once (SFTP
// clients keep several files open; FTP has one).
const maxMeterXfers = 64

// meterXfer is one metered transfer of a worker.
type meterXfer struct {
	dir      string
	path     string
	real     string         // storage path (uploads to accounts with storage quotas)
	folder   *policy.Folder // the folder holding it
	mode     string
	existing int64
	partial  bool
	psize    int64  // the partial's size when it began
	offset   int64  // REST offset
	storage  bool   // storage usage follows this upload
	reserved int64  // storage bytes granted and not yet written
	settled  int64  // bytes already added to the storage usage
	counted  int64  // bytes already added to the ledger (SFTP)
	done     func() // ends its live-connection count in the ledger
	// For the transfer quota: the period's usage in x's direction when
	// it began, and the bytes it reported since. The counters can lag
	// what a worker has handed the kernel (a socket buffer not yet sent),
	// so the larger of the two figures decides.
	started bool
	base    int64
	moved   int64
}

// handleMeter answers a worker's Meter. It returns false if the worker was
// killed.
func (s *Server) handleMeter(w *worker, m ipc.Meter) bool {
	cfg := s.config()
	w.mu.Lock()
	name := w.loggedIn
	si := w.sess
	metered := w.metered
	x := w.xfers[m.ID]
	nx := len(w.xfers)
	w.mu.Unlock()
	acct := cfg.Account(name)
	switch {
	case !metered:
		w.kill("Meter from an unmetered session")
		return false
	case m.Op == ipc.MeterBegin && (x != nil || nx >= maxMeterXfers || (m.Dir != "in" && m.Dir != "out") ||
		!strings.HasPrefix(m.Path, "/") || len(m.Path) > 4096 || (m.Dir == "in" && m.Mode != ipc.ModeStore && m.Mode != ipc.ModeAppend)):
		w.kill("malformed Meter begin")
		return false
	case (m.Op == ipc.MeterMore || m.Op == ipc.MeterEnd) && (x == nil || m.Used < 0):
		w.kill("Meter for an unknown transfer")
		return false
	case m.Op != ipc.MeterBegin && m.Op != ipc.MeterMore && m.Op != ipc.MeterEnd && m.Op != ipc.MeterQuery:
		w.kill("unknown Meter op")
		return false
	}
	if acct == nil {
		// Deleted by a reload while the session runs: no new transfers.
		return s.grant(w, ipc.Grant{Code: 550, Msg: "This account no longer exists."})
	}
	lim := &acct.Limits
	switch m.Op {
	case ipc.MeterQuery:
		if !s.meter.usage.wait(name, nil) {
			return s.grant(w, ipc.Grant{Code: 451, Msg: "The account's storage is still being counted; try again in a minute."})
		}
		q := s.quotaInfo(acct, nil)
		return s.grant(w, ipc.Grant{OK: true, Quota: &q})

	case ipc.MeterBegin:
		x = &meterXfer{dir: m.Dir, path: m.Path, mode: m.Mode, existing: m.Existing, partial: m.Partial, psize: m.PartialSize, offset: m.Offset}
		if m.Dir == "in" && s.meter.usage.tracked(name) {
			x.real, x.folder = s.meter.usage.realPath(name, m.Path)
			x.storage = x.real != ""
			if x.storage && !s.meter.usage.wait(name, x.folder) {
				return s.grant(w, ipc.Grant{Code: 451, Msg: "The account's storage is still being counted for its quota; try again in a minute."})
			}
		}
		if x.storage {
			bytes, files := x.beginDelta()
			st := s.meter.usage.status(name, x.folder)
			st.files += files
			st.fFiles += files
			st.bytes += bytes
			st.fBytes += bytes
			if st.overFiles() {
				return s.refuseQuota(w, si, acct, m.Path, "in", 552, fmt.Sprintf("File quota exceeded: %s.", filesLine(st)))
			}
			if st.overBytes() {
				return s.refuseQuota(w, si, acct, m.Path, "in", 552, fmt.Sprintf("Storage quota exceeded: %s.", bytesLine(st)))
			}
			s.meter.usage.add(x.real, bytes, files, 0)
		}
		g, code, msg := s.nextGrant(acct, lim, x, true)
		if code != 0 {
			s.undoBegin(x)
			return s.refuseQuota(w, si, acct, m.Path, m.Dir, code, msg)
		}
		if w.userCounted {
			x.done = s.meter.user.Open(name, direction(m.Dir))
		}
		w.mu.Lock()
		gone := w.xfers == nil // reaped meanwhile (endMetered)
		if !gone {
			w.xfers[m.ID] = x
		}
		w.mu.Unlock()
		if gone {
			s.endXfer(w, m.ID, x)
			return false
		}
		return s.grant(w, ipc.Grant{OK: true, Bytes: g})

	case ipc.MeterMore:
		s.settle(w, x, m.Used)
		g, code, msg := s.nextGrant(acct, lim, x, false)
		if code != 0 {
			return s.refuseQuota(w, si, acct, x.path, x.dir, code, msg)
		}
		return s.grant(w, ipc.Grant{OK: true, Bytes: g})

	default: // end
		s.settle(w, x, m.Used)
		s.endXfer(w, m.ID, x)
		r := ipc.Grant{OK: true}
		if x.storage && m.Committed {
			if x.existing >= 0 {
				// The file it replaced is gone.
				s.meter.usage.add(x.real, -x.existing, -1, 0)
			}
			r.Warning = s.quotaWarning(si, acct, x)
		}
		return s.grant(w, r)
	}
}

// beginDelta is what an upload does to the disk before its first byte,
// as datapath.BeginUpload does it: the partial it starts from (a new one,
// a resumed one cut at the REST offset, or a copy of the file's first
// bytes for a resume or an append onto a complete file) minus the
// partial that was there.
func (x *meterXfer) beginDelta() (bytes, files int64) {
	had := int64(0)
	if x.partial {
		had = max(x.psize, 0)
	} else {
		files = 1
	}
	var start int64
	switch {
	case x.mode == ipc.ModeStore && x.offset > 0 && had > 0:
		start = min(x.offset, had)
	case x.mode == ipc.ModeAppend && x.existing < 0 && had > 0:
		start = had
	case x.mode == ipc.ModeStore && x.offset > 0:
		start = x.offset
	case x.mode == ipc.ModeAppend && x.existing >= 0:
		start = x.existing
	}
	return start - had, files
}

// undoBegin reverts what Begin added to the storage usage.
func (s *Server) undoBegin(x *meterXfer) {
	if !x.storage {
		return
	}
	bytes, files := x.beginDelta()
	s.meter.usage.add(x.real, -bytes, -files, 0)
}

// endXfer forgets a transfer: its unwritten reservation is released and
// its live count ends.
func (s *Server) endXfer(w *worker, id uint64, x *meterXfer) {
	if x.storage && x.reserved > 0 {
		s.meter.usage.add(x.real, 0, 0, -x.reserved)
		x.reserved = 0
	}
	if x.done != nil {
		x.done()
	}
	w.mu.Lock()
	delete(w.xfers, id) // a no-op on the nil map of a reaped worker
	if w.proto == policy.ProtoSFTP && w.userCounted && w.sftpEnded != nil {
		w.sftpEnded[x.path] = x.counted
	}
	w.mu.Unlock()
}

// settle moves the bytes a transfer reports having moved into the storage
// usage (out of its reservation) and, for a session the kernel does not
// count, into the ledger.
func (s *Server) settle(w *worker, x *meterXfer, used int64) {
	x.moved = max(x.moved, used)
	if x.storage && used > x.settled {
		d := used - x.settled
		r := min(d, x.reserved)
		s.meter.usage.add(x.real, d, 0, -r)
		x.reserved -= r
		x.settled = used
	}
	if w.userCounted {
		s.countUser(w, x, used)
	}
}

// countUser adds to the ledger the bytes of a transfer not counted yet:
// FTP has one transfer at a time, followed by progress events too; SFTP's
// are counted per transfer.
func (s *Server) countUser(w *worker, x *meterXfer, moved int64) {
	w.mu.Lock()
	var d int64
	if w.proto == policy.ProtoSFTP {
		d = moved - x.counted
		if d > 0 {
			x.counted = moved
		}
	} else {
		d = moved - w.ftpCounted
		if d > 0 {
			w.ftpCounted = moved
		}
	}
	name := w.loggedIn
	w.mu.Unlock()
	if d > 0 {
		s.meter.user.Add(name, direction(x.dir), uint64(d))
	}
}

// countEvent counts, for a session the kernel does not see, the bytes of a
// progress or transfer event.
func (s *Server) countEvent(w *worker, ev ftp.Event) {
	if !w.userCounted || ev.Dir == "" {
		return
	}
	w.mu.Lock()
	name := w.loggedIn
	var d int64
	switch {
	case w.proto == policy.ProtoSFTP && ev.Kind == "transfer":
		d = ev.Bytes
		if c, ok := w.sftpEnded[ev.Path]; ok {
			d -= c
			delete(w.sftpEnded, ev.Path)
		}
	case w.proto == policy.ProtoSFTP:
	case ev.Kind == "progress":
		if ev.Bytes > w.ftpCounted {
			d = ev.Bytes - w.ftpCounted
			w.ftpCounted = ev.Bytes
		}
	default: // the FTP transfer is over
		d = ev.Bytes - w.ftpCounted
		w.ftpCounted = 0
	}
	w.mu.Unlock()
	if d > 0 {
		s.meter.user.Add(name, direction(ev.Dir), uint64(d))
	}
}

// fileEvent keeps the storage usage right after deletions and renames.
func (s *Server) fileEvent(w *worker, ev ftp.Event) {
	w.mu.Lock()
	name := w.loggedIn
	w.mu.Unlock()
	u := s.meter.usage
	if ev.Code < 200 || ev.Code >= 300 || !u.tracked(name) {
		return
	}
	switch ev.Kind {
	case "delete":
		if ev.File {
			real, _ := u.realPath(name, ev.Path)
			u.add(real, -ev.Size, -1, 0)
		}
	case "rename":
		from, _ := u.realPath(name, ev.Path)
		to, _ := u.realPath(name, ev.Path2)
		if ev.Replaced {
			u.add(to, -ev.ReplacedSize, -1, 0)
		}
		if ev.File {
			u.add(from, -ev.Size, -1, 0)
			u.add(to, ev.Size, 1, 0)
		} else if from != to {
			// A directory moved between tracked directories: what it
			// held is unknown here.
			go u.rescan(name)
		}
	}
}

// nextGrant decides how many more bytes transfer x may move: the room
// left in the account's transfer quota for its direction and, for an
// upload, in its storage quota (reserved until written). A code != 0
// refuses it with that reply. first: the transfer has not started yet.
func (s *Server) nextGrant(acct *policy.Account, lim *policy.AccessLimits, x *meterXfer, first bool) (int64, int, string) {
	g := int64(-1)
	if tq := transferLimit(lim, x.dir); tq > 0 {
		in, out := s.meter.periodUsage(acct.Name, lim.TransferQuotaPeriod, time.Now())
		used := out
		if x.dir == "in" {
			used = in
		}
		if !x.started {
			x.started, x.base = true, used
		}
		used = max(used, x.base+x.moved)
		if used >= tq {
			verb, code := "Download", 451
			if x.dir == "in" {
				verb, code = "Upload", 552
			}
			if first && x.dir == "out" {
				code = 550
			}
			return 0, code, fmt.Sprintf("%s quota reached: %s of %s this %s; it resets at %s.", verb,
				ftp.HumanBytes(used), ftp.HumanBytes(tq), lim.TransferQuotaPeriod,
				periodEnd(lim.TransferQuotaPeriod, time.Now()).Format("2006-01-02 15:04 UTC"))
		}
		g = min(grantChunk, tq-used)
	}
	if x.storage {
		st := s.meter.usage.status(acct.Name, x.folder)
		room := st.room()
		if room >= 0 {
			if room == 0 && !first {
				return 0, 552, fmt.Sprintf("Storage quota exceeded: %s; the partial file is kept.", bytesLine(st))
			}
			r := min(room, grantChunk)
			if g < 0 || r < g {
				g = r
			}
			// Reserve it, so that parallel uploads cannot both use it.
			s.meter.usage.add(x.real, 0, 0, g)
			x.reserved += g
		}
	}
	return g, 0, ""
}

func transferLimit(l *policy.AccessLimits, dir string) int64 {
	if dir == "in" {
		return l.TransferQuotaIn
	}
	return l.TransferQuotaOut
}

// refuseQuota answers a Meter with a refusal and records it: an audit
// event and the quota-exceeded hook.
func (s *Server) refuseQuota(w *worker, si sessionInfo, acct *policy.Account, path, dir string, code int, msg string) bool {
	s.logs.Audit.Info().Str("event", "quota.exceeded").Str("session", si.ID).Str("account", acct.Name).
		Str("path", path).Str("dir", dir).Int("code", code).Str("reason", msg).Send()
	s.hooks.fire(HookEvent{Event: "quota-exceeded", Account: acct.Name, Groups: acct.Groups, Remote: si.Remote, Session: si.ID, Path: path, Code: code})
	return s.grant(w, ipc.Grant{Code: code, Msg: msg})
}

// quotaWarning returns the 226 warning line after upload x, and when the
// account's usage crossed a quota_warnings threshold upwards since the
// last report, writes the audit event and fires the quota-warning hook.
func (s *Server) quotaWarning(si sessionInfo, acct *policy.Account, x *meterXfer) string {
	st := s.meter.usage.status(acct.Name, x.folder)
	pct := max(ftp.Percent(st.bytes, st.bytesLimit), ftp.Percent(st.files, st.filesLimit),
		ftp.Percent(st.fBytes, st.fBytesLimit), ftp.Percent(st.fFiles, st.fFilesLimit))
	level := 0
	for _, t := range s.config().Limits.QuotaWarnings {
		if pct >= int64(t) {
			level = t
		}
	}
	s.meter.mu.Lock()
	prev := s.meter.warned[acct.Name]
	s.meter.warned[acct.Name] = level
	s.meter.mu.Unlock()
	if level == 0 {
		return ""
	}
	line := fmt.Sprintf("Quota warning: %d%% of your quota used (%s", pct, bytesLine(st))
	if st.filesLimit > 0 {
		line += "; " + filesLine(st)
	}
	line += ")."
	if level > prev {
		s.logs.Audit.Warn().Str("event", "quota.warning").Str("session", si.ID).Str("account", acct.Name).
			Int("threshold", level).Int64("percent", pct).Int64("bytes", st.bytes).Int64("bytes_limit", st.bytesLimit).
			Int64("files", st.files).Int64("files_limit", st.filesLimit).Send()
		s.hooks.fire(HookEvent{Event: "quota-warning", Account: acct.Name, Groups: acct.Groups, Remote: si.Remote, Session: si.ID,
			Path: x.path, Size: st.bytes, Code: int(pct)})
	}
	return line
}

func bytesLine(st storageStatus) string {
	if st.fBytesLimit > 0 && (st.bytesLimit == 0 || st.fBytesLimit-st.fBytes < st.bytesLimit-st.bytes) {
		return fmt.Sprintf("%s of %s used in %s", ftp.HumanBytes(st.fBytes), ftp.HumanBytes(st.fBytesLimit), st.folder)
	}
	return fmt.Sprintf("%s of %s used", ftp.HumanBytes(st.bytes), ftp.HumanBytes(st.bytesLimit))
}

func filesLine(st storageStatus) string {
	if st.fFilesLimit > 0 && (st.filesLimit == 0 || st.fFilesLimit-st.fFiles < st.filesLimit-st.files) {
		return fmt.Sprintf("%d of %d files in %s", st.fFiles, st.fFilesLimit, st.folder)
	}
	return fmt.Sprintf("%d of %d files", st.files, st.filesLimit)
}

// quotaInfo is an account's standing, for SITE QUOTA, AVBL and status.
func (s *Server) quotaInfo(acct *policy.Account, folder *policy.Folder) ipc.QuotaInfo {
	st := s.meter.usage.status(acct.Name, folder)
	q := ipc.QuotaInfo{BytesUsed: st.bytes, BytesLimit: st.bytesLimit, FilesUsed: st.files, FilesLimit: st.filesLimit}
	lim := &acct.Limits
	if lim.TransferQuotaIn != 0 || lim.TransferQuotaOut != 0 {
		in, out := s.meter.periodUsage(acct.Name, lim.TransferQuotaPeriod, time.Now())
		q.Period, q.InUsed, q.InLimit, q.OutUsed, q.OutLimit = lim.TransferQuotaPeriod, in, lim.TransferQuotaIn, out, lim.TransferQuotaOut
	}
	return q
}

func (s *Server) grant(w *worker, g ipc.Grant) bool {
	if err := w.ipc.Send(g); err != nil {
		w.kill("grant failed: " + err.Error())
		return false
	}
	return true
}

func direction(dir string) accounting.Direction {
	if dir == "in" {
		return accounting.In
	}
	return accounting.Out
}

// metered reports whether sessions of acct announce their transfers:
// when a rate or a quota applies to them.
func metered(cfg *policy.Config, acct *policy.Account) bool {
	return acct.Limits.Metered() || cfg.Limits.UploadRate != 0 || cfg.Limits.DownloadRate != 0 ||
		slicesAnyFolderQuota(acct.Folders)
}

func slicesAnyFolderQuota(fs []policy.Folder) bool {
	for _, f := range fs {
		if f.QuotaBytes != 0 || f.QuotaFiles != 0 {
			return true
		}
	}
	return false
}

// sessionRates computes the shares of worker w of account acct now: for
// each direction the smallest of the account's rate over its live
// transfers, the global rate over all live transfers, and the session
// cap (0: unlimited).
func (s *Server) sessionRates(cfg *policy.Config, acct *policy.Account) ipc.Rates {
	c := s.meter.counters(acct.Name)
	t := s.meter.totals()
	share := func(d accounting.Direction, acctRate, globalRate, sessRate int64) uint64 {
		return accounting.MinRate(accounting.MinRate(
			accounting.Share(uint64(acctRate), c.Live(d)),
			accounting.Share(uint64(globalRate), t.Live(d))), uint64(sessRate))
	}
	l := &acct.Limits
	return ipc.Rates{
		In:  share(accounting.In, l.UploadRate, cfg.Limits.UploadRate, l.SessionUploadRate),
		Out: share(accounting.Out, l.DownloadRate, cfg.Limits.DownloadRate, l.SessionDownloadRate),
	}
}

// rateLoop keeps every metered worker's shares current (every 100 ms: a
// transfer that starts or ends changes its account's shares), rolls the
// transfer-quota periods and saves the counters every save_interval.
func (s *Server) rateLoop(stop <-chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastSave, lastSample := time.Now(), time.Time{}
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			cfg := s.config()
			for _, w := range s.liveWorkers() {
				w.mu.Lock()
				name, metered, prev := w.loggedIn, w.metered, w.rates
				w.mu.Unlock()
				if !metered || name == "" {
					continue
				}
				acct := cfg.Account(name)
				if acct == nil {
					continue
				}
				r := s.sessionRates(cfg, acct)
				if r == prev {
					continue
				}
				w.mu.Lock()
				w.rates = r
				w.mu.Unlock()
				if err := w.ipc.Send(r); err != nil {
					continue // the worker is going away
				}
			}
			s.meter.rollPeriods(cfg, now)
			if now.Sub(lastSample) >= time.Second {
				lastSample = now
				s.meter.sample(now)
			}
			if now.Sub(lastSave) >= cfg.Accounting.SaveInterval && !s.meter.handedOver() {
				// (After a handover the file is the new supervisor's.)
				lastSave = now
				s.meter.mergeCarry()
				if err := s.meter.save(); err != nil {
					s.logs.Ops.Error().Err(err).Msg("accounting: saving the counters failed")
				}
			}
		}
	}
}

package ftp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// transfer is one running data transfer. The main loop owns it; the
// goroutine that moves the bytes reports through done, and abort may be
// called from the main loop at any time.
type transfer struct {
	verb  string // RETR, STOR, APPE, STOU, LIST, NLST, MLSD
	path  string // virtual path
	name  string // how replies name it
	dir   string // "in" (upload), "out" (download), "" (listing)
	start time.Time
	size  int64    // bytes to send (out), else 0
	file  *os.File // nil for listings
	base  int64    // file size when an upload started (for progress)
	// upload, for atomic uploads: committed when the bytes arrived,
	// kept as a resumable partial otherwise. file is its partial.
	upload *datapath.Upload
	digest string           // detail for the log: the committed XXH64 and how the digest resumed
	meter  Metering         // the account's quota budget for it; nil: unmetered
	final  *datapath.Record // the committed upload (size, XXH64), for hooks

	// moved counts the bytes moved so far (datapath advances it per
	// chunk), for progress reports and STAT.
	moved atomic.Int64

	done    chan xferResult
	ln      net.Listener // passive listener, closed on abort
	refused int          // data connections refused (wrong peer); goroutine-owned until done

	mu      sync.Mutex
	conn    net.Conn
	aborted bool // ABOR
	cancel  context.CancelFunc
}

// xferResult is how a transfer ended.
type xferResult struct {
	res    moveResult
	err    error
	noConn bool // the data connection was never established
}

// setConn publishes the data connection so abort can close it; it returns
// false (and closes c) if the transfer was aborted meanwhile.
func (t *transfer) setConn(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted {
		_ = c.Close()
		return false
	}
	t.conn = c
	return true
}

// abort stops the transfer wherever it is: waiting for the connection
// (listener closed, dial cancelled) or moving bytes (connection closed,
// which unblocks sendfile/splice/read/write in the mover).
func (t *transfer) abort() {
	t.mu.Lock()
	t.aborted = true
	c := t.conn
	t.mu.Unlock()
	t.cancel()
	if t.ln != nil {
		_ = t.ln.Close()
	}
	if c != nil {
		_ = c.Close()
	}
}

func (t *transfer) wasAborted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.aborted
}

// progress returns the bytes moved so far: the movers advance moved as
// they go, in both directions.
func (t *transfer) progress() (int64, bool) {
	if t.dir == "" {
		return 0, false
	}
	return t.moved.Load(), true
}

// startTransfer takes the pending data setup and runs body on the data
// connection in a goroutine. The caller has sent the 150 reply.
func (s *Session) startTransfer(t *transfer, body func(net.Conn) (moveResult, error)) {
	open := s.takeDataSetup(t)
	// Not s.ctx: on shutdown a running transfer is allowed to finish.
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.done = make(chan xferResult, 1)
	t.start = time.Now()
	s.xfer = t
	go func() {
		defer cancel()
		r := t.run(ctx, open, body)
		if t.upload != nil {
			t.finishUpload(&r)
		} else if t.file != nil {
			// For uploads a failed close can be the first sign of a full
			// disk (delayed allocation, NFS).
			if err := t.file.Close(); err != nil && r.err == nil && t.dir == "in" {
				r.err = fmt.Errorf("ftp: closing %s: %w", t.path, err)
			}
		}
		t.done <- r
	}()
}

// finishUpload commits an atomic upload that received all its bytes, or
// keeps its partial (checkpointed) for a resume.
func (t *transfer) finishUpload(r *xferResult) {
	u := t.upload
	if r.err != nil {
		u.Abort()
		t.digest = "partial kept for resume; digest resumed from " + u.Resumed
		return
	}
	rec, err := u.Commit()
	if err != nil {
		r.err = fmt.Errorf("ftp: completing %s: %w", t.path, err)
		t.digest = "partial kept for resume"
		return
	}
	t.digest = "xxh64=" + rec.Hex() + "; digest resumed from " + u.Resumed
	t.final = &rec
}

func (t *transfer) run(ctx context.Context, open func(context.Context) (net.Conn, error),
	body func(net.Conn) (moveResult, error)) xferResult {
	conn, err := open(ctx)
	if err != nil {
		return xferResult{err: err, noConn: true}
	}
	if !t.setConn(conn) {
		return xferResult{err: net.ErrClosed, noConn: true}
	}
	defer conn.Close()
	res, err := body(conn)
	return xferResult{res: res, err: err}
}

// finishTransfer sends the final reply of the running transfer and records
// it. quiet skips the reply (the control connection is going away).
func (s *Session) finishTransfer(r xferResult, quiet bool) {
	t := s.xfer
	s.xfer = nil
	aborted := t.wasAborted()
	code, msg := 226, "Transfer complete."
	switch {
	case r.err == nil:
		// Done, even if an ABOR raced with the last bytes.
	case aborted:
		code, msg = 426, "Connection closed; transfer aborted."
	case errors.Is(r.err, os.ErrDeadlineExceeded):
		// The mover's StallTimeout (DataTimeout without progress).
		code, msg = 426, "Data connection stalled; transfer aborted."
	case r.noConn && errors.Is(r.err, ErrTLSNoReuse):
		code, msg = 522, "Data connection refused: it must resume the control connection's TLS session (tls_reuse = false relaxes this for the account)."
	case r.noConn && errors.Is(r.err, errTLSData):
		code, msg = 522, "TLS negotiation failed on the data connection."
	case r.noConn && errors.Is(r.err, errDataTimeout):
		code, msg = 425, fmt.Sprintf("Cannot open data connection: none from your address within %s.", s.dataTimeout())
	case r.noConn:
		code, msg = 425, "Cannot open data connection."
	default:
		code, msg = replyForErr(r.err, t.name, opTransfer)
	}
	warning := ""
	if t.meter != nil {
		warning = t.meter.End(r.res.Bytes, t.final != nil && code == 226)
	}
	// Record before replying: once the client sees the reply, Summary and
	// the audit log already include the transfer.
	if t.dir != "" {
		s.recordTransfer(t, r, code)
	}
	if !quiet {
		s.replyWithWarning(code, msg, warning)
	} else {
		s.mu.Lock()
		s.sum.LastCode = code
		s.mu.Unlock()
	}
}

// recordTransfer updates the summary and emits the "transfer" event.
func (s *Session) recordTransfer(t *transfer, r xferResult, code int) {
	s.mu.Lock()
	if t.dir == "in" {
		s.sum.BytesIn += r.res.Bytes
		if code == 226 {
			s.sum.FilesIn++
		}
	} else {
		s.sum.BytesOut += r.res.Bytes
		if code == 226 {
			s.sum.FilesOut++
		}
	}
	s.mu.Unlock()
	ev := Event{
		Kind:     "transfer",
		Command:  t.verb,
		Path:     t.path,
		Dir:      t.dir,
		Bytes:    r.res.Bytes,
		Duration: time.Since(t.start),
		Code:     code,
		Mover:    r.res.Mover,
		Fallback: r.res.Fallback,
	}
	var detail []string
	if r.err != nil {
		detail = append(detail, r.err.Error())
	}
	if t.digest != "" {
		detail = append(detail, t.digest)
	}
	if t.refused > 0 {
		detail = append(detail, fmt.Sprintf("refused %d data connection(s) from other addresses", t.refused))
	}
	ev.Detail = strings.Join(detail, "; ")
	if t.final != nil && code == 226 {
		ev.Size, ev.XXH64 = t.final.Size, t.final.Hex()
	}
	s.emit(ev)
}

// abortTransfer handles ABOR during a transfer (RFC 959 section 4.1.3): the
// transfer's own reply (426 if it was cut short) and then 226.
func (s *Session) abortTransfer() {
	t := s.xfer
	t.abort()
	r := <-t.done
	s.finishTransfer(r, false)
	s.reply(226, "ABOR successful.")
}

// statTransfer answers STAT during a transfer (RFC 959: "the status of the
// operation in progress").
func (s *Session) statTransfer() {
	t := s.xfer
	elapsed := time.Since(t.start).Truncate(time.Second)
	var line string
	switch n, ok := t.progress(); {
	case ok:
		line = fmt.Sprintf("%s %s: %d bytes moved so far, %s elapsed", t.verb, t.path, n, elapsed)
	case t.dir == "out":
		line = fmt.Sprintf("%s %s: sending %d bytes, %s elapsed", t.verb, t.path, t.size, elapsed)
	default:
		line = fmt.Sprintf("%s %s: in progress, %s elapsed", t.verb, t.path, elapsed)
	}
	s.replyMulti(213, "Status of the transfer in progress:", []string{line}, "End of status")
}

// writeListing sends a listing, extending the write deadline per chunk so
// that only a stalled client, not a large directory, times out.
func writeListing(c net.Conn, data []byte, timeout time.Duration) (moveResult, error) {
	res := moveResult{Mover: "copy"}
	for len(data) > 0 {
		chunk := data[:min(len(data), 64<<10)]
		_ = c.SetWriteDeadline(time.Now().Add(timeout))
		n, err := c.Write(chunk)
		res.Bytes += int64(n)
		if err != nil {
			return res, err
		}
		data = data[n:]
	}
	return res, nil
}

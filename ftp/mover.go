package ftp

// This file is the seam between the protocol engine and package datapath,
// which owns the byte movers (sendfile/splice) and the kernel-confined file
// tree. Everything the session takes from datapath besides Rights goes
// through here.

import (
	"net"
	"os"

	"github.com/sluice-ftp/sluice/datapath"
)

// File system errors besides the fs sentinels (see FileSystem).
var (
	errEscape      = datapath.ErrEscape
	errNotDir      = datapath.ErrNotDir
	errIsDir       = datapath.ErrIsDir
	errNoRight     = datapath.ErrNoRight
	errCrossFolder = datapath.ErrCrossFolder
)

// moveResult is what a mover reports: file bytes moved, the mover used and
// why it was not zero-copy.
type moveResult = datapath.Result

// sendFile copies src from offset to the data connection (RETR); ascii
// converts LF to CRLF (RFC 959 section 3.1.1.1). o.StallTimeout, if
// positive, fails the transfer when no progress is made for that long: the
// idle timer does not run during transfers, so this is what frees a
// session from a client that stops reading.
func sendFile(dst net.Conn, src *os.File, offset int64, o datapath.Options) (moveResult, error) {
	return datapath.SendWith(dst, src, offset, o)
}

// receiveFile copies the data connection into dst, at dst's current offset,
// until EOF (STOR/APPE/STOU); ascii converts CRLF to LF.
func receiveFile(dst *os.File, src net.Conn, o datapath.Options) (moveResult, error) {
	return datapath.ReceiveWith(dst, src, o)
}

// receiveUpload is receiveFile for an atomic upload: the same movers,
// with the inline XXH64 following the bytes into the partial file.
func receiveUpload(u *datapath.Upload, src net.Conn, o datapath.Options) (moveResult, error) {
	return u.Receive(src, o)
}

// moveOptions are the mover options of transfer t: the session's mode and
// stall timeout, the account's pacer for t's direction, t's progress
// counter and its quota budget. Taken on the session's goroutine, before
// the transfer's own starts.
func (s *Session) moveOptions(t *transfer) datapath.Options {
	o := datapath.Options{ASCII: s.ascii, StallTimeout: s.dataTimeout(), Pacer: s.pacer(t.dir), Progress: &t.moved}
	if t.meter != nil {
		o.Budget = t.meter
	}
	return o
}

// pacer returns the account's pacer for one transfer, or nil.
func (s *Session) pacer(dir string) datapath.Pacer {
	if s.acct == nil || s.acct.Pacer == nil {
		return nil
	}
	return s.acct.Pacer(dir)
}

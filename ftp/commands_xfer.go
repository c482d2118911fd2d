package ftp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/sluice-ftp/sluice/datapath"
)

// errRestASCII refuses restart offsets in TYPE A: the offset would count
// either stored bytes or CRLF-converted wire bytes, clients disagree on
// which, and getting it wrong silently corrupts the file. Resuming is a
// binary-mode feature in practice (RFC 3659 section 5 discusses the
// ambiguity).
var errRestASCII = &replyError{501, "REST with a non-zero offset is not supported in ASCII mode; use TYPE I."}

// cmdREST sets the restart offset for the next RETR or STOR (RFC 3659
// section 5, "REST STREAM"). It is consumed by the next transfer command.
func (s *Session) cmdREST(arg string) {
	n, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
	if err != nil || n < 0 || strings.HasPrefix(strings.TrimSpace(arg), "+") {
		s.reply(501, "REST needs a non-negative decimal byte offset.")
		return
	}
	if s.ascii && n > 0 {
		s.reply(errRestASCII.Code, errRestASCII.Msg)
		return
	}
	s.rest = n
	s.replyf(350, "Restart position accepted (%d).", n)
}

// takeRest returns and clears the restart offset.
func (s *Session) takeRest() int64 {
	n := s.rest
	s.rest = 0
	return n
}

// needDataSetup replies 425 when no PASV/EPSV/PORT/EPRT preceded a transfer
// command. The RFC 959 default (active to the control port) is not
// offered: it is a bounce vector and no client relies on it.
func (s *Session) needDataSetup() bool {
	if !s.needProtection() {
		return false
	}
	if s.haveDataSetup() {
		return true
	}
	s.reply(425, "Use PORT, EPRT, PASV or EPSV first.")
	return false
}

func (s *Session) modeName() string {
	if s.ascii {
		return "ASCII"
	}
	return "BINARY"
}

// cmdRETR sends a file (RFC 959 section 4.1.3), from the REST offset.
func (s *Session) cmdRETR(arg string) {
	offset := s.takeRest()
	p, ok := s.resolve(arg)
	if !ok || !s.allowed(p, datapath.RightRead) || !s.needDataSetup() {
		return
	}
	if s.ascii && offset > 0 {
		s.reply(errRestASCII.Code, errRestASCII.Msg)
		return
	}
	if !s.gate("pre-download", p) {
		return
	}
	f, err := s.fs.Open(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		s.fail(err, p)
		return
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		s.reply(550, p+": not a regular file.")
		return
	}
	if offset > fi.Size() {
		f.Close()
		// RFC 3659 section 5.4.
		s.reply(554, "Requested action not taken: invalid REST parameter (beyond end of file).")
		return
	}
	t := &transfer{verb: "RETR", path: p, name: p, dir: "out", file: f, size: fi.Size() - offset}
	if t.meter, ok = s.meterBegin(MeterInfo{Dir: "out", Path: p, Existing: t.size}); !ok {
		f.Close()
		return
	}
	o := s.moveOptions(t)
	if s.cfg.VerifyOnRetr {
		if rf, ok := s.fs.(interface {
			RecordOf(string, *os.File) (datapath.Record, bool)
		}); ok {
			if rec, ok := rf.RecordOf(p, f); ok {
				o.Verify = &datapath.SendCheck{Size: rec.Size, Sum: rec.Sum}
				t.digest = "verify_on_retr: checked against the recorded xxh64=" + rec.Hex()
			} else {
				t.digest = "verify_on_retr: not checked, no digest recorded for this version of the file"
			}
		}
	}
	s.replyf(150, "Opening %s mode data connection for %s (%d bytes).", s.modeName(), arg, t.size)
	s.startTransfer(t, func(c net.Conn) (moveResult, error) {
		return sendFile(c, f, offset, o)
	})
}

// cmdSTOR stores a file, truncating it, or, after REST n, overwriting it
// from byte n.
func (s *Session) cmdSTOR(arg string) {
	offset := s.takeRest()
	p, ok := s.resolve(arg)
	if !ok || !s.allowedAny(p, datapath.RightsWriting) || !s.needDataSetup() {
		return
	}
	if s.ascii && offset > 0 {
		s.reply(errRestASCII.Code, errRestASCII.Msg)
		return
	}
	if !s.gate("pre-upload", p) {
		return
	}
	if up, ok := s.fs.(Uploader); ok {
		s.beginUpload(up, "STOR", arg, p, p, datapath.UploadStore, offset)
		return
	}
	m, ok := s.meterBegin(s.uploadInfo(p, "store", offset))
	if !ok {
		return
	}
	t := &transfer{verb: "STOR", path: p, name: p, dir: "in", base: offset, meter: m}
	flag := os.O_TRUNC
	if offset > 0 {
		// Resume: the file must exist and be at least offset long. Growing
		// it with a hole (what vsftpd's truncate does) would hide a client
		// bug as zeros in the file.
		fi, err := s.fs.Stat(p)
		if err != nil {
			s.meterCancel(m)
			s.fail(err, p)
			return
		}
		if offset > fi.Size() {
			s.meterCancel(m)
			s.reply(554, "Requested action not taken: invalid REST parameter (beyond end of file).")
			return
		}
		flag = 0
	}
	f, err := s.fs.Create(p, flag)
	if err != nil {
		s.meterCancel(m)
		s.fail(err, p)
		return
	}
	if offset > 0 {
		// Cut the file at offset, then write from there: the result is
		// exactly the first offset bytes plus what the client sends.
		if err := f.Truncate(offset); err != nil {
			f.Close()
			s.meterCancel(m)
			s.fail(err, p)
			return
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			s.meterCancel(m)
			s.fail(err, p)
			return
		}
	}
	t.file = f
	s.replyf(150, "Opening %s mode data connection for %s.", s.modeName(), arg)
	s.receive(t)
}

// meterCancel ends a metered transfer that never started.
func (s *Session) meterCancel(m Metering) {
	if m != nil {
		m.End(0, false)
	}
}

// cmdAPPE appends to a file, creating it if needed (RFC 959). A REST
// before it is ignored: appending has its own offset, the end.
func (s *Session) cmdAPPE(arg string) {
	s.takeRest()
	p, ok := s.resolve(arg)
	if !ok || !s.allowedAny(p, datapath.RightsWriting) || !s.needDataSetup() || !s.gate("pre-upload", p) {
		return
	}
	if up, ok := s.fs.(Uploader); ok {
		s.beginUpload(up, "APPE", arg, p, p, datapath.UploadAppend, 0)
		return
	}
	m, ok := s.meterBegin(s.uploadInfo(p, "append", 0))
	if !ok {
		return
	}
	f, err := s.fs.Create(p, os.O_APPEND)
	if err != nil {
		s.meterCancel(m)
		s.fail(err, p)
		return
	}
	var base int64
	if fi, err := f.Stat(); err == nil {
		base = fi.Size()
	}
	s.replyf(150, "Opening %s mode data connection for %s.", s.modeName(), arg)
	s.receive(&transfer{verb: "APPE", path: p, name: p, dir: "in", file: f, base: base, meter: m})
}

// stouAttempts bounds the search for a free unique name.
const stouAttempts = 16

// cmdSTOU stores under a name the server makes unique (RFC 959; reply form
// "150 FILE: name" from RFC 1123 section 4.1.2.9). Without an argument the
// name is "sluice.<random>" in the working directory; with one, that name
// is tried first and then with a random suffix. O_EXCL makes "unique"
// hold even against concurrent sessions.
func (s *Session) cmdSTOU(arg string) {
	s.takeRest()
	base := joinPath(s.cwd, "sluice")
	first := ""
	if arg != "" {
		p, ok := s.resolve(arg)
		if !ok {
			return
		}
		base, first = p, p
	}
	if first == "" {
		first = base + "." + randomSuffix()
	}
	// All candidates share a directory, hence rights.
	if !s.allowed(first, datapath.RightWrite) || !s.needDataSetup() || !s.gate("pre-upload", first) {
		return
	}
	// A unique name is a new file, whichever one it turns out to be.
	m, ok := s.meterBegin(MeterInfo{Dir: "in", Path: first, Mode: "store", Existing: -1})
	if !ok {
		return
	}
	for i := 0; i < stouAttempts; i++ {
		p := first
		if i > 0 {
			p = base + "." + randomSuffix()
		}
		s.evPath = p
		if up, ok := s.fs.(Uploader); ok {
			u, err := up.BeginUpload(p, datapath.UploadUnique, 0)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				s.meterCancel(m)
				s.fail(err, p)
				return
			}
			name := p
			if parentDir(p) == s.cwd {
				name = baseName(p)
			}
			s.reply(150, "FILE: "+name)
			s.receiveInto(&transfer{verb: "STOU", path: p, name: name, dir: "in", file: u.File(), upload: u, meter: m})
			return
		}
		f, err := s.fs.Create(p, os.O_EXCL)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			s.meterCancel(m)
			s.fail(err, p)
			return
		}
		name := p
		if parentDir(p) == s.cwd {
			name = baseName(p)
		}
		s.reply(150, "FILE: "+name)
		s.receive(&transfer{verb: "STOU", path: p, name: name, dir: "in", file: f, meter: m})
		return
	}
	s.meterCancel(m)
	s.reply(553, "Could not find a unique file name; try again.")
}

// receive starts an upload into t.file.
func (s *Session) receive(t *transfer) {
	f, o := t.file, s.moveOptions(t)
	s.startTransfer(t, func(c net.Conn) (moveResult, error) {
		return receiveFile(f, c, o)
	})
}

// beginUpload starts an atomic upload (STOR, APPE) through the file
// system's Uploader: the client's bytes go to a hidden partial file that
// is renamed into place when the transfer completes, and kept, with a
// checkpoint of its digest, when it does not.
func (s *Session) beginUpload(up Uploader, verb, arg, p, name string, mode datapath.UploadMode, offset int64) {
	mm := "store"
	if mode == datapath.UploadAppend {
		mm = "append"
	}
	m, ok := s.meterBegin(s.uploadInfo(p, mm, offset))
	if !ok {
		return
	}
	u, err := up.BeginUpload(p, mode, offset)
	if err != nil {
		s.meterCancel(m)
		if errors.Is(err, datapath.ErrBadOffset) {
			// RFC 3659 section 5.4.
			s.reply(554, "Requested action not taken: invalid REST parameter (beyond end of file).")
			return
		}
		s.fail(err, p)
		return
	}
	s.replyf(150, "Opening %s mode data connection for %s.", s.modeName(), arg)
	s.receiveInto(&transfer{verb: verb, path: p, name: name, dir: "in", file: u.File(), base: u.Offset(), upload: u, meter: m})
}

// receiveInto runs an atomic upload's transfer.
func (s *Session) receiveInto(t *transfer) {
	u, o := t.upload, s.moveOptions(t)
	s.startTransfer(t, func(c net.Conn) (moveResult, error) {
		return receiveUpload(u, c, o)
	})
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cmdLIST sends an `ls -l` style listing (see lsLine) of a directory or
// file over the data connection.
func (s *Session) cmdLIST(arg string) {
	s.takeRest()
	p, ok := s.resolveOrCwd(stripListOptions(arg))
	if !ok || !s.allowed(p, datapath.RightList) || !s.needDataSetup() {
		return
	}
	lines, err := s.lsLines(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	s.sendListing("LIST", p, lines)
}

// cmdNLST sends names only (RFC 959). Without an argument these are bare
// names of the working directory; with a directory argument each name is
// prefixed with that argument, and a file argument is echoed, so that
// every line works as a RETR argument (what mget-style clients do with it,
// and what vsftpd and ProFTPD send).
func (s *Session) cmdNLST(arg string) {
	s.takeRest()
	arg = stripListOptions(arg)
	p, ok := s.resolveOrCwd(arg)
	if !ok || !s.allowed(p, datapath.RightList) || !s.needDataSetup() {
		return
	}
	fi, err := s.fs.Stat(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	var names []string
	if !fi.IsDir() {
		names = []string{arg}
	} else {
		ents, err := s.listDir(p)
		if err != nil {
			s.fail(err, p)
			return
		}
		prefix := ""
		if arg != "" {
			prefix = strings.TrimRight(arg, "/") + "/"
		}
		for _, e := range ents {
			names = append(names, prefix+e.name)
		}
	}
	s.sendListing("NLST", p, names)
}

// cmdMLSD lists a directory in RFC 3659 section 7 form. The cdir/pdir
// entries are optional and left out: several clients show them as
// entries named "." and "..".
func (s *Session) cmdMLSD(arg string) {
	s.takeRest()
	p, ok := s.resolveOrCwd(arg)
	if !ok || !s.allowed(p, datapath.RightList) || !s.needDataSetup() {
		return
	}
	fi, err := s.fs.Stat(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	if !fi.IsDir() {
		// RFC 3659 section 7.2.1: MLSD of a non-directory is 501.
		s.reply(501, p+": Not a directory.")
		return
	}
	ents, err := s.listDir(p)
	if err != nil {
		s.fail(err, p)
		return
	}
	lines := make([]string, 0, len(ents))
	for _, e := range ents {
		lines = append(lines, s.mlsxLine(e.fi, joinPath(p, e.name), e.name, ""))
	}
	s.sendListing("MLSD", p, lines)
}

// sendListing sends lines, CRLF-terminated (listings are ASCII whatever
// the TYPE, RFC 959 section 4.1.3).
func (s *Session) sendListing(verb, p string, lines []string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	data := []byte(b.String())
	timeout := s.dataTimeout()
	s.reply(150, "Here comes the directory listing.")
	s.startTransfer(&transfer{verb: verb, path: p, name: p}, func(c net.Conn) (moveResult, error) {
		return writeListing(c, data, timeout)
	})
}

// cmdABOR outside a transfer: nothing to abort, but the data connection
// setup is dropped as RFC 959 asks ("the data connection must be closed").
func (s *Session) cmdABOR(string) {
	s.closeDataSetup()
	s.reply(225, "No transfer to abort.")
}

package datapath

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Mover names, as reported in Result.Mover and the audit log.
const (
	MoverSendfile = "sendfile"
	MoverSplice   = "splice"
	MoverCopy     = "copy"
)

// Result describes a finished (or failed) transfer.
type Result struct {
	// Bytes counts file bytes: read from the file by Send, written to it
	// by Receive. In TYPE A they differ from the bytes on the wire. After
	// an error it counts what reached the file (Receive) or the socket
	// (Send; for the copy mover, whole buffers).
	Bytes    int64
	Mover    string // MoverSendfile, MoverSplice or MoverCopy
	Fallback string // why not zero-copy; "" when zero-copy
}

// Pacer throttles a transfer (per-account bandwidth, shared by sessions).
// The mover calls Wait(n) after moving n bytes and before moving more; Wait
// blocks as long as the rate requires. A non-nil error aborts the transfer
// and is returned, so a pacer can be cancelled by ABOR too.
type Pacer interface {
	Wait(n int) error
}

// Options tunes SendWith and ReceiveWith. The zero value is what Send and
// Receive use (apart from ASCII).
type Options struct {
	// ASCII selects TYPE A: LF→CRLF on Send (an LF already preceded by
	// CR is left alone), CRLF→LF on Receive (a lone CR is kept).
	ASCII bool
	// Pacer, if set, is called after every chunk.
	Pacer Pacer
	// Chunk is the most bytes moved per sendfile call (and so between
	// two Pacer calls): 4 MiB by default, 1 MiB when paced (the size the
	// token-bucket measurement in KERNEL-NOTES used). Receive moves at most
	// one pipe (1 MiB) per step whatever Chunk says.
	Chunk int
	// StallTimeout, if positive, moves the connection's write (Send) or
	// read (Receive) deadline to now+StallTimeout before every wait, so a
	// transfer fails only when it stops making progress. It replaces any
	// deadline the caller set, and clears it on return. When zero, the
	// caller's deadlines are honoured as they are.
	StallTimeout time.Duration
	// Progress, if set, is advanced by the bytes of every chunk as it is
	// moved (sluice status shows it); it does not change the chunk size.
	Progress *atomic.Int64
	// Budget, if set, bounds the bytes the transfer may move (storage
	// and transfer quotas): see Budget.
	Budget Budget
	// Verify, if set, checks a download against its recorded digest as
	// it is sent (Send only; see SendCheck).
	Verify *SendCheck

	// hash, if set, follows the bytes Receive writes (Upload sets it).
	hash *inline
}

const (
	defaultChunk = 4 << 20
	pacedChunk   = 1 << 20
	copyBuf      = 256 << 10
	pipeSize     = 1 << 20
)

func (o *Options) chunk() int {
	switch {
	case o.Chunk > 0:
		return o.Chunk
	case o.Pacer != nil:
		return pacedChunk
	}
	return defaultChunk
}

func (o *Options) pace(n int) error {
	if o.Progress != nil && n > 0 {
		o.Progress.Add(int64(n))
	}
	return o.paceOnly(n)
}

// paceOnly waits for the pacer without counting progress (for a mover
// that counts as it goes).
func (o *Options) paceOnly(n int) error {
	if o.Pacer == nil || n <= 0 {
		return nil
	}
	if err := o.Pacer.Wait(n); err != nil {
		return fmt.Errorf("pacer: %w", err)
	}
	return nil
}

// whyNotZeroCopy names the reason a connection is not a plain TCP socket.
func whyNotZeroCopy(c net.Conn) string {
	if _, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return "TLS" // no kTLS on this kernel: crypto/tls encrypts in user space
	}
	return "not a TCP socket"
}

// Send writes src, from offset to its end, to dst (RETR). src's file offset
// is not used or changed. Over a plain *net.TCPConn in binary mode it uses
// sendfile(2); otherwise a 256 KiB buffered copy.
//
// Deadlines set on dst are honoured, and closing dst from another goroutine
// (ABOR) makes Send return promptly with an error wrapping net.ErrClosed:
// the sendfile loop waits for POLLOUT through RawConn.Write, i.e. in the Go
// netpoller, which wakes on Close and on deadlines.
func Send(dst net.Conn, src *os.File, offset int64, ascii bool) (Result, error) {
	return SendWith(dst, src, offset, Options{ASCII: ascii})
}

// SendWith is Send with options (pacing, stall timeout, chunk size).
func SendWith(dst net.Conn, src *os.File, offset int64, o Options) (Result, error) {
	if offset < 0 {
		return Result{Mover: MoverCopy}, fmt.Errorf("send: negative offset %d", offset)
	}
	if o.StallTimeout > 0 {
		defer dst.SetWriteDeadline(time.Time{})
	}
	if o.ASCII {
		return copySend(dst, src, offset, &o, "TYPE A")
	}
	tcp, ok := dst.(*net.TCPConn)
	if !ok {
		return copySend(dst, src, offset, &o, whyNotZeroCopy(dst))
	}
	res, fallback, err := sendfileSend(tcp, src, offset, &o)
	if fallback != "" {
		// sendfile refused before sending a byte (a file system
		// without splice_read): nothing is lost by copying instead.
		return copySend(dst, src, offset, &o, fallback)
	}
	return res, err
}

func sendfileSend(dst *net.TCPConn, src *os.File, offset int64, o *Options) (res Result, fallback string, err error) {
	res.Mover = MoverSendfile
	rc, err := dst.SyscallConn()
	if err != nil {
		return res, "", fmt.Errorf("send: %w", err)
	}
	sc, err := src.SyscallConn()
	if err != nil {
		return res, "", fmt.Errorf("send: %w", err)
	}
	chunk := o.chunk()
	bud := newAllowance(o.Budget)
	// Control holds a reference on src's fd for the whole loop, so a
	// concurrent src.Close cannot let the number be reused under sendfile.
	cerr := sc.Control(func(sfd uintptr) {
		off := offset
		vr := newVerifier(o.Verify, int(sfd))
		for {
			want := chunk
			if bud != nil {
				if bud.left <= 0 {
					// Ask for more only if there is more to send.
					var st unix.Stat_t
					if e := unix.Fstat(int(sfd), &st); e == nil && off >= st.Size {
						return
					}
					if err = bud.refill(); err != nil {
						err = fmt.Errorf("send: %w", err)
						return
					}
				}
				want = bud.cap(chunk)
			}
			// Hash what is about to be sent (and, the first time,
			// the prefix before offset) before sending it.
			if err = vr.ahead(off + int64(want)); err != nil {
				err = fmt.Errorf("send: %w", err)
				return
			}
			if o.StallTimeout > 0 {
				dst.SetWriteDeadline(time.Now().Add(o.StallTimeout))
			}
			n, eof := 0, false
			var serr error
			werr := rc.Write(func(fd uintptr) bool {
				for n < want {
					m, e := unix.Sendfile(int(fd), int(sfd), &off, want-n)
					if m > 0 {
						n += m
						if o.Progress != nil {
							// Per call, not per chunk: a
							// stalled peer leaves a chunk
							// half sent for long.
							o.Progress.Add(int64(m))
						}
						if o.StallTimeout > 0 {
							// Progress: push the stall
							// deadline (takes no lock
							// that RawConn.Write holds).
							dst.SetWriteDeadline(time.Now().Add(o.StallTimeout))
						}
					}
					switch {
					case e == unix.EINTR:
						continue
					case e == unix.EAGAIN:
						// Socket buffer full: the netpoller
						// waits for POLLOUT, Close or the
						// deadline. (Not a return to the outer
						// loop, which would cost one more
						// sendfile ending in EAGAIN, after the
						// kernel has already filled its
						// internal pipe from the page cache.)
						return false
					case e != nil:
						serr = e
						return true
					case m == 0:
						eof = true
						return true
					}
				}
				return true
			})
			res.Bytes += int64(n)
			bud.use(n)
			switch {
			case werr != nil:
				err = fmt.Errorf("send: %w", werr)
				return
			case serr != nil:
				if res.Bytes == 0 && (serr == unix.EINVAL || serr == unix.ENOSYS || serr == unix.EOPNOTSUPP) {
					fallback = "sendfile: " + serr.Error()
					return
				}
				err = fmt.Errorf("send: %w", os.NewSyscallError("sendfile", serr))
				return
			}
			if err = o.paceOnly(n); err != nil || eof {
				return
			}
		}
	})
	if cerr != nil && err == nil {
		err = fmt.Errorf("send: %w", cerr)
	}
	return res, fallback, err
}

// copySend is the buffered mover: pread from the file (its offset stays
// untouched, as with sendfile), convert for TYPE A, write to the conn.
func copySend(dst net.Conn, src *os.File, off int64, o *Options, why string) (Result, error) {
	res := Result{Mover: MoverCopy, Fallback: why}
	buf := make([]byte, copyBuf)
	var conv []byte
	if o.ASCII {
		conv = make([]byte, 0, 2*copyBuf)
	}
	prevCR := false
	if o.ASCII && off > 0 {
		// A restarted TYPE A transfer converts the LF at off exactly
		// as the full transfer did: look at the byte before it.
		var b [1]byte
		if n, _ := src.ReadAt(b[:], off-1); n == 1 {
			prevCR = b[0] == '\r'
		}
	}
	bud := newAllowance(o.Budget)
	vr := newVerifier(o.Verify, int(src.Fd()))
	for {
		want := len(buf)
		if bud != nil {
			if bud.left <= 0 {
				if fi, err := src.Stat(); err == nil && off >= fi.Size() {
					return res, nil
				}
				if err := bud.refill(); err != nil {
					return res, fmt.Errorf("send: %w", err)
				}
			}
			want = bud.cap(want)
		}
		if err := vr.ahead(off + int64(want)); err != nil {
			return res, fmt.Errorf("send: %w", err)
		}
		n, rerr := src.ReadAt(buf[:want], off)
		bud.use(n)
		if n > 0 {
			data := buf[:n]
			if o.ASCII {
				data, prevCR = toCRLF(conv[:0], data, prevCR)
			}
			if o.StallTimeout > 0 {
				dst.SetWriteDeadline(time.Now().Add(o.StallTimeout))
			}
			if _, err := dst.Write(data); err != nil {
				return res, fmt.Errorf("send: %w", err)
			}
			off += int64(n)
			res.Bytes += int64(n)
			if err := o.pace(len(data)); err != nil {
				return res, err
			}
		}
		if rerr == io.EOF {
			return res, nil
		}
		if rerr != nil {
			return res, fmt.Errorf("send: %w", rerr)
		}
	}
}

// toCRLF appends in to out with every LF not already preceded by CR turned
// into CRLF. prevCR says whether the byte before in was CR; the returned
// bool says the same about in's last byte.
func toCRLF(out, in []byte, prevCR bool) ([]byte, bool) {
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return append(out, in...), in[len(in)-1] == '\r'
		}
		out = append(out, in[:i]...)
		cr := prevCR
		if i > 0 {
			cr = in[i-1] == '\r'
		}
		if !cr {
			out = append(out, '\r')
		}
		out = append(out, '\n')
		in = in[i+1:]
		prevCR = false
	}
	return out, prevCR
}

// fromCRLF appends in to out with every CRLF turned into LF. A CR at the end
// of in is held back (pendingCR) until the next buffer shows whether an LF
// follows; a lone CR is kept.
func fromCRLF(out, in []byte, pendingCR bool) ([]byte, bool) {
	for len(in) > 0 {
		if pendingCR {
			pendingCR = false
			if in[0] == '\n' {
				out = append(out, '\n')
				in = in[1:]
				continue
			}
			out = append(out, '\r')
		}
		i := bytes.IndexByte(in, '\r')
		if i < 0 {
			return append(out, in...), false
		}
		out = append(out, in[:i]...)
		in = in[i+1:]
		pendingCR = true
	}
	return out, pendingCR
}

// Receive writes everything read from src until EOF to dst at dst's current
// offset (STOR; the caller opened and positioned dst). Over a plain
// *net.TCPConn in binary mode it uses splice(2) socket → pipe → file;
// otherwise a 256 KiB buffered copy. An O_APPEND dst always gets the copy:
// splice(2) refuses append-mode files with EINVAL.
//
// Deadlines set on src are honoured, and closing src from another goroutine
// (ABOR) makes Receive return promptly with an error wrapping net.ErrClosed:
// the loop waits for POLLIN through RawConn.Read, in the Go netpoller.
func Receive(dst *os.File, src net.Conn, ascii bool) (Result, error) {
	return ReceiveWith(dst, src, Options{ASCII: ascii})
}

// ReceiveWith is Receive with options (pacing, stall timeout).
func ReceiveWith(dst *os.File, src net.Conn, o Options) (Result, error) {
	if o.StallTimeout > 0 {
		defer src.SetReadDeadline(time.Time{})
	}
	if o.ASCII {
		return copyReceive(dst, src, &o, Result{Mover: MoverCopy, Fallback: "TYPE A"})
	}
	tcp, ok := src.(*net.TCPConn)
	if !ok {
		return copyReceive(dst, src, &o, Result{Mover: MoverCopy, Fallback: whyNotZeroCopy(src)})
	}
	if fl, err := fileFlags(dst); err != nil {
		return Result{Mover: MoverCopy}, fmt.Errorf("receive: %w", err)
	} else if fl&unix.O_APPEND != 0 {
		return copyReceive(dst, src, &o, Result{Mover: MoverCopy, Fallback: "O_APPEND (splice refuses append-mode files)"})
	}
	res, fallback, err := spliceReceive(dst, tcp, &o)
	if fallback != "" {
		// Nothing is lost: spliceReceive has already written any
		// bytes it had taken from the socket.
		res.Mover, res.Fallback = MoverCopy, fallback
		return copyReceive(dst, src, &o, res)
	}
	return res, err
}

func fileFlags(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fl int
	var ferr error
	if err := sc.Control(func(fd uintptr) { fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		return 0, err
	}
	return fl, os.NewSyscallError("fcntl", ferr)
}

// newPipe makes the splice pipe, grown to 1 MiB: each socket → pipe splice
// moves at most one pipe's worth, and the default 64 KiB costs ~16x the
// syscalls. Growing fails with EPERM past the user's pipe-buffer quota
// (fs.pipe-user-pages-soft); the default size still works, only slower.
func newPipe() (r, w, size int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, -1, 0, os.NewSyscallError("pipe2", err)
	}
	size, err = unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		if size, err = unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0); err != nil {
			size = 64 << 10
		}
	}
	return p[0], p[1], size, nil
}

func spliceReceive(dst *os.File, src *net.TCPConn, o *Options) (res Result, fallback string, err error) {
	res.Mover = MoverSplice
	rc, err := src.SyscallConn()
	if err != nil {
		return res, "", fmt.Errorf("receive: %w", err)
	}
	dc, err := dst.SyscallConn()
	if err != nil {
		return res, "", fmt.Errorf("receive: %w", err)
	}
	pr, pw, size, err := newPipe()
	if err != nil {
		return res, "", fmt.Errorf("receive: %w", err)
	}
	defer unix.Close(pr)
	defer unix.Close(pw)
	chunk := size
	if o.Chunk > 0 && o.Chunk < chunk {
		chunk = o.Chunk
	}
	tr, tw := -1, -1
	if o.hash != nil && o.hash.mode == hashTee {
		var tsize int
		if tr, tw, tsize, err = newPipe(); err != nil {
			return res, "", fmt.Errorf("receive: %w", err)
		}
		defer unix.Close(tr)
		defer unix.Close(tw)
		chunk = min(chunk, tsize)
	}
	bud := newAllowance(o.Budget)
	cerr := dc.Control(func(dfd uintptr) {
		for {
			// With a budget used up, take one byte: EOF means the
			// upload fit exactly; a byte means it asks for more (and
			// the byte is only written if it gets it).
			want, probe := chunk, false
			if bud != nil {
				if bud.left <= 0 {
					want, probe = 1, true
				} else {
					want = bud.cap(chunk)
				}
			}
			if o.StallTimeout > 0 {
				src.SetReadDeadline(time.Now().Add(o.StallTimeout))
			}
			// socket → pipe. The pipe is empty here (drained
			// below), so EAGAIN can only mean "socket has no data".
			var n int
			var serr error
			rerr := rc.Read(func(fd uintptr) bool {
				for {
					m, e := unix.Splice(int(fd), nil, pw, nil, want, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
					switch e {
					case unix.EINTR:
						continue
					case unix.EAGAIN:
						return false // netpoller waits for POLLIN (or Close, or the deadline)
					case nil:
						n = int(m)
					default:
						serr = e
					}
					return true
				}
			})
			if rerr != nil {
				err = fmt.Errorf("receive: %w", rerr)
				return
			}
			if serr != nil {
				if res.Bytes == 0 && (serr == unix.EINVAL || serr == unix.EOPNOTSUPP) {
					fallback = "splice from socket: " + serr.Error()
					return
				}
				err = fmt.Errorf("receive: %w", os.NewSyscallError("splice", serr))
				return
			}
			if n == 0 {
				return // EOF
			}
			if probe {
				if err = bud.refill(); err != nil {
					err = fmt.Errorf("receive: %w", err)
					return
				}
			}
			bud.use(n)
			if tr >= 0 {
				if err = o.hash.teeRead(pr, tr, tw, n); err != nil {
					err = fmt.Errorf("receive: %w", err)
					return
				}
			}
			// pipe → file, at and advancing dst's offset (off=nil).
			for left := n; left > 0; {
				m, e := unix.Splice(pr, nil, int(dfd), nil, left, unix.SPLICE_F_MOVE)
				if e == unix.EINTR {
					continue
				}
				if e == nil && m == 0 {
					e = io.ErrNoProgress
				}
				if e != nil {
					if res.Bytes == 0 && left == n && e == unix.EINVAL {
						// The file system cannot take a
						// splice: copy what the pipe holds.
						err = drainPipe(pr, int(dfd), left)
						res.Bytes += int64(left)
						if o.hash != nil && tr < 0 {
							o.hash.wrote(left)
						}
						fallback = "splice to file: " + e.Error()
						if err != nil {
							err = fmt.Errorf("receive: %w", err)
						}
						return
					}
					err = fmt.Errorf("receive: %w", os.NewSyscallError("splice", e))
					return
				}
				left -= int(m)
				res.Bytes += int64(m)
				if o.hash != nil && tr < 0 {
					o.hash.wrote(int(m))
				}
			}
			if err = o.pace(n); err != nil {
				return
			}
		}
	})
	if cerr != nil && err == nil {
		err = fmt.Errorf("receive: %w", cerr)
	}
	if err != nil {
		fallback = ""
	}
	return res, fallback, err
}

// drainPipe moves n bytes from the pipe to the file with read and write.
func drainPipe(pr, dfd, n int) error {
	buf := make([]byte, min(n, copyBuf))
	for n > 0 {
		m, err := unix.Read(pr, buf[:min(n, len(buf))])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("read", err)
		}
		if m == 0 {
			return io.ErrUnexpectedEOF
		}
		for w := 0; w < m; {
			k, err := unix.Write(dfd, buf[w:m])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return os.NewSyscallError("write", err)
			}
			w += k
		}
		n -= m
	}
	return nil
}

// copyReceive is the buffered mover: read from the conn, convert for
// TYPE A, write to the file at its offset (or its end with O_APPEND).
func copyReceive(dst *os.File, src net.Conn, o *Options, res Result) (Result, error) {
	buf := make([]byte, copyBuf)
	var conv []byte
	if o.ASCII {
		conv = make([]byte, 0, copyBuf+1)
	}
	pendingCR := false
	bud := newAllowance(o.Budget)
	for {
		lim, probe := len(buf), false
		if bud != nil {
			if bud.left <= 0 {
				lim, probe = 1, true // as in spliceReceive
			} else {
				lim = bud.cap(lim)
			}
		}
		if o.StallTimeout > 0 {
			src.SetReadDeadline(time.Now().Add(o.StallTimeout))
		}
		n, rerr := src.Read(buf[:lim])
		// Gather at least half the buffer before writing: a TLS
		// connection returns one 16 KiB record per Read, and a write
		// per record costs as much as the data it moves.
		for rerr == nil && n > 0 && n < lim/2 {
			if o.StallTimeout > 0 {
				src.SetReadDeadline(time.Now().Add(o.StallTimeout))
			}
			var m int
			m, rerr = src.Read(buf[n:lim])
			n += m
		}
		if n > 0 && probe {
			if err := bud.refill(); err != nil {
				return res, fmt.Errorf("receive: %w", err)
			}
		}
		bud.use(n)
		if n > 0 {
			data := buf[:n]
			if o.ASCII {
				data, pendingCR = fromCRLF(conv[:0], data, pendingCR)
			}
			w, err := dst.Write(data)
			res.Bytes += int64(w)
			if o.hash != nil && o.hash.mode == hashTee {
				o.hash.add(data[:w]) // in memory: the file may be write-only
			} else if o.hash != nil {
				o.hash.wrote(w)
			}
			if err != nil {
				return res, fmt.Errorf("receive: %w", err)
			}
			if err := o.pace(n); err != nil {
				return res, err
			}
		}
		if rerr == io.EOF {
			if pendingCR {
				w, err := dst.Write([]byte{'\r'})
				res.Bytes += int64(w)
				if o.hash != nil && o.hash.mode == hashTee {
					o.hash.add([]byte{'\r'}[:w])
				} else if o.hash != nil {
					o.hash.wrote(w)
				}
				if err != nil {
					return res, fmt.Errorf("receive: %w", err)
				}
			}
			return res, nil
		}
		if rerr != nil {
			return res, fmt.Errorf("receive: %w", rerr)
		}
	}
}

// SetOOBInline sets SO_OOBINLINE on a control connection: the urgent byte
// of a Telnet Synch (Python ftplib sends ABOR's IAC DM with MSG_OOB) then
// stays in the normal byte stream instead of being set aside by TCP and
// lost to a reader that never asks for MSG_OOB.
func SetOOBInline(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_OOBINLINE, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("setsockopt SO_OOBINLINE", serr)
	}
	return nil
}

// IsAbort reports whether a mover error means the data connection was
// closed under it (ABOR) rather than a transfer failure.
func IsAbort(err error) bool {
	return errors.Is(err, net.ErrClosed)
}

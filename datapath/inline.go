package datapath

import (
	"os"
	"sync"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// hashMode selects how an upload's digest follows the bytes written.
// hashAsync won the benchmark (docs/datapath.md) and is the default; the
// others stay for the benchmark that chose it.
type hashMode int

const (
	// hashAsync: the splice loop reports each range it wrote; a second
	// goroutine reads it back from the page cache (pread) and hashes it,
	// on the other core, a few MiB behind the writer.
	hashAsync hashMode = iota
	// hashSerial: the same pread + hash, in the splice loop itself.
	hashSerial
	// hashTee: tee(2) the socket pipe into a second pipe, read that copy
	// and hash it, in the splice loop.
	hashTee
)

// ckptEvery is how many bytes an upload moves between two checkpoints.
const ckptEvery = 64 << 20

// inline is an upload's running XXH64. Movers write sequentially into the
// file at fd and call wrote(n) after every n bytes (the same bytes, in
// order); the digest then covers [0, off). With hashTee the splice loop
// hashes in-memory copies itself (add).
type inline struct {
	fd   int
	d    *xxhash.Digest
	off  int64 // hashed up to here
	mode hashMode
	buf  []byte
	// ckpt, if set, is called every ckptEvery bytes (from the hashing
	// goroutine) to persist the state.
	ckpt     func(off int64, d *xxhash.Digest)
	lastCkpt int64

	ch   chan int64
	wg   sync.WaitGroup
	err  error // first hashing error (pread); set by the goroutine
	errc error // copy for the mover goroutine after finish
}

func newInline(fd int, d *xxhash.Digest, off int64, mode hashMode) *inline {
	return &inline{fd: fd, d: d, off: off, lastCkpt: off, mode: mode, buf: make([]byte, hashBuf)}
}

func (h *inline) start() {
	if h.mode != hashAsync {
		return
	}
	// 64 slots of at most one pipe each: the hasher lags the writer by
	// at most ~64 MiB, all of it still in the page cache.
	h.ch = make(chan int64, 64)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for n := range h.ch {
			// Coalesce what queued meanwhile into one pass.
			for more := true; more; {
				select {
				case m, ok := <-h.ch:
					if !ok {
						more = false
					} else {
						n += m
					}
				default:
					more = false
				}
			}
			if h.err == nil {
				h.err = h.hash(n)
			}
		}
	}()
}

// hash reads back the next n bytes of the file and hashes them.
func (h *inline) hash(n int64) error {
	if err := hashRange(h.fd, h.d, h.off, h.off+n, h.buf, nil); err != nil {
		return err
	}
	h.advance(n)
	return nil
}

func (h *inline) advance(n int64) {
	h.off += n
	if h.ckpt != nil && h.off-h.lastCkpt >= ckptEvery {
		h.ckpt(h.off, h.d)
		h.lastCkpt = h.off
	}
}

// wrote reports n more bytes written to the file.
func (h *inline) wrote(n int) {
	if n <= 0 {
		return
	}
	switch h.mode {
	case hashAsync:
		h.ch <- int64(n)
	default:
		if h.errc == nil {
			h.errc = h.hash(int64(n))
		}
	}
}

// add hashes bytes already in memory (hashTee) that were written at off.
func (h *inline) add(p []byte) {
	h.d.Write(p)
	h.advance(int64(len(p)))
}

// finish waits for the hasher to catch up with the writer.
func (h *inline) finish() error {
	if h.ch != nil {
		close(h.ch)
		h.wg.Wait()
		h.ch = nil
		if h.errc == nil {
			h.errc = h.err
		}
	}
	return h.errc
}

// teeRead hashes n bytes that sit in the pipe pr without consuming them:
// tee(2) them into the second pipe (tr, tw) and read that copy.
func (h *inline) teeRead(pr, tr, tw, n int) error {
	for left := n; left > 0; {
		m, err := unix.Tee(pr, tw, left, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("tee", err)
		}
		// tee copies from the start of pr every time: take what it
		// gave, then stop (one call moves the whole pipe when tw is as
		// large as pr, which newPipe makes sure of).
		for got := 0; got < int(m); {
			k, err := unix.Read(tr, h.buf[:min(len(h.buf), int(m)-got)])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return os.NewSyscallError("read", err)
			}
			h.add(h.buf[:k])
			got += k
		}
		if int(m) != left {
			return os.NewSyscallError("tee", unix.EIO)
		}
		left = 0
	}
	return nil
}

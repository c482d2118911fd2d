package datapath

import (
	"errors"
	"fmt"
	"os"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// ErrCorrupt: a file being sent does not match the XXH64 digest recorded
// when it was uploaded (bit rot, or a change behind sluice's back that
// kept its size and mtime).
var ErrCorrupt = errors.New("the file does not match its recorded XXH64 digest")

// SendCheck asks SendWith to check the file against its recorded digest as
// it sends it (verify_on_retr): each chunk is hashed from the page cache
// before it is sent, and the last chunk is sent only if the digest of the
// whole file equals Sum. A corrupt file therefore never arrives whole:
// the client gets a short file and the error (451), not a complete-looking
// one. A transfer from an offset hashes the prefix first (at page-cache
// speed, ~4.5 GiB/s here).
type SendCheck struct {
	Size int64  // the recorded size
	Sum  uint64 // the recorded XXH64 of the whole file
}

// verifier follows a send.
type verifier struct {
	v    SendCheck
	d    *xxhash.Digest
	fd   int
	done int64 // bytes hashed
	buf  []byte
}

func newVerifier(v *SendCheck, fd int) *verifier {
	if v == nil {
		return nil
	}
	return &verifier{v: *v, d: xxhash.New(), fd: fd, buf: make([]byte, hashBuf)}
}

// ahead hashes the file up to to (capped at the recorded size) before
// those bytes are sent, and checks the digest once the whole file is
// hashed.
func (vr *verifier) ahead(to int64) error {
	if vr == nil {
		return nil
	}
	to = min(to, vr.v.Size)
	if to <= vr.done {
		return nil
	}
	if err := hashRange(vr.fd, vr.d, vr.done, to, vr.buf, nil); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	vr.done = to
	if vr.done == vr.v.Size {
		if got := vr.d.Sum64(); got != vr.v.Sum {
			return fmt.Errorf("%w: recorded %016x, the file hashes to %016x", ErrCorrupt, vr.v.Sum, got)
		}
	}
	return nil
}

// RecordOf returns the digest record of the file at p, opened as f, if
// one was recorded and still matches f's size and mtime.
func (t *Tree) RecordOf(p string, f *os.File) (Record, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Record{}, false
	}
	m := meta{fd: int(f.Fd()), dirfd: -1}
	if tg, err := t.lock("record", p); err == nil {
		if fd, n, err := openParent("record", tg); err == nil {
			m.dirfd, m.name = fd, n
			defer unix.Close(fd)
		}
		t.mu.RUnlock()
	}
	return m.readRecord(&st)
}

package datapath

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// HashOptions bound the work a HASH command may cause.
type HashOptions struct {
	// Limit is the most bytes one request may read (0: no limit). A
	// request that would read more fails with ErrHashTooLarge before
	// reading anything; answers from a record or cache cost nothing.
	Limit int64
	// Pacer, if set, throttles the reads (the account's rate).
	Pacer Pacer
}

// ErrHashTooLarge: the range exceeds HashOptions.Limit.
var ErrHashTooLarge = errors.New("range too large to hash on request")

// HashResult is the answer to a hash request.
type HashResult struct {
	Algo     Algo
	From, To int64  // [From, To) of the file
	Sum      []byte // big-endian digest
	// Source says where it came from: "record" (the digest recorded at
	// upload), "cache" (a cached whole-file digest), "computed".
	Source string
}

// Hex is the digest in lower-case hex.
func (r HashResult) Hex() string { return hex.EncodeToString(r.Sum) }

// Hash returns the digest of [from, to) of the regular file p (to < 0:
// its end). Needs RightRead. A whole-file XXH64 comes from the record made
// at upload while the file's size and mtime still match it; a whole-file
// digest of another algorithm is cached on the file (xattr) once computed.
// Everything else is read from the page cache (pread), after Limit is
// checked, at the Pacer's rate.
func (t *Tree) Hash(p string, algo Algo, from, to int64, o HashOptions) (HashResult, error) {
	const op = "hash"
	f, err := t.Open(p)
	if err != nil {
		return HashResult{}, err
	}
	defer f.Close()
	// The sidecar fallback needs the directory; only the record (XXH64)
	// has one.
	dirfd, name := -1, ""
	if algo == XXH64 {
		if tg, err := t.lock(op, p); err == nil {
			if fd, n, err := openParent(op, tg); err == nil {
				dirfd, name = fd, n
				defer unix.Close(fd)
			}
			t.mu.RUnlock()
		}
	}
	res, err := hashFile(f, meta{fd: int(f.Fd()), dirfd: dirfd, name: name}, algo, from, to, o)
	if err != nil {
		return res, pathErr(op, p, err)
	}
	return res, nil
}

// HashFile is Hash for a file opened elsewhere (no record or cache).
func HashFile(f *os.File, algo Algo, from, to int64, o HashOptions) (HashResult, error) {
	return hashFile(f, meta{fd: -1, dirfd: -1}, algo, from, to, o)
}

func hashFile(f *os.File, m meta, algo Algo, from, to int64, o HashOptions) (HashResult, error) {
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return HashResult{}, err
	}
	if to < 0 || to > st.Size {
		to = st.Size
	}
	if from < 0 || from > to {
		return HashResult{}, &kindError{kind: ErrBadOffset, msg: fmt.Sprintf("range %d-%d of a %d-byte file", from, to, st.Size)}
	}
	res := HashResult{Algo: algo, From: from, To: to}
	whole := from == 0 && to == st.Size
	if whole && m.fd >= 0 {
		if algo == XXH64 {
			if r, ok := m.readRecord(&st); ok {
				res.Sum = binary.BigEndian.AppendUint64(nil, r.Sum)
				res.Source = "record"
				return res, nil
			}
		} else if b, err := m.get(cacheAttr(algo)); err == nil {
			if r, err := unmarshalCache(b); err == nil && r.Valid(&st) {
				res.Sum, res.Source = r.state, "cache"
				return res, nil
			}
		}
	}
	if o.Limit > 0 && to-from > o.Limit {
		return res, &kindError{kind: ErrHashTooLarge, msg: fmt.Sprintf("%d bytes, limit %d", to-from, o.Limit)}
	}
	h := NewHash(algo)
	var pace func(int) error
	if o.Pacer != nil {
		pace = o.Pacer.Wait
	}
	if err := hashRange(fd, h, from, to, make([]byte, hashBuf), pace); err != nil {
		return res, err
	}
	res.Sum, res.Source = h.Sum(nil), "computed"
	if whole && m.fd >= 0 {
		// Cache it, if the file did not change meanwhile. Best effort:
		// the account may lack write access to the file.
		var st2 unix.Stat_t
		if unix.Fstat(fd, &st2) == nil && st2.Size == st.Size && st2.Mtim == st.Mtim {
			if algo == XXH64 {
				d := h.(*xxhash.Digest)
				state, _ := d.MarshalBinary()
				_ = m.set(xattrRecord, Record{Size: st.Size, Mtime: st.Mtim.Nano(), Sum: d.Sum64(), state: state}.marshal())
			} else {
				_ = unix.Fsetxattr(fd, cacheAttr(algo), Record{Size: st.Size, Mtime: st.Mtim.Nano(), state: res.Sum}.marshal(), 0)
			}
		}
	}
	return res, nil
}

func cacheAttr(a Algo) string {
	return xattrCache + strings.ToLower(strings.ReplaceAll(string(a), "-", ""))
}

// A cached digest is a Record whose state field holds the digest.
func unmarshalCache(b []byte) (Record, error) { return unmarshalRecord(b) }

// recordBefore is Chtimes' helper: if tg has a valid record now, it
// returns a function that re-stamps it with the file's new mtime (ok) or
// leaves it (!ok). Cached digests of other algorithms simply expire.
func (t *Tree) recordBefore(tg target) func(ok bool) {
	fd, err := openBeneath(tg.m.fd, tg.rel, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil
	}
	m := meta{fd: fd, dirfd: -1}
	r, ok := m.readRecord(&st)
	if !ok {
		unix.Close(fd)
		return nil
	}
	return func(changed bool) {
		defer unix.Close(fd)
		var st2 unix.Stat_t
		if changed && unix.Fstat(fd, &st2) == nil && st2.Size == r.Size {
			r.Mtime = st2.Mtim.Nano()
			_ = m.set(xattrRecord, r.marshal())
		}
	}
}

// VerifyResult is what Verify found for one file.
type VerifyResult struct {
	Status string // "ok", "mismatch", "no-record" (none, or stale: size or mtime changed)
	Size   int64
	Stored uint64 // the recorded XXH64 (ok, mismatch)
	Actual uint64 // recomputed (ok, mismatch)
}

// Verify recomputes the XXH64 of a file named by a host path (the
// operator's `sluice verify`, outside any session) and compares it with
// its record (xattr, or the sidecar next to it). progress, if set, is
// called with the bytes hashed so far.
func Verify(path string, progress func(done int64)) (VerifyResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return VerifyResult{}, err
	}
	defer f.Close()
	fd := int(f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return VerifyResult{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return VerifyResult{}, fmt.Errorf("%s: not a regular file", path)
	}
	res := VerifyResult{Size: st.Size}
	dirfd := -1
	dir, name := splitHost(path)
	if d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		dirfd = d
		defer unix.Close(d)
	}
	r, ok := meta{fd: fd, dirfd: dirfd, name: name}.readRecord(&st)
	if !ok {
		res.Status = "no-record"
		return res, nil
	}
	d := xxhash.New()
	var done int64
	pace := func(n int) error {
		done += int64(n)
		if progress != nil {
			progress(done)
		}
		return nil
	}
	if err := hashRange(fd, d, 0, st.Size, make([]byte, 4<<20), pace); err != nil {
		return res, err
	}
	res.Stored, res.Actual = r.Sum, d.Sum64()
	res.Status = "ok"
	if res.Stored != res.Actual {
		res.Status = "mismatch"
	}
	return res, nil
}

func splitHost(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	switch {
	case i < 0:
		return ".", p
	case i == 0:
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

package datapath

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"os"
	"strings"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// Algo names a checksum algorithm, spelled as draft-bryan-ftpext-hash does.
type Algo string

const (
	XXH64  Algo = "XXH64" // inline: computed while an upload is written
	SHA256 Algo = "SHA-256"
	SHA1   Algo = "SHA-1"
	MD5    Algo = "MD5"
	CRC32  Algo = "CRC32" // IEEE, as XCRC and cksum -a crc32b
)

// Algos lists the algorithms in FEAT order (the inline one first).
func Algos() []Algo { return []Algo{XXH64, SHA256, SHA1, MD5, CRC32} }

// ParseAlgo accepts the draft's names case-insensitively, and the
// unhyphenated spellings some clients send (SHA256, SHA1).
func ParseAlgo(name string) (Algo, bool) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "XXH64", "XXHASH64":
		return XXH64, true
	case "SHA-256", "SHA256":
		return SHA256, true
	case "SHA-1", "SHA1":
		return SHA1, true
	case "MD5":
		return MD5, true
	case "CRC32", "CRC":
		return CRC32, true
	}
	return "", false
}

// NewHash returns a fresh hash for a. XXH64 and CRC32 sums are big-endian,
// so their hex form is what xxhsum -H64 and crc32 print.
func NewHash(a Algo) hash.Hash {
	switch a {
	case XXH64:
		return xxhash.New()
	case SHA256:
		return sha256.New()
	case SHA1:
		return sha1.New()
	case MD5:
		return md5.New()
	case CRC32:
		return crc32.NewIEEE()
	}
	panic("datapath: unknown algorithm " + string(a))
}

// Extended attributes (namespace user.sluice.*) and sidecar files that hold
// what this package knows about a file. See docs/datapath.md.
const (
	// xattrRecord, on a completed file: the XXH64 of its contents at a
	// given size and mtime, plus the digest state (so APPE continues it).
	xattrRecord = "user.sluice.xxh64"
	// xattrCkpt, on a partial upload: an offset and the digest state
	// of the bytes before it.
	xattrCkpt = "user.sluice.ckpt"
	// xattrCache + lower-case algorithm: a cached whole-file digest of a
	// non-inline algorithm, valid for one size and mtime.
	xattrCache = "user.sluice.sum."

	// PartialPrefix names an upload in progress (or interrupted) next to
	// its final name: ".sluice-partial.NAME". Listings hide it and no
	// command may name it.
	PartialPrefix = ".sluice-partial."
	// MetaPrefix names the sidecar that replaces the extended attributes
	// on file systems without user xattrs: ".sluice-meta.NAME" holds
	// NAME's record (or NAME's checkpoint when NAME is a partial).
	MetaPrefix = ".sluice-meta."

	metaVersion = 1
)

// Reserved reports whether a single path component is one of ours.
func Reserved(name string) bool {
	return strings.HasPrefix(name, PartialPrefix) || strings.HasPrefix(name, MetaPrefix)
}

// reservedPath reports whether any component of a clean path is reserved.
func reservedPath(p string) bool {
	return strings.Contains(p, "/"+PartialPrefix) || strings.Contains(p, "/"+MetaPrefix)
}

// Record is the digest recorded for a completed file. It is valid while
// the file's size and mtime (nanoseconds) are those recorded.
type Record struct {
	Size  int64
	Mtime int64 // ns since the epoch
	Sum   uint64
	state []byte // marshalled xxhash.Digest after Size bytes
}

// Valid reports whether r describes st.
func (r Record) Valid(st *unix.Stat_t) bool {
	return r.Size == st.Size && r.Mtime == st.Mtim.Nano()
}

// Hex is the digest as xxhsum prints it.
func (r Record) Hex() string { return fmt.Sprintf("%016x", r.Sum) }

func (r Record) marshal() []byte {
	b := make([]byte, 0, 26+len(r.state))
	b = append(b, metaVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Mtime))
	b = binary.BigEndian.AppendUint64(b, r.Sum)
	b = append(b, byte(len(r.state)))
	return append(b, r.state...)
}

var errBadMeta = errors.New("datapath: malformed sluice metadata")

func unmarshalRecord(b []byte) (Record, error) {
	if len(b) < 26 || b[0] != metaVersion || len(b) != 26+int(b[25]) {
		return Record{}, errBadMeta
	}
	r := Record{
		Size:  int64(binary.BigEndian.Uint64(b[1:])),
		Mtime: int64(binary.BigEndian.Uint64(b[9:])),
		Sum:   binary.BigEndian.Uint64(b[17:]),
	}
	if len(b) > 26 {
		r.state = append([]byte(nil), b[26:]...)
	}
	return r, nil
}

// digestAt restores the digest state a record carries, if it matches.
func (r Record) digest() (*xxhash.Digest, bool) {
	if len(r.state) == 0 {
		return nil, false
	}
	d := xxhash.New()
	if d.UnmarshalBinary(r.state) != nil || d.Sum64() != r.Sum {
		return nil, false
	}
	return d, true
}

// checkpoint is the digest state of a partial upload's first Off bytes.
type checkpoint struct {
	Off   int64
	state []byte
}

func (c checkpoint) marshal() []byte {
	b := make([]byte, 0, 9+len(c.state))
	b = append(b, metaVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Off))
	return append(b, c.state...)
}

func unmarshalCheckpoint(b []byte) (checkpoint, *xxhash.Digest, error) {
	if len(b) < 10 || b[0] != metaVersion {
		return checkpoint{}, nil, errBadMeta
	}
	c := checkpoint{Off: int64(binary.BigEndian.Uint64(b[1:])), state: b[9:]}
	d := xxhash.New()
	if err := d.UnmarshalBinary(c.state); err != nil {
		return checkpoint{}, nil, errBadMeta
	}
	return c, d, nil
}

// meta reads and writes one file's sluice metadata: user xattrs on the
// file's fd, or, where the file system has none (ENOTSUP), a sidecar
// ".sluice-meta.NAME" in the same directory, bound to the file's inode.
type meta struct {
	fd    int // the file (read or read-write)
	dirfd int // its directory (O_PATH is enough); -1: no sidecar fallback
	name  string
}

// testNoXattr makes every xattr call fail with ENOTSUP (tests of the
// sidecar fallback).
var testNoXattr bool

func isNoXattr(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

func (m meta) get(attr string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(m.fd, attr, buf)
		if testNoXattr {
			err = unix.ENOTSUP
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ERANGE && len(buf) < 64<<10:
			buf = make([]byte, 4*len(buf))
			continue
		case isNoXattr(err) && m.dirfd >= 0:
			return m.sidecarGet(attr)
		case err != nil:
			return nil, err
		}
		return buf[:n], nil
	}
}

func (m meta) set(attr string, val []byte) error {
	err := unix.Fsetxattr(m.fd, attr, val, 0)
	if testNoXattr {
		err = unix.ENOTSUP
	}
	if isNoXattr(err) && m.dirfd >= 0 {
		return m.sidecarSet(attr, val)
	}
	return err
}

func (m meta) remove(attr string) {
	if err := unix.Fremovexattr(m.fd, attr); (testNoXattr || isNoXattr(err)) && m.dirfd >= 0 {
		m.sidecarRemove(attr)
	}
}

// The sidecar holds one attribute (the record of a final file or the
// checkpoint of a partial): inode (8 bytes), attribute name length (1),
// name, value. Other attributes (cached non-inline digests) are simply
// not kept without xattrs.
func (m meta) sidecarName() string { return MetaPrefix + m.name }

func (m meta) sidecarGet(attr string) ([]byte, error) {
	if attr != xattrRecord && attr != xattrCkpt {
		return nil, unix.ENODATA
	}
	fd, err := openBeneath(m.dirfd, m.sidecarName(), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, unix.ENODATA
	}
	f := os.NewFile(uintptr(fd), m.sidecarName())
	defer f.Close()
	buf := make([]byte, 1024)
	n, _ := f.ReadAt(buf, 0)
	buf = buf[:n]
	var st unix.Stat_t
	if err := unix.Fstat(m.fd, &st); err != nil {
		return nil, err
	}
	if len(buf) < 9 || binary.BigEndian.Uint64(buf) != st.Ino || len(buf) < 9+int(buf[8]) || string(buf[9:9+int(buf[8])]) != attr {
		return nil, unix.ENODATA
	}
	return buf[9+int(buf[8]):], nil
}

func (m meta) sidecarSet(attr string, val []byte) error {
	if attr != xattrRecord && attr != xattrCkpt {
		return unix.ENOTSUP
	}
	var st unix.Stat_t
	if err := unix.Fstat(m.fd, &st); err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint64(nil, st.Ino)
	b = append(b, byte(len(attr)))
	b = append(b, attr...)
	b = append(b, val...)
	tmp := m.sidecarName() + ".tmp"
	fd, err := openBeneath(m.dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return err
	}
	_, werr := unix.Write(fd, b)
	unix.Close(fd)
	if werr != nil {
		unix.Unlinkat(m.dirfd, tmp, 0)
		return werr
	}
	return unix.Renameat2(m.dirfd, tmp, m.dirfd, m.sidecarName(), 0)
}

func (m meta) sidecarRemove(attr string) {
	if _, err := m.sidecarGet(attr); err == nil {
		unix.Unlinkat(m.dirfd, m.sidecarName(), 0)
	}
}

// readRecord returns fd's record if there is one and it is still valid
// for st.
func (m meta) readRecord(st *unix.Stat_t) (Record, bool) {
	b, err := m.get(xattrRecord)
	if err != nil {
		return Record{}, false
	}
	r, err := unmarshalRecord(b)
	if err != nil || !r.Valid(st) {
		return Record{}, false
	}
	return r, true
}

// hashRange feeds [from, to) of fd to h with pread(2), from the page cache
// when it is there. pace, if set, is called after every buffer.
func hashRange(fd int, h hash.Hash, from, to int64, buf []byte, pace func(int) error) error {
	for from < to {
		n, err := unix.Pread(fd, buf[:min(int64(len(buf)), to-from)], from)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("pread", err)
		}
		if n == 0 {
			return fmt.Errorf("datapath: file shrank while hashing (at %d, want %d)", from, to)
		}
		h.Write(buf[:n])
		from += int64(n)
		if pace != nil {
			if err := pace(n); err != nil {
				return err
			}
		}
	}
	return nil
}

const hashBuf = 1 << 20

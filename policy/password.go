package policy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters of the hashes HashPassword makes: OWASP's argon2id
// recommendation (m=19 MiB, t=2, p=1), a 16-byte salt and a 32-byte key.
const (
	HashMemoryKiB = 19456
	HashTime      = 2
	HashThreads   = 1
	hashSaltLen   = 16
	hashKeyLen    = 32
)

// Bounds on what VerifyPassword accepts. A hash string comes from the
// config file, and its parameters decide how much memory and time one login
// costs: without bounds a stray (or hostile) "m=104857600" would make every
// login try to allocate 100 GiB.
const (
	maxHashMemoryKiB = 256 * 1024 // 256 MiB per verification
	maxHashTime      = 16
	maxHashThreads   = 16
	minSaltLen       = 8
	maxSaltLen       = 64
	minKeyLen        = 16
	maxKeyLen        = 64
	maxPHCLen        = 512
)

// ErrMalformedHash is wrapped by every error about a password hash string
// that is not an argon2id PHC string sluice accepts.
var ErrMalformedHash = errors.New("malformed password hash")

var phcB64 = base64.RawStdEncoding.Strict()

// HashPassword hashes pw with argon2id and returns the PHC string
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>" (unpadded standard base64),
// with a fresh 16-byte salt from crypto/rand.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, hashSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, HashTime, HashMemoryKiB, HashThreads, hashKeyLen)
	return formatPHC(phc{m: HashMemoryKiB, t: HashTime, p: HashThreads, salt: salt, key: key}), nil
}

// VerifyPassword reports whether pw matches the argon2id PHC string phc.
// The key comparison is constant-time. A malformed phc (or one whose cost
// parameters are out of bounds) is an error wrapping ErrMalformedHash, and
// never matches.
func VerifyPassword(phc, pw string) (bool, error) {
	h, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(pw), h.salt, h.t, h.m, h.p, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

// CheckPasswordHash reports whether phc is an argon2id PHC string that
// VerifyPassword accepts, without hashing anything. The config loader uses
// it, so that a bad hash is found by `sluice serve --check` and not at the
// first login.
func CheckPasswordHash(phc string) error {
	_, err := parsePHC(phc)
	return err
}

// phc is a parsed argon2id PHC string.
type phc struct {
	m, t uint32
	p    uint8
	salt []byte
	key  []byte
}

func formatPHC(h phc) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.m, h.t, h.p, phcB64.EncodeToString(h.salt), phcB64.EncodeToString(h.key))
}

func badHash(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}

// parsePHC parses "$argon2id$v=19$m=M,t=T,p=P$salt$key" strictly: the one
// algorithm, the one version, parameters in this order, canonical decimal
// numbers and canonical unpadded base64, so that one hash has one spelling.
func parsePHC(s string) (phc, error) {
	var h phc
	if len(s) > maxPHCLen {
		return h, badHash("longer than %d bytes", maxPHCLen)
	}
	if !strings.HasPrefix(s, "$") {
		return h, badHash("not a PHC string (a plain-text password? sluice stores only argon2id hashes: set one with `sluice user passwd`)")
	}
	parts := strings.Split(s, "$")
	if parts[1] != "argon2id" {
		return h, badHash("algorithm %q is not argon2id", parts[1])
	}
	if len(parts) != 6 {
		return h, badHash(`want "$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>"`)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, badHash("version %q is not v=%d", parts[2], argon2.Version)
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return h, badHash("parameters %q: want m=…,t=…,p=…", parts[3])
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return h, badHash("parameters %q: want m=…,t=…,p=…", parts[3])
		}
		n, err := parseDecimal(v)
		if err != nil {
			return h, badHash("parameter %s=%q: %v", name, v, err)
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case p < 1 || p > maxHashThreads:
		return h, badHash("p=%d out of range 1..%d", p, maxHashThreads)
	case t < 1 || t > maxHashTime:
		return h, badHash("t=%d out of range 1..%d", t, maxHashTime)
	case m < 8*p || m > maxHashMemoryKiB:
		return h, badHash("m=%d out of range %d..%d (KiB)", m, 8*p, maxHashMemoryKiB)
	}
	salt, err := phcB64.DecodeString(parts[4])
	if err != nil {
		return h, badHash("salt is not unpadded base64")
	}
	if len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return h, badHash("salt is %d bytes, want %d..%d", len(salt), minSaltLen, maxSaltLen)
	}
	key, err := phcB64.DecodeString(parts[5])
	if err != nil {
		return h, badHash("hash is not unpadded base64")
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return h, badHash("hash is %d bytes, want %d..%d", len(key), minKeyLen, maxKeyLen)
	}
	return phc{m: uint32(m), t: uint32(t), p: uint8(p), salt: salt, key: key}, nil
}

// parseDecimal parses a canonical non-negative decimal (no sign, no leading
// zeros) of at most 10 digits.
func parseDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 10 {
		return 0, errors.New("not a number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + uint64(c-'0')
	}
	return n, nil
}

// weakHash reports whether a valid hash uses less work than OWASP's
// weakest recommended argon2id setting (m=7 MiB with t=5, or the equivalent
// m·t product), for a warning.
func weakHash(s string) bool {
	h, err := parsePHC(s)
	if err != nil {
		return false
	}
	return h.m < 7168 || uint64(h.m)*uint64(h.t) < 7168*5
}

package daemon

// The key holder (invariant 5): private keys are read by the supervisor
// and never leave it. A worker gets the public certificate chain and, while
// a handshake runs, asks for a signature with an ipc.Sign request — a
// bounded number per second (signRate). Within that bound a compromised
// worker can get signatures over digests of its choice (the design cannot
// tell a handshake transcript from any other 32 bytes); it can never get
// the key itself. SECURITY.md says so.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/policy"
)

// Signing bounds per worker: a handshake needs one signature (a TLS full
// handshake or an SSH key exchange); resumed data connections need none.
const (
	signRate  = 10.0 // tokens per second
	signBurst = 20.0
)

// tlsKeys is one loaded FTPS certificate and its key.
type tlsKeys struct {
	chain       [][]byte
	key         crypto.Signer
	fingerprint string // SHA-256 of the leaf, hex with colons
	source      string // the files, or "self-signed …"
}

// Self-signed certificate files under state_dir.
const (
	selfSignedCert = "ftps-selfsigned.crt"
	selfSignedKey  = "ftps-selfsigned.key"
)

// loadTLSKeys reads the configured certificate and key, or the
// self-signed pair under state_dir, generating it on first use.
func loadTLSKeys(cfg *policy.Config) (*tlsKeys, bool, error) {
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	generated := false
	if certFile == "" {
		dir := cfg.Server.StateDir
		certFile, keyFile = filepath.Join(dir, selfSignedCert), filepath.Join(dir, selfSignedKey)
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := generateSelfSigned(dir, certFile, keyFile, cfg.Server.Name); err != nil {
				return nil, false, err
			}
			generated = true
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, false, fmt.Errorf("FTPS certificate: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, false, fmt.Errorf("FTPS key %s: not a signing key", keyFile)
	}
	sum := sha256.Sum256(pair.Certificate[0])
	hexs := make([]string, len(sum))
	for i, b := range sum {
		hexs[i] = fmt.Sprintf("%02X", b)
	}
	return &tlsKeys{chain: pair.Certificate, key: signer, fingerprint: strings.Join(hexs, ":"), source: certFile}, generated, nil
}

// generateSelfSigned writes an ECDSA P-256 certificate valid for ten
// years, for loopback and the host name. The key file is 0600, in a 0700
// directory.
func generateSelfSigned(dir, certFile, keyFile, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name + " FTPS (self-signed)"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
	}
	if host != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(keyFile, "PRIVATE KEY", kder, 0o600); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sshKeys is the SSH host key.
type sshKeys struct {
	key         crypto.Signer
	public      []byte // wire form
	fingerprint string
	source      string
}

const sshHostKeyFile = "ssh_host_ed25519_key"

// loadSSHKeys reads the configured host key, or the Ed25519 key under
// state_dir, generating it on first use.
func loadSSHKeys(cfg *policy.Config) (*sshKeys, bool, error) {
	file := cfg.SFTP.HostKeyFile
	generated := false
	if file == "" {
		dir := cfg.Server.StateDir
		file = filepath.Join(dir, sshHostKeyFile)
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, false, fmt.Errorf("state_dir: %w", err)
			}
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return nil, false, err
			}
			blk, err := ssh.MarshalPrivateKey(priv, cfg.Server.Name+" SFTP host key")
			if err != nil {
				return nil, false, err
			}
			if err := writePEM(file, blk.Type, blk.Bytes, 0o600); err != nil {
				return nil, false, err
			}
			generated = true
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, false, fmt.Errorf("SSH host key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, false, fmt.Errorf("SSH host key %s: %w", file, err)
	}
	var signer crypto.Signer
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		signer = *k
	case crypto.Signer:
		signer = k
	default:
		return nil, false, fmt.Errorf("SSH host key %s: unsupported key type %T", file, raw)
	}
	pub, err := ssh.NewPublicKey(signer.Public())
	if err != nil {
		return nil, false, fmt.Errorf("SSH host key %s: %w", file, err)
	}
	return &sshKeys{key: signer, public: pub.Marshal(), fingerprint: ssh.FingerprintSHA256(pub), source: file}, generated, nil
}

// signBucket is a worker's signing allowance (token bucket).
type signBucket struct {
	tokens float64
	last   time.Time
}

func (b *signBucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = signBurst
	} else {
		b.tokens = min(signBurst, b.tokens+now.Sub(b.last).Seconds()*signRate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// errBadSign marks a request no well-behaved worker sends: the worker is
// killed.
var errBadSign = errors.New("malformed sign request")

// sign checks a request against the key and signs.
func signWith(key crypto.Signer, m ipc.Sign) ([]byte, error) {
	var opts crypto.SignerOpts
	h := crypto.Hash(m.Hash)
	switch key.(type) {
	case ed25519.PrivateKey:
		if h != 0 || m.PSS || len(m.Digest) == 0 || len(m.Digest) > 1024 {
			return nil, errBadSign
		}
		opts = crypto.Hash(0)
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		switch h {
		case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		case crypto.SHA1:
			// TLS 1.2 clients that offer nothing better; SSH ssh-rsa.
		default:
			return nil, errBadSign
		}
		if len(m.Digest) != h.Size() {
			return nil, errBadSign
		}
		opts = h
		if m.PSS {
			if _, ok := key.(*rsa.PrivateKey); !ok {
				return nil, errBadSign
			}
			opts = &rsa.PSSOptions{SaltLength: m.PSSSalt, Hash: h}
		}
	default:
		return nil, errBadSign
	}
	return key.Sign(rand.Reader, m.Digest, opts)
}

// handleSign answers one Sign request. It returns false if the worker was
// killed.
func (s *Server) handleSign(w *worker, m ipc.Sign) bool {
	w.mu.Lock()
	keys, hostKey := w.tlsKeys, w.sshKey
	ok := w.signs.take(time.Now())
	w.mu.Unlock()
	var key crypto.Signer
	switch m.Key {
	case ipc.KeyTLS:
		if keys != nil {
			key = keys.key
		}
	case ipc.KeySSH:
		if hostKey != nil {
			key = hostKey.key
		}
	}
	if key == nil {
		w.kill("sign request for a key this session does not use: " + m.Key)
		return false
	}
	var r ipc.SignReply
	if !ok {
		s.logs.Ops.Warn().Int("pid", w.pid()).Str("session", w.sess.ID).Msg("signing rate exceeded; handshake refused")
		r.Err = "signing rate exceeded"
	} else {
		sig, err := signWith(key, m)
		if errors.Is(err, errBadSign) {
			w.kill("malformed sign request")
			return false
		}
		if err != nil {
			r.Err = err.Error()
		}
		r.Sig = sig
	}
	if err := w.ipc.Send(r); err != nil {
		w.kill("sign reply failed: " + err.Error())
		return false
	}
	return true
}

// keyFingerprint is the SHA256 fingerprint of an SSH public key's wire
// form, as OpenSSH prints it ("SHA256:…"), for the audit log.
func keyFingerprint(wire []byte) string {
	pk, err := ssh.ParsePublicKey(wire)
	if err != nil {
		return "unparsable"
	}
	return ssh.FingerprintSHA256(pk)
}

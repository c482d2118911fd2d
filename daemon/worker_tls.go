package daemon

import (
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluice-ftp/sluice/daemon/ipc"
)

// remoteSigner is the worker's crypto.Signer for a key it does not hold:
// each Sign is an ipc.Sign request answered by the supervisor's key
// holder (keys.go). crypto/tls calls it during a full handshake only.
type remoteSigner struct {
	w   *workerSession
	key string
	pub crypto.PublicKey
}

var _ crypto.Signer = (*remoteSigner)(nil)

func (r *remoteSigner) Public() crypto.PublicKey { return r.pub }

func (r *remoteSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	m := ipc.Sign{Key: r.key, Hash: uint(opts.HashFunc()), Digest: digest}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		m.PSS, m.PSSSalt = true, pss.SaltLength
	}
	return r.w.sign(m)
}

// signTimeout bounds the wait for the supervisor's signature.
const signTimeout = 10 * time.Second

// sign sends one request and waits for its reply; requests are one at a
// time (the replies carry no id).
func (w *workerSession) sign(m ipc.Sign) ([]byte, error) {
	w.signMu.Lock()
	defer w.signMu.Unlock()
	if err := w.ipc.Send(m); err != nil {
		return nil, fmt.Errorf("ask supervisor to sign: %w", err)
	}
	select {
	case r := <-w.signReplies:
		if r.Err != "" {
			return nil, errors.New("supervisor refused to sign: " + r.Err)
		}
		return r.Sig, nil
	case <-time.After(signTimeout):
		return nil, errors.New("supervisor did not sign in time")
	}
}

// tlsConfig is the worker's FTPS configuration: the public chain from
// Start and a remote signer for its key. TLS 1.2 and 1.3 with Go's
// defaults; TLS 1.2 only with ECDHE key exchange (no RSA key exchange),
// AEAD suites. Records are full-size from the start (no dynamic sizing):
// bulk transfers are what FTPS carries.
func (w *workerSession) tlsConfig(chain [][]byte) (*tls.Config, error) {
	if len(chain) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("certificate from supervisor: %w", err)
	}
	signer := &remoteSigner{w: w, key: ipc.KeyTLS, pub: leaf.PublicKey}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: signer, Leaf: leaf}},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		DynamicRecordSizingDisabled: true,
	}, nil
}

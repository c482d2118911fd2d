package daemon

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/daemon/ipc"
)

func TestSignWith(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := sha256.Sum256([]byte("transcript"))
	sig, err := signWith(key, ipc.Sign{Key: ipc.KeyTLS, Hash: uint(crypto.SHA256), Digest: d[:]})
	if err != nil || !ecdsa.VerifyASN1(&key.PublicKey, d[:], sig) {
		t.Fatalf("sign: %v", err)
	}
	for name, m := range map[string]ipc.Sign{
		"short digest":  {Hash: uint(crypto.SHA256), Digest: d[:16]},
		"no hash":       {Hash: 0, Digest: d[:]},
		"md5":           {Hash: uint(crypto.MD5), Digest: d[:16]},
		"pss for ecdsa": {Hash: uint(crypto.SHA256), Digest: d[:], PSS: true},
		"unknown hash":  {Hash: 999, Digest: d[:]},
	} {
		if _, err := signWith(key, m); !errors.Is(err, errBadSign) {
			t.Errorf("%s: err = %v, want errBadSign", name, err)
		}
	}
}

func TestSignBucket(t *testing.T) {
	var b signBucket
	now := time.Now()
	n := 0
	for b.take(now) {
		n++
	}
	if n != signBurst {
		t.Fatalf("burst = %d, want %v", n, signBurst)
	}
	if b.take(now.Add(50 * time.Millisecond)) {
		t.Fatal("a token after 50ms at 10/s")
	}
	if !b.take(now.Add(200 * time.Millisecond)) {
		t.Fatal("no token after 200ms at 10/s")
	}
}

func TestSignPhases(t *testing.T) {
	for _, p := range []phase{phaseSpawned, phaseIdle, phaseClosed} {
		if allowed(ipc.TSign, p, 0) == nil {
			t.Errorf("sign allowed in phase %s", p)
		}
	}
	for _, p := range []phase{phasePreAuth, phasePostAuth} {
		if err := allowed(ipc.TSign, p, 1000); err != nil {
			t.Errorf("sign in phase %s: %v", p, err)
		}
	}
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/ftp"
	"github.com/sluice-ftp/sluice/sftp"
)

// Extension keys of ssh.Permissions.
const (
	permKey    = "sluice-pubkey" // wire form of the key the permissions were granted for
	permMethod = "sluice-method"
)

// serveSSH is an SFTP session: the SSH server side (key exchange signed
// by the supervisor's host key through Sign, user authentication through
// AuthRequest), then the "sftp" subsystem on session channels. Nothing
// else is offered: no shell, exec, pty or forwarding.
func (w *workerSession) serveSSH(ctx context.Context, nc net.Conn) (ftp.Summary, error) {
	var sum ftp.Summary
	pub, err := ssh.ParsePublicKey(w.start.SSHHostKey)
	if err != nil {
		return sum, fmt.Errorf("host key from supervisor: %w", err)
	}
	cpub, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return sum, errors.New("host key: no crypto public key")
	}
	hostSigner, err := ssh.NewSignerFromSigner(&remoteSigner{w: w, key: ipc.KeySSH, pub: cpub.CryptoPublicKey()})
	if err != nil {
		return sum, fmt.Errorf("host key signer: %w", err)
	}
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-sluice",
		MaxAuthTries:  max(w.start.FTP.MaxLoginAttempts, 1),
		PasswordCallback: func(c ssh.ConnMetadata, pass []byte) (*ssh.Permissions, error) {
			acct, err := w.loginSSH(ctx, ipc.AuthRequest{User: c.User(), Pass: string(pass), Method: "password", TLS: true})
			if err != nil {
				return nil, err
			}
			w.sshAcct = acct
			return &ssh.Permissions{Extensions: map[string]string{permMethod: "password"}}, nil
		},
		// Called for the query (no signature yet) and for the real
		// attempt (x/crypto verifies the signature after it returns),
		// possibly for several keys (CVE-2024-45337): it only asks the
		// supervisor whether the key may log in. The login itself
		// happens after the handshake, for the key recorded in the
		// Permissions that x/crypto returns with the connection — the
		// key that was actually authenticated.
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			r, err := w.authRoundTrip(ctx, ipc.AuthRequest{User: c.User(), Method: "publickey", PublicKey: key.Marshal(), Check: true, TLS: true})
			if err != nil {
				return nil, err
			}
			if !r.OK {
				return nil, errors.New("key not authorized")
			}
			return &ssh.Permissions{Extensions: map[string]string{permMethod: "publickey", permKey: string(key.Marshal())}}, nil
		},
	}
	cfg.AddHostKey(hostSigner)
	ic := &idleConn{Conn: nc, idle: w.start.FTP.IdleTimeout}
	if d := w.start.FTP.LoginTimeout; d > 0 {
		ic.until.Store(time.Now().Add(d).UnixNano())
	}
	conn, chans, reqs, err := ssh.NewServerConn(ic, cfg)
	if err != nil {
		return sum, fmt.Errorf("ssh handshake: %w", err)
	}
	defer conn.Close()
	ic.until.Store(0)
	detail := ""
	if conn.Permissions != nil && conn.Permissions.Extensions[permMethod] == "publickey" {
		key := []byte(conn.Permissions.Extensions[permKey])
		acct, err := w.loginSSH(ctx, ipc.AuthRequest{User: conn.User(), Method: "publickey", PublicKey: key, TLS: true})
		if err != nil {
			return sum, fmt.Errorf("login: %w", err)
		}
		w.sshAcct = acct
		if pk, err := ssh.ParsePublicKey(key); err == nil {
			detail = "key " + ssh.FingerprintSHA256(pk)
		}
	}
	if w.sshAcct == nil {
		return sum, errors.New("ssh: authenticated without a login")
	}
	go ssh.DiscardRequests(reqs) // global requests: no forwarding
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	srv := &sftp.Server{FS: w.tree, Events: w, Detail: detail, Pacer: w.sshAcct.Pacer, Meter: w.sshAcct.Meter}
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.Prohibited, "only SFTP sessions are served")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp" {
					req.Reply(true, nil)
					go func() {
						// The request server closes what it serves;
						// the channel must stay open for exit-status
						// (scp fails without one).
						srv.Serve(noClose{ch})
						ch.SendRequest("exit-status", false, []byte{0, 0, 0, 0})
						ch.Close()
					}()
					continue
				}
				// shell, exec (legacy scp), pty-req, env, x11, agent:
				// refused.
				req.Reply(false, nil)
			}
		}()
	}
	sum = srv.Summary()
	sum.Account = w.sshAcct.Name
	return sum, nil
}

// loginSSH logs in through Login's path (privilege drop, sandbox, tree).
func (w *workerSession) loginSSH(ctx context.Context, req ipc.AuthRequest) (*ftp.Account, error) {
	return w.login(ctx, req)
}

// authRoundTrip sends one AuthRequest and returns the verdict without
// acting on it (the SSH key query). Descriptors never come with it.
func (w *workerSession) authRoundTrip(ctx context.Context, req ipc.AuthRequest) (ipc.AuthReply, error) {
	if err := w.ipc.Send(req); err != nil {
		return ipc.AuthReply{}, fmt.Errorf("ask supervisor: %w", err)
	}
	select {
	case ar := <-w.replies:
		for _, f := range ar.files {
			f.Close()
		}
		if ar.r.Banned {
			return ar.r, ftp.ErrBanned
		}
		return ar.r, nil
	case <-ctx.Done():
		return ipc.AuthReply{}, ctx.Err()
	}
}

// noClose hides a channel's Close from the SFTP request server.
type noClose struct{ ssh.Channel }

func (noClose) Close() error { return nil }

// idleConn ends a connection that sends nothing for idle (idle_timeout:
// SFTP clients send requests all through a transfer, in both directions)
// or, before login, at the login deadline.
type idleConn struct {
	net.Conn
	idle  time.Duration
	until atomic.Int64 // UnixNano hard deadline, 0 for none
}

func (c *idleConn) Read(b []byte) (int, error) {
	var d time.Time
	if c.idle > 0 {
		d = time.Now().Add(c.idle)
	}
	if u := c.until.Load(); u != 0 && (d.IsZero() || u < d.UnixNano()) {
		d = time.Unix(0, u)
	}
	c.Conn.SetReadDeadline(d)
	return c.Conn.Read(b)
}

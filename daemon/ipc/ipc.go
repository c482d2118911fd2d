// Package ipc is the typed protocol between the supervisor and a session
// worker. It runs over a SOCK_SEQPACKET socketpair: one message per packet,
// so boundaries are kept by the kernel and a file descriptor passed with
// SCM_RIGHTS is tied to exactly one message.
//
// A packet is a 2-byte big-endian message type followed by the JSON body of
// that type. Decoding is strict (unknown types, unknown fields, trailing data
// and oversized packets are errors) because the worker is the untrusted side:
// it parses client bytes, so the supervisor must assume it may be hostile.
// Which message may be sent in which phase is decided by the supervisor's
// request table (daemon/worker.go), not here: this package only frames.
package ipc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-ftp/sluice/ftp"
	"github.com/sluice-ftp/sluice/policy"
)

// MaxMessage bounds one packet. The largest legitimate message is an
// AuthReply with a handful of folders; 64 KiB leaves room without letting a
// worker make the supervisor allocate much.
const MaxMessage = 64 << 10

// MaxFDs is the most descriptors one message may carry (one per folder).
const MaxFDs = 64

// Type identifies a message.
type Type uint16

const (
	TReady       Type = 1  // worker → supervisor: initialised, waiting for a connection
	TStart       Type = 2  // supervisor → worker: a client connection (1 fd)
	TAuthRequest Type = 3  // worker → supervisor: USER/PASS to check
	TAuthReply   Type = 4  // supervisor → worker: verdict; on success one dir fd per folder
	TEvent       Type = 5  // worker → supervisor: audit event (post-login)
	TClose       Type = 6  // worker → supervisor: session summary, last message
	TShutdown    Type = 7  // supervisor → worker: finish and leave
	TConfine     Type = 8  // supervisor → worker: sandbox spec (+ Landlock layer-1 ruleset fd); first message
	THookCheck   Type = 9  // worker → supervisor: may this operation go ahead? (pre-upload/pre-download hooks)
	THookVerdict Type = 10 // supervisor → worker: the answer to HookCheck
	TSign        Type = 11 // worker → supervisor: sign a handshake digest with a key the worker never holds
	TSignReply   Type = 12 // supervisor → worker: the signature
	TRates       Type = 13 // supervisor → worker: the session's bandwidth shares, whenever they change
	TMeter       Type = 14 // worker → supervisor: a transfer begins, needs more bytes or ends; a quota query
	TGrant       Type = 15 // supervisor → worker: the answer to Meter
)

func (t Type) String() string {
	switch t {
	case TReady:
		return "ready"
	case TStart:
		return "start"
	case TAuthRequest:
		return "auth-request"
	case TAuthReply:
		return "auth-reply"
	case TEvent:
		return "event"
	case TClose:
		return "close"
	case TShutdown:
		return "shutdown"
	case TConfine:
		return "confine"
	case THookCheck:
		return "hook-check"
	case THookVerdict:
		return "hook-verdict"
	case TSign:
		return "sign"
	case TSignReply:
		return "sign-reply"
	case TRates:
		return "rates"
	case TMeter:
		return "meter"
	case TGrant:
		return "grant"
	}
	return fmt.Sprintf("type-%d", uint16(t))
}

// Message is implemented by every message type.
type Message interface{ Type() Type }

// Ready is the worker's first message: it has started, confined itself as
// Confine said, and waits for a connection. Missing names what could not
// be enforced (only ever non-empty with require_sandbox = false: otherwise
// the worker exits instead).
type Ready struct {
	PID     int      `json:"pid"`
	Missing []string `json:"missing"`
}

// Confine is the supervisor's first message to a new worker: how to
// confine itself before it says Ready. When Landlock is in use its layer-1
// ruleset fd rides along as the only descriptor.
type Confine struct {
	Spec policy.ConfineSpec `json:"spec"`
}

// Start hands a client connection to a worker. The connection's fd rides
// along as the only SCM_RIGHTS descriptor.
type Start struct {
	SessionID string     `json:"session_id"`
	Listener  string     `json:"listener"`
	Remote    string     `json:"remote"`
	Local     string     `json:"local"`
	FTP       ftp.Config `json:"ftp"`
	// SwitchUser is true when the supervisor runs as root: after login the
	// worker must drop to the account's uid/gid. False in developer mode.
	SwitchUser bool `json:"switch_user"`
	// TLSChain is the FTPS certificate chain (DER, leaf first): public.
	// The key stays with the supervisor (Sign). Empty when FTPS is off.
	TLSChain [][]byte `json:"tls_chain,omitempty"`
	// Protocol is "ftp" (also for FTPS) or "sftp" ("" means ftp).
	Protocol string `json:"protocol,omitempty"`
	// SSHHostKey is the SSH host key's public key (wire form) for
	// "sftp"; the private key stays with the supervisor (Sign).
	SSHHostKey []byte `json:"ssh_host_key,omitempty"`
}

// AuthRequest asks the supervisor to check a USER/PASS pair.
type AuthRequest struct {
	User string `json:"user"`
	Pass string `json:"pass"`
	// TLS: the connection is encrypted: FTPS control connection, or SSH
	// (accounts with tls = "required" are refused without it).
	TLS bool `json:"tls,omitempty"`
	// Method is "" or "password" (Pass), or "publickey" (PublicKey, the
	// key's SSH wire form; its signature was verified by the worker's
	// SSH server). With Check, only ask whether the key may log in
	// (the SSH "query"): no login, no descriptors.
	Method    string `json:"method,omitempty"`
	PublicKey []byte `json:"public_key,omitempty"`
	Check     bool   `json:"check,omitempty"`
}

// Key names for Sign.
const (
	KeyTLS = "tls"
	KeySSH = "ssh"
)

// Sign asks the supervisor to sign a digest during a handshake with the
// key named Key. Hash is the crypto.Hash of the digest (0 for Ed25519,
// which signs the message itself); PSSSalt, when non-zero, asks for RSA-PSS
// with that salt length (-1: equal to the hash).
type Sign struct {
	Key     string `json:"key"`
	Hash    uint   `json:"hash"`
	PSSSalt int    `json:"pss_salt,omitempty"`
	PSS     bool   `json:"pss,omitempty"`
	Digest  []byte `json:"digest"`
}

// SignReply carries the signature, or why there is none.
type SignReply struct {
	Sig []byte `json:"sig,omitempty"`
	Err string `json:"err,omitempty"`
}

// Folder is one grant of an AuthReply; its directory fd is the descriptor
// at the same index in the message's SCM_RIGHTS list.
type Folder struct {
	Path   string `json:"path"`
	Dir    string `json:"dir"` // for logs only; the worker uses the fd
	Rights uint16 `json:"rights"`
}

// AuthReply is the supervisor's verdict. On success it carries the
// session's policy; on failure the reply code and text to send.
type AuthReply struct {
	OK      bool     `json:"ok"`
	Code    int      `json:"code,omitempty"`
	Msg     string   `json:"msg,omitempty"`
	Banned  bool     `json:"banned,omitempty"`
	Account string   `json:"account,omitempty"`
	UID     uint32   `json:"uid,omitempty"`
	GID     uint32   `json:"gid,omitempty"`
	Home    string   `json:"home,omitempty"`
	Folders []Folder `json:"folders,omitempty"`
	// Sandbox is the post-login sandbox. When Landlock is set, the
	// descriptor after the folders' is the account's layer-2 ruleset.
	Sandbox  *policy.ConfineSpec `json:"sandbox,omitempty"`
	Landlock bool                `json:"landlock,omitempty"`
	// Gates lists the operations ("pre-upload", "pre-download") that
	// pre-hooks guard for this account: the worker asks HookCheck
	// before each one, and only before those.
	Gates []string `json:"gates,omitempty"`
	// RequireTLS and TLSReuse are the account's FTPS settings.
	RequireTLS bool `json:"require_tls,omitempty"`
	TLSReuse   bool `json:"tls_reuse,omitempty"`
	// Metered: rates or quotas apply to the account, so the worker
	// announces every transfer (Meter) and paces it by the shares the
	// supervisor sends (Rates, the first of them here).
	Metered bool   `json:"metered,omitempty"`
	Rates   *Rates `json:"rates,omitempty"`
}

// Rates are the bandwidth one transfer of the session may use now, in
// bytes per second per direction (0: unlimited): the smallest of the
// account's rate divided by its running transfers, the global rate
// divided by all running transfers, and the session's own cap. The
// supervisor sends them whenever they change.
type Rates struct {
	In  uint64 `json:"in"`
	Out uint64 `json:"out"`
}

// Meter operations.
const (
	MeterBegin = "begin" // a transfer is about to start
	MeterMore  = "more"  // its grant is used up
	MeterEnd   = "end"   // it is over
	MeterQuery = "query" // AVBL, SITE QUOTA: the account's quotas
)

// Upload modes in Meter.Mode.
const (
	ModeStore  = "store"  // a new file, or one that replaces Existing when committed
	ModeAppend = "append" // grows Existing (APPE)
)

// Meter tells the supervisor about one transfer of a metered account, so
// that quotas hold across all the account's sessions. Begin and More are
// answered by a Grant of bytes; End settles the account's usage. At most
// one Meter is outstanding per worker.
type Meter struct {
	Op  string `json:"op"`
	ID  uint64 `json:"id,omitempty"`  // the transfer, unique within the session
	Dir string `json:"dir,omitempty"` // "in" (upload) or "out" (download)
	// Path is the virtual path (Begin).
	Path string `json:"path,omitempty"`
	// Mode, Existing, Partial, PartialSize and Offset describe an upload
	// (Begin): how it treats an existing file, that file's size (-1:
	// none), whether a resumable partial of it was already there and its
	// size, and the REST offset.
	Mode        string `json:"mode,omitempty"`
	Existing    int64  `json:"existing,omitempty"`
	Partial     bool   `json:"partial,omitempty"`
	PartialSize int64  `json:"partial_size,omitempty"`
	Offset      int64  `json:"offset,omitempty"`
	// Used is the bytes the transfer moved so far (More, End).
	Used int64 `json:"used,omitempty"`
	// Committed: the upload was renamed into place (End).
	Committed bool `json:"committed,omitempty"`
}

// Grant answers a Meter. On Begin and More, Bytes is how many more bytes
// the transfer may move (-1: no limit) or, with OK false, Code and Msg
// are the reply that refuses it. Quota describes the account's quotas
// after the operation (Query, and an upload's End for the 226 warning).
type Grant struct {
	OK      bool       `json:"ok"`
	Bytes   int64      `json:"bytes,omitempty"`
	Code    int        `json:"code,omitempty"`
	Msg     string     `json:"msg,omitempty"`
	Warning string     `json:"warning,omitempty"`
	Quota   *QuotaInfo `json:"quota,omitempty"`
}

// QuotaInfo is an account's standing against its quotas (0 limits: none).
type QuotaInfo struct {
	BytesUsed  int64  `json:"bytes_used"`
	BytesLimit int64  `json:"bytes_limit,omitempty"`
	FilesUsed  int64  `json:"files_used"`
	FilesLimit int64  `json:"files_limit,omitempty"`
	Period     string `json:"period,omitempty"` // "day" or "month" (transfer quotas)
	InUsed     int64  `json:"in_used,omitempty"`
	InLimit    int64  `json:"in_limit,omitempty"`
	OutUsed    int64  `json:"out_used,omitempty"`
	OutLimit   int64  `json:"out_limit,omitempty"`
}

// HookCheck asks whether an operation a pre-hook guards may go ahead. At
// most one is outstanding per worker.
type HookCheck struct {
	Op   string `json:"op"` // "pre-upload", "pre-download"
	Path string `json:"path"`
}

// HookVerdict answers HookCheck.
type HookVerdict struct {
	OK bool `json:"ok"`
}

// Event carries one audit event from a logged-in session.
type Event struct {
	ftp.Event
}

// Close is the worker's last message.
type Close struct {
	Summary ftp.Summary `json:"summary"`
	Reason  string      `json:"reason,omitempty"`
}

// Shutdown asks a worker to finish its transfer and close the session.
type Shutdown struct {
	Deadline time.Time `json:"deadline"`
}

func (Ready) Type() Type       { return TReady }
func (Start) Type() Type       { return TStart }
func (AuthRequest) Type() Type { return TAuthRequest }
func (AuthReply) Type() Type   { return TAuthReply }
func (Event) Type() Type       { return TEvent }
func (HookCheck) Type() Type   { return THookCheck }
func (HookVerdict) Type() Type { return THookVerdict }
func (Close) Type() Type       { return TClose }
func (Shutdown) Type() Type    { return TShutdown }
func (Confine) Type() Type     { return TConfine }
func (Sign) Type() Type        { return TSign }
func (SignReply) Type() Type   { return TSignReply }
func (Rates) Type() Type       { return TRates }
func (Meter) Type() Type       { return TMeter }
func (Grant) Type() Type       { return TGrant }

// Errors a peer can provoke. A supervisor that sees any of them from a
// worker kills that worker.
var (
	ErrTooLarge    = errors.New("ipc: message too large")
	ErrUnknownType = errors.New("ipc: unknown message type")
	ErrMalformed   = errors.New("ipc: malformed message")
	ErrTruncated   = errors.New("ipc: control data truncated")
)

// Encode serialises a message into one packet.
func Encode(m Message) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("ipc: encode %s: %w", m.Type(), err)
	}
	if len(body)+2 > MaxMessage {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrTooLarge, m.Type(), len(body)+2)
	}
	pkt := make([]byte, 2, 2+len(body))
	binary.BigEndian.PutUint16(pkt, uint16(m.Type()))
	return append(pkt, body...), nil
}

// Decode parses one packet. It never panics on hostile input (fuzzed).
func Decode(pkt []byte) (Message, error) {
	if len(pkt) > MaxMessage {
		return nil, ErrTooLarge
	}
	if len(pkt) < 2 {
		return nil, fmt.Errorf("%w: %d-byte packet", ErrMalformed, len(pkt))
	}
	var m Message
	switch t := Type(binary.BigEndian.Uint16(pkt)); t {
	case TReady:
		m = &Ready{}
	case TStart:
		m = &Start{}
	case TAuthRequest:
		m = &AuthRequest{}
	case TAuthReply:
		m = &AuthReply{}
	case TEvent:
		m = &Event{}
	case TClose:
		m = &Close{}
	case TShutdown:
		m = &Shutdown{}
	case TConfine:
		m = &Confine{}
	case THookCheck:
		m = &HookCheck{}
	case THookVerdict:
		m = &HookVerdict{}
	case TSign:
		m = &Sign{}
	case TSignReply:
		m = &SignReply{}
	case TRates:
		m = &Rates{}
	case TMeter:
		m = &Meter{}
	case TGrant:
		m = &Grant{}
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, uint16(t))
	}
	dec := json.NewDecoder(bytes.NewReader(pkt[2:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, m.Type(), err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: %s: trailing data", ErrMalformed, m.Type())
	}
	// Return values, not pointers, so a type switch reads naturally.
	switch v := m.(type) {
	case *Ready:
		return *v, nil
	case *Start:
		return *v, nil
	case *AuthRequest:
		return *v, nil
	case *AuthReply:
		return *v, nil
	case *Event:
		return *v, nil
	case *Close:
		return *v, nil
	case *Shutdown:
		return *v, nil
	case *HookCheck:
		return *v, nil
	case *HookVerdict:
		return *v, nil
	case *Confine:
		return *v, nil
	case *Sign:
		return *v, nil
	case *SignReply:
		return *v, nil
	case *Rates:
		return *v, nil
	case *Meter:
		return *v, nil
	case *Grant:
		return *v, nil
	}
	return nil, ErrUnknownType
}

// Conn is one end of the socketpair.
type Conn struct {
	uc *net.UnixConn
}

// Pair creates a connected SOCK_SEQPACKET socketpair. The first end stays in
// this process; the second is an *os.File to pass to the child in
// ExtraFiles (close it here after the child has started).
func Pair() (*Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ipc: socketpair: %w", err)
	}
	local := os.NewFile(uintptr(fds[0]), "ipc-supervisor")
	c, err := FromFile(local)
	local.Close()
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return c, os.NewFile(uintptr(fds[1]), "ipc-worker"), nil
}

// FromFile wraps an inherited socketpair end (the worker's fd 3). The file
// is duplicated; the caller may close f.
func FromFile(f *os.File) (*Conn, error) {
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("ipc: %s: %w", f.Name(), err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("ipc: %s is not a unix socket", f.Name())
	}
	return &Conn{uc: uc}, nil
}

// Send writes one message with optional descriptors.
func (c *Conn) Send(m Message, files ...*os.File) error {
	pkt, err := Encode(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		if len(files) > MaxFDs {
			return fmt.Errorf("ipc: %d descriptors: %w", len(files), ErrTooLarge)
		}
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.uc.WriteMsgUnix(pkt, oob, nil)
	if err != nil {
		return fmt.Errorf("ipc: send %s: %w", m.Type(), err)
	}
	return nil
}

// Recv reads one message and the descriptors that came with it, which the
// caller owns. A message is returned only when it decodes and no control
// data was truncated; on error every received descriptor is closed.
func (c *Conn) Recv() (Message, []*os.File, error) {
	buf := make([]byte, MaxMessage+1)
	oob := make([]byte, unix.CmsgSpace(MaxFDs*4))
	n, oobn, flags, _, err := c.uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, err
	}
	files, ferr := parseRights(oob[:oobn])
	fail := func(err error) (Message, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	if ferr != nil {
		return fail(ferr)
	}
	if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		return fail(ErrTruncated)
	}
	if n == 0 {
		// A zero-length packet on SOCK_SEQPACKET is how the peer's close
		// reads; treat as EOF.
		return fail(errEOF)
	}
	m, err := Decode(buf[:n])
	if err != nil {
		return fail(err)
	}
	return m, files, nil
}

var errEOF = fmt.Errorf("ipc: peer closed: %w", os.ErrClosed)

// IsClosed reports whether err means the peer went away.
func IsClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrMalformed, err)
	}
	var files []*os.File
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("%w: control message: %v", ErrMalformed, err)
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "ipc-fd"))
		}
	}
	return files, nil
}

// SetDeadline bounds the next Recv/Send.
func (c *Conn) SetDeadline(t time.Time) error { return c.uc.SetDeadline(t) }

// Close closes this end.
func (c *Conn) Close() error { return c.uc.Close() }

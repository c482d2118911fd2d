package ftp

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// FileSystem is what a logged-in session may do to its files. Every path is a
// clean, absolute virtual path ("/pub/a.iso") produced once, at the edge, by
// the session's path normaliser; the implementation (datapath.Tree) resolves it
// in the kernel beneath a directory fd (invariant 4), never by joining strings.
//
// Errors are the fs sentinels (fs.ErrNotExist, fs.ErrExist, fs.ErrPermission)
// or datapath's (ErrEscape, ErrNotDir, ErrIsDir, ErrNoRight), wrapped with
// context; the session maps them to reply codes in one place (replyForErr).
type FileSystem interface {
	Stat(path string) (fs.FileInfo, error)
	ReadDir(path string) ([]fs.FileInfo, error)
	// Open opens a regular file for reading.
	Open(path string) (*os.File, error)
	// Create opens a regular file for writing; flag is a combination of
	// os.O_TRUNC, os.O_APPEND and os.O_EXCL (O_WRONLY|O_CREATE are implied).
	Create(path string, flag int) (*os.File, error)
	Mkdir(path string) error
	Remove(path string) error
	Rmdir(path string) error
	Rename(from, to string) error
	Chtimes(path string, mtime time.Time) error
	// Chmod sets permission bits (0777 at most) for SITE CHMOD.
	Chmod(path string, mode fs.FileMode) error
	// Rights reports what the account may do at path (the rights of the
	// folder that holds it).
	Rights(path string) datapath.Rights
}

// Uploader is implemented by file systems that offer atomic, checksummed,
// resumable uploads (datapath.Tree). The session uses it when present;
// otherwise uploads write the file in place through Create.
type Uploader interface {
	// BeginUpload prepares an upload to path: a hidden partial file that
	// Commit renames into place. offset is the REST offset (STOR only).
	BeginUpload(path string, mode datapath.UploadMode, offset int64) (*datapath.Upload, error)
	// PartialSize is the length of path's interrupted upload
	// (fs.ErrNotExist when there is none): what SIZE reports for a
	// name that exists only as an upload in progress.
	PartialSize(path string) (int64, error)
}

// Hasher is implemented by file systems that keep digests (datapath.Tree):
// HASH then answers from the digest recorded at upload or a cache. Without
// it the session computes every digest from the file.
type Hasher interface {
	Hash(path string, algo datapath.Algo, from, to int64, o datapath.HashOptions) (datapath.HashResult, error)
}

// Account is what a successful login yields: who the session now is and
// the files it may touch. By the time Login returns it, the worker has
// already dropped to the account's uid/gid.
type Account struct {
	Name string
	FS   FileSystem
	// Home is the virtual directory the session starts in ("/").
	Home string
	// Pacer, if set, gives the pacer of one transfer: dir is "in"
	// (upload), "out" (download) or "hash" (HASH reading the file). It
	// is the hook for per-account bandwidth limits (the accounting
	// layer); nil, or a nil result, means unpaced.
	Pacer func(dir string) datapath.Pacer
	// Meter, if set, is told of every transfer before it starts and
	// bounds it (storage and transfer quotas); nil: no quotas.
	Meter Meter
	// Gate, if set, is asked before an operation that a pre-hook may
	// veto: op is "pre-upload" (STOR, APPE, STOU) or "pre-download"
	// (RETR), path the virtual path. A non-nil error refuses it with 550.
	// In a worker it asks the supervisor, which runs the hook.
	Gate func(ctx context.Context, op, path string) error
	// RequireTLS: data connections must use PROT P (the account's tls =
	// "required"; the supervisor has already refused a login without TLS).
	RequireTLS bool
	// TLSReuse: a PROT P data connection must resume the control
	// connection's TLS session (the account's tls_reuse, default true).
	TLSReuse bool
}

// Authenticator checks a USER/PASS pair. In a worker it is the IPC client
// that asks the supervisor (which holds the hashes and the ban list); the
// worker never sees a hash.
type Authenticator interface {
	Login(ctx context.Context, user, pass string) (*Account, error)
}

// Login errors. The session maps each to a reply: ErrBadLogin → 530,
// ErrLoginRefused → 530 with the supervisor's message, ErrBanned → 421 and
// the connection closes.
var (
	ErrBadLogin     = errors.New("login incorrect")
	ErrLoginRefused = errors.New("login refused")
	ErrBanned       = errors.New("client banned")
)

// RefusedError carries the supervisor's reason for a refused login
// ("too many sessions for this account") so the client sees it.
type RefusedError struct {
	Code int    // FTP reply code, 421 or 530
	Msg  string // one line, no CR/LF
	Err  error  // ErrLoginRefused or ErrBanned
}

func (e *RefusedError) Error() string { return e.Msg }
func (e *RefusedError) Unwrap() error { return e.Err }

// Event is one audit record a session emits: the worker forwards it to the
// supervisor, which writes the audit log (and, later, runs hooks).
type Event struct {
	Kind     string // "command", "transfer", "mkdir", "delete", "rename", "login", "close"
	Time     time.Time
	Command  string // verb only for "command" (arguments are logged for path commands; never PASS)
	Path     string
	Path2    string // rename target
	Dir      string // "in" (upload) or "out" (download)
	Bytes    int64
	Duration time.Duration
	Code     int    // reply code sent
	Mover    string // "sendfile", "splice", "copy"
	Fallback string // why a zero-copy mover was not used
	Detail   string
	// Size and XXH64 describe the file a completed upload left under its
	// final name (Kind "transfer", Dir "in", Code 226): for hooks.
	Size  int64  `json:",omitempty"`
	XXH64 string `json:",omitempty"`
	// File: Path named a regular file of Size bytes (Kind "delete",
	// "rename"); Replaced: a rename replaced a regular file of
	// ReplacedSize bytes at Path2. The supervisor keeps storage quota
	// usage from them.
	File         bool  `json:",omitempty"`
	Replaced     bool  `json:",omitempty"`
	ReplacedSize int64 `json:",omitempty"`
}

// EventSink receives a session's audit events. It must not block for long.
type EventSink interface {
	Emit(Event)
}

// Config is the part of the server configuration a session needs. The
// supervisor sends it to the worker with the connection.
type Config struct {
	Banner string // greeting text after "220 "
	// PassivePortMin..Max is the passive data port range (inclusive).
	PassivePortMin, PassivePortMax int
	// PassiveAddress, when set, is the IPv4 address advertised in PASV
	// replies (for NAT); otherwise the control connection's local address.
	PassiveAddress string
	AllowActive    bool // PORT/EPRT
	AllowPassive   bool // PASV/EPSV
	LoginTimeout   time.Duration
	IdleTimeout    time.Duration
	DataTimeout    time.Duration // connect/accept of a data connection, and stalls
	// MaxLoginAttempts per connection before it is closed with 421.
	MaxLoginAttempts int
	LogCommands      bool
	// HashLimit is the most bytes one HASH (or XCRC/XMD5/XSHA*) may read
	// from a file; answers from a recorded or cached digest are free.
	// Zero means DefaultHashLimit; negative, no limit.
	HashLimit int64
	// TLS is the listener's explicit FTPS mode: TLSOff (or ""),
	// TLSOptional, TLSRequired. Implicit: TLS from the first byte.
	// Either needs Session.SetTLS.
	TLS string
	// VerifyOnRetr: check downloads against their recorded digest while
	// sending (datapath.SendCheck); a mismatch ends the transfer with 451.
	VerifyOnRetr bool
	Implicit     bool
}

// DefaultHashLimit bounds HASH reads when Config.HashLimit is zero.
const DefaultHashLimit = 64 << 30

// Summary is what a session reports when it ends.
type Summary struct {
	Account  string
	BytesIn  int64
	BytesOut int64
	FilesIn  int
	FilesOut int
	LastCode int
	Commands int
}

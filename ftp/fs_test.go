package ftp

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluice-ftp/sluice/datapath"
)

// rootFS is a test FileSystem over a real temporary directory, confined by
// os.Root (real files and real kernel errors, not a mock). Rights come from
// a per-prefix table; the longest matching prefix wins, like datapath.Tree.
type rootFS struct {
	root   *os.Root
	rights map[string]datapath.Rights // virtual prefix -> rights; "/" default
}

func newRootFS(dir string) (*rootFS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &rootFS{root: r, rights: map[string]datapath.Rights{"/": datapath.RightsAll}}, nil
}

func rel(p string) string {
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

// mapErr turns os.Root's escape refusal into the datapath sentinel, as the
// real Tree does.
func mapErr(err error) error {
	if err != nil && strings.Contains(err.Error(), "escapes") {
		return fmt.Errorf("%w: %w", errEscape, err)
	}
	return err
}

func (r *rootFS) need(p string, want datapath.Rights) error {
	if !r.Rights(p).Has(want) {
		return &fs.PathError{Op: "rights", Path: p, Err: errNoRight}
	}
	return nil
}

func (r *rootFS) Stat(p string) (fs.FileInfo, error) {
	fi, err := r.root.Stat(rel(p))
	return fi, mapErr(err)
}

func (r *rootFS) ReadDir(p string) ([]fs.FileInfo, error) {
	if err := r.need(p, datapath.RightList); err != nil {
		return nil, err
	}
	f, err := r.root.Open(rel(p))
	if err != nil {
		return nil, mapErr(err)
	}
	defer f.Close()
	return f.Readdir(-1)
}

func (r *rootFS) Open(p string) (*os.File, error) {
	if err := r.need(p, datapath.RightRead); err != nil {
		return nil, err
	}
	f, err := r.root.Open(rel(p))
	if err != nil {
		return nil, mapErr(err)
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: p, Err: errIsDir}
	}
	return f, nil
}

func (r *rootFS) Create(p string, flag int) (*os.File, error) {
	if err := r.need(p, datapath.RightWrite); err != nil {
		return nil, err
	}
	f, err := r.root.OpenFile(rel(p), os.O_WRONLY|os.O_CREATE|flag, 0o644)
	return f, mapErr(err)
}

func (r *rootFS) Mkdir(p string) error {
	if err := r.need(p, datapath.RightMkdir); err != nil {
		return err
	}
	return mapErr(r.root.Mkdir(rel(p), 0o755))
}

func (r *rootFS) Remove(p string) error {
	if err := r.need(p, datapath.RightDelete); err != nil {
		return err
	}
	if fi, err := r.root.Lstat(rel(p)); err == nil && fi.IsDir() {
		return &fs.PathError{Op: "remove", Path: p, Err: errIsDir}
	}
	return mapErr(r.root.Remove(rel(p)))
}

func (r *rootFS) Rmdir(p string) error {
	if err := r.need(p, datapath.RightDelete); err != nil {
		return err
	}
	if fi, err := r.root.Lstat(rel(p)); err == nil && !fi.IsDir() {
		return &fs.PathError{Op: "rmdir", Path: p, Err: errNotDir}
	}
	return mapErr(r.root.Remove(rel(p)))
}

func (r *rootFS) Rename(from, to string) error {
	if err := r.need(from, datapath.RightRename); err != nil {
		return err
	}
	return mapErr(r.root.Rename(rel(from), rel(to)))
}

func (r *rootFS) Chtimes(p string, mtime time.Time) error {
	if err := r.need(p, datapath.RightWrite); err != nil {
		return err
	}
	return mapErr(r.root.Chtimes(rel(p), mtime, mtime))
}

func (r *rootFS) Chmod(p string, mode fs.FileMode) error {
	if err := r.need(p, datapath.RightWrite); err != nil {
		return err
	}
	return mapErr(r.root.Chmod(rel(p), mode))
}

func (r *rootFS) Rights(p string) datapath.Rights {
	best, bestLen := datapath.RightsNone, -1
	for prefix, rt := range r.rights {
		if (p == prefix || prefix == "/" || strings.HasPrefix(p, prefix+"/")) && len(prefix) > bestLen {
			best, bestLen = rt, len(prefix)
		}
	}
	return best
}

// testAuth accepts users from a table. "refused" gets a RefusedError, and
// "banned" a 421 RefusedError.
type testAuth struct {
	mu       sync.Mutex
	users    map[string]string // name -> password
	fs       func(user string) FileSystem
	home     string
	seenPass []string
	meter    Meter // given to every account, if set
}

func (a *testAuth) Login(ctx context.Context, user, pass string) (*Account, error) {
	a.mu.Lock()
	a.seenPass = append(a.seenPass, pass)
	a.mu.Unlock()
	switch user {
	case "refused":
		return nil, &RefusedError{Code: 530, Msg: "Too many sessions for this account.", Err: ErrLoginRefused}
	case "banned":
		return nil, &RefusedError{Code: 421, Msg: "Banned for a while.", Err: ErrBanned}
	}
	want, ok := a.users[user]
	if !ok || want != pass {
		return nil, ErrBadLogin
	}
	home := a.home
	if home == "" {
		home = "/"
	}
	return &Account{Name: user, FS: a.fs(user), Home: home, Meter: a.meter}, nil
}

// eventLog collects events.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) Emit(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) kind(k string) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, ev := range l.evs {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

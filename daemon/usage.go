package daemon

import (
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-ftp/sluice/datapath"
	"github.com/sluice-ftp/sluice/policy"
)

// usageTracker keeps the storage usage behind storage quotas: bytes and
// regular files under each storage directory that a quota covers (an
// account's writable folders, a folder with its own quota).
//
// Usage is recomputed, then journaled: each directory is scanned when it
// first needs tracking (at start and when a reload adds a quota; in the
// background, so that neither start-up nor the main loop — and systemd's
// watchdog — waits for a large tree, while an upload that needs the
// figure waits for its scan), and from then on follows the workers' reports —
// upload grants and their settlement, deletions, renames across
// directories. After a crash the daemon scans again, so the figure is
// right at every start whatever happened before. Partial uploads count
// (they occupy the disk and will become the file).
type usageTracker struct {
	log zerolog.Logger

	mu    sync.Mutex
	dirs  map[string]*dirUsage    // storage directory (absolute, clean) → usage
	accts map[string]*acctStorage // accounts with a storage quota or a folder quota
}

type dirUsage struct {
	bytes, files int64
	reserved     int64         // bytes granted to running uploads, not yet written
	ready        chan struct{} // closed when the first scan is done
}

// acctStorage is what an account's storage quota covers.
type acctStorage struct {
	bytesLimit, filesLimit int64
	dirs                   []string        // writable folders' directories, none inside another
	folders                []policy.Folder // every folder, for mapping virtual paths
}

func newUsageTracker(log zerolog.Logger) *usageTracker {
	return &usageTracker{log: log, dirs: map[string]*dirUsage{}, accts: map[string]*acctStorage{}}
}

// configure takes the quotas of cfg and starts scanning the directories
// that were not tracked yet (see wait).
func (t *usageTracker) configure(cfg *policy.Config) {
	accts := map[string]*acctStorage{}
	need := map[string]bool{}
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		st := &acctStorage{bytesLimit: a.Limits.QuotaBytes, filesLimit: a.Limits.QuotaFiles, folders: a.Folders}
		folderQuota := false
		for _, f := range a.Folders {
			if f.QuotaBytes != 0 || f.QuotaFiles != 0 {
				folderQuota = true
				need[f.Dir] = true
			}
			if f.Rights&datapath.RightsWriting != 0 {
				st.dirs = append(st.dirs, f.Dir)
			}
		}
		st.dirs = outermost(st.dirs)
		if st.bytesLimit == 0 && st.filesLimit == 0 && !folderQuota {
			continue
		}
		if st.bytesLimit != 0 || st.filesLimit != 0 {
			for _, d := range st.dirs {
				need[d] = true
			}
		}
		accts[a.Name] = st
	}
	t.mu.Lock()
	t.accts = accts
	var todo []string
	for d := range need {
		if t.dirs[d] == nil {
			// Tracked from now on (reports add to it); the scan's
			// count replaces it when done.
			t.dirs[d] = &dirUsage{ready: make(chan struct{})}
			todo = append(todo, d)
		}
	}
	t.mu.Unlock()
	slices.Sort(todo)
	if len(todo) > 0 {
		go func() {
			for _, d := range todo {
				t.scan(d)
			}
		}()
	}
}

// scanWait bounds how long an upload waits for a first scan.
const scanWait = time.Minute

// wait blocks until the directories behind name's quotas (and folder's)
// have been counted once, or scanWait passes; it reports whether they
// have.
func (t *usageTracker) wait(name string, folder *policy.Folder) bool {
	t.mu.Lock()
	var chans []chan struct{}
	if st := t.accts[name]; st != nil {
		for _, d := range st.dirs {
			if u := t.dirs[d]; u != nil && u.ready != nil {
				chans = append(chans, u.ready)
			}
		}
	}
	if folder != nil {
		if u := t.dirs[folder.Dir]; u != nil && u.ready != nil {
			chans = append(chans, u.ready)
		}
	}
	t.mu.Unlock()
	deadline := time.After(scanWait)
	for _, c := range chans {
		select {
		case <-c:
		case <-deadline:
			return false
		}
	}
	return true
}

// outermost drops directories that lie inside another of the list.
func outermost(dirs []string) []string {
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var out []string
	for _, d := range dirs {
		inside := false
		for _, o := range out {
			if within(d, o) {
				inside = true
				break
			}
		}
		if !inside {
			out = append(out, d)
		}
	}
	return out
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/") || dir == "/"
}

// scan counts dir's regular files and their bytes (symlinks are not
// followed, as the workers never follow them either) and starts tracking
// it with that figure.
func (t *usageTracker) scan(dir string) {
	start := time.Now()
	var u dirUsage
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries: count what can be read
		}
		// Checksum sidecars (.sluice-meta.NAME, where xattrs are not
		// supported) are metadata the workers never report.
		if d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".sluice-meta.") {
			if fi, err := d.Info(); err == nil {
				u.bytes += fi.Size()
				u.files++
			}
		}
		return nil
	})
	t.mu.Lock()
	old := t.dirs[dir]
	if old != nil {
		u.reserved = old.reserved
		if old.ready != nil {
			close(old.ready)
		}
	}
	t.dirs[dir] = &u
	t.mu.Unlock()
	ev := t.log.Info()
	if err != nil {
		ev = t.log.Warn().Err(err)
	}
	ev.Str("dir", dir).Int64("bytes", u.bytes).Int64("files", u.files).Dur("took", time.Since(start)).Msg("quota: storage usage counted")
}

// rescan recounts the directories of account name (after a worker died
// in the middle of an upload, leaving bytes nobody reported).
func (t *usageTracker) rescan(name string) {
	t.mu.Lock()
	st := t.accts[name]
	var dirs []string
	if st != nil {
		dirs = slices.Clone(st.dirs)
		for _, f := range st.folders {
			if f.QuotaBytes != 0 || f.QuotaFiles != 0 {
				dirs = append(dirs, f.Dir)
			}
		}
	}
	t.mu.Unlock()
	for _, d := range dirs {
		t.scan(d)
	}
}

// tracked reports whether account name has any storage quota.
func (t *usageTracker) tracked(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accts[name] != nil
}

// realPath maps a virtual path of account name to the storage path and
// the folder that holds it.
func (t *usageTracker) realPath(name, vpath string) (string, *policy.Folder) {
	t.mu.Lock()
	st := t.accts[name]
	t.mu.Unlock()
	if st == nil {
		return "", nil
	}
	var best *policy.Folder
	for i := range st.folders {
		f := &st.folders[i]
		if (vpath == f.Path || strings.HasPrefix(vpath, strings.TrimSuffix(f.Path, "/")+"/")) && (best == nil || len(f.Path) > len(best.Path)) {
			best = f
		}
	}
	if best == nil {
		return "", nil
	}
	rel := strings.TrimPrefix(vpath, best.Path)
	return path.Join(best.Dir, rel), best
}

// add changes the usage of every tracked directory that holds real.
func (t *usageTracker) add(real string, bytes, files, reserved int64) {
	if real == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for d, u := range t.dirs {
		if within(real, d) {
			u.bytes += bytes
			u.files += files
			u.reserved += reserved
		}
	}
}

// storageStatus is an account's standing against its storage quota, and
// against the quota of the folder holding one path.
type storageStatus struct {
	bytes, files, reserved int64
	bytesLimit, filesLimit int64
	// The folder's own quota (0: none) and usage.
	folder                    string
	fBytes, fFiles, fReserved int64
	fBytesLimit, fFilesLimit  int64
}

// status returns name's usage and limits; real, if not "", selects the
// folder whose own quota also applies.
func (t *usageTracker) status(name string, folder *policy.Folder) storageStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s storageStatus
	st := t.accts[name]
	if st == nil {
		return s
	}
	s.bytesLimit, s.filesLimit = st.bytesLimit, st.filesLimit
	for _, d := range st.dirs {
		if u := t.dirs[d]; u != nil {
			s.bytes += u.bytes
			s.files += u.files
			s.reserved += u.reserved
		}
	}
	if folder != nil && (folder.QuotaBytes != 0 || folder.QuotaFiles != 0) {
		s.folder = folder.Path
		s.fBytesLimit, s.fFilesLimit = folder.QuotaBytes, folder.QuotaFiles
		if u := t.dirs[folder.Dir]; u != nil {
			s.fBytes, s.fFiles, s.fReserved = u.bytes, u.files, u.reserved
		}
	}
	return s
}

// room is how many more bytes may be granted (-1: no byte limit).
func (s storageStatus) room() int64 {
	r := int64(-1)
	if s.bytesLimit > 0 {
		r = max(s.bytesLimit-s.bytes-s.reserved, 0)
	}
	if s.fBytesLimit > 0 {
		f := max(s.fBytesLimit-s.fBytes-s.fReserved, 0)
		if r < 0 || f < r {
			r = f
		}
	}
	return r
}

// overFiles reports whether the file counts exceed their limits.
func (s storageStatus) overFiles() bool {
	return (s.filesLimit > 0 && s.files > s.filesLimit) || (s.fFilesLimit > 0 && s.fFiles > s.fFilesLimit)
}

// overBytes reports whether the byte counts exceed their limits.
func (s storageStatus) overBytes() bool {
	return (s.bytesLimit > 0 && s.bytes+s.reserved > s.bytesLimit) || (s.fBytesLimit > 0 && s.fBytes+s.fReserved > s.fBytesLimit)
}

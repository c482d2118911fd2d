package accounting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// SnapshotVersion is the format version written by SaveSnapshot.
const SnapshotVersion = 1

// Snapshot is the persisted state of every account's counters, keyed by
// account name (cgroup ids do not survive a reboot; names do). Only the
// monotonic fields are meaningful: live connection counts are written as 0
// and ignored on restore, since no connection survives the daemon.
type Snapshot struct {
	Version  int                 `json:"version"`
	Mode     string              `json:"mode"` // "ebpf" or "userspace", informational
	Time     time.Time           `json:"time"`
	Accounts map[string]Counters `json:"accounts"`
}

// Persistent returns c with only the fields a snapshot keeps.
func (c Counters) Persistent() Counters {
	return Counters{BytesIn: c.BytesIn, BytesOut: c.BytesOut, ConnsTotal: c.ConnsTotal}
}

// SaveSnapshot writes s to path atomically (see WriteFileAtomic), mode 0600.
func SaveSnapshot(path string, s Snapshot) error {
	s.Version = SnapshotVersion
	if s.Time.IsZero() {
		s.Time = time.Now().UTC()
	}
	acc := make(map[string]Counters, len(s.Accounts))
	for name, c := range s.Accounts {
		acc[name] = c.Persistent()
	}
	s.Accounts = acc
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// LoadSnapshot reads a snapshot written by SaveSnapshot. A missing file is
// an error that satisfies errors.Is(err, fs.ErrNotExist): the caller
// decides whether a first start is fine.
func LoadSnapshot(path string) (Snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Snapshot{}, err
	}
	var s Snapshot
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Snapshot{}, fmt.Errorf("accounting snapshot %s: %w", path, err)
	}
	if s.Version != SnapshotVersion {
		return Snapshot{}, fmt.Errorf("accounting snapshot %s: version %d, want %d", path, s.Version, SnapshotVersion)
	}
	if s.Accounts == nil {
		s.Accounts = map[string]Counters{}
	}
	return s, nil
}

// WriteFileAtomic replaces path with data so that a crash at any point
// leaves either the old or the new content, complete: it writes a
// temporary file in the same directory, fsyncs it, renames it over path and
// fsyncs the directory (without which the rename itself may not survive a
// power loss).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

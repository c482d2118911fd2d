package policy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Errors of the account editing functions, for the CLI to tell apart.
var (
	ErrNoSuchAccount = errors.New("no such account")
	ErrAccountExists = errors.New("account already exists")
)

// AccountSpec is a new account for AddAccount.
type AccountSpec struct {
	Name     string
	Password string // argon2id PHC string, from HashPassword
	// UID and GID of the account's sessions when started as root; 0 means
	// DefaultUID/DefaultGID (written out explicitly).
	UID, GID  uint32
	AllowFrom []string // CIDR networks; empty: any address
	// MaxSessions > 0 caps the account's sessions; 0 leaves the key out
	// (limits.max_sessions_per_account applies).
	MaxSessions int
	Disabled    bool
	Folders     []FolderSpec
	Groups      []string // [[group]] names; written when not empty
	Roles       []string // role names; written when not empty
}

// FolderSpec is one folder of an AccountSpec.
type FolderSpec struct {
	Path   string   // virtual path, "/"
	Dir    string   // storage directory; a relative one is relative to the config file
	Rights []string // "list", "read", …, or "all"
}

// ListAccounts loads the config file at path and returns its accounts.
func ListAccounts(path string) ([]Account, error) {
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	return c.Accounts, nil
}

// AddAccount appends an [[account]] block for a (with its
// [[account.folder]] tables) after the last account of the config file at
// path, or at its end. It refuses a name that exists already (names that
// differ only in case count as the same).
func AddAccount(path string, a AccountSpec) error {
	return editConfig(path, func(doc string, raw map[string]any, accts []map[string]any, blocks []accountBlock, lines []tomlLine) (string, func(newRaw map[string]any) bool, error) {
		if findRawAccount(accts, a.Name, true) >= 0 {
			return "", nil, fmt.Errorf("add account %q: %w", a.Name, ErrAccountExists)
		}
		text, err := a.tomlBlock(docNewline(doc))
		if err != nil {
			return "", nil, fmt.Errorf("add account %q: %w", a.Name, err)
		}
		var out string
		if len(blocks) > 0 {
			last := blocks[len(blocks)-1]
			at := lines[last.contentEnd-1].end
			prefix := docNewline(doc)
			if !endsWithNewline(doc[:at]) {
				prefix += docNewline(doc)
			}
			if rest := doc[at:]; rest != "" && !strings.HasPrefix(rest, "\n") && !strings.HasPrefix(rest, "\r\n") {
				text += docNewline(doc) // keep what follows apart
			}
			out = doc[:at] + prefix + text + doc[at:]
		} else {
			prefix := ""
			if doc != "" && !endsWithNewline(doc) {
				prefix = docNewline(doc)
			}
			if t := doc + prefix; t != "" && !strings.HasSuffix(t, "\n\n") && !strings.HasSuffix(t, "\r\n\r\n") {
				prefix += docNewline(doc)
			}
			out = doc + prefix + text
		}
		n := len(accts)
		verify := func(newRaw map[string]any) bool {
			na := rawAccounts(newRaw)
			return len(na) == n+1 && sameAccounts(na[:n], accts) &&
				na[n]["name"] == a.Name && sameOutside(raw, newRaw)
		}
		return out, verify, nil
	})
}

// SetPassword sets the password of account name in the config file at path
// to the PHC string phc: it replaces the account's password line (a comment
// on that line goes with it, as it most likely described the old password)
// or, when the account has none, inserts one after its name.
func SetPassword(path, name, phc string) error {
	if err := CheckPasswordHash(phc); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	return editConfig(path, func(doc string, raw map[string]any, accts []map[string]any, blocks []accountBlock, lines []tomlLine) (string, func(map[string]any) bool, error) {
		i := findRawAccount(accts, name, false)
		if i < 0 {
			return "", nil, fmt.Errorf("set password of %q: %w", name, ErrNoSuchAccount)
		}
		b := blocks[i]
		nl := docNewline(doc)
		assign := "password = " + tomlString(phc)
		var out string
		pw, nameLine := -1, -1
		for l := b.header + 1; l < b.mainEnd; l++ {
			switch {
			case lines[l].kind != tlKeyVal:
			case keyIs(lines[l].key, "password"):
				pw = l
			case keyIs(lines[l].key, "name"):
				nameLine = l
			}
		}
		switch {
		case pw >= 0:
			ln := lines[pw]
			from := ln.start + len(ln.indent)
			out = doc[:from] + assign + doc[ln.lineEnd:]
		default:
			after, indent := b.header, ""
			if nameLine >= 0 {
				after, indent = nameLine, lines[nameLine].indent
			}
			at := lines[after].end
			prefix := ""
			if !endsWithNewline(doc[:at]) {
				prefix = nl
			}
			out = doc[:at] + prefix + indent + assign + nl + doc[at:]
		}
		verify := func(newRaw map[string]any) bool {
			want := slices.Clone(accts)
			want[i] = maps.Clone(accts[i])
			want[i]["password"] = phc
			return sameAccounts(rawAccounts(newRaw), want) && sameOutside(raw, newRaw)
		}
		return out, verify, nil
	})
}

// DeleteAccount removes the [[account]] block of account name (with its
// folders) from the config file at path. Comments above its header, which
// may be about what follows, stay.
func DeleteAccount(path, name string) error {
	return editConfig(path, func(doc string, raw map[string]any, accts []map[string]any, blocks []accountBlock, lines []tomlLine) (string, func(map[string]any) bool, error) {
		i := findRawAccount(accts, name, false)
		if i < 0 {
			return "", nil, fmt.Errorf("delete account %q: %w", name, ErrNoSuchAccount)
		}
		b := blocks[i]
		from := lines[b.header].start
		to := len(doc)
		// The blank lines after the block go with it only when a blank
		// line (or the start of the file) is above it, so that exactly
		// one separator remains. When a comment is right above the
		// header, it stays (it may be about more than this account) and
		// keeps its distance from what follows; when content is, the
		// blank lines keep the next thing from joining it.
		end := b.contentEnd
		if b.header == 0 || lines[b.header-1].kind == tlBlank {
			end = b.end
		}
		if end < len(lines) {
			to = lines[end].start
		} else {
			// The block ends the file: take the blank lines before it
			// too, so the file does not end in blank lines.
			for l := b.header - 1; l >= 0 && lines[l].kind == tlBlank; l-- {
				from = lines[l].start
			}
		}
		out := doc[:from] + doc[to:]
		verify := func(newRaw map[string]any) bool {
			want := slices.Delete(slices.Clone(accts), i, i+1)
			return sameAccounts(rawAccounts(newRaw), want) && sameOutside(raw, newRaw)
		}
		return out, verify, nil
	})
}

// editFunc computes the edited document, and a check that the decoded
// result differs from the original exactly as intended.
type editFunc func(doc string, raw map[string]any, accts []map[string]any, blocks []accountBlock, lines []tomlLine) (string, func(newRaw map[string]any) bool, error)

// editConfig runs one edit of the config file at path under an exclusive
// lock: read, edit, check the result (it must parse and validate, and
// differ from the original only as intended), write atomically.
func editConfig(path string, edit editFunc) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("edit config: %w", err)
	}
	f, err := lockFile(target)
	if err != nil {
		return err
	}
	defer f.Close() // releases the lock
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("edit config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("edit config %s: not a regular file", path)
	}
	if fi.Size() > maxConfigSize {
		return fmt.Errorf("edit config %s: larger than %d MiB", path, maxConfigSize>>20)
	}
	data := make([]byte, fi.Size())
	if _, err := readConfigBytes(f, data); err != nil {
		return fmt.Errorf("edit config: %w", err)
	}
	doc := string(data)

	raw, prob := decodeRaw(data)
	if prob != nil {
		return fmt.Errorf("edit config %s: %s (fix it by hand first)", path, prob.Msg)
	}
	accts := rawAccounts(raw)
	lines, err := scanTOMLLines(doc)
	if err != nil {
		return fmt.Errorf("edit config %s: %v", path, err)
	}
	blocks := findAccountBlocks(lines)
	if len(blocks) != len(accts) {
		return fmt.Errorf("edit config %s: the accounts are not all written as [[account]] tables; edit the file by hand", path)
	}

	out, verify, err := edit(doc, raw, accts, blocks, lines)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return fmt.Errorf("edit config: %w", err)
	}
	if _, err := Parse([]byte(out), filepath.Dir(abs), path); err != nil {
		return fmt.Errorf("refusing to write a config that would not load: %w", err)
	}
	newRaw, prob := decodeRaw([]byte(out))
	if prob != nil || !verify(newRaw) {
		return fmt.Errorf("edit config %s: the edit would change more than intended (please report this); file left as it was", path)
	}
	return writeFileAtomic(target, []byte(out), fi)
}

// lockFile opens path and takes an exclusive flock on it. Since a
// successful edit replaces the file (rename), a waiter may end up holding
// the lock of a file that is no longer at path: it then tries again on the
// new one.
func lockFile(path string) (*os.File, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("edit config: %w", err)
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
				break
			}
			if time.Now().After(deadline) {
				f.Close()
				return nil, fmt.Errorf("edit config %s: locked by another process (another `sluice user` command?)", path)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("edit config: lock %s: %w", path, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
		if err2 != nil {
			return nil, fmt.Errorf("edit config: %w", err2)
		}
	}
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, with the original's mode (and owner, when it differs from
// ours), written and fsynced, renamed over path, and the directory fsynced.
// Readers see the old file or the new one, never a mix, and a crash leaves
// one of the two.
func writeFileAtomic(path string, data []byte, orig os.FileInfo) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Mode first, before any data: the file holds password hashes.
	if err = tmp.Chmod(orig.Mode().Perm()); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if st, ok := orig.Sys().(*syscall.Stat_t); ok {
		if mine, err2 := tmp.Stat(); err2 == nil {
			if cur, ok := mine.Sys().(*syscall.Stat_t); ok && (cur.Uid != st.Uid || cur.Gid != st.Gid) {
				if err = tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
					return fmt.Errorf("write config: keep owner %d:%d of %s: %w", st.Uid, st.Gid, path, err)
				}
				// chown may clear set-id bits; put the mode back.
				if err = tmp.Chmod(orig.Mode().Perm()); err != nil {
					return fmt.Errorf("write config: %w", err)
				}
			}
		}
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write config: sync directory: %w", err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("write config: sync directory: %w", err)
	}
	return nil
}

// rawAccounts returns the decoded [[account]] tables of raw.
func rawAccounts(raw map[string]any) []map[string]any {
	switch v := raw["account"].(type) {
	case []map[string]any:
		return v
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// findRawAccount returns the index of the account called name, or -1.
func findRawAccount(accts []map[string]any, name string, foldCase bool) int {
	for i, a := range accts {
		n, _ := a["name"].(string)
		if n == name || foldCase && strings.EqualFold(n, name) {
			return i
		}
	}
	return -1
}

// sameAccounts compares decoded account lists (nil and empty are equal).
func sameAccounts(a, b []map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// sameOutside reports whether two decoded documents agree on everything
// but their accounts.
func sameOutside(a, b map[string]any) bool {
	a, b = maps.Clone(a), maps.Clone(b)
	delete(a, "account")
	delete(b, "account")
	return reflect.DeepEqual(a, b)
}

func docNewline(doc string) string {
	if i := strings.IndexByte(doc, '\n'); i > 0 && doc[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

func endsWithNewline(s string) bool { return s == "" || strings.HasSuffix(s, "\n") }

// tomlBlock formats the spec as an [[account]] block ending in a line
// break.
func (a AccountSpec) tomlBlock(nl string) (string, error) {
	for _, s := range append([]string{a.Name, a.Password}, a.AllowFrom...) {
		if !utf8.ValidString(s) {
			return "", errors.New("not valid UTF-8")
		}
	}
	uid, gid := a.UID, a.GID
	if uid == 0 {
		uid = DefaultUID
	}
	if gid == 0 {
		gid = DefaultGID
	}
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString(nl)
	}
	line("[[account]]")
	line("name = %s", tomlString(a.Name))
	line("password = %s", tomlString(a.Password))
	line("uid = %d", uid)
	line("gid = %d", gid)
	if len(a.AllowFrom) > 0 {
		line("allow_from = %s", tomlStrings(a.AllowFrom))
	}
	if a.MaxSessions != 0 {
		line("max_sessions = %d", a.MaxSessions)
	}
	if a.Disabled {
		line("disabled = true")
	}
	if len(a.Groups) > 0 {
		line("groups = %s", tomlStrings(a.Groups))
	}
	if len(a.Roles) > 0 {
		line("roles = %s", tomlStrings(a.Roles))
	}
	for _, f := range a.Folders {
		for _, s := range append([]string{f.Path, f.Dir}, f.Rights...) {
			if !utf8.ValidString(s) {
				return "", errors.New("not valid UTF-8")
			}
		}
		b.WriteString(nl)
		line("  [[account.folder]]")
		line("  path = %s", tomlString(f.Path))
		line("  dir = %s", tomlString(f.Dir))
		line("  rights = %s", tomlStrings(f.Rights))
	}
	return b.String(), nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

package policy

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// HooksConfig is the [hooks] table: how the supervisor's hook runner runs
// the [[hook]] actions.
type HooksConfig struct {
	// UID and GID are the unprivileged ids hook programs run as when the
	// server is started as root (no supplementary groups).
	UID, GID uint32
	// Concurrency bounds the hook actions running at once.
	Concurrency int
	// Timeout is the default time a hook action may take; it is then
	// killed (its whole process group).
	Timeout time.Duration
	// RetryMax is how many times a post-event action is tried before it
	// is given up (and logged); RetryBase the first backoff, doubled on
	// every attempt (at most 10 minutes).
	RetryMax  int
	RetryBase time.Duration
	// QueueDir holds post events waiting to be delivered: one file each,
	// written before the first attempt, removed once delivered, replayed
	// at start.
	QueueDir string
}

// Hook is one [[hook]]: an action run for events that match its filters.
type Hook struct {
	Name   string
	Events []string
	// Command is an absolute program path and its arguments; each
	// element may hold {field} templates, expanded into that one
	// element. Never run by a shell.
	Command []string
	// URL receives the event as a JSON POST, signed with Secret.
	URL     string
	Secret  string
	Timeout time.Duration // 0: HooksConfig.Timeout
	// Filters; empty means any.
	Accounts []string
	Groups   []string
	Folders  []string // virtual path prefixes
	Glob     string   // path.Match pattern on the file name (on the whole path when it has a "/")
}

// Hook events. Pre events run before the operation and can refuse it.
var (
	PostHookEvents = []string{"login", "login-failed", "upload", "download", "delete", "rename", "mkdir",
		"quota-warning", "quota-exceeded", "session-end", "ban"}
	PreHookEvents = []string{"pre-login", "pre-upload", "pre-download"}
)

// IsPreHookEvent reports whether ev is a veto event.
func IsPreHookEvent(ev string) bool { return slices.Contains(PreHookEvents, ev) }

// HookFields are the {field} names a command template may use (and the
// SLUICE_FIELD environment variables every hook program gets).
var HookFields = []string{"id", "event", "time", "account", "groups", "remote", "session", "path", "path2",
	"size", "xxh64", "bytes_in", "bytes_out", "files_in", "files_out", "duration", "code"}

const maxHooks = 256

func defaultHooks(stateDir string) HooksConfig {
	return HooksConfig{UID: DefaultUID, GID: DefaultGID, Concurrency: 4, Timeout: 30 * time.Second,
		RetryMax: 8, RetryBase: 2 * time.Second, QueueDir: filepath.Join(stateDir, "hooks")}
}

func (p *cfgParser) hooksTable(t *tomlTable, h *HooksConfig) {
	t.id("uid", &h.UID)
	t.id("gid", &h.GID)
	t.intIn("concurrency", &h.Concurrency, 1, 256)
	t.duration("timeout", &h.Timeout, 100*time.Millisecond, time.Hour)
	t.intIn("retry_max", &h.RetryMax, 1, 1000)
	t.duration("retry_base", &h.RetryBase, 10*time.Millisecond, time.Hour)
	var dir string
	if p.pathValue(t, "queue_dir", &dir) {
		h.QueueDir = dir
	}
}

func (p *cfgParser) hook(t *tomlTable, groups map[string]*Group) (Hook, bool) {
	var h Hook
	ok := p.entityName(t, &h.Name, "hook")
	if t.strList("events", &h.Events) {
		if len(h.Events) == 0 {
			t.ps.add(t.key("events"), "is empty: list the events that run the hook")
			ok = false
		}
		for i, e := range h.Events {
			if !slices.Contains(PostHookEvents, e) && !IsPreHookEvent(e) {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("events"), i), "unknown event %q (want one of %s, %s)", e,
					strings.Join(PostHookEvents, ", "), strings.Join(PreHookEvents, ", "))
				ok = false
			}
		}
	} else if _, present := t.m["events"]; !present {
		t.ps.add(t.key("events"), `missing: e.g. ["upload"]`)
		ok = false
	}
	t.strList("command", &h.Command)
	t.str("url", &h.URL)
	t.str("secret", &h.Secret)
	switch {
	case len(h.Command) > 0 && h.URL != "":
		t.ps.add(t.key("url"), "a hook has either a command or a url, not both")
		ok = false
	case len(h.Command) == 0 && h.URL == "":
		t.ps.add(t.key("command"), `missing: a command (["/abs/program", "{path}"]) or a url`)
		ok = false
	case len(h.Command) > 0:
		if !filepath.IsAbs(h.Command[0]) || filepath.Clean(h.Command[0]) != h.Command[0] || strings.Contains(h.Command[0], "{") {
			t.ps.add(t.key("command")+"[0]", "%q must be a clean absolute program path without templates (no shell, no PATH lookup)", h.Command[0])
			ok = false
		}
		for i, a := range h.Command {
			if strings.ContainsRune(a, 0) {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("command"), i), "must not contain NUL")
				ok = false
			}
			if bad := badTemplate(a); bad != "" {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("command"), i), "unknown field {%s} (want one of %s)", bad, strings.Join(HookFields, ", "))
				ok = false
			}
		}
		if h.Secret != "" {
			t.ps.add(t.key("secret"), "only webhooks (url) are signed")
		}
	default:
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.ps.add(t.key("url"), "%q is not an http(s) URL", h.URL)
			ok = false
		}
		if len(h.Secret) < 16 {
			t.ps.add(t.key("secret"), "webhooks are HMAC-signed: give a secret of at least 16 characters")
			ok = false
		}
	}
	t.duration("timeout", &h.Timeout, 100*time.Millisecond, time.Hour)
	t.strList("accounts", &h.Accounts)
	if t.strList("groups", &h.Groups) {
		for i, g := range h.Groups {
			if groups[g] == nil {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("groups"), i), "unknown group %q", g)
				ok = false
			}
		}
	}
	if t.strList("folders", &h.Folders) {
		for i, f := range h.Folders {
			if !strings.HasPrefix(f, "/") || path.Clean(f) != f {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key("folders"), i), "%q must be a clean absolute virtual path", f)
				ok = false
			}
		}
	}
	if t.str("glob", &h.Glob) && h.Glob != "" {
		if _, err := path.Match(h.Glob, ""); err != nil {
			t.ps.add(t.key("glob"), "%q is not a valid pattern", h.Glob)
			ok = false
		}
	}
	return h, ok
}

// badTemplate returns the first {name} in s that is not a field.
func badTemplate(s string) string {
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			return ""
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return ""
		}
		if name := s[i+1 : i+j]; !slices.Contains(HookFields, name) {
			return name
		}
		s = s[i+j+1:]
	}
}

// Matches reports whether the hook runs for event ev of account (with its
// groups) at virtual path p ("" for events without a path).
func (h *Hook) Matches(ev, account string, groups []string, p string) bool {
	if !slices.Contains(h.Events, ev) {
		return false
	}
	if len(h.Accounts) > 0 && !slices.Contains(h.Accounts, account) {
		return false
	}
	if len(h.Groups) > 0 && !slices.ContainsFunc(h.Groups, func(g string) bool { return slices.Contains(groups, g) }) {
		return false
	}
	if len(h.Folders) > 0 {
		if p == "" {
			return false
		}
		in := false
		for _, f := range h.Folders {
			if f == "/" || p == f || strings.HasPrefix(p, f+"/") {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if h.Glob != "" {
		if p == "" {
			return false
		}
		subject := path.Base(p)
		if strings.Contains(h.Glob, "/") {
			subject = p
		}
		if m, _ := path.Match(h.Glob, subject); !m {
			return false
		}
	}
	return true
}

// ExpandArg expands the {field} templates of one argv element. The result
// is one argument, whatever the values contain.
func ExpandArg(tmpl string, field func(string) string) string {
	var b strings.Builder
	s := tmpl
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		name := s[i+1 : i+j]
		if slices.Contains(HookFields, name) {
			b.WriteString(field(name))
		} else {
			b.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
}

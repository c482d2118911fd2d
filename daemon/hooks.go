package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluice-ftp/sluice/policy"
)

// HookEvent is what a hook receives: as JSON on stdin (programs) or as the
// POST body (webhooks), and field by field in SLUICE_* variables and argv
// templates. Paths are virtual paths as the client named them: hooks get
// them as data (one argv element, one variable), never as shell text.
type HookEvent struct {
	ID        string    `json:"id"`
	Event     string    `json:"event"`
	Time      time.Time `json:"time"`
	Account   string    `json:"account,omitempty"`
	Groups    []string  `json:"groups,omitempty"`
	Remote    string    `json:"remote,omitempty"`
	Session   string    `json:"session,omitempty"`
	Path      string    `json:"path,omitempty"`
	Path2     string    `json:"path2,omitempty"`
	Size      int64     `json:"size,omitempty"`
	XXH64     string    `json:"xxh64,omitempty"`
	BytesIn   int64     `json:"bytes_in,omitempty"`
	BytesOut  int64     `json:"bytes_out,omitempty"`
	FilesIn   int       `json:"files_in,omitempty"`
	FilesOut  int       `json:"files_out,omitempty"`
	DurationS float64   `json:"duration_s,omitempty"`
	Code      int       `json:"code,omitempty"`
}

// field returns one template field's value.
func (e *HookEvent) field(name string) string {
	switch name {
	case "id":
		return e.ID
	case "event":
		return e.Event
	case "time":
		return e.Time.UTC().Format(time.RFC3339Nano)
	case "account":
		return e.Account
	case "groups":
		return strings.Join(e.Groups, ",")
	case "remote":
		return e.Remote
	case "session":
		return e.Session
	case "path":
		return e.Path
	case "path2":
		return e.Path2
	case "size":
		return strconv.FormatInt(e.Size, 10)
	case "xxh64":
		return e.XXH64
	case "bytes_in":
		return strconv.FormatInt(e.BytesIn, 10)
	case "bytes_out":
		return strconv.FormatInt(e.BytesOut, 10)
	case "files_in":
		return strconv.Itoa(e.FilesIn)
	case "files_out":
		return strconv.Itoa(e.FilesOut)
	case "duration":
		return strconv.FormatFloat(e.DurationS, 'f', 3, 64)
	case "code":
		return strconv.Itoa(e.Code)
	}
	return ""
}

// hookJob is one delivery of one event to one hook; post-event jobs are
// also files in the queue directory until delivered.
type hookJob struct {
	Hook    string    `json:"hook"`
	Attempt int       `json:"attempt"` // attempts made so far
	Event   HookEvent `json:"event"`
	file    string
}

// hookRunner runs hooks in the supervisor: never in a worker, never
// through a shell. Post events are queued (on disk first) and delivered by
// goroutines bounded by a semaphore, so neither accept nor a worker ever
// waits for one; pre events run at once, bounded by the hook timeout.
type hookRunner struct {
	root  bool
	audit zerolog.Logger
	ops   zerolog.Logger
	cfg   func() *policy.Config
	sem   chan struct{}
	http  *http.Client
	mu    sync.Mutex
	stop  bool
	wg    sync.WaitGroup
	queue string
	// ran, if set, counts each run for the metrics endpoint.
	ran func(action string, ok bool)
}

func newHookRunner(cfg func() *policy.Config, root bool, logs *Logs) *hookRunner {
	c := cfg()
	return &hookRunner{
		root: root, audit: logs.Audit, ops: logs.Ops, cfg: cfg,
		sem:   make(chan struct{}, c.Hooks.Concurrency),
		queue: c.Hooks.QueueDir,
		http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a signed event goes where it was configured to, nowhere else
		}},
	}
}

func newEventID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// groupsOf returns the account's groups in the current configuration.
func (h *hookRunner) groupsOf(account string) []string {
	if a := h.cfg().Account(account); a != nil {
		return a.Groups
	}
	return nil
}

// fire queues ev for every post hook that matches it.
func (h *hookRunner) fire(ev HookEvent) {
	cfg := h.cfg()
	if len(cfg.HookList) == 0 {
		return
	}
	if ev.ID == "" {
		ev.ID = newEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Account != "" && ev.Groups == nil {
		ev.Groups = h.groupsOf(ev.Account)
	}
	for i := range cfg.HookList {
		hk := &cfg.HookList[i]
		if policy.IsPreHookEvent(ev.Event) || !hk.Matches(ev.Event, ev.Account, ev.Groups, ev.Path) {
			continue
		}
		j := &hookJob{Hook: hk.Name, Event: ev}
		if err := h.persist(j); err != nil {
			h.ops.Error().Err(err).Str("hook", hk.Name).Str("id", ev.ID).Msg("hook queue: cannot persist the event; delivering without a restart guarantee")
		}
		h.schedule(j, 0)
	}
}

// check runs the pre hooks matching ev, one after the other; the first
// refusal (or failure: a gate that cannot be asked stays closed) wins.
func (h *hookRunner) check(ctx context.Context, ev HookEvent) (bool, string) {
	cfg := h.cfg()
	ev.ID, ev.Time = newEventID(), time.Now()
	if ev.Account != "" && ev.Groups == nil {
		ev.Groups = h.groupsOf(ev.Account)
	}
	for i := range cfg.HookList {
		hk := &cfg.HookList[i]
		if !hk.Matches(ev.Event, ev.Account, ev.Groups, ev.Path) {
			continue
		}
		if err := h.run(ctx, cfg, hk, &ev, 1); err != nil {
			return false, hk.Name
		}
	}
	return true, ""
}

// gates lists the pre-hook operations that apply to account (the worker
// asks only before those).
func (h *hookRunner) gates(account string, groups []string) []string {
	var out []string
	cfg := h.cfg()
	for _, op := range []string{"pre-upload", "pre-download"} {
		for i := range cfg.HookList {
			hk := &cfg.HookList[i]
			// Path filters are checked per operation: here only the
			// event and the account.
			c := *hk
			c.Folders, c.Glob = nil, ""
			if c.Matches(op, account, groups, "") {
				out = append(out, op)
				break
			}
		}
	}
	return out
}

// schedule delivers j after delay, on its own goroutine.
func (h *hookRunner) schedule(j *hookJob, delay time.Duration) {
	h.mu.Lock()
	if h.stop {
		h.mu.Unlock()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		if delay > 0 {
			time.Sleep(delay)
		}
		h.deliver(j)
	}()
}

func (h *hookRunner) deliver(j *hookJob) {
	cfg := h.cfg()
	var hk *policy.Hook
	for i := range cfg.HookList {
		if cfg.HookList[i].Name == j.Hook {
			hk = &cfg.HookList[i]
		}
	}
	if hk == nil {
		h.ops.Warn().Str("hook", j.Hook).Str("id", j.Event.ID).Msg("hook no longer configured; dropping its queued event")
		h.remove(j)
		return
	}
	h.sem <- struct{}{}
	j.Attempt++
	err := h.run(context.Background(), cfg, hk, &j.Event, j.Attempt)
	<-h.sem
	if err == nil {
		h.remove(j)
		return
	}
	if j.Attempt >= cfg.Hooks.RetryMax {
		h.ops.Error().Str("hook", j.Hook).Str("id", j.Event.ID).Int("attempts", j.Attempt).Err(err).Msg("hook failed; giving up")
		if j.file != "" {
			os.Rename(j.file, j.file+".failed")
		}
		return
	}
	_ = h.persist(j)
	backoff := cfg.Hooks.RetryBase << min(j.Attempt-1, 20)
	h.schedule(j, min(backoff, 10*time.Minute))
}

// run performs one hook action and writes the audit record.
func (h *hookRunner) run(ctx context.Context, cfg *policy.Config, hk *policy.Hook, ev *HookEvent, attempt int) error {
	timeout := hk.Timeout
	if timeout == 0 {
		timeout = cfg.Hooks.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var status string
	var err error
	action := "exec"
	if hk.URL != "" {
		action = "webhook"
		status, err = h.post(ctx, hk, ev)
	} else {
		status, err = h.exec(ctx, cfg, hk, ev)
	}
	e := h.audit.Info().Str("event", "hook.run").Str("hook", hk.Name).Str("action", action).
		Str("id", ev.ID).Str("for", ev.Event).Int("attempt", attempt).
		Float64("duration_s", time.Since(start).Seconds()).Str("status", status)
	if ev.Account != "" {
		e = e.Str("account", ev.Account)
	}
	if err != nil {
		e = e.Str("error", err.Error())
	}
	e.Send()
	if h.ran != nil {
		h.ran(action, err == nil)
	}
	return err
}

// exec runs a program hook: absolute path, argv expanded element by
// element, environment and stdin from the event, as the hook user with no
// supplementary groups, in its own process group (killed as a whole on
// timeout).
func (h *hookRunner) exec(ctx context.Context, cfg *policy.Config, hk *policy.Hook, ev *HookEvent) (string, error) {
	argv := make([]string, len(hk.Command))
	for i, a := range hk.Command {
		if i == 0 {
			argv[i] = a // the program: never templated (the config refuses it)
			continue
		}
		argv[i] = policy.ExpandArg(a, ev.field)
	}
	body, _ := json.Marshal(ev)
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Dir: "/", Stdin: bytes.NewReader(body)}
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}
	for _, f := range policy.HookFields {
		cmd.Env = append(cmd.Env, "SLUICE_"+strings.ToUpper(f)+"="+ev.field(f))
	}
	var stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if h.root {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: cfg.Hooks.UID, Gid: cfg.Hooks.GID, Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		return "not started", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Sprintf("exit %d", ee.ExitCode()), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
			}
			return "failed", err
		}
		return "exit 0", nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return "timeout", errors.New("timed out; process group killed")
	}
}

// post delivers a webhook: the event as JSON, signed.
func (h *hookRunner) post(ctx context.Context, hk *policy.Hook, ev *HookEvent) (string, error) {
	body, _ := json.Marshal(ev)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hk.URL, bytes.NewReader(body))
	if err != nil {
		return "bad request", err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice-hooks")
	req.Header.Set("X-Sluice-Event", ev.Event)
	req.Header.Set("X-Sluice-Delivery", ev.ID)
	req.Header.Set("X-Sluice-Timestamp", ts)
	req.Header.Set("X-Sluice-Signature", "sha256="+SignWebhook(hk.Secret, ts, body))
	resp, err := h.http.Do(req)
	if err != nil {
		return "no response", err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	status := fmt.Sprintf("http %d", resp.StatusCode)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return status, fmt.Errorf("webhook answered %s", resp.Status)
	}
	return status, nil
}

// SignWebhook is the X-Sluice-Signature value (without "sha256="):
// HMAC-SHA256 over timestamp "." body.
func SignWebhook(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// persist writes j to the queue directory: temp file, fsync, rename,
// fsync of the directory.
func (h *hookRunner) persist(j *hookJob) error {
	if h.queue == "" {
		return errors.New("no queue directory")
	}
	if err := os.MkdirAll(h.queue, 0o700); err != nil {
		return err
	}
	if j.file == "" {
		j.file = filepath.Join(h.queue, j.Event.ID+"."+j.Hook+".json")
	}
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(h.queue, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), j.file)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(h.queue); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (h *hookRunner) remove(j *hookJob) {
	if j.file != "" {
		os.Remove(j.file)
	}
}

// replay schedules the events a previous run left in the queue.
func (h *hookRunner) replay() {
	ents, err := os.ReadDir(h.queue)
	if err != nil {
		return
	}
	n := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(h.queue, e.Name())
		data, err := os.ReadFile(p)
		var j hookJob
		if err == nil {
			err = json.Unmarshal(data, &j)
		}
		if err != nil {
			h.ops.Warn().Str("file", p).Err(err).Msg("hook queue: unreadable entry left aside")
			os.Rename(p, p+".bad")
			continue
		}
		j.file = p
		h.schedule(&j, 0)
		n++
	}
	if n > 0 {
		h.ops.Info().Int("events", n).Msg("hook queue: replaying events from the last run")
	}
}

// close stops scheduling new deliveries and waits up to grace for the
// running ones (queued events stay on disk for the next start).
func (h *hookRunner) close(grace time.Duration) {
	h.mu.Lock()
	h.stop = true
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
}

// limitedBuffer keeps the first 1 KiB written to it (a hook's stderr, for
// the log).
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 1024 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }

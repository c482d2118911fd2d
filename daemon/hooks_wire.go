package daemon

import (
	"context"
	"strings"
	"time"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/ftp"
)

// maxHookChecks bounds the HookCheck requests of one session (one is
// answered at a time; a worker that asks while one is pending is killed).
const maxHookChecks = 100_000

// sessionHookEvent maps a session's audit event to a hook event: completed
// uploads (the final name, after the commit: never a partial), downloads,
// and successful delete/rmdir, rename and mkdir.
func sessionHookEvent(si sessionInfo, ev ftp.Event) (HookEvent, bool) {
	he := HookEvent{Account: si.Account, Remote: si.Remote, Session: si.ID, Path: ev.Path, Path2: ev.Path2, Code: ev.Code}
	ok := ev.Code >= 200 && ev.Code < 300
	switch ev.Kind {
	case "transfer":
		if ev.Code != 226 {
			return he, false
		}
		if ev.Dir == "in" {
			he.Event, he.Size, he.XXH64 = "upload", ev.Size, ev.XXH64
		} else {
			he.Event, he.Size = "download", ev.Bytes
		}
		he.DurationS = ev.Duration.Seconds()
		return he, true
	case "delete", "rmdir":
		he.Event = "delete"
	case "rename":
		he.Event = "rename"
	case "mkdir":
		he.Event = "mkdir"
	default:
		return he, false
	}
	return he, ok
}

// handleHookCheck answers a worker's HookCheck. It runs on its own
// goroutine: the worker's other messages (events) keep flowing while a
// pre-hook runs, and the worker waits only for its own answer.
func (s *Server) handleHookCheck(w *worker, m ipc.HookCheck) bool {
	w.mu.Lock()
	busy := w.hookBusy
	w.hookBusy = true
	si := w.sess
	n := w.counts[ipc.THookCheck]
	w.mu.Unlock()
	switch {
	case busy:
		w.kill("HookCheck while one is pending")
		return false
	case n > maxHookChecks:
		w.kill("too many HookCheck requests")
		return false
	case m.Op != "pre-upload" && m.Op != "pre-download", !strings.HasPrefix(m.Path, "/"), len(m.Path) > 4096:
		w.kill("malformed HookCheck")
		return false
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		ok, hook := s.hooks.check(ctx, HookEvent{Event: m.Op, Account: si.Account, Remote: si.Remote, Session: si.ID, Path: m.Path})
		if !ok {
			s.logs.Audit.Info().Str("event", "hook.veto").Str("session", si.ID).Str("account", si.Account).
				Str("op", m.Op).Str("path", m.Path).Str("hook", hook).Send()
		}
		w.mu.Lock()
		w.hookBusy = false
		w.mu.Unlock()
		if err := w.ipc.Send(ipc.HookVerdict{OK: ok}); err != nil {
			w.kill("hook verdict failed: " + err.Error())
		}
	}()
	return true
}

// preLogin runs the pre-login hooks of an accepted login.
func (s *Server) preLogin(si sessionInfo, account string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ok, hook := s.hooks.check(ctx, HookEvent{Event: "pre-login", Account: account, Remote: si.Remote, Session: si.ID})
	if !ok {
		s.logs.Audit.Info().Str("event", "hook.veto").Str("session", si.ID).Str("account", account).
			Str("op", "pre-login").Str("hook", hook).Send()
	}
	return ok
}

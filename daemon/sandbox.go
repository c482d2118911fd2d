package daemon

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/policy"
)

// UnsafeNoSandboxEnv, set to 1 in the supervisor's environment together
// with require_sandbox = false in the configuration, turns the worker
// sandbox off entirely. It exists to measure what the sandbox costs (the
// throughput benchmark); every session then logs a warning.
const UnsafeNoSandboxEnv = "SLUICE_UNSAFE_NO_SANDBOX"

// sandboxState is the supervisor's side of the worker sandbox: what this
// kernel can enforce and the current generation's Landlock layer 1.
type sandboxState struct {
	mu      sync.RWMutex
	require bool
	off     bool
	abi     int      // Landlock ABI, 0 without Landlock
	layer1  *os.File // Landlock ruleset of the current generation; nil without Landlock
	missing []string // what cannot be enforced here (empty when require)
}

// initSandbox probes the kernel once at start-up. With require_sandbox
// (the default) a shortfall refuses the start and names what is missing.
func (s *Server) initSandbox(cfg *policy.Config) error {
	sb := &s.sandbox
	sb.require = cfg.Server.RequireSandbox
	missing := policy.MissingRequired(policy.Probe())
	if len(missing) > 0 && sb.require {
		return fmt.Errorf("cannot confine session workers on this system, and require_sandbox = true:\n  - %s\n"+
			"(`sluice policy check` explains each point; set require_sandbox = false in [server] to run without a complete sandbox — not recommended)",
			strings.Join(missing, "\n  - "))
	}
	sb.missing = missing
	if !sb.require && os.Getenv(UnsafeNoSandboxEnv) == "1" {
		sb.off = true
		sb.missing = append(sb.missing, "sandbox disabled by "+UnsafeNoSandboxEnv+"=1")
	}
	if abi, err := policy.LandlockABI(); err == nil && abi >= 1 {
		sb.abi = abi
	}
	for _, m := range sb.missing {
		s.logs.Ops.Warn().Str("not_enforced", m).Msg("worker sandbox incomplete (require_sandbox = false)")
	}
	return s.rebuildLayer1(cfg)
}

// rebuildLayer1 builds the Landlock layer 1 of a configuration generation
// (at start and on reload). Workers of older generations already hold
// their own copy of the old ruleset.
func (s *Server) rebuildLayer1(cfg *policy.Config) error {
	sb := &s.sandbox
	var f *os.File
	if sb.abi > 0 && !sb.off {
		var missing []string
		var err error
		f, missing, err = policy.LandlockLayer1(cfg).Build(sb.abi)
		if err != nil {
			if sb.require {
				return fmt.Errorf("build the Landlock ruleset of the workers: %w", err)
			}
			s.logs.Ops.Warn().Err(err).Msg("no Landlock layer for workers (require_sandbox = false)")
		}
		for _, m := range missing {
			s.logs.Ops.Warn().Str("landlock", m).Msg("Landlock layer 1: not everything applied")
		}
	}
	sb.mu.Lock()
	old := sb.layer1
	sb.layer1 = f
	sb.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// sendConfine sends a new worker its sandbox spec and the layer-1 ruleset.
// The read lock keeps the ruleset fd open while it is being sent.
func (s *Server) sendConfine(w *worker, cfg *policy.Config) error {
	sb := &s.sandbox
	spec := s.confineSpec(cfg)
	sb.mu.RLock()
	defer sb.mu.RUnlock()
	if sb.layer1 != nil && !sb.off {
		return w.ipc.Send(ipc.Confine{Spec: spec}, sb.layer1)
	}
	return w.ipc.Send(ipc.Confine{Spec: spec})
}

// confineSpec is the pre-login spec of the workers of cfg.
func (s *Server) confineSpec(cfg *policy.Config) policy.ConfineSpec {
	return policy.ConfineSpec{Require: s.sandbox.require, Off: s.sandbox.off, Seccomp: policy.PreLoginSpec(cfg, s.root)}
}

// postLoginSandbox builds an account's post-login spec and its Landlock
// layer 2, from the very directory fds the worker will receive (not by
// path again: no window for a swapped path).
func (s *Server) postLoginSandbox(a *policy.Account, dirs []*os.File) (*policy.ConfineSpec, *os.File, error) {
	sb := &s.sandbox
	spec := &policy.ConfineSpec{Require: sb.require, Off: sb.off, Seccomp: policy.PostLoginSpec(a, s.root)}
	if sb.abi == 0 || sb.off {
		return spec, nil, nil
	}
	f, missing, err := policy.LandlockLayer2(a).BuildWith(sb.abi, dirs)
	if err != nil {
		if sb.require {
			return nil, nil, err
		}
		s.logs.Ops.Warn().Err(err).Str("account", a.Name).Msg("no Landlock layer 2 for this login (require_sandbox = false)")
		return spec, nil, nil
	}
	for _, m := range missing {
		s.logs.Ops.Warn().Str("account", a.Name).Str("landlock", m).Msg("Landlock layer 2: not everything applied")
	}
	return spec, f, nil
}

func (s *Server) closeSandbox() {
	sb := &s.sandbox
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.layer1 != nil {
		sb.layer1.Close()
		sb.layer1 = nil
	}
}

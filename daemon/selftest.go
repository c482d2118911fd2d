package daemon

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/sluice-ftp/sluice/daemon/ipc"
	"github.com/sluice-ftp/sluice/policy"
)

// ConfineAsWorker gives the calling process exactly the sandbox a session
// worker of cfg has after account logged in, through the same code: the
// supervisor's side (probe, Landlock layer 1 of the generation, the
// account's folder fds and its layer 2, the specs) and the worker's side
// (confinePreLogin, then enterAccount: uid switch, layer 2, filter 2).
// It exists for the adversarial tests (cmd/sluice/sandbox_test.go), which
// run it in a child process and then try to break out. It returns the
// account's folder directory fds, as a worker would hold them.
func ConfineAsWorker(cfg *policy.Config, account string) ([]*os.File, error) {
	s, err := New(cfg, Options{Stdout: io.Discard})
	if err != nil {
		return nil, err
	}
	if err := s.initSandbox(cfg); err != nil {
		return nil, err
	}
	a := cfg.Account(account)
	if a == nil {
		return nil, fmt.Errorf("no account %q", account)
	}
	// Supervisor: open the folders, build layer 2, as handleAuth does.
	var dirs []*os.File
	reply := ipc.AuthReply{OK: true, Account: a.Name, UID: a.UID, GID: a.GID, Home: "/"}
	for _, fo := range a.Folders {
		d, err := os.OpenFile(fo.Dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
		reply.Folders = append(reply.Folders, ipc.Folder{Path: fo.Path, Dir: fo.Dir, Rights: uint16(fo.Rights)})
	}
	spec, layer2, err := s.postLoginSandbox(a, dirs)
	if err != nil {
		return nil, err
	}
	reply.Sandbox = spec
	reply.Landlock = layer2 != nil
	// Worker: pre-login confinement with the generation's layer 1 ...
	s.sandbox.mu.RLock()
	layer1 := s.sandbox.layer1
	s.sandbox.mu.RUnlock()
	if _, err := confinePreLogin(s.confineSpec(cfg), layer1); err != nil {
		return nil, err
	}
	s.closeSandbox()
	// ... then the login transition.
	w := &workerSession{start: ipc.Start{SwitchUser: s.root}}
	err = w.enterAccount(reply, layer2, true)
	if layer2 != nil {
		layer2.Close()
	}
	if err != nil {
		return nil, err
	}
	return dirs, nil
}

package daemon

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Graceful binary upgrade (SIGUSR2, or `sluice reload --binary`): the
// running supervisor starts the binary at its original path — after a
// package upgrade, the new one — with the same arguments and its
// listening sockets as inherited descriptors. The new supervisor accepts
// on the very same sockets, so no connection is refused during the
// switch: until the old one stops accepting, both do. When the new one
// says it is ready (a line on a pipe), the old one closes its listeners,
// tells systemd the new main pid, and drains: every session finishes its
// transfer on its old worker, then ends with 421 so the client reconnects
// to the new server.

const (
	envListenFDs   = "SLUICE_LISTEN_FDS"    // "addr=fd,addr=fd"
	envUpgradeDone = "SLUICE_UPGRADE_READY" // fd of the pipe to write "ready" to
)

var (
	inheritOnce sync.Once
	inherited   map[string]*os.File
)

// inheritedListeners parses SLUICE_LISTEN_FDS once and clears it, so that
// workers never see it.
func inheritedListeners() map[string]*os.File {
	inheritOnce.Do(func() {
		inherited = map[string]*os.File{}
		v := os.Getenv(envListenFDs)
		os.Unsetenv(envListenFDs)
		for _, kv := range strings.Split(v, ",") {
			addr, fdStr, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			fd, err := strconv.Atoi(fdStr)
			if err != nil || fd < 3 {
				continue
			}
			inherited[addr] = os.NewFile(uintptr(fd), "inherited "+addr)
		}
	})
	return inherited
}

// takeInherited returns the listener handed over for addr, if any.
func takeInherited(addr string) (net.Listener, bool) {
	m := inheritedListeners()
	f, ok := m[addr]
	if !ok {
		return nil, false
	}
	delete(m, addr)
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, false
	}
	return l, true
}

// closeUnusedInherited closes handed-over sockets the new configuration
// no longer listens on.
func closeUnusedInherited() {
	for addr, f := range inheritedListeners() {
		f.Close()
		delete(inherited, addr)
	}
}

// signalUpgradeReady tells the old supervisor that this one serves.
func signalUpgradeReady() {
	v := os.Getenv(envUpgradeDone)
	os.Unsetenv(envUpgradeDone)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "upgrade-ready")
	f.WriteString("ready\n")
	f.Close()
}

// upgrade starts the new supervisor and waits until it serves. On error
// nothing has changed: this supervisor goes on serving.
func (s *Server) upgrade(sd *notifier) (int, error) {
	s.mu.Lock()
	var names []string
	var files []*os.File
	add := func(name string, l net.Listener) error {
		tl, ok := l.(*net.TCPListener)
		if !ok {
			return fmt.Errorf("listener %s is not TCP", name)
		}
		f, err := tl.File() // a dup: our listener keeps working
		if err != nil {
			return err
		}
		names = append(names, fmt.Sprintf("%s=%d", name, 3+len(files)))
		files = append(files, f)
		return nil
	}
	var err error
	for a, l := range s.listeners {
		if err = add(a, l); err != nil {
			break
		}
	}
	if err == nil && s.metricsL != nil {
		err = add("metrics:"+s.metricsAddr, s.metricsL)
	}
	s.mu.Unlock()
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if err != nil {
		return 0, fmt.Errorf("hand over listeners: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	// Stop accepting before the new supervisor starts: the sockets stay
	// open through the descriptors handed over, so the kernel queues new
	// connections in their backlog until the new supervisor accepts them.
	// Nothing is refused, and no connection lands on a worker of ours
	// that would have to be ended right after its greeting.
	s.pauseAccepting()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			s.resumeAccepting(names, files)
		}
	}
	cmd := exec.Command(s.exePath, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = append(files, w)
	cmd.Env = append(os.Environ(),
		envListenFDs+"="+strings.Join(names, ","),
		envUpgradeDone+"="+strconv.Itoa(3+len(files)))
	if sd.addr != nil {
		name := sd.addr.Name
		if strings.HasPrefix(name, "\x00") {
			name = "@" + name[1:]
		}
		cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+name)
		if sd.watchdog > 0 {
			cmd.Env = append(cmd.Env, "WATCHDOG_USEC="+strconv.FormatInt((2*sd.watchdog).Microseconds(), 10))
		}
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		resume()
		return 0, fmt.Errorf("start %s: %w", s.exePath, err)
	}
	w.Close()
	// Reap it if it dies before taking over; after that it is on its own
	// (it is re-parented when we exit).
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			resume()
			return 0, fmt.Errorf("new supervisor did not get ready: %w", err)
		}
	case err := <-exited:
		resume()
		return 0, fmt.Errorf("new supervisor exited during start-up: %v", err)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		resume()
		return 0, fmt.Errorf("new supervisor not ready after 60s")
	}
	return cmd.Process.Pid, nil
}

// pauseAccepting closes our FTP listeners (the sockets live on in the
// descriptors being handed over) and waits until every connection already
// accepted has been given to a worker.
func (s *Server) pauseAccepting() {
	s.closeListeners()
	s.acceptWG.Wait()
	s.handoffWG.Wait()
}

// resumeAccepting reopens listeners from the handed-over descriptors
// after a failed upgrade, so the server goes on as before.
func (s *Server) resumeAccepting(names []string, files []*os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, nf := range names {
		addr, _, _ := strings.Cut(nf, "=")
		if strings.HasPrefix(addr, "metrics:") {
			continue // never closed
		}
		l, err := net.FileListener(files[i])
		if err != nil {
			s.logs.Ops.Error().Err(err).Str("listen", addr).Msg("cannot resume listening after a failed upgrade")
			continue
		}
		s.listeners[addr] = l
		s.acceptWG.Add(1)
		go s.acceptLoop(addr, l)
	}
}

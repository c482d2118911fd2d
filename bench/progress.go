package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Progress draws one live line on a terminal while a workload runs: rate,
// done/total and ETA. On anything that is not a terminal it stays silent,
// so logs and pipes get only the results.
type Progress struct {
	w     io.Writer
	mu    sync.Mutex
	label string
	unit  string
	total int64 // bytes, 0 = unknown, <0 = a duration in ns
	done  atomic.Int64
	t0    time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// NewProgress returns a Progress on w, or nil when w is not a terminal.
func NewProgress(w io.Writer) *Progress {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return &Progress{w: w}
}

// Begin starts a line.
func (p *Progress) Begin(label string, total int64, unit string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.label, p.total, p.unit, p.t0 = label, total, unit, time.Now()
	p.done.Store(0)
	p.stop = make(chan struct{})
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tk.C:
				p.draw()
			}
		}
	}()
}

// Add counts n bytes (or operations).
func (p *Progress) Add(n int64) {
	if p != nil {
		p.done.Add(n)
	}
}

// End clears the line.
func (p *Progress) End() {
	if p == nil || p.stop == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
	p.stop = nil
	fmt.Fprint(p.w, "\r\033[K")
}

func (p *Progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	el := time.Since(p.t0).Seconds()
	d := p.done.Load()
	var line string
	if p.unit == "MB/s" || p.total > 0 {
		rate := float64(d) / 1e6 / el
		line = fmt.Sprintf("%-28s %9.0f MB/s  %s", p.label, rate, fmtBytes(d))
		if p.total > 0 {
			line += " / " + fmtBytes(p.total)
			if d > 0 {
				eta := el * float64(p.total-d) / float64(d)
				line += fmt.Sprintf("  ETA %4.1fs", eta)
			}
		}
	} else {
		line = fmt.Sprintf("%-28s %9.1f ops/s  %d done", p.label, float64(d)/el, d)
		if p.total < 0 {
			left := time.Duration(-p.total).Seconds() - el
			line += fmt.Sprintf("  ETA %4.1fs", max(0, left))
		}
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

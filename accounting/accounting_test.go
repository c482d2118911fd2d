package accounting

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestShare(t *testing.T) {
	for _, c := range []struct{ rate, live, want uint64 }{
		{0, 5, 0}, {100, 0, 100}, {100, 1, 100}, {100, 3, 34}, {50_000_000, 4, 12_500_000},
	} {
		if got := Share(c.rate, c.live); got != c.want {
			t.Errorf("Share(%d, %d) = %d, want %d", c.rate, c.live, got, c.want)
		}
	}
	if MinRate(0, 5) != 5 || MinRate(5, 0) != 5 || MinRate(3, 5) != 3 || MinRate(0, 0) != 0 {
		t.Error("MinRate")
	}
}

func TestLedger(t *testing.T) {
	l := NewLedger()
	l.Restore(Snapshot{Accounts: map[string]Counters{"a": {BytesIn: 10, BytesOut: 20, ConnsTotal: 2, Conns: 9}}})
	l.AddAccount("a")
	l.SetRate("a", Rates{Out: 100})
	l.SetGlobalRate(Rates{Out: 90})
	done1 := l.Open("a", Out)
	done2 := l.Open("a", Out)
	l.Open("b", In)()
	l.Add("a", Out, 5)
	if got := l.Share("a", Out); got != 45 { // min(100/2, 90/2)
		t.Fatalf("share %d", got)
	}
	done1()
	done1()
	if got := l.Share("a", Out); got != 90 {
		t.Fatalf("share after one closed %d", got)
	}
	done2()
	c, err := l.Counters("a")
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{BytesIn: 10, BytesOut: 25, ConnsTotal: 4}
	if c != want {
		t.Fatalf("counters %+v, want %+v", c, want)
	}
	path := filepath.Join(t.TempDir(), "acct.json")
	if err := SaveSnapshot(path, l.Snapshot()); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	l2 := NewLedger()
	l2.Restore(s)
	l2.AddAccount("a")
	if c, _ := l2.Counters("a"); c != want {
		t.Fatalf("restored %+v, want %+v", c, want)
	}
	if _, err := LoadSnapshot(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing snapshot: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, s := range []string{"one", "two"} {
		if err := WriteFileAtomic(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != s {
			t.Fatalf("%q, %v", got, err)
		}
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

// TestPacerRate: a single pacer holds its share (no kernel involved).
func TestPacerRate(t *testing.T) {
	var box ShareBox
	const rate = 20 << 20
	box.Set(In, rate)
	// A short Burst: this test checks the bucket's arithmetic, and the
	// default 200 ms catch-up would let a descheduled test (make test
	// runs packages in parallel) exceed the rate over a short window.
	p := NewPacer(PacerConfig{Source: &box, Direction: In, Burst: 10 * time.Millisecond})
	start := time.Now()
	var moved int
	for time.Since(start) < time.Second {
		if err := p.Wait(256 << 10); err != nil {
			t.Fatal(err)
		}
		moved += 256 << 10
	}
	got := float64(moved) / time.Since(start).Seconds()
	if got < 0.9*rate || got > 1.15*rate {
		t.Fatalf("rate %.0f, want %d", got, rate)
	}
	if p.Rate() != rate {
		t.Fatalf("Rate() %d", p.Rate())
	}
}

func TestPacerApply(t *testing.T) {
	var box ShareBox
	box.Set(Out, 1000)
	var applied []uint64
	p := NewPacer(PacerConfig{Source: &box, Direction: Out, Refresh: time.Nanosecond, SessionRate: 800,
		Apply: func(r uint64) error { applied = append(applied, r); return nil }})
	p.Wait(1)
	p.Wait(1)
	box.Set(Out, 500)
	time.Sleep(time.Millisecond)
	p.Wait(1)
	if len(applied) != 2 || applied[0] != 800 || applied[1] != 500 {
		t.Fatalf("applied %v", applied)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewPacer(PacerConfig{Context: ctx}).Wait(1); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

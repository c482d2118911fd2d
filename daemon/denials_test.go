package daemon

import "testing"

func TestParseDenial(t *testing.T) {
	cases := []struct {
		rec  string
		ok   bool
		want Denial
	}{
		{`6,1234,1837741195,-;audit: type=1326 audit(1795486201.143:30): auid=4294967295 uid=65534 gid=65534 ses=4294967295 pid=19846 comm="sluice-worker" exe="/usr/bin/sluice" sig=0 arch=c000003e syscall=41 compat=0 ip=0x40ad8e code=0x50000`,
			true, Denial{Kind: "seccomp", PID: 19846, Detail: "syscall=41"}},
		// A comm chosen to mislead: the kernel's pid comes first.
		{`5,1,2,-;audit: type=1326 audit(1.2:3): auid=1 uid=2 gid=3 ses=4 pid=77 comm=" pid=1 " exe="/x" syscall=101`,
			true, Denial{Kind: "seccomp", PID: 77, Detail: "syscall=101"}},
		{`5,9,9,-;audit: type=1423 audit(1.2:3): domain=1a2b blockers=fs.read_file path="/etc/shadow" dev="vda" ino=123 pid=501 comm="sluice-worker"`,
			true, Denial{Kind: "landlock", PID: 501, Detail: "blockers=fs.read_file"}},
		{`6,1,2,-;audit: type=1300 audit(1.2:3): arch=c000003e syscall=59 pid=5`, false, Denial{}},
		{`6,1,2,-;eth0: link up`, false, Denial{}},
		{`6,1,2,-;audit: type=1326 audit(1.2:3): pid=abc syscall=1`, false, Denial{}},
	}
	for _, c := range cases {
		got, ok := parseDenial(c.rec)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseDenial(%q) = %+v, %v; want %+v, %v", c.rec, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseDenial(f *testing.F) {
	f.Add(`audit: type=1326 audit(1.2:3): pid=77 syscall=1`)
	f.Add(`audit: type=1423 pid=5 blockers=x`)
	f.Fuzz(func(t *testing.T, rec string) {
		if d, ok := parseDenial(rec); ok && d.PID <= 0 {
			t.Fatalf("accepted pid %d", d.PID)
		}
	})
}

package policy

import (
	"strings"
	"testing"
)

func TestWorkerUser(t *testing.T) {
	base := "[ftp]\nlisten = [\"127.0.0.1:2121\"]\n[server]\n"
	c, err := Parse([]byte(base+`worker_user = "nobody"`), t.TempDir(), "t")
	if err != nil {
		t.Skipf("no user nobody on this machine: %v", err)
	}
	if c.Server.WorkerUID == 0 || c.Server.WorkerUser != "nobody" {
		t.Fatalf("worker_user nobody resolved to %d/%d", c.Server.WorkerUID, c.Server.WorkerGID)
	}
	for _, tc := range []struct{ src, want string }{
		{`worker_user = "root"`, "uid or gid 0"},
		{`worker_user = "no-such-user-sluice"`, "no system user"},
		{"worker_user = \"nobody\"\nworker_gid = 7", "not both"},
	} {
		_, err := Parse([]byte(base+tc.src), t.TempDir(), "t")
		if err == nil || !strings.Contains(err.Error(), "server.worker_user") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want server.worker_user … %s", tc.src, err, tc.want)
		}
	}
}

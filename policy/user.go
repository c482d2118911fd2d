package policy

import (
	"fmt"
	"os/user"
	"strconv"
)

// lookupUser resolves a system user name to its uid and primary gid (the
// pure-Go lookup reads /etc/passwd; sluice is built without cgo, so NSS
// modules such as LDAP are not consulted — use numeric ids there).
func lookupUser(name string) (uint32, uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("no system user %q (create it, e.g. with the package's sysusers snippet, or give worker_uid/worker_gid)", name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("user %q has non-numeric ids %s:%s", name, u.Uid, u.Gid)
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("user %q is uid or gid 0: workers never run as root", name)
	}
	return uint32(uid), uint32(gid), nil
}

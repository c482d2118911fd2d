package datapath

import "strings"

// Rights is the set of operations an account may perform inside one folder.
// The same bits drive the protocol checks (ftp, sftp) and, from issue 4 on,
// the Landlock rules of the post-login sandbox layer, so that a right the
// protocol refuses is also one the kernel refuses.
type Rights uint16

const (
	RightList   Rights = 1 << iota // LIST, NLST, MLSD, STAT path
	RightRead                      // RETR, SIZE, MDTM, HASH
	RightWrite                     // STOR, STOU, APPE, MFMT (create and overwrite)
	RightDelete                    // DELE, RMD
	RightRename                    // RNFR/RNTO
	RightMkdir                     // MKD

	RightsNone Rights = 0
	RightsAll         = RightList | RightRead | RightWrite | RightDelete | RightRename | RightMkdir
)

var rightNames = []struct {
	r    Rights
	name string
}{
	{RightList, "list"},
	{RightRead, "read"},
	{RightWrite, "write"},
	{RightDelete, "delete"},
	{RightRename, "rename"},
	{RightMkdir, "mkdir"},
}

// RightByName maps a config word ("read") to its bit; ok is false for an
// unknown word so that the config loader can name it in its error.
func RightByName(name string) (Rights, bool) {
	if name == "all" {
		return RightsAll, true
	}
	for _, rn := range rightNames {
		if rn.name == name {
			return rn.r, true
		}
	}
	return 0, false
}

// Has reports whether every bit of want is in r.
func (r Rights) Has(want Rights) bool { return r&want == want }

// Names lists the rights in a stable order, for logs and `policy show`.
func (r Rights) Names() []string {
	var out []string
	for _, rn := range rightNames {
		if r&rn.r != 0 {
			out = append(out, rn.name)
		}
	}
	return out
}

func (r Rights) String() string {
	if r == 0 {
		return "none"
	}
	return strings.Join(r.Names(), ",")
}

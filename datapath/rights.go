package datapath

import "strings"

// Rights is the set of operations an account may perform inside one folder.
// The same bits drive the protocol checks (ftp, sftp) and the Landlock rules
// of the post-login sandbox layer, so that a right the protocol refuses is
// also one the kernel refuses (as far as Landlock can tell the operations
// apart: see policy.LandlockRights).
//
// Writing is split three ways:
//
//	create    (RightWrite)     store files under names that do not exist yet
//	overwrite (RightOverwrite) replace or truncate an existing file
//	append    (RightAppend)    extend an existing file: APPE, or REST n + STOR
//	                           with n = its size; never a truncation
//
// The config word "write" means all three (what it has always meant), so
// that configurations written before the split keep their behaviour; roles
// such as dropbox use "create" alone.
type Rights uint16

const (
	RightList      Rights = 1 << iota // LIST, NLST, MLSD, STAT path
	RightRead                         // RETR, SIZE, MDTM, HASH
	RightWrite                        // create: STOR/STOU/APPE of a new name, MFMT
	RightDelete                       // DELE, RMD
	RightRename                       // RNFR/RNTO (over an existing file: also overwrite)
	RightMkdir                        // MKD
	RightOverwrite                    // STOR over an existing file
	RightAppend                       // APPE / resume onto an existing file

	RightsNone Rights = 0
	// RightsWriting are the rights that let an upload start at all.
	RightsWriting = RightWrite | RightOverwrite | RightAppend
	// RightsReadingFiles are the rights under which the worker may open
	// files of the folder for reading: read, and the ones whose uploads
	// copy or re-hash bytes already on disk (append, overwrite with a
	// resume). A folder without any of them (dropbox) gets uploads that
	// never read a file back, and a Landlock layer without read_file.
	RightsReadingFiles = RightRead | RightAppend | RightOverwrite
	RightsAll          = RightList | RightRead | RightWrite | RightDelete | RightRename | RightMkdir | RightOverwrite | RightAppend
)

var rightNames = []struct {
	r    Rights
	name string
}{
	{RightList, "list"},
	{RightRead, "read"},
	{RightWrite, "create"},
	{RightOverwrite, "overwrite"},
	{RightAppend, "append"},
	{RightDelete, "delete"},
	{RightRename, "rename"},
	{RightMkdir, "mkdir"},
}

// RightWords lists the words RightByName accepts, for error messages.
const RightWords = "list, read, write, create, overwrite, append, delete, rename, mkdir, all"

// RightByName maps a config word ("read") to its bit; ok is false for an
// unknown word so that the config loader can name it in its error. "write"
// is create + overwrite + append; "append-only" is an alias of "append".
func RightByName(name string) (Rights, bool) {
	switch name {
	case "all":
		return RightsAll, true
	case "write":
		return RightsWriting, true
	case "append-only":
		return RightAppend, true
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

// Any reports whether r has at least one bit of want.
func (r Rights) Any(want Rights) bool { return r&want != 0 }

// Names lists the rights in a stable order, for logs and `policy show`.
// create + overwrite + append together are written "write".
func (r Rights) Names() []string {
	var out []string
	for _, rn := range rightNames {
		if r&rn.r == 0 {
			continue
		}
		if r.Has(RightsWriting) && rn.r&RightsWriting != 0 {
			if rn.r == RightWrite {
				out = append(out, "write")
			}
			continue
		}
		out = append(out, rn.name)
	}
	return out
}

func (r Rights) String() string {
	if r == 0 {
		return "none"
	}
	return strings.Join(r.Names(), ",")
}

package ftp

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Path errors of the normaliser. errLeavesTree wraps the file system's
// escape error so that replyForErr maps both the same way.
var (
	errLeavesTree = &pathError{msg: "path leaves your tree", err: errEscape}
	errBadUTF8    = errors.New("file name is not valid UTF-8")
	errNULInPath  = errors.New("file name contains NUL")
)

type pathError struct {
	msg string
	err error
}

func (e *pathError) Error() string { return e.msg }
func (e *pathError) Unwrap() error { return e.err }

// cleanPath joins the session's working directory and a command argument
// into the clean, absolute virtual path the FileSystem expects. It is the
// only place where paths are normalised (invariant: the file system never
// sees a path the session did not produce here).
//
// It is purely lexical: "." and empty components vanish, ".." removes the
// previous component. A ".." that would climb above "/" is refused with
// errLeavesTree rather than clamped to "/": a client that asks for
// "../../etc/passwd" is either confused or probing, and silently serving
// "/etc/passwd" of its own tree would hide that. Backslash is an ordinary
// file name character on Linux, so "..\x" is one component, not a climb.
// Names must be valid UTF-8 (RFC 2640 section 2.2; we announce UTF8 in FEAT);
// Go's decoder rejects overlong encodings and surrogates, so "%c0%ae" style
// tricks never become "." either.
//
// cwd must itself be a clean absolute path; a malformed cwd is treated as
// "/" so the function is total.
func cleanPath(cwd, arg string) (string, error) {
	if !utf8.ValidString(arg) {
		return "", errBadUTF8
	}
	if strings.IndexByte(arg, 0) >= 0 {
		return "", errNULInPath
	}
	var stack []string
	if !strings.HasPrefix(arg, "/") {
		if strings.HasPrefix(cwd, "/") && utf8.ValidString(cwd) && strings.IndexByte(cwd, 0) < 0 {
			// cwd came from cleanPath, but re-walking it costs little and
			// keeps the result clean even if it did not.
			var err error
			if stack, err = walk(stack, cwd); err != nil {
				return "", err
			}
		}
	}
	stack, err := walk(stack, arg)
	if err != nil {
		return "", err
	}
	return "/" + strings.Join(stack, "/"), nil
}

// walk applies the components of p to stack.
func walk(stack []string, p string) ([]string, error) {
	for p != "" {
		var elem string
		elem, p, _ = strings.Cut(p, "/")
		switch elem {
		case "", ".":
		case "..":
			if len(stack) == 0 {
				return nil, errLeavesTree
			}
			stack = stack[:len(stack)-1]
		default:
			stack = append(stack, elem)
		}
	}
	return stack, nil
}

// parentDir returns the directory that holds the clean absolute path p.
func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// baseName returns the last component of the clean absolute path p ("/"
// for the root).
func baseName(p string) string {
	if p == "/" {
		return "/"
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}

// joinPath appends a single name to the clean absolute directory dir.
func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

package ftp

import (
	"strings"
)

// maxLineLength bounds one command line (after Telnet decoding, without its
// CRLF). RFC 959 sets no limit; 4096 is far above any real pathname command
// (PATH_MAX) and keeps a hostile client from growing our buffers. Longer lines
// get "500 Command line too long." and the session goes on.
const maxLineLength = 4096

// command is one parsed control-connection command.
type command struct {
	Verb string // upper-cased ASCII letters, 3 or 4 of them
	Arg  string // everything after the single separating SP; "" if none
}

// replyError is an error that already knows the FTP reply it deserves. The
// pure parsers return it so that the session does not have to guess.
type replyError struct {
	Code int
	Msg  string
}

func (e *replyError) Error() string { return e.Msg }

// Parser errors. They are values so tests can compare them.
var (
	errEmptyLine  = &replyError{500, "Syntax error, empty command line."}
	errBadVerb    = &replyError{500, "Syntax error, command unrecognized."}
	errNULInArg   = &replyError{501, "Syntax error in parameters: NUL byte in argument."}
	errCRInArg    = &replyError{501, "Syntax error in parameters: CR in argument."}
	errLineTooBig = &replyError{500, "Command line too long."}
)

// parseCommand splits one command line into its verb and argument.
//
// The line is what the Telnet reader produced: no LF, no Telnet commands. A
// trailing CR is tolerated (so the function is total on raw input too).
//
// Rules (RFC 959 section 5.3): the verb is an alphabetic Telnet string of 3 or
// 4 characters, case-insensitive; it is followed either by the end of the line
// or by exactly one SP and the argument. The argument is kept byte for byte
// (file names may begin or end with spaces); handlers that take keywords trim
// it themselves. NUL and CR are refused inside the argument: neither can be
// part of a Linux path reachable through FTP, and a CR echoed back in a reply
// could forge reply lines for naive clients.
// longVerbs are the verbs accepted beyond RFC 959's 3-4 letters.
var longVerbs = map[string]string{"XMD5": "XMD5", "XSHA1": "XSHA1", "XSHA256": "XSHA256"}

func parseCommand(line string) (command, error) {
	line = strings.TrimSuffix(line, "\r")
	if len(line) > maxLineLength {
		return command{}, errLineTooBig
	}
	if line == "" {
		return command{}, errEmptyLine
	}
	verb, arg, hasArg := strings.Cut(line, " ")
	long, known := longVerbs[strings.ToUpper(verb)]
	if known {
		// The de-facto checksum commands break the letters-only,
		// 4-character rule.
		verb = long
	} else if len(verb) < 3 || len(verb) > 4 {
		return command{}, errBadVerb
	}
	var up [7]byte
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		switch {
		case c >= 'A' && c <= 'Z':
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= '0' && c <= '9' && known:
		default:
			return command{}, errBadVerb
		}
		up[i] = c
	}
	if !hasArg {
		arg = ""
	}
	if strings.IndexByte(arg, 0) >= 0 {
		return command{Verb: string(up[:len(verb)])}, errNULInArg
	}
	if strings.IndexByte(arg, '\r') >= 0 {
		return command{Verb: string(up[:len(verb)])}, errCRInArg
	}
	return command{Verb: string(up[:len(verb)]), Arg: arg}, nil
}

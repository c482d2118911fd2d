package ftp

// HASH (draft-bryan-ftpext-hash-02), RANG (draft-bryan-ftp-range, for
// HASH only) and the legacy XCRC/XMD5/XSHA1/XSHA256 commands.

import (
	"errors"
	"strconv"
	"strings"

	"github.com/sluice-ftp/sluice/datapath"
)

// hashFeat is the FEAT line: every algorithm, the selected one starred.
func (s *Session) hashFeat() string {
	var b strings.Builder
	b.WriteString("HASH ")
	for i, a := range datapath.Algos() {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(string(a))
		if a == s.hashAlgo() {
			b.WriteByte('*')
		}
	}
	return b.String()
}

func (s *Session) hashAlgo() datapath.Algo {
	if s.algo == "" {
		return datapath.XXH64
	}
	return s.algo
}

// optsHash: "OPTS HASH" reports the selected algorithm, "OPTS HASH name"
// selects one (504 if unknown).
func (s *Session) optsHash(val string) {
	val = strings.TrimSpace(val)
	if val == "" {
		s.reply(200, string(s.hashAlgo()))
		return
	}
	a, ok := datapath.ParseAlgo(val)
	if !ok {
		s.reply(504, "Unknown algorithm; FEAT lists them.")
		return
	}
	s.algo = a
	s.reply(200, string(a))
}

// cmdRANG sets the byte range of the next HASH: "RANG start end", both
// inclusive (draft-bryan-ftp-range); "RANG 1 0" clears it. A dash form
// "RANG start-end" is accepted too.
func (s *Session) cmdRANG(arg string) {
	f := strings.Fields(strings.Replace(arg, "-", " ", 1))
	if len(f) != 2 {
		s.reply(501, "Usage: RANG start end (bytes, inclusive)")
		return
	}
	a, err1 := strconv.ParseInt(f[0], 10, 64)
	b, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || a < 0 || b < 0 {
		s.reply(501, "RANG needs two non-negative byte positions.")
		return
	}
	if a == 1 && b == 0 {
		s.rangSet = false
		s.reply(350, "Restarting at 0. End of file.")
		return
	}
	if b < a {
		s.reply(501, "RANG end is before start.")
		return
	}
	s.rangSet, s.rangFrom, s.rangTo = true, a, b+1
	s.replyf(350, "Restarting at %d. Ending byte %d.", a, b)
}

// cmdHASH answers "213 ALGO start-end hex path" for the selected
// algorithm and the RANG range if one was set (end exclusive in the reply,
// so that a whole file reads 0-size).
func (s *Session) cmdHASH(arg string) {
	from, to := int64(0), int64(-1)
	if s.rangSet {
		from, to = s.rangFrom, s.rangTo
		s.rangSet = false
	}
	p, ok := s.resolve(arg)
	if !ok || !s.allowed(p, datapath.RightRead) {
		return
	}
	res, ok := s.hashOf(p, s.hashAlgo(), from, to)
	if !ok {
		return
	}
	s.replyf(213, "%s %d-%d %s %s", res.Algo, res.From, res.To, res.Hex(), arg)
}

// legacyHash handles XCRC, XMD5, XSHA1 and XSHA256: "XMD5 path [start
// [end]]" (end exclusive), reply "250 hex".
func (s *Session) legacyHash(algo datapath.Algo, arg string) {
	path, from, to := splitRangeArgs(arg)
	p, ok := s.resolve(path)
	if !ok || !s.allowed(p, datapath.RightRead) {
		return
	}
	res, ok := s.hashOf(p, algo, from, to)
	if !ok {
		return
	}
	s.reply(250, strings.ToUpper(res.Hex()))
}

func (s *Session) cmdXCRC(arg string)    { s.legacyHash(datapath.CRC32, arg) }
func (s *Session) cmdXMD5(arg string)    { s.legacyHash(datapath.MD5, arg) }
func (s *Session) cmdXSHA1(arg string)   { s.legacyHash(datapath.SHA1, arg) }
func (s *Session) cmdXSHA256(arg string) { s.legacyHash(datapath.SHA256, arg) }

// splitRangeArgs takes up to two trailing decimal numbers off a path
// argument ("a b.iso 0 1024"), or a quoted path followed by numbers.
func splitRangeArgs(arg string) (path string, from, to int64) {
	from, to = 0, -1
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, `"`) {
		if i := strings.IndexByte(arg[1:], '"'); i >= 0 {
			path, rest := arg[1:1+i], strings.Fields(arg[2+i:])
			if len(rest) >= 1 {
				from, _ = strconv.ParseInt(rest[0], 10, 64)
			}
			if len(rest) >= 2 {
				to, _ = strconv.ParseInt(rest[1], 10, 64)
			}
			return path, from, to
		}
	}
	f := strings.Fields(arg)
	var nums []int64
	for len(f) > 1 && len(nums) < 2 {
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil || n < 0 {
			break
		}
		nums = append([]int64{n}, nums...)
		f = f[:len(f)-1]
	}
	if len(nums) == 0 {
		return arg, from, to
	}
	// Keep the path's own spacing: cut the numbers off the end.
	path = arg
	for range nums {
		path = strings.TrimRight(path, " ")
		path = path[:strings.LastIndexByte(path, ' ')]
	}
	from = nums[0]
	if len(nums) == 2 {
		to = nums[1]
	}
	return strings.TrimRight(path, " "), from, to
}

// hashOf computes (or looks up) a digest, replying on failure.
func (s *Session) hashOf(p string, algo datapath.Algo, from, to int64) (datapath.HashResult, bool) {
	o := datapath.HashOptions{Limit: s.cfg.HashLimit, Pacer: s.pacer("hash")}
	switch {
	case o.Limit == 0:
		o.Limit = DefaultHashLimit
	case o.Limit < 0:
		o.Limit = 0
	}
	var res datapath.HashResult
	var err error
	if h, ok := s.fs.(Hasher); ok {
		res, err = h.Hash(p, algo, from, to, o)
	} else {
		f, oerr := s.fs.Open(p)
		if oerr != nil {
			s.fail(oerr, p)
			return res, false
		}
		res, err = datapath.HashFile(f, algo, from, to, o)
		f.Close()
	}
	if err != nil {
		if isBadOffset(err) {
			s.reply(501, p+": range beyond the end of the file.")
			return res, false
		}
		s.fail(err, p)
		return res, false
	}
	return res, true
}

func isBadOffset(err error) bool { return errors.Is(err, datapath.ErrBadOffset) }

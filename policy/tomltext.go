package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// This file is a lexical view of a TOML document as logical lines, just
// enough to edit [[account]] blocks in place. It never decides what the
// document means: the editing functions decode the document with the real
// decoder before and after an edit and compare. What it must get right is
// where a line begins — a "[" at the start of a physical line inside a
// multi-line array or string is not a table header.

type tomlLineKind int

const (
	tlBlank   tomlLineKind = iota // only whitespace
	tlComment                     // only a comment
	tlHeader                      // [table] or [[array.table]]
	tlKeyVal                      // key = value (the value may span lines)
)

// tomlLine is one logical line: a header, a comment, a blank line or a key
// and its value, which may span several physical lines.
type tomlLine struct {
	start, end int // byte span, including the final line break
	kind       tomlLineKind
	indent     string
	key        []string // header or key/value key, each part unquoted
	arrayTable bool     // header is [[…]]
	// valEnd is where the key/value (or header) text ends: before
	// trailing whitespace and any comment.
	valEnd int
	// lineEnd is where the line's text ends, before its line break.
	lineEnd int
}

// scanTOMLLines splits doc into logical lines. doc must be valid TOML
// (callers decode it first); on anything it does not understand it returns
// an error rather than guess.
func scanTOMLLines(doc string) ([]tomlLine, error) {
	var out []tomlLine
	i := 0
	if strings.HasPrefix(doc, "\ufeff") {
		i = len("\ufeff")
	}
	first := true
	for i < len(doc) {
		ln := tomlLine{start: i}
		if first {
			ln.start = 0
			first = false
		}
		j := skipSpace(doc, i)
		ln.indent = doc[i:j]
		switch {
		case j == len(doc) || doc[j] == '\n' || doc[j] == '\r':
			ln.kind = tlBlank
			ln.valEnd = j
		case doc[j] == '#':
			ln.kind = tlComment
			ln.valEnd = j
		case doc[j] == '[':
			ln.kind = tlHeader
			k := j + 1
			if strings.HasPrefix(doc[j:], "[[") {
				ln.arrayTable = true
				k++
			}
			key, k2, err := scanTOMLKey(doc, k)
			if err != nil {
				return nil, err
			}
			k = skipSpace(doc, k2)
			closer := "]"
			if ln.arrayTable {
				closer = "]]"
			}
			if !strings.HasPrefix(doc[k:], closer) {
				return nil, fmt.Errorf("offset %d: unterminated table header", k)
			}
			ln.key = key
			ln.valEnd = k + len(closer)
		default:
			ln.kind = tlKeyVal
			key, k, err := scanTOMLKey(doc, j)
			if err != nil {
				return nil, err
			}
			k = skipSpace(doc, k)
			if k >= len(doc) || doc[k] != '=' {
				return nil, fmt.Errorf("offset %d: expected '=' after key", k)
			}
			ln.key = key
			ln.valEnd = scanTOMLValue(doc, skipSpace(doc, k+1))
		}
		// The rest of the line is whitespace and perhaps a comment.
		nl := strings.IndexByte(doc[ln.valEnd:], '\n')
		if nl < 0 {
			ln.end = len(doc)
			ln.lineEnd = len(doc)
		} else {
			ln.end = ln.valEnd + nl + 1
			ln.lineEnd = ln.valEnd + nl
			if ln.lineEnd > ln.valEnd && doc[ln.lineEnd-1] == '\r' {
				ln.lineEnd--
			}
		}
		// A value's end was found past any trailing space; a header's
		// and a comment's were not: trim for all.
		for ln.valEnd > j && (doc[ln.valEnd-1] == ' ' || doc[ln.valEnd-1] == '\t') {
			ln.valEnd--
		}
		out = append(out, ln)
		i = ln.end
	}
	return out, nil
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// scanTOMLKey reads a possibly dotted, possibly quoted key at i.
func scanTOMLKey(s string, i int) ([]string, int, error) {
	var parts []string
	for {
		i = skipSpace(s, i)
		if i >= len(s) {
			return nil, i, fmt.Errorf("offset %d: expected a key", i)
		}
		switch c := s[i]; {
		case c == '"':
			j := endBasicString(s, i+1)
			raw := s[i:j]
			part, err := strconv.Unquote(raw)
			if err != nil {
				part = raw // only compared against plain words; a miss is safe
			}
			parts = append(parts, part)
			i = j
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, i, fmt.Errorf("offset %d: unterminated key", i)
			}
			parts = append(parts, s[i+1:i+1+j])
			i = i + 2 + j
		case isBareKeyChar(c):
			j := i
			for j < len(s) && isBareKeyChar(s[j]) {
				j++
			}
			parts = append(parts, s[i:j])
			i = j
		default:
			return nil, i, fmt.Errorf("offset %d: expected a key", i)
		}
		j := skipSpace(s, i)
		if j < len(s) && s[j] == '.' {
			i = j + 1
			continue
		}
		return parts, i, nil
	}
}

// endBasicString returns the index just past the closing quote of a basic
// string whose body starts at i.
func endBasicString(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			i += 2
			continue
		case '"':
			return i + 1
		case '\n':
			return i
		}
		i++
	}
	return len(s)
}

// endMultiline returns the index just past the closing delimiter (three
// double or three single quotes) of a multi-line string whose body starts
// at i, including up to two quote characters before it that belong to the
// body.
func endMultiline(s string, i int, delim string, escapes bool) int {
	for i < len(s) {
		if escapes && s[i] == '\\' {
			i += 2
			continue
		}
		if strings.HasPrefix(s[i:], delim) {
			i += 3
			for n := 0; n < 2 && i < len(s) && s[i] == delim[0]; n++ {
				i++
			}
			return i
		}
		i++
	}
	return len(s)
}

// scanTOMLValue returns the end of the value that starts at i: the index of
// the first comment or line break outside brackets and strings, with
// trailing whitespace removed.
func scanTOMLValue(s string, i int) int {
	depth := 0
	end := func(k int) int {
		for k > 0 && (s[k-1] == ' ' || s[k-1] == '\t' || s[k-1] == '\r') {
			k--
		}
		return k
	}
	for i < len(s) {
		switch c := s[i]; {
		case strings.HasPrefix(s[i:], `"""`):
			i = endMultiline(s, i+3, `"""`, true)
		case strings.HasPrefix(s[i:], `'''`):
			i = endMultiline(s, i+3, `'''`, false)
		case c == '"':
			i = endBasicString(s, i+1)
		case c == '\'':
			if j := strings.IndexByte(s[i+1:], '\''); j >= 0 {
				i += j + 2
			} else {
				i = len(s)
			}
		case c == '[' || c == '{':
			depth++
			i++
		case c == ']' || c == '}':
			depth--
			i++
		case c == '#':
			if depth <= 0 {
				return end(i)
			}
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '\n':
			if depth <= 0 {
				return end(i)
			}
			i++
		default:
			i++
		}
	}
	return end(len(s))
}

func keyIs(key []string, want ...string) bool {
	if len(key) != len(want) {
		return false
	}
	for i := range key {
		if key[i] != want[i] {
			return false
		}
	}
	return true
}

// accountBlock is the extent of one [[account]] block, in line indexes.
type accountBlock struct {
	header int // the [[account]] line
	// mainEnd is the first line after the account's own keys: its first
	// sub-table header ([[account.folder]]), or contentEnd.
	mainEnd int
	// contentEnd is the first line after the block's content: its key
	// lines, sub-tables and the comments among them. Comments directly
	// above the next header (no blank line between) are that header's,
	// and comments after a blank line are not the block's either.
	contentEnd int
	// end is contentEnd plus the blank lines that follow.
	end int
}

// findAccountBlocks lists the [[account]] blocks of a scanned document in
// order. A block runs from its header to the next header that is not an
// account sub-table ([[account.folder]], [account.x]).
func findAccountBlocks(lines []tomlLine) []accountBlock { return findBlocks(lines, "account") }

// findBlocks finds the [[table]] blocks (with their sub-tables) of an
// array of tables: "account", "group".
func findBlocks(lines []tomlLine, table string) []accountBlock {
	var out []accountBlock
	for h := 0; h < len(lines); h++ {
		if lines[h].kind != tlHeader || !lines[h].arrayTable || !keyIs(lines[h].key, table) {
			continue
		}
		next := len(lines)
		mainEnd := -1
		for n := h + 1; n < len(lines); n++ {
			if lines[n].kind != tlHeader {
				continue
			}
			if len(lines[n].key) > 1 && lines[n].key[0] == table {
				if mainEnd < 0 {
					mainEnd = n
				}
				continue
			}
			next = n
			break
		}
		last := h // last header or key line of the block
		for n := h + 1; n < next; n++ {
			if lines[n].kind == tlHeader || lines[n].kind == tlKeyVal {
				last = n
			}
		}
		contentEnd := last + 1
		for contentEnd < next && lines[contentEnd].kind == tlComment {
			contentEnd++
		}
		if contentEnd == next && next < len(lines) {
			// That comment group runs into the next header: it is the
			// next header's.
			contentEnd = last + 1
		}
		end := contentEnd
		for end < next && lines[end].kind == tlBlank {
			end++
		}
		if mainEnd < 0 || mainEnd > contentEnd {
			mainEnd = contentEnd
		}
		out = append(out, accountBlock{header: h, mainEnd: mainEnd, contentEnd: contentEnd, end: end})
		h = contentEnd - 1
	}
	return out
}

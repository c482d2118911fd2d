package policy

import (
	"slices"
	"strings"
	"testing"
)

// TestScanTOMLLines checks the line scanner on valid TOML that a naive
// line-based reader gets wrong: "[" at the start of a physical line inside
// arrays and multi-line strings, quoted and spaced header keys, comments
// inside values.
func TestScanTOMLLines(t *testing.T) {
	doc := `# head
x = """
[[account]]
not a header \""" still string
"""
y = '''
[[account]]'''
z = [
[1, 2],
  [3], # [[account]]
]
w = { a = "[[account]]", b = [
[4]] }
q = "a # not a comment" # but this is
[ "acc" . 'ount' ]
[[ account ]]   # spaced
name = "a"
[ 'account' . "extra" ]
[[account.folder]]
k = 1
[[account]]
name = "b"
[ other ]
`
	raw, prob := decodeRaw([]byte(doc))
	if prob != nil {
		t.Fatalf("fixture is not valid TOML: %v", prob)
	}
	if n := len(rawAccounts(raw)); n != 2 {
		t.Fatalf("fixture has %d accounts", n)
	}
	lines, err := scanTOMLLines(doc)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		kind  tomlLineKind
		key   string
		array bool
		text  string // doc[start+indent:valEnd]
	}
	wants := []want{
		{tlComment, "", false, ""},
		{tlKeyVal, "x", false, "x = \"\"\"\n[[account]]\nnot a header \\\"\"\" still string\n\"\"\""},
		{tlKeyVal, "y", false, "y = '''\n[[account]]'''"},
		{tlKeyVal, "z", false, "z = [\n[1, 2],\n  [3], # [[account]]\n]"},
		{tlKeyVal, "w", false, "w = { a = \"[[account]]\", b = [\n[4]] }"},
		{tlKeyVal, "q", false, `q = "a # not a comment"`},
		{tlHeader, "acc.ount", false, `[ "acc" . 'ount' ]`},
		{tlHeader, "account", true, "[[ account ]]"},
		{tlKeyVal, "name", false, `name = "a"`},
		{tlHeader, "account.extra", false, `[ 'account' . "extra" ]`},
		{tlHeader, "account.folder", true, "[[account.folder]]"},
		{tlKeyVal, "k", false, "k = 1"},
		{tlHeader, "account", true, "[[account]]"},
		{tlKeyVal, "name", false, `name = "b"`},
		{tlHeader, "other", false, "[ other ]"},
	}
	if len(lines) != len(wants) {
		for _, l := range lines {
			t.Logf("%d %q %q", l.kind, l.key, doc[l.start:l.end])
		}
		t.Fatalf("%d lines, want %d", len(lines), len(wants))
	}
	for i, w := range wants {
		l := lines[i]
		text := doc[l.start+len(l.indent) : l.valEnd]
		if l.kind == tlComment {
			text = ""
		}
		if l.kind != w.kind || strings.Join(l.key, ".") != w.key || l.arrayTable != w.array || text != w.text {
			t.Errorf("line %d: kind %d key %q array %v text %q\nwant   kind %d key %q array %v text %q",
				i, l.kind, l.key, l.arrayTable, text, w.kind, w.key, w.array, w.text)
		}
	}
	checkCover(t, doc, lines)

	blocks := findAccountBlocks(lines)
	if len(blocks) != 2 {
		t.Fatalf("blocks = %+v", blocks)
	}
	if got := []int{blocks[0].header, blocks[0].mainEnd, blocks[0].contentEnd, blocks[1].header, blocks[1].contentEnd}; !slices.Equal(got, []int{7, 9, 12, 12, 14}) {
		t.Errorf("block lines = %v", got)
	}
}

func TestFindAccountBlocksComments(t *testing.T) {
	doc := `[[account]]
name = "a"
  # inside a

# between

# attached to b
[[account]]
name = "b"
  # inside b
# attached to c
[[account]]
name = "c"


# trailer
`
	lines, err := scanTOMLLines(doc)
	if err != nil {
		t.Fatal(err)
	}
	checkCover(t, doc, lines)
	blocks := findAccountBlocks(lines)
	span := func(from, to int) string {
		if to >= len(lines) {
			return doc[lines[from].start:]
		}
		return doc[lines[from].start:lines[to].start]
	}
	want := []struct{ content, all string }{
		{"[[account]]\nname = \"a\"\n  # inside a\n", "[[account]]\nname = \"a\"\n  # inside a\n\n"},
		{"[[account]]\nname = \"b\"\n", "[[account]]\nname = \"b\"\n"},
		{"[[account]]\nname = \"c\"\n", "[[account]]\nname = \"c\"\n\n\n"},
	}
	if len(blocks) != len(want) {
		t.Fatalf("blocks = %+v", blocks)
	}
	for i, w := range want {
		if got := span(blocks[i].header, blocks[i].contentEnd); got != w.content {
			t.Errorf("block %d content = %q, want %q", i, got, w.content)
		}
		if got := span(blocks[i].header, blocks[i].end); got != w.all {
			t.Errorf("block %d with blanks = %q, want %q", i, got, w.all)
		}
	}
}

// checkCover checks that lines tile doc exactly.
func checkCover(t testing.TB, doc string, lines []tomlLine) {
	t.Helper()
	pos := 0
	for i, l := range lines {
		if l.start != pos || l.end <= l.start || l.end > len(doc) || l.valEnd < l.start || l.valEnd > l.lineEnd || l.lineEnd > l.end {
			t.Fatalf("line %d %+v does not continue at %d (doc len %d)", i, l, pos, len(doc))
		}
		pos = l.end
	}
	if pos != len(doc) {
		t.Fatalf("lines end at %d, doc at %d", pos, len(doc))
	}
}

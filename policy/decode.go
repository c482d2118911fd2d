package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Problem is one thing wrong with a configuration: the key it is about, with
// its table path ("account[2].folder[0].rights"; empty for the file as a
// whole), and why.
type Problem struct {
	Key string
	Msg string
}

func (p *Problem) Error() string {
	if p.Key == "" {
		return p.Msg
	}
	return p.Key + ": " + p.Msg
}

// ConfigError is what Parse and Load return for a configuration they
// refuse: every problem found, not just the first, so that
// `sluice serve --check` shows them all at once. It unwraps to the
// individual *Problem errors (like errors.Join).
type ConfigError struct {
	Source   string // file path or "embedded default"
	Problems []*Problem
}

func (e *ConfigError) Error() string {
	if len(e.Problems) == 1 {
		return e.Source + ": " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", e.Source, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

func (e *ConfigError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problems collects the problems of one parse.
type problemList struct {
	list    []*Problem
	dropped int // problems beyond maxProblems
	// known, when not nil, receives the keys the schema knows for each
	// table walked (for the test that the example file shows them all).
	known map[string][]string
}

// maxProblems bounds the problems kept from one parse: enough for any
// real file, and a generated or damaged one cannot flood the terminal.
const maxProblems = 200

func (ps *problemList) add(key, format string, args ...any) {
	if len(ps.list) >= maxProblems {
		ps.dropped++
		return
	}
	ps.list = append(ps.list, &Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// result returns the problems, with a last one counting those dropped.
func (ps *problemList) result() []*Problem {
	if ps.dropped > 0 {
		return append(ps.list, &Problem{Msg: fmt.Sprintf("and %d more problems", ps.dropped)})
	}
	return ps.list
}

// table walks one decoded TOML table, recording which keys the schema knows
// (every key asked for, present or not) so that finish can report the rest
// as unknown, with their full path.
type tomlTable struct {
	ps    *problemList
	path  string // "" for the root, "ftp", "account[0].folder[1]"
	m     map[string]any
	known []string
}

func (t *tomlTable) key(k string) string {
	if t.path == "" {
		return k
	}
	return t.path + "." + k
}

func (t *tomlTable) get(k string) (any, bool) {
	t.known = append(t.known, k)
	v, ok := t.m[k]
	return v, ok
}

func (t *tomlTable) wrongType(k, want string, v any) {
	t.ps.add(t.key(k), "must be %s, not %s", want, tomlType(v))
}

// str sets *dst to the string at k, if there is one.
func (t *tomlTable) str(k string, dst *string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		t.wrongType(k, "a string", v)
		return false
	}
	*dst = s
	return true
}

func (t *tomlTable) boolean(k string, dst *bool) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		t.wrongType(k, "true or false", v)
		return false
	}
	*dst = b
	return true
}

// integer sets *dst to the integer at k if it lies in min..max.
func (t *tomlTable) integer(k string, dst *int64, min, max int64) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	n, ok := v.(int64)
	if !ok {
		t.wrongType(k, "an integer", v)
		return false
	}
	if n < min || n > max {
		t.ps.add(t.key(k), "%d is out of range %d..%d", n, min, max)
		return false
	}
	*dst = n
	return true
}

func (t *tomlTable) intIn(k string, dst *int, min, max int64) bool {
	var n int64
	if !t.integer(k, &n, min, max) {
		return false
	}
	*dst = int(n)
	return true
}

// id reads a uid or gid: 1..2^32-2 (0 is root; 2^32-1 is the "no change"
// value of setresuid).
func (t *tomlTable) id(k string, dst *uint32) bool {
	v, ok := t.m[k]
	if n, isInt := v.(int64); ok && isInt && n == 0 {
		t.get(k)
		t.ps.add(t.key(k), "must not be 0 (root)")
		return false
	}
	var n int64
	if !t.integer(k, &n, 1, 1<<32-2) {
		return false
	}
	*dst = uint32(n)
	return true
}

// duration reads a duration string ("30s") in min..max.
func (t *tomlTable) duration(k string, dst *time.Duration, min, max time.Duration) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		if _, isInt := v.(int64); isInt {
			t.ps.add(t.key(k), "must be a duration string such as \"30s\" or \"5m\", not an integer")
			return false
		}
		t.wrongType(k, "a duration string such as \"30s\"", v)
		return false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "missing unit") {
			hint = fmt.Sprintf(" (missing unit: write e.g. \"%ss\")", s)
		}
		t.ps.add(t.key(k), "%q is not a duration such as \"30s\" or \"5m\"%s", s, hint)
		return false
	}
	if d < min || d > max {
		switch {
		case min > 0 && d <= 0:
			t.ps.add(t.key(k), "must be positive (at least %s), not %q", fmtDur(min), s)
		case d < min:
			t.ps.add(t.key(k), "%q is too short: at least %s", s, fmtDur(min))
		default:
			t.ps.add(t.key(k), "%q is too long: at most %s", s, fmtDur(max))
		}
		return false
	}
	*dst = d
	return true
}

// strList reads an array of strings.
func (t *tomlTable) strList(k string, dst *[]string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	arr, ok := v.([]any)
	if !ok {
		t.wrongType(k, "an array of strings", v)
		return false
	}
	out := make([]string, 0, len(arr))
	good := true
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.ps.add(fmt.Sprintf("%s[%d]", t.key(k), i), "must be a string, not %s", tomlType(e))
			good = false
			continue
		}
		out = append(out, s)
	}
	if good {
		*dst = out
	}
	return good
}

// sub returns the table at k, or nil when it is absent or not a table.
func (t *tomlTable) sub(k string) *tomlTable {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.ps.add(t.key(k), "must be a table ([%s]), not %s", t.key(k), tomlType(v))
		return nil
	}
	return &tomlTable{ps: t.ps, path: t.key(k), m: m}
}

// subArray returns the array of tables at k ([[k]]).
func (t *tomlTable) subArray(k string) []*tomlTable {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	var maps []map[string]any
	switch v := v.(type) {
	case []map[string]any:
		maps = v
	case []any:
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				t.ps.add(fmt.Sprintf("%s[%d]", t.key(k), i), "must be a table, not %s", tomlType(e))
				continue
			}
			maps = append(maps, m)
		}
	default:
		t.ps.add(t.key(k), "must be an array of tables ([[%s]]), not %s", t.key(k), tomlType(v))
		return nil
	}
	out := make([]*tomlTable, len(maps))
	for i, m := range maps {
		out[i] = &tomlTable{ps: t.ps, path: fmt.Sprintf("%s[%d]", t.key(k), i), m: m}
	}
	return out
}

// finish reports the keys of t that the schema did not ask for.
func (t *tomlTable) finish() {
	if t == nil {
		return
	}
	if t.ps.known != nil {
		t.ps.known[t.path] = t.known
	}
	var unknown []string
	for k := range t.m {
		if !slices.Contains(t.known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		msg := "unknown key"
		if s := suggestKey(k, t.known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		t.ps.add(t.key(k), "%s", msg)
	}
}

// suggest returns the known key closest to k, if it is close enough to be
// a likely typo.
func suggestKey(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if strings.EqualFold(c, k) {
			return c
		}
		if d := editDistance(strings.ToLower(k), c); d < bestD && d <= len(c)/3+1 {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	// Optimal string alignment: insertions, deletions, substitutions and
	// transpositions of neighbours ("lsiten") each cost 1.
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// tomlType names the TOML type of a decoded value, for error messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date/time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// fmtDur prints a duration without the noise of time.Duration.String
// ("5m" rather than "5m0s").
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

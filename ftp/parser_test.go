package ftp

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line    string
		verb    string
		arg     string
		errCode int
	}{
		{"USER alice", "USER", "alice", 0},
		{"user alice", "USER", "alice", 0},
		{"NOOP", "NOOP", "", 0},
		{"NOOP\r", "NOOP", "", 0},
		{"RETR  two spaces", "RETR", " two spaces", 0}, // argument kept byte for byte
		{"STOR trailing ", "STOR", "trailing ", 0},
		{"CWD ", "CWD", "", 0},
		{"Cwd dir", "CWD", "dir", 0},
		{"PASS \xff\xfe", "PASS", "\xff\xfe", 0}, // not UTF-8: passwords pass through
		{"", "", "", 500},
		{"\r", "", "", 500},
		{" USER x", "", "", 500},
		{"AB", "", "", 500},
		{"ABCDE x", "", "", 500},
		{"US3R x", "", "", 500},
		{"USER\tx", "", "", 500},
		{"RETR a\x00b", "RETR", "", 501},
		{"RETR a\rb", "RETR", "", 501},
		{"RETR " + strings.Repeat("a", maxLineLength), "", "", 500},
	}
	for _, tt := range tests {
		cmd, err := parseCommand(tt.line)
		if tt.errCode != 0 {
			var re *replyError
			if !errors.As(err, &re) || re.Code != tt.errCode {
				t.Errorf("parseCommand(%q) err = %v, want code %d", tt.line, err, tt.errCode)
			}
			continue
		}
		if err != nil || cmd.Verb != tt.verb || cmd.Arg != tt.arg {
			t.Errorf("parseCommand(%q) = %+v, %v; want %s %q", tt.line, cmd, err, tt.verb, tt.arg)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER a", "RETR /x y", "noop", "", "\x00", "ABOR\r", "CWD ..\\..", "MLSD", "PASS \xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := parseCommand(line)
		if err != nil {
			var re *replyError
			if !errors.As(err, &re) || (re.Code != 500 && re.Code != 501) {
				t.Fatalf("error without reply code: %v", err)
			}
			return
		}
		if n := len(cmd.Verb); n < 3 || n > 4 || strings.ToUpper(cmd.Verb) != cmd.Verb {
			t.Fatalf("bad verb %q", cmd.Verb)
		}
		for _, c := range []byte(cmd.Verb) {
			if c < 'A' || c > 'Z' {
				t.Fatalf("bad verb %q", cmd.Verb)
			}
		}
		if strings.ContainsAny(cmd.Arg, "\x00\r") {
			t.Fatalf("argument %q contains NUL/CR", cmd.Arg)
		}
		// Round trip: the verb and argument rebuild the line.
		rebuilt := cmd.Verb
		if strings.Contains(strings.TrimSuffix(line, "\r"), " ") {
			rebuilt += " " + cmd.Arg
		}
		if !strings.EqualFold(rebuilt, strings.TrimSuffix(line, "\r")) {
			t.Fatalf("%q parsed to %+v", line, cmd)
		}
	})
}

func TestParseTimeVal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"20251123225500", "2025-11-23T22:55:00Z", true},
		{"20251123225500.5", "2025-11-23T22:55:00.5Z", true},
		{"20251123225500.123", "2025-11-23T22:55:00.123Z", true},
		{"2025112322550", "", false},
		{"20251323225500", "", false},
		{"2025112322550x", "", false},
		{"20251123225500.", "", false},
		{"+0251123225500", "", false},
	} {
		got, err := parseTimeVal(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got.Format("2006-01-02T15:04:05.999999999Z07:00") != tt.want) {
			t.Errorf("parseTimeVal(%q) = %v, %v", tt.in, got, err)
		}
	}
}

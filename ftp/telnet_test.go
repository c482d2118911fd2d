package ftp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readAllLines(in []byte, max int) (lines []string, tooLong int, err error) {
	tr := newTelnetReader(bytes.NewReader(in), max)
	for {
		b, err := tr.readLine()
		switch {
		case err == nil:
			lines = append(lines, string(b))
		case errors.Is(err, errLineTooLong):
			tooLong++
		case errors.Is(err, io.EOF):
			return lines, tooLong, nil
		default:
			return lines, tooLong, err
		}
	}
}

func TestTelnetReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		tooLong int
	}{
		{"crlf", "USER a\r\nPASS b\r\n", []string{"USER a", "PASS b"}, 0},
		{"bare lf", "USER a\nPASS b\n", []string{"USER a", "PASS b"}, 0},
		{"ip dm abor", "\xff\xf4\xff\xf2ABOR\r\n", []string{"ABOR"}, 0},
		{"ip, synch iac then dm", "\xff\xf4\xff" + "\xf2ABOR\r\n", []string{"ABOR"}, 0},
		{"ao ayt nop", "NO\xff\xf5O\xff\xf6P\xff\xf1\r\n", []string{"NOOP"}, 0},
		{"iac iac", "RETR a\xff\xffb\r\n", []string{"RETR a\xffb"}, 0},
		{"will wont do dont", "\xff\xfb\x01\xff\xfc\x03\xff\xfd\x18\xff\xfe\x1fNOOP\r\n", []string{"NOOP"}, 0},
		{"option byte is IAC", "\xff\xfd\xffNOOP\r\n", []string{"NOOP"}, 0},
		{"subnegotiation", "\xff\xfa\x18\x00xterm\xff\xff\xff\xf0NOOP\r\n", []string{"NOOP"}, 0},
		{"cr kept mid-line", "A\rB\r\n", []string{"A\rB"}, 0},
		{"only last cr stripped", "A\r\r\n", []string{"A\r"}, 0},
		{"partial last line dropped", "NOOP\r\nQU", []string{"NOOP"}, 0},
		{"exactly max", strings.Repeat("a", 16) + "\r\nX\n", []string{strings.Repeat("a", 16), "X"}, 0},
		{"max plus one", strings.Repeat("a", 17) + "\r\nNOOP\r\n", []string{"NOOP"}, 1},
		{"long then more", strings.Repeat("a", 100) + "\nB\n" + strings.Repeat("c", 40) + "\r\n", []string{"B"}, 2},
		{"empty lines", "\r\n\n", []string{"", ""}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tooLong, err := readAllLines([]byte(tt.in), 16)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) || tooLong != tt.tooLong {
				t.Fatalf("got %q (tooLong %d), want %q (tooLong %d)", got, tooLong, tt.want, tt.tooLong)
			}
		})
	}
}

func FuzzTelnetReader(f *testing.F) {
	for _, s := range []string{"USER a\r\n", "\xff\xf4\xff\xf2ABOR\r\n", "\xff\xff\n", "\xff\xfa\xff\xf0x\n", strings.Repeat("z", 40) + "\n", "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 32
		lines, tooLong, err := readAllLines(in, max)
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		ffOut := 0
		for _, l := range lines {
			if len(l) > max {
				t.Fatalf("line of %d bytes > %d", len(l), max)
			}
			if strings.Contains(l, "\n") {
				t.Fatalf("line contains LF: %q", l)
			}
			ffOut += strings.Count(l, "\xff")
		}
		// Every 0xFF in the output came from an IAC IAC pair.
		if ffOut > bytes.Count(in, []byte{0xff, 0xff}) {
			t.Fatalf("%d 0xFF bytes out, fewer IAC IAC pairs in %q", ffOut, in)
		}
		if len(lines)+tooLong > bytes.Count(in, []byte{'\n'}) {
			t.Fatalf("more lines than LFs")
		}
		// Without IAC the reader is a plain line splitter.
		if bytes.IndexByte(in, 0xff) < 0 {
			var want []string
			long := 0
			rest := in
			for {
				i := bytes.IndexByte(rest, '\n')
				if i < 0 {
					break
				}
				l := strings.TrimSuffix(string(rest[:i]), "\r")
				if len(l) > max {
					long++
				} else {
					want = append(want, l)
				}
				rest = rest[i+1:]
			}
			if strings.Join(want, "\n") != strings.Join(lines, "\n") || len(want) != len(lines) || long != tooLong {
				t.Fatalf("got %q/%d, want %q/%d", lines, tooLong, want, long)
			}
		}
	})
}

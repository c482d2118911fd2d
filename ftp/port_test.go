package ftp

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestParsePORT(t *testing.T) {
	tests := []struct {
		arg  string
		want string
		ok   bool
	}{
		{"127,0,0,1,4,1", "127.0.0.1:1025", true},
		{" 10,1,2,3,255,255 ", "10.1.2.3:65535", true},
		{"127,0,0,1,0,0", "127.0.0.1:0", true}, // syntax ok; policy refuses port < 1024
		{"127,0,0,1,4", "", false},
		{"127,0,0,1,4,1,1", "", false},
		{"256,0,0,1,4,1", "", false},
		{"127,0,0,1,4,256", "", false},
		{"127,0,0,-1,4,1", "", false},
		{"127,0,0,1,4,", "", false},
		{"127,0,0,1,4,1a", "", false},
		{"127,0,0,1,+4,1", "", false},
		{"127, 0,0,1,4,1", "", false},
		{"000127,0,0,1,4,1", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := parsePORT(tt.arg)
		if (err == nil) != tt.ok || (tt.ok && got.String() != tt.want) {
			t.Errorf("parsePORT(%q) = %v, %v; want %s ok=%v", tt.arg, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParsePORT(f *testing.F) {
	for _, s := range []string{"127,0,0,1,4,1", "1,2,3,4,5,6", "", ",,,,,", "999,1,1,1,1,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		ap, err := parsePORT(arg)
		if err != nil {
			return
		}
		if !ap.Addr().Is4() {
			t.Fatalf("%q: non-IPv4 %v", arg, ap)
		}
		// Round trip through the canonical form.
		b := ap.Addr().As4()
		canon := strings.Join([]string{strconv.Itoa(int(b[0])), strconv.Itoa(int(b[1])), strconv.Itoa(int(b[2])), strconv.Itoa(int(b[3])), strconv.Itoa(int(ap.Port() >> 8)), strconv.Itoa(int(ap.Port() & 255))}, ",")
		if ap2, err := parsePORT(canon); err != nil || ap2 != ap {
			t.Fatalf("%q -> %v -> %q -> %v, %v", arg, ap, canon, ap2, err)
		}
	})
}

func TestParseEPRT(t *testing.T) {
	tests := []struct {
		arg  string
		want string
		err  error
	}{
		{"|1|127.0.0.1|5000|", "127.0.0.1:5000", nil},
		{"|2|::1|5000|", "[::1]:5000", nil},
		{"!1!10.0.0.1!65535!", "10.0.0.1:65535", nil},
		{"|2|fe80::1%eth0|5000|", "", errEPRTSyntax},
		{"|1|::1|5000|", "", errEPRTSyntax},
		{"|2|127.0.0.1|5000|", "", errEPRTSyntax},
		{"|3|127.0.0.1|5000|", "", errEPRTProtocol},
		{"|1|127.0.0.1|0|", "", errEPRTSyntax},
		{"|1|127.0.0.1|65536|", "", errEPRTSyntax},
		{"|1|127.0.0.1|5000", "", errEPRTSyntax},
		{"|1|127.0.0.1|5000||", "", errEPRTSyntax},
		{" 1 127.0.0.1 5000 ", "", errEPRTSyntax}, // SP is not a valid delimiter
		{"|1|127.0.0.01|5000|", "", errEPRTSyntax},
		{"", "", errEPRTSyntax},
		{"|", "", errEPRTSyntax},
	}
	for _, tt := range tests {
		got, err := parseEPRT(tt.arg)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("parseEPRT(%q) err = %v, want %v", tt.arg, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("parseEPRT(%q) = %v, %v; want %s", tt.arg, got, err, tt.want)
		}
	}
}

func FuzzParseEPRT(f *testing.F) {
	for _, s := range []string{"|1|127.0.0.1|5000|", "|2|::1|5000|", "|3|x|1|", "||||", "$1$1.2.3.4$80$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		ap, err := parseEPRT(arg)
		if err != nil {
			if !errors.Is(err, errEPRTSyntax) && !errors.Is(err, errEPRTProtocol) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !ap.IsValid() || ap.Port() == 0 || ap.Addr().Zone() != "" {
			t.Fatalf("%q -> %v", arg, ap)
		}
		proto := "2"
		if ap.Addr().Is4() {
			proto = "1"
		}
		canon := "|" + proto + "|" + ap.Addr().String() + "|" + strconv.Itoa(int(ap.Port())) + "|"
		if ap2, err := parseEPRT(canon); err != nil || ap2 != ap {
			t.Fatalf("%q -> %v -> %q -> %v, %v", arg, ap, canon, ap2, err)
		}
	})
}

func TestFormatPASV(t *testing.T) {
	got, err := formatPASV(netip.MustParseAddr("::ffff:192.168.1.2"), 50001)
	if err != nil || got != "Entering Passive Mode (192,168,1,2,195,81)." {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := formatPASV(netip.MustParseAddr("::1"), 1); err == nil {
		t.Fatal("IPv6 accepted")
	}
}

func TestParseEPSVArg(t *testing.T) {
	for _, tt := range []struct {
		arg   string
		proto int
		all   bool
		err   error
	}{
		{"", 0, false, nil}, {"1", 1, false, nil}, {"2", 2, false, nil}, {"all", 0, true, nil},
		{"ALL", 0, true, nil}, {"3", 0, false, errEPSVProtocol}, {"x", 0, false, errEPSVSyntax},
	} {
		proto, all, err := parseEPSVArg(tt.arg)
		if proto != tt.proto || all != tt.all || !errors.Is(err, tt.err) {
			t.Errorf("parseEPSVArg(%q) = %d %v %v", tt.arg, proto, all, err)
		}
	}
}

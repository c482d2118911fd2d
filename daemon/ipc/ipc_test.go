package ipc

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-ftp/sluice/ftp"
	"github.com/sluice-ftp/sluice/policy"
)

func TestRoundTrip(t *testing.T) {
	msgs := []Message{
		Ready{PID: 42},
		Start{SessionID: "s1", Listener: "127.0.0.1:21", Remote: "127.0.0.1:5000", Local: "127.0.0.1:21",
			FTP: ftp.Config{Banner: "hi", PassivePortMin: 50000, PassivePortMax: 50100, IdleTimeout: time.Minute}, SwitchUser: true},
		AuthRequest{User: "demo", Pass: "p\x00w"},
		AuthReply{OK: true, Account: "demo", UID: 65534, GID: 65534, Home: "/", Folders: []Folder{{Path: "/", Dir: "/srv", Rights: 63}}},
		AuthReply{Code: 530, Msg: "Login incorrect."},
		Event{ftp.Event{Kind: "transfer", Path: "/a", Bytes: 10, Dir: "in"}},
		Close{Summary: ftp.Summary{Account: "demo", BytesIn: 1}, Reason: "quit"},
		Shutdown{Deadline: time.Unix(1700000000, 0).UTC()},
		AuthReply{OK: true, Account: "demo", Metered: true, Rates: &Rates{In: 1 << 20, Out: 50e6}},
		Rates{In: 0, Out: 25e6},
		Meter{Op: MeterBegin, ID: 7, Dir: "in", Path: "/a.iso", Mode: ModeStore, Existing: -1},
		Meter{Op: MeterEnd, ID: 7, Dir: "in", Used: 1 << 30, Committed: true},
		Grant{OK: true, Bytes: -1},
		Grant{Code: 552, Msg: "Quota exceeded."},
		Grant{OK: true, Warning: "Quota warning: 85% used.", Quota: &QuotaInfo{BytesUsed: 85, BytesLimit: 100, Period: "day", OutLimit: 5}},
	}
	for _, m := range msgs {
		pkt, err := Encode(m)
		if err != nil {
			t.Fatalf("encode %T: %v", m, err)
		}
		got, err := Decode(pkt)
		if err != nil {
			t.Fatalf("decode %T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip %T:\n got %#v\nwant %#v", m, got, m)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"one byte", []byte{0}, ErrMalformed},
		{"unknown type", []byte{0, 99, '{', '}'}, ErrUnknownType},
		{"type zero", []byte{0, 0, '{', '}'}, ErrUnknownType},
		{"unknown field", append([]byte{0, 3}, `{"user":"a","pass":"b","uid":0}`...), ErrMalformed},
		{"trailing", append([]byte{0, 3}, `{"user":"a"}{}`...), ErrMalformed},
		{"not json", append([]byte{0, 1}, `pid=1`...), ErrMalformed},
		{"wrong field type", append([]byte{0, 1}, `{"pid":"x"}`...), ErrMalformed},
		{"too large", make([]byte, MaxMessage+1), ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.pkt)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, want %v", err, c.want)
			}
		})
	}
}

func TestPairPassesDescriptors(t *testing.T) {
	a, bf, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := FromFile(bf)
	bf.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := a.Send(Start{SessionID: "x"}, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	m, files, err := b.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := m.(Start); !ok || s.SessionID != "x" {
		t.Fatalf("got %#v", m)
	}
	if len(files) != 1 {
		t.Fatalf("got %d files, want 1", len(files))
	}
	if _, err := files[0].Write([]byte("through")); err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	got, _ := io.ReadAll(r)
	if string(got) != "through" {
		t.Fatalf("pipe read %q", got)
	}

	// The peer closing reads as a closed connection.
	a.Close()
	if _, _, err := b.Recv(); !IsClosed(err) && !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range []Message{Ready{PID: 1}, AuthRequest{User: "u", Pass: "p"}, Close{}, Event{}, AuthReply{OK: true, Folders: []Folder{{Path: "/"}}},
		Confine{Spec: policy.ConfineSpec{Require: true, Seccomp: policy.SeccompSpec{SwitchUser: true, UIDs: []uint32{1000}, GIDs: []uint32{1000}}}},
		AuthReply{OK: true, Sandbox: &policy.ConfineSpec{Seccomp: policy.SeccompSpec{Write: true}}, Landlock: true},
		Ready{PID: 2, Missing: []string{"x"}}, Rates{In: 1}, Meter{Op: MeterMore, Used: 3}, Grant{OK: true, Quota: &QuotaInfo{}}} {
		pkt, _ := Encode(m)
		f.Add(pkt)
	}
	f.Add([]byte{0, 3, '{'})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		m, err := Decode(pkt)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode, and decode to a message with
		// the same encoding: the wire form is what must be stable (an
		// empty list and none both encode as nothing, omitempty).
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode %T: %v", m, err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-decode %T: %v", m, err)
		}
		third, err := Encode(m2)
		if err != nil || !bytes.Equal(again, third) {
			t.Fatalf("unstable: %q vs %q (%v)", again, third, err)
		}
	})
}

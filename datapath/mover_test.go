package datapath

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPair returns the two ends of a loopback TCP connection: server is the
// accepted end (what a data connection is in the server), client the dialed
// one. mptcp enables MPTCP on both sides (Go 1.26 listeners default to it).
func tcpPair(t testing.TB, mptcp bool) (server, client *net.TCPConn) {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(mptcp)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var d net.Dialer
	d.SetMultipathTCP(mptcp)
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close(); c.Close() })
	return r.c.(*net.TCPConn), c.(*net.TCPConn)
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func tempFile(t testing.TB, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// wrapConn hides *net.TCPConn, as a TLS or counting wrapper would; max > 0
// caps every Read, to put buffer boundaries everywhere.
type wrapConn struct {
	net.Conn
	max int
}

func (w wrapConn) Read(p []byte) (int, error) {
	if w.max > 0 && len(p) > w.max {
		p = p[:w.max]
	}
	return w.Conn.Read(p)
}

// sendAndCollect runs Send on the server end and returns what the client got.
func sendAndCollect(t *testing.T, server net.Conn, client net.Conn, src *os.File, off int64, o Options) (Result, []byte) {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	res, err := SendWith(server, src, off, o)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	server.Close()
	return res, <-got
}

func TestSendBinary(t *testing.T) {
	for _, mptcp := range []bool{false, true} {
		for _, size := range []int{0, 1, 4<<20 + 3, 64 << 20} {
			data := randomBytes(size, uint64(size))
			src := tempFile(t, data)
			for _, off := range []int{0, 1, size / 2, size, size + 10} {
				t.Run(fmt.Sprintf("mptcp=%v/size=%d/off=%d", mptcp, size, off), func(t *testing.T) {
					server, client := tcpPair(t, mptcp)
					res, got := sendAndCollect(t, server, client, src, int64(off), Options{})
					want := data[min(off, size):]
					if !bytes.Equal(got, want) {
						t.Fatalf("got %d bytes, want %d (content differs)", len(got), len(want))
					}
					if res.Bytes != int64(len(want)) || res.Mover != MoverSendfile || res.Fallback != "" {
						t.Errorf("result %+v", res)
					}
					if pos, _ := src.Seek(0, io.SeekCurrent); pos != 0 {
						t.Errorf("src offset moved to %d", pos)
					}
				})
			}
		}
	}
}

func TestSendCopyFallback(t *testing.T) {
	data := randomBytes(3<<20+17, 7)
	src := tempFile(t, data)
	server, client := tcpPair(t, false)
	res, got := sendAndCollect(t, wrapConn{Conn: server}, client, src, 5, Options{})
	if !bytes.Equal(got, data[5:]) {
		t.Fatal("content differs")
	}
	if res.Mover != MoverCopy || res.Fallback != "not a TCP socket" || res.Bytes != int64(len(data)-5) {
		t.Errorf("result %+v", res)
	}
}

func selfSignedTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sluice-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestTLSFallback(t *testing.T) {
	cfg := selfSignedTLS(t)
	data := randomBytes(5<<20+1, 9)
	src := tempFile(t, data)

	server, client := tcpPair(t, false)
	ts := tls.Server(server, cfg)
	tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(tc)
		got <- b
	}()
	res, err := Send(ts, src, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	ts.Close()
	if !bytes.Equal(<-got, data) {
		t.Fatal("TLS send: content differs")
	}
	if res.Mover != MoverCopy || res.Fallback != "TLS" {
		t.Errorf("send result %+v", res)
	}

	server2, client2 := tcpPair(t, false)
	ts2 := tls.Server(server2, cfg)
	tc2 := tls.Client(client2, &tls.Config{InsecureSkipVerify: true})
	go func() {
		tc2.Write(data)
		tc2.Close()
	}()
	dst := newDst(t)
	res, err = Receive(dst, ts2, false)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data)
	if res.Mover != MoverCopy || res.Fallback != "TLS" || res.Bytes != int64(len(data)) {
		t.Errorf("receive result %+v", res)
	}
}

func TestSendASCII(t *testing.T) {
	// An LF exactly at the 256 KiB read boundary, preceded by CR in the
	// previous buffer (must not become CRCRLF), and one preceded by a
	// plain byte.
	in := bytes.Repeat([]byte("abc\n"), 200000)
	in[copyBuf-1] = '\r'
	in[copyBuf] = '\n'
	in[2*copyBuf-1] = 'x'
	in[2*copyBuf] = '\n'
	in = append(in, "tail\r\nend\rlone"...)
	src := tempFile(t, in)
	for _, off := range []int{0, 3, copyBuf} {
		t.Run(fmt.Sprint("off=", off), func(t *testing.T) {
			server, client := tcpPair(t, false)
			res, got := sendAndCollect(t, server, client, src, int64(off), Options{ASCII: true})
			want, _ := toCRLFSlow(in[off:], off > 0 && in[off-1] == '\r')
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
			if bytes.Contains(got, []byte("\r\r\n")) {
				t.Error("CRCRLF produced")
			}
			if res.Mover != MoverCopy || res.Fallback != "TYPE A" || res.Bytes != int64(len(in)-off) {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// toCRLFSlow is the byte-at-a-time reference for toCRLF.
func toCRLFSlow(in []byte, prevCR bool) ([]byte, bool) {
	var out []byte
	for _, c := range in {
		if c == '\n' && !prevCR {
			out = append(out, '\r')
		}
		out = append(out, c)
		prevCR = c == '\r'
	}
	return out, prevCR
}

func fromCRLFSlow(in []byte) []byte {
	var out []byte
	for i := 0; i < len(in); i++ {
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			continue
		}
		out = append(out, in[i])
	}
	return out
}

// TestConvertSplits feeds every split of tricky inputs through the
// converters in two buffers.
func TestConvertSplits(t *testing.T) {
	inputs := []string{
		"", "\n", "\r", "\r\n", "\n\r", "\r\r\n", "a\r\nb\nc\rd\r", "\r\n\r\n", "x\r", "\n\n\r\r",
	}
	for _, s := range inputs {
		in := []byte(s)
		for cut := 0; cut <= len(in); cut++ {
			out, cr := toCRLF(nil, in[:cut], false)
			out, _ = toCRLF(out, in[cut:], cr)
			if want, _ := toCRLFSlow(in, false); !bytes.Equal(out, want) {
				t.Errorf("toCRLF(%q | %q) = %q, want %q", in[:cut], in[cut:], out, want)
			}
			out, pend := fromCRLF(nil, in[:cut], false)
			out, pend = fromCRLF(out, in[cut:], pend)
			if pend {
				out = append(out, '\r')
			}
			if want := fromCRLFSlow(in); !bytes.Equal(out, want) {
				t.Errorf("fromCRLF(%q | %q) = %q, want %q", in[:cut], in[cut:], out, want)
			}
		}
	}
}

func newDst(t testing.TB) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func checkFile(t *testing.T, f *os.File, want []byte) {
	t.Helper()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file has %d bytes, want %d (content differs)", len(got), len(want))
	}
}

// feed writes data from the client in pieces and closes its write side.
func feed(client net.Conn, data []byte, piece int) {
	go func() {
		for len(data) > 0 {
			n := min(piece, len(data))
			if _, err := client.Write(data[:n]); err != nil {
				break
			}
			data = data[n:]
		}
		if tc, ok := client.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			client.Close()
		}
	}()
}

func TestReceiveBinary(t *testing.T) {
	for _, mptcp := range []bool{false, true} {
		for _, size := range []int{0, 1, 1<<20 + 5, 64 << 20} {
			t.Run(fmt.Sprintf("mptcp=%v/size=%d", mptcp, size), func(t *testing.T) {
				data := randomBytes(size, uint64(size)+1)
				server, client := tcpPair(t, mptcp)
				dst := newDst(t)
				// The caller positions the file (REST + STOR).
				dst.WriteString("HEADER--")
				dst.Seek(6, io.SeekStart)
				feed(client, data, 3<<20)
				res, err := Receive(dst, server, false)
				if err != nil {
					t.Fatal(err)
				}
				want := append([]byte("HEADER"), data...)
				if size == 0 {
					want = []byte("HEADER--")
				} else if size == 1 {
					want = append(want, '-')
				}
				checkFile(t, dst, want)
				if res.Bytes != int64(size) || res.Mover != MoverSplice || res.Fallback != "" {
					t.Errorf("result %+v", res)
				}
				if pos, _ := dst.Seek(0, io.SeekCurrent); pos != int64(6+size) {
					t.Errorf("file offset %d, want %d", pos, 6+size)
				}
			})
		}
	}
}

func TestReceiveAppend(t *testing.T) {
	data := randomBytes(2<<20+3, 3)
	p := filepath.Join(t.TempDir(), "app")
	os.WriteFile(p, []byte("prefix"), 0o644)
	dst, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	server, client := tcpPair(t, false)
	feed(client, data, 1<<20)
	res, err := Receive(dst, server, false)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, append([]byte("prefix"), data...))
	if res.Mover != MoverCopy || !strings.HasPrefix(res.Fallback, "O_APPEND") || res.Bytes != int64(len(data)) {
		t.Errorf("result %+v", res)
	}
}

func TestReceiveASCII(t *testing.T) {
	var in []byte
	for i := 0; i < 100000; i++ {
		in = append(in, fmt.Sprintf("line %d\r\n", i)...)
		if i%7 == 0 {
			in = append(in, "bare\rcr\n"...)
		}
	}
	in = append(in, "last\r"...) // a CR at EOF stays
	want := fromCRLFSlow(in)
	// piece sizes put CR/LF pairs across read boundaries; 0 means
	// a plain TCP conn (the ASCII path never uses splice).
	for _, piece := range []int{0, 1, 7, 4096, copyBuf} {
		t.Run(fmt.Sprint("read=", piece), func(t *testing.T) {
			in, want := in, want
			if piece == 1 {
				in = in[:50000] // one syscall per byte: keep it short
				want = fromCRLFSlow(in)
			}
			server, client := tcpPair(t, false)
			dst := newDst(t)
			feed(client, in, 100000)
			var src net.Conn = server
			if piece > 0 {
				src = wrapConn{Conn: server, max: piece}
			}
			res, err := Receive(dst, src, true)
			if err != nil {
				t.Fatal(err)
			}
			checkFile(t, dst, want)
			if res.Mover != MoverCopy || res.Fallback != "TYPE A" || res.Bytes != int64(len(want)) {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// TestASCIIRoundTrip: a Unix text file sent in TYPE A and received back in
// TYPE A is unchanged.
func TestASCIIRoundTrip(t *testing.T) {
	text := []byte(strings.Repeat("hello world\nsecond line\n\n", 50000))
	src := tempFile(t, text)
	server, client := tcpPair(t, false)
	srv2, cli2 := tcpPair(t, false)
	go func() {
		io.Copy(cli2, client) // the "client" bounces the wire bytes back
		cli2.CloseWrite()
	}()
	dst := newDst(t)
	done := make(chan error, 1)
	go func() {
		_, err := Receive(dst, srv2, true)
		done <- err
	}()
	if _, err := Send(server, src, 0, true); err != nil {
		t.Fatal(err)
	}
	server.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, text)
}

// TestAbort closes the data connection from another goroutine while the
// mover waits in the netpoller (ABOR): it must return promptly.
func TestAbort(t *testing.T) {
	big := tempFile(t, randomBytes(64<<20, 1))
	cases := []struct {
		name string
		run  func(server *net.TCPConn) (Result, error)
	}{
		// client never reads: sendfile fills the socket buffers, then waits.
		{"send/sendfile", func(s *net.TCPConn) (Result, error) { return Send(s, big, 0, false) }},
		{"send/copy", func(s *net.TCPConn) (Result, error) { return Send(s, big, 0, true) }},
		// client never writes: splice waits for data.
		{"receive/splice", func(s *net.TCPConn) (Result, error) { return Receive(newDst(t), s, false) }},
		{"receive/copy", func(s *net.TCPConn) (Result, error) { return Receive(newDst(t), s, true) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server, _ := tcpPair(t, false)
			type out struct {
				res Result
				err error
			}
			ch := make(chan out, 1)
			go func() {
				r, err := tc.run(server)
				ch <- out{r, err}
			}()
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			server.Close()
			select {
			case o := <-ch:
				if !errors.Is(o.err, net.ErrClosed) || !IsAbort(o.err) {
					t.Errorf("err = %v, want net.ErrClosed", o.err)
				}
				t.Logf("returned %v after Close, %d bytes, %v", time.Since(start), o.res.Bytes, o.err)
			case <-time.After(2 * time.Second):
				t.Fatal("mover did not return after Close")
			}
		})
	}
}

// TestDeadline: deadlines set by the caller on the conn are honoured by the
// RawConn waits.
func TestDeadline(t *testing.T) {
	big := tempFile(t, randomBytes(64<<20, 2))
	t.Run("send", func(t *testing.T) {
		server, _ := tcpPair(t, false)
		server.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
		start := time.Now()
		_, err := Send(server, big, 0, false)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("receive", func(t *testing.T) {
		server, client := tcpPair(t, false)
		client.Write([]byte("some"))
		server.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		dst := newDst(t)
		res, err := Receive(dst, server, false)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if res.Bytes != 4 {
			t.Errorf("bytes %d, want the 4 that arrived", res.Bytes)
		}
		checkFile(t, dst, []byte("some"))
	})
}

// TestStallTimeout: a slow but steady transfer outlives StallTimeout; a
// stalled one fails after it.
func TestStallTimeout(t *testing.T) {
	server, client := tcpPair(t, false)
	go func(client *net.TCPConn) {
		for i := 0; i < 8; i++ {
			client.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
		client.CloseWrite()
	}(client)
	res, err := ReceiveWith(newDst(t), server, Options{StallTimeout: 200 * time.Millisecond})
	if err != nil || res.Bytes != 8 {
		t.Fatalf("slow transfer: %+v %v", res, err)
	}
	server, client = tcpPair(t, false)
	client.Write([]byte("x"))
	start := time.Now()
	_, err = ReceiveWith(newDst(t), server, Options{StallTimeout: 200 * time.Millisecond})
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("stalled transfer: %v after %v", err, time.Since(start))
	}
}

type countPacer struct {
	mu     sync.Mutex
	total  int
	calls  int
	max    int
	failAt int
}

func (p *countPacer) Wait(n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += n
	p.calls++
	p.max = max(p.max, n)
	if p.failAt > 0 && p.total >= p.failAt {
		return errors.New("quota")
	}
	return nil
}

func TestPacer(t *testing.T) {
	data := randomBytes(16<<20+5, 4)
	src := tempFile(t, data)
	server, client := tcpPair(t, false)
	p := &countPacer{}
	res, got := sendAndCollect(t, server, client, src, 0, Options{Pacer: p})
	if !bytes.Equal(got, data) || res.Mover != MoverSendfile {
		t.Fatalf("paced send: %+v", res)
	}
	if p.total != len(data) || p.max > pacedChunk {
		t.Errorf("pacer saw %d bytes in %d calls (max %d)", p.total, p.calls, p.max)
	}

	server, client = tcpPair(t, false)
	p = &countPacer{}
	dst := newDst(t)
	feed(client, data, 1<<20)
	res, err := ReceiveWith(dst, server, Options{Pacer: p})
	if err != nil || res.Mover != MoverSplice {
		t.Fatalf("paced receive: %+v %v", res, err)
	}
	checkFile(t, dst, data)
	if p.total != len(data) || p.max > pipeSize {
		t.Errorf("pacer saw %d bytes in %d calls (max %d)", p.total, p.calls, p.max)
	}

	server, client = tcpPair(t, false)
	go io.Copy(io.Discard, client)
	_, err = SendWith(server, src, 0, Options{Pacer: &countPacer{failAt: 3 << 20}})
	if err == nil || !strings.Contains(err.Error(), "quota") {
		t.Errorf("pacer error not returned: %v", err)
	}
}

func TestSetOOBInline(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprint("inline=", inline), func(t *testing.T) {
			server, client := tcpPair(t, false)
			if inline {
				if err := SetOOBInline(server); err != nil {
					t.Fatal(err)
				}
			}
			// What ftplib's abort() does: IAC IP IAC with MSG_OOB,
			// the last byte (DM) being the urgent one, then ABOR.
			rc, _ := client.SyscallConn()
			var serr error
			rc.Write(func(fd uintptr) bool {
				serr = unix.Sendto(int(fd), []byte{0xff, 0xf4, 0xff, 0xf2}, unix.MSG_OOB, nil)
				return true
			})
			if serr != nil {
				t.Fatal(serr)
			}
			client.Write([]byte("ABOR\r\n"))
			client.CloseWrite()
			got, _ := io.ReadAll(server)
			want := []byte("\xff\xf4\xff\xf2ABOR\r\n")
			if !inline {
				want = []byte("\xff\xf4\xffABOR\r\n") // the DM byte is lost
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %q, want %q", got, want)
			}
		})
	}
}

// TestSendStallTimeout: a slow reader keeps a sendfile transfer alive past
// StallTimeout (the deadline moves on every bit of progress); a reader
// that stops makes it fail.
func TestSendStallTimeout(t *testing.T) {
	const stall = 300 * time.Millisecond
	// Default (autotuned) socket buffers: shrinking them below the
	// loopback MSS (64 KiB) makes TCP itself stall on its persist timer.
	data := randomBytes(24<<20, 12)
	src := tempFile(t, data)
	server, client := tcpPair(t, false)
	type readerOut struct {
		total  int
		maxGap time.Duration
	}
	got := make(chan readerOut, 1)
	go func() {
		buf := make([]byte, 256<<10)
		total := 0
		var maxGap time.Duration
		last := time.Now()
		for {
			n, err := client.Read(buf)
			total += n
			if err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
			maxGap = max(maxGap, time.Since(last))
			last = time.Now()
		}
		got <- readerOut{total, maxGap}
	}()
	start := time.Now()
	// One chunk for the whole file: only the refresh on progress inside
	// the RawConn.Write callback can keep the deadline ahead.
	res, err := SendWith(server, src, 0, Options{StallTimeout: stall, Chunk: 64 << 20})
	server.Close()
	r := <-got
	t.Logf("reader: longest read period %v", r.maxGap)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && r.maxGap >= stall*3/4 {
			t.Skipf("machine too loaded: the reader itself stalled %v", r.maxGap)
		}
		t.Fatalf("slow reader: %v after %v", err, time.Since(start))
	}
	if r.total != len(data) || res.Bytes != int64(len(data)) {
		t.Fatalf("got %d, res %+v", r.total, res)
	}
	t.Logf("slow transfer took %v with a %v stall timeout", time.Since(start), stall)

	big := tempFile(t, randomBytes(64<<20, 13)) // more than the socket buffers hold
	server, _ = tcpPair(t, false)
	start = time.Now()
	_, err = SendWith(server, big, 0, Options{StallTimeout: stall})
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("stalled: %v after %v", err, time.Since(start))
	}
}

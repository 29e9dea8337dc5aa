package mgmt

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs s on a real listener from Listen and returns its base URL.
func serve(t *testing.T, s *Server, addr string) (base string, ln net.Listener) {
	t.Helper()
	ln, err := s.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { hs.Close(); <-done })
	scheme := "http://"
	if s.TLS != nil {
		scheme = "https://"
	}
	return scheme + ln.Addr().String(), ln
}

// countWriter counts what slog writes, and keeps none of it.
type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle empties the sync.Pool victim caches
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// The attack: unauthenticated requests with 1 MB paths, over real
// HTTP. With the header limit raised so that they reach the access log,
// what it keeps stays within Limits.AccessLogBytes (set so that the bound,
// not the count, decides what goes), every target is cut to MaxTargetBytes, and the heap after GC grows by no more than the access
// log's bound plus what one request may bring (MaxHeaderBytes) per
// connection in flight. Before the fix it kept every path: 150 MB.
func TestFloodOfLongPathsStaysBounded(t *testing.T) {
	const (
		conns   = 2
		pathLen = 1 << 20
	)
	requests := 150 // the numbers
	if raceEnabled {
		requests = 24 // still three times what the bound lets through
	}
	lim := Limits{MaxHeaderBytes: 2 << 20, AccessLogBytes: 16 << 10, MaxTargetBytes: 1 << 10}
	logs := &countWriter{}
	s := &Server{Tokens: newFixture(t).s.Tokens, Query: fakeQuery{}, Limits: lim, Log: slog.New(slog.NewJSONHandler(logs, nil))}
	base, _ := serve(t, s, "127.0.0.1:0")
	url := base + "/v1/entities/" + strings.Repeat("a", pathLen)
	tr := &http.Transport{MaxIdleConnsPerHost: conns}
	client := &http.Client{Transport: tr}

	before := heapAfterGC()
	var wg sync.WaitGroup
	var statuses sync.Map
	next := make(chan int)
	for range conns {
		wg.Go(func() {
			for range next {
				resp, err := client.Get(url)
				if err != nil {
					t.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n, _ := statuses.LoadOrStore(resp.StatusCode, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		})
	}
	for i := range requests {
		next <- i
	}
	close(next)
	wg.Wait()
	tr.CloseIdleConnections()
	after := heapAfterGC()

	if n, ok := statuses.Load(http.StatusUnauthorized); !ok || n.(*atomic.Int64).Load() != int64(requests) {
		t.Fatalf("want %d answers 401, got %v", requests, n)
	}
	got := s.Accesses(2*requests, "")
	if _, total := s.ring.list(1, ""); total != uint64(requests) {
		t.Fatalf("%d accesses recorded, want %d", total, requests)
	}
	for _, a := range got {
		if len(a.Target) > lim.MaxTargetBytes+64 || !strings.HasSuffix(a.Target, "...[cut: 1048589 bytes]") || a.Decision != NoToken {
			t.Fatalf("access kept a %d-byte target %.80q... (decision %s)", len(a.Target), a.Target, a.Decision)
		}
	}
	held := s.ring.held()
	if held > lim.AccessLogBytes || len(got) == 0 || len(got) == requests {
		t.Fatalf("the access log holds %d bytes in %d accesses, bound %d", held, len(got), lim.AccessLogBytes)
	}
	if max := int64(requests * (lim.MaxTargetBytes + 1024)); logs.n.Load() > max {
		t.Errorf("slog got %d bytes for %d requests, want at most %d", logs.n.Load(), requests, max)
	}
	bound := lim.AccessLogBytes + conns*lim.MaxHeaderBytes
	grew := int64(after) - int64(before)
	t.Logf("heap after GC: %d -> %d bytes (grew %d, bound %d); access log holds %d bytes in %d accesses",
		before, after, grew, bound, held, len(got))
	if grew > int64(bound) {
		t.Fatalf("heap grew %d bytes after %d requests with 1 MB paths, bound %d", grew, requests, bound)
	}
}

// With the default header limit a 1 MB path never reaches a handler:
// net/http answers 431 and nothing is kept.
func TestDefaultLimitsRefuseHugeRequests(t *testing.T) {
	f := newFixture(t)
	base, _ := serve(t, f.s, "127.0.0.1:0")
	resp, err := http.Get(base + "/v1/entities/" + strings.Repeat("a", 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("1 MB path: %d, want 431", resp.StatusCode)
	}
	if _, total := f.s.ring.list(1, ""); total != 0 || f.s.ring.held() != 0 {
		t.Fatalf("a refused request was kept: %d recorded, %d bytes", total, f.s.ring.held())
	}
	// A body over the limit is refused with 413, and logged as an access.
	big := `{"subject":"` + strings.Repeat("x", maxBodyBytes) + `"}`
	req, _ := http.NewRequest("POST", base+"/v1/control/forget", strings.NewReader(big))
	req.Header.Set("Authorization", "Bearer "+governanceTok)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || len(f.ctl.calls()) != 0 {
		t.Fatalf("big body: %d, %d commands issued", resp.StatusCode, len(f.ctl.calls()))
	}
	if a := f.s.Accesses(1, ""); len(a) != 1 || a[0].Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("access log: %+v", a)
	}
}

// The ring drops the oldest accesses to stay within its byte bound as
// well as its count bound, and lets their strings go.
func TestAccessRingBytesBound(t *testing.T) {
	r := newAccessRing(100, 10*(accessSlot+200))
	for i := range 50 {
		r.add(Access{Method: "GET", Target: "/v1/entities/" + strings.Repeat("k", 183) + string(rune('a'+i%26))})
	}
	list, total := r.list(1000, "")
	if total != 50 || len(list) != 10 || r.held() > r.maxBytes {
		t.Fatalf("kept %d of %d, %d bytes, bound %d", len(list), total, r.held(), r.maxBytes)
	}
	if last := list[0].Target; last[len(last)-1] != byte('a'+49%26) {
		t.Fatalf("newest first: %q", last[len(last)-10:])
	}
	live := 0
	for _, a := range r.buf {
		if a.Target != "" {
			live++
		}
	}
	if live != r.n {
		t.Fatalf("%d slots still hold an access, %d are kept", live, r.n)
	}
	if c := clip("/v1/é"+strings.Repeat("x", 10), 5); c != "/v1/...[cut: 16 bytes]" {
		t.Fatalf("clip cut inside a character: %q", c)
	}
}

// A host-less address listens on loopback; exposing the port takes a host.
func TestListenAddress(t *testing.T) {
	s := &Server{}
	ln, err := s.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	ip := ln.Addr().(*net.TCPAddr).IP
	ln.Close()
	if !ip.IsLoopback() {
		t.Fatalf(":0 listens on %s, want loopback", ip)
	}
	ln, err = s.Listen("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	ip = ln.Addr().(*net.TCPAddr).IP
	ln.Close()
	if !ip.IsUnspecified() {
		t.Fatalf("0.0.0.0:0 listens on %s", ip)
	}
	if _, err := s.Listen("8080"); err == nil || !strings.Contains(err.Error(), "want host:port") {
		t.Fatalf("bad address: %v", err)
	}
	hs := (&Server{Limits: Limits{IdleTimeout: time.Minute}}).HTTPServer()
	if hs.MaxHeaderBytes != defaultMaxHeaderBytes || hs.ReadHeaderTimeout != defaultReadHeaderTimeout ||
		hs.ReadTimeout != defaultReadTimeout || hs.IdleTimeout != time.Minute {
		t.Fatalf("http.Server limits: %d %v %v %v", hs.MaxHeaderBytes, hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout)
	}
}

// A client that sends half a request line and stalls is disconnected by
// ReadHeaderTimeout; the test waits for the close, it does not time it.
func TestStalledClientIsDisconnected(t *testing.T) {
	s := &Server{Limits: Limits{ReadHeaderTimeout: 100 * time.Millisecond}}
	_, ln := serve(t, s, "127.0.0.1:0")
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a bound on the wait, not the assertion
	_, err = bufio.NewReader(c).ReadString('\n')
	if err == nil {
		t.Fatal("the server answered a request it never got")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a stalled connection open")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshlet mgmt test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "mgmt.crt"), filepath.Join(dir, "mgmt.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// Over real TLS: open and guarded routes answer, tokens work, and the
// port does not also speak plain HTTP.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg, err := LoadTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	f.s.TLS = cfg
	base, ln := serve(t, f.s, "127.0.0.1:0")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("healthz over TLS: %d, %+v", resp.StatusCode, resp.TLS)
	}
	req, _ := http.NewRequest("GET", base+"/v1/entities/o-1", nil)
	req.Header.Set("Authorization", "Bearer "+consumerTok)
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("query over TLS: %d", resp.StatusCode)
	}
	if a := f.s.Accesses(1, ""); len(a) != 1 || a[0].Principal != "cathy" {
		t.Fatalf("access over TLS: %+v", a)
	}
	// Plain HTTP to the TLS port gets no answer.
	if resp, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the TLS port answered plain HTTP")
		}
	}
	// A client that does not trust the certificate is refused.
	if _, err := http.Get(base + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	if _, err := LoadTLS(filepath.Join(t.TempDir(), "none.crt"), keyFile); err == nil || !strings.Contains(err.Error(), "none.crt") {
		t.Fatalf("missing certificate: %v", err)
	}
}

package lineage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type seenRequest struct {
	method, path, contentType, auth string
	body                            []byte
}

func lineageServer(t *testing.T, status int, answer string) (*httptest.Server, func() []seenRequest) {
	t.Helper()
	var mu sync.Mutex
	var seen []seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), body})
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

func TestHTTPTransportPostsEvents(t *testing.T) {
	v := loadSpec(t)
	srv, seen := lineageServer(t, http.StatusCreated, "")
	tr := &HTTPTransport{URL: srv.URL, APIKey: "s3cret", Client: srv.Client()}
	r := startTestRun(t, tr)
	if err := r.Running(t.Context(), Stats{Inputs: map[string]Counts{"orders": {Rows: 1, Bytes: 10}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := seen()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want START RUNNING ABORT", len(reqs))
	}
	for i, want := range []EventType{EventStart, EventRunning, EventAbort} {
		req := reqs[i]
		if req.method != http.MethodPost || req.path != "/api/v1/lineage" {
			t.Errorf("request %d: %s %s", i, req.method, req.path)
		}
		if req.contentType != "application/json" || req.auth != "Bearer s3cret" {
			t.Errorf("request %d: Content-Type %q Authorization %q", i, req.contentType, req.auth)
		}
		var ev RunEvent
		if err := json.Unmarshal(req.body, &ev); err != nil {
			t.Fatalf("request %d body: %v", i, err)
		}
		if ev.EventType != want || ev.Run.RunID != r.ID().String() {
			t.Errorf("request %d: %s of run %s", i, ev.EventType, ev.Run.RunID)
		}
		if err := v.validate(req.body); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
}

func TestHTTPTransportEndpointAndNoKey(t *testing.T) {
	srv, seen := lineageServer(t, http.StatusOK, "")
	tr := &HTTPTransport{URL: srv.URL + "/openlineage/", Endpoint: "/v2/events"}
	if err := tr.Emit(t.Context(), &RunEvent{EventType: EventOther}); err != nil {
		t.Fatal(err)
	}
	req := seen()[0]
	if req.path != "/openlineage/v2/events" || req.auth != "" {
		t.Errorf("path %q Authorization %q", req.path, req.auth)
	}
}

func TestHTTPTransportRefusal(t *testing.T) {
	answer := "backend exploded: " + strings.Repeat("x", 2000)
	srv, _ := lineageServer(t, http.StatusInternalServerError, answer)
	tr := &HTTPTransport{URL: srv.URL}
	err := tr.Emit(t.Context(), &RunEvent{EventType: EventStart})
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T), want *StatusError", err, err)
	}
	if se.StatusCode != http.StatusInternalServerError || len(se.Body) != maxErrorBody || !se.Truncated {
		t.Errorf("status %d, %d body bytes, truncated %v", se.StatusCode, len(se.Body), se.Truncated)
	}
	msg := err.Error()
	if !strings.Contains(msg, "500 Internal Server Error") || !strings.Contains(msg, "backend exploded") || strings.Contains(msg, strings.Repeat("x", 600)) {
		t.Errorf("message %.200q...", msg)
	}

	// A run whose backend refuses START does not start.
	if _, err := Start(t.Context(), tr, testJob()); !errors.As(err, &se) {
		t.Errorf("Start through a refusing backend: %v", err)
	}
}

func TestHTTPTransportUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := (&HTTPTransport{URL: url}).Emit(context.Background(), &RunEvent{})
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Errorf("error %v, want one naming %s", err, url)
	}
}

// TestFileTransportAppendsJSONLines writes from many goroutines at once and
// reads back one whole event per line, after what the file already held.
func TestFileTransportAppendsJSONLines(t *testing.T) {
	v := loadSpec(t)
	path := filepath.Join(t.TempDir(), "lineage.jsonl")
	if err := os.WriteFile(path, []byte("{\"kept\":true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr := &FileTransport{Path: path}
	r := startTestRun(t, tr)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				stats := Stats{Outputs: map[string]Counts{"orders_enriched": {Rows: int64(w*each + i), Bytes: 1}}}
				if err := r.Running(t.Context(), stats); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := r.Stop(t.Context(), nil); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var lines [][]byte
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if want := 1 + 1 + writers*each + 1; len(lines) != want {
		t.Fatalf("%d lines, want %d", len(lines), want)
	}
	if string(lines[0]) != `{"kept":true}` {
		t.Errorf("first line %q: the file was not appended to", lines[0])
	}
	rows := map[int64]bool{}
	for i, line := range lines[1:] {
		var ev RunEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("line %d: %v", i+2, err)
		}
		if err := v.validate(line); err != nil {
			t.Errorf("line %d: %v", i+2, err)
		}
		if ev.EventType == EventRunning {
			rows[ev.Outputs[0].OutputFacets.OutputStatistics.RowCount] = true
		}
	}
	if len(rows) != writers*each {
		t.Errorf("%d distinct RUNNING events, want %d", len(rows), writers*each)
	}
}

func TestMultiSendsToAll(t *testing.T) {
	a, c := &recorder{}, &recorder{}
	b := &recorder{fail: func(int) error { return errors.New("b is down") }}
	err := Multi{a, b, c}.Emit(t.Context(), &RunEvent{EventType: EventOther})
	if err == nil || !strings.Contains(err.Error(), "b is down") {
		t.Errorf("error %v", err)
	}
	if len(a.sent) != 1 || len(c.sent) != 1 {
		t.Errorf("delivered %d and %d, want one each despite b", len(a.sent), len(c.sent))
	}
}

package lineage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
)

// Transport delivers events to a lineage backend. Emit must be safe for
// concurrent use.
type Transport interface {
	Emit(ctx context.Context, ev *RunEvent) error
}

// defaultHTTPClient is used when HTTPTransport.Client is nil. The timeout
// keeps one stuck backend from stalling a product's shutdown.
var defaultHTTPClient = &http.Client{Timeout: defaultHTTPTimeout}

// HTTPTransport POSTs each event as JSON to URL/Endpoint.
type HTTPTransport struct {
	URL      string       // backend base URL, e.g. http://marquez:5000
	Endpoint string       // path under URL; DefaultEndpoint when empty
	APIKey   string       // sent as "Authorization: Bearer <APIKey>" when set
	Client   *http.Client // a client with a 10 s timeout when nil
}

// StatusError is a backend's refusal: any answer outside 2xx.
type StatusError struct {
	URL        string
	StatusCode int
	Status     string // e.g. "500 Internal Server Error"
	Body       []byte // the first bytes of the answer, at most 512
	Truncated  bool   // the answer was longer than Body
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("lineage: POST %s: %s", e.URL, e.Status)
	if body := bytes.TrimSpace(e.Body); len(body) > 0 {
		msg += ": " + string(body)
		if e.Truncated {
			msg += "..."
		}
	}
	return msg
}

// Emit posts ev and waits for the answer.
func (t *HTTPTransport) Emit(ctx context.Context, ev *RunEvent) error {
	if t.URL == "" {
		return errors.New("lineage: HTTPTransport has no URL")
	}
	endpoint := t.Endpoint
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	target, err := url.JoinPath(t.URL, endpoint)
	if err != nil {
		return fmt.Errorf("lineage: HTTPTransport URL %q with endpoint %q: %w", t.URL, endpoint, err)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("lineage: encoding %s event: %w", ev.EventType, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("lineage: POST %s: %w", target, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if t.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.APIKey)
	}
	client := t.Client
	if client == nil {
		client = defaultHTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("lineage: POST %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	truncated := len(head) > maxErrorBody
	if truncated {
		head = head[:maxErrorBody]
	}
	return &StatusError{URL: target, StatusCode: resp.StatusCode, Status: resp.Status, Body: head, Truncated: truncated}
}

// FileTransport appends each event to Path as one line of JSON (JSON Lines).
// It is safe for concurrent use within a process; use it by pointer. Lines
// are not fsynced: the file is a log for people and tests, not a ledger.
type FileTransport struct {
	Path string

	mu sync.Mutex
}

// Emit appends ev to the file, creating it if needed.
func (t *FileTransport) Emit(_ context.Context, ev *RunEvent) error {
	line, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("lineage: encoding %s event: %w", ev.EventType, err)
	}
	line = append(line, '\n')
	t.mu.Lock()
	defer t.mu.Unlock()
	f, err := os.OpenFile(t.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("lineage: %w", err)
	}
	// One write per line: with O_APPEND the line lands whole at the end.
	_, werr := f.Write(line)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("lineage: appending to %s: %w", t.Path, err)
	}
	return nil
}

// Multi sends each event to every transport in order; it fails if any fails,
// after trying them all.
type Multi []Transport

// Emit sends ev to every transport.
func (m Multi) Emit(ctx context.Context, ev *RunEvent) error {
	var errs []error
	for _, t := range m {
		if err := t.Emit(ctx, ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

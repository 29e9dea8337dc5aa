package schemas

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Embedded is an in-memory Confluent-compatible schema registry on a real
// TCP port, so non-Go consumers and separate processes can reach it too.
// Its state dies with it.
type Embedded struct {
	ln   net.Listener
	srv  *http.Server
	done chan error

	closeOnce sync.Once
	closeErr  error
}

// StartEmbedded serves a registry on addr ("127.0.0.1:0" for any free port).
func StartEmbedded(addr string) (*Embedded, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("schemas: embedded registry: %w", err)
	}
	// srfake.New would also start an httptest server of its own;
	// NewRegistry builds the handler only, so ours is the one listener.
	reg := srfake.NewRegistry()
	e := &Embedded{
		ln:   ln,
		srv:  &http.Server{Handler: reg.Handler(), ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() { e.done <- e.srv.Serve(ln) }()
	return e, nil
}

// URL is the registry's base URL, e.g. "http://127.0.0.1:8081".
func (e *Embedded) URL() string { return "http://" + e.ln.Addr().String() }

// Close stops the listener and closes open connections. Later calls
// return the first call's result.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = e.srv.Close()
		if err := <-e.done; !errors.Is(err, http.ErrServerClosed) {
			e.closeErr = errors.Join(e.closeErr, err)
		}
	})
	return e.closeErr
}

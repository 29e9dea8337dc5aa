package mgmt

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Limits bound what requests can cost the management port, so that no
// client, authenticated or not, can make it hold memory or connections
// it does not give back. A zero field takes its default.
type Limits struct {
	// MaxHeaderBytes bounds the request line and headers (default 16
	// KiB); net/http answers 431 beyond it, before any handler runs.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body (default 64 KiB); a handler that
	// reads more gets an error and answers 413.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading the request line and headers
	// (default 5s), ReadTimeout the whole request, body included (default
	// 30s), IdleTimeout a kept-alive connection waiting for its next
	// request (default 2m).
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// AccessLogBytes bounds the memory the in-memory access log holds,
	// all accesses together (default 4 MiB), alongside the count bound
	// Server.AccessLogSize: the oldest go first when either is reached.
	AccessLogBytes int
	// MaxTargetBytes is the most of a request's path and query an access
	// keeps (default 1 KiB); a longer one is cut and says how long it was.
	MaxTargetBytes int
}

// Every default of Limits, in one place.
const (
	defaultMaxHeaderBytes    = 16 << 10
	defaultReadHeaderTimeout = 5 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultIdleTimeout       = 2 * time.Minute
	defaultAccessLogBytes    = 4 << 20
	defaultMaxTargetBytes    = 1 << 10
	maxMethodBytes           = 32 // of a method an access keeps: net/http takes any token
)

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = maxBodyBytes
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = defaultReadTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = defaultIdleTimeout
	}
	if l.AccessLogBytes <= 0 {
		l.AccessLogBytes = defaultAccessLogBytes
	}
	if l.MaxTargetBytes <= 0 {
		l.MaxTargetBytes = defaultMaxTargetBytes
	}
	return l
}

// Listen opens the management port's listener on addr. An address without
// a host (":8080") listens on loopback only: exposing the port takes a
// host given on purpose ("0.0.0.0:8080", "[::]:8080", an interface's
// address or name). With Server.TLS set, the listener speaks TLS only.
func (s *Server) Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("mgmt: listen address %q: want host:port, or :port for loopback: %w", addr, err)
	}
	if host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mgmt: %w", err)
	}
	if s.TLS != nil {
		cfg := s.TLS.Clone()
		if cfg.MinVersion < tls.VersionTLS12 {
			cfg.MinVersion = tls.VersionTLS12
		}
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// HTTPServer is the http.Server to serve Handler with on a listener from
// Listen: its header size and timeouts are the Limits'. The caller runs
// Serve and Shutdown.
func (s *Server) HTTPServer() *http.Server {
	l := s.limits()
	return &http.Server{
		Handler:           s.Handler(),
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		IdleTimeout:       l.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log().Handler(), slog.LevelWarn),
	}
}

// LoadTLS reads a PEM certificate chain and its private key for
// Server.TLS.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("mgmt: TLS certificate %s, key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func (s *Server) limits() Limits { return s.Limits.withDefaults() }

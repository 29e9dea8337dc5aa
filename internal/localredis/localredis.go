// Package localredis runs a real redis-server on a free loopback port, in
// memory only: the Redis of `meshlet dev` and of the tests that need one.
package localredis

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotInstalled means there is no redis-server on PATH.
var ErrNotInstalled = errors.New("redis-server not found: install redis-server (apt-get install -y redis-server)")

// Server is a running redis-server.
type Server struct {
	Addr string // host:port on 127.0.0.1
	cmd  *exec.Cmd
	once sync.Once
}

// Start runs redis-server on a free port with dir as its working directory
// and waits (at most 5s) until it accepts connections.
func Start(dir string) (*Server, error) { return StartOn(dir, 0) }

// StartOn is Start on the given port (0: a free one).
func StartOn(dir string, port int) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	var out bytes.Buffer // redis writes little; a buffer never blocks it
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd}
	for range 200 {
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			c.Close()
			return s, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("redis-server on %s did not start: %s", s.Addr, strings.TrimSpace(out.String()))
}

// Stop kills the server and waits for it; it may be called more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	})
}

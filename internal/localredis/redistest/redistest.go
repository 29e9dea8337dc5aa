// Package redistest gives a test a real redis-server (internal/localredis)
// and a client of it, both stopped when the test ends.
package redistest

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis"
)

// Start runs a redis-server for t and connects to it. It fails t when
// redis-server is not installed: tests that need Redis never skip.
func Start(t testing.TB) (*localredis.Server, *redis.Client) {
	t.Helper()
	srv, err := localredis.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	return srv, rdb
}

// Client is Start for a test that needs only the client.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	_, rdb := Start(t)
	return rdb
}

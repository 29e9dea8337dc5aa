package mesh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

// logRecorder is a slog.Handler that keeps every record's level and message.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// count is how many records have the level and message.
func (l *logRecorder) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

const (
	msgDown      = "mesh registry unreachable; retrying until it answers"
	msgStillDown = "mesh registry still unreachable"
	msgBack      = "mesh registry reachable again; registered"
	msgGone      = "mesh registry: registration gone (expired or lost); registering again"
)

// runKeep runs Keep until the test ends or stop is called.
func runKeep(t *testing.T, reg *Registry, p Product, instance string, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Keep(ctx, p, instance, 10*time.Millisecond, log)
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// TestMeshKeepReregistersAfterFlush: Redis loses everything; Keep's next
// heartbeat finds the registration gone and registers again. Stopping
// Keep deregisters, well before the 15s TTL would have.
func TestMeshKeepReregistersAfterFlush(t *testing.T) {
	_, rdb := redistest.Start(t)
	ctx := context.Background()
	reg := New(rdb)
	logs := &logRecorder{}
	stop := runKeep(t, reg, inventory(), "inventory-0", slog.New(logs))
	found := func() bool { _, err := reg.Get(ctx, inventoryURN); return err == nil }
	eventually(t, "Keep registers", found)

	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Found after the flush returned: only a new registration can have put it back.
	eventually(t, "Keep registers again after FLUSHDB", found)
	if logs.count(slog.LevelInfo, msgGone) == 0 {
		t.Error("no log line says the registration was gone")
	}
	if n := logs.count(slog.LevelWarn, msgDown); n != 0 {
		t.Errorf("%d outage warning(s) for a flush, want none", n)
	}

	stop()
	if _, err := reg.Get(ctx, inventoryURN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Keep stopped: %v, want ErrNotFound", err)
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		t.Fatalf("%d key(s) left after Keep deregistered", n)
	}
}

// TestMeshKeepWarnsOncePerOutage cuts Keep off from a real Redis, through a
// TCP proxy, twice: each outage is one warning however many heartbeats
// fail, and Keep registers again when Redis answers.
func TestMeshKeepWarnsOncePerOutage(t *testing.T) {
	srv, rdb := redistest.Start(t)
	ctx := context.Background()
	px := newProxy(t, srv.Addr)
	// No retries inside the client: each failed heartbeat is one failed tick.
	viaProxy := redis.NewClient(&redis.Options{Addr: px.addr(), MaxRetries: -1})
	t.Cleanup(func() { viaProxy.Close() })
	logs := &logRecorder{}
	stop := runKeep(t, New(viaProxy), orders(), "orders-0", slog.New(logs))
	direct := New(rdb)
	eventually(t, "Keep registers", func() bool { _, err := direct.Get(ctx, ordersURN); return err == nil })

	for outage := 1; outage <= 2; outage++ {
		failures := func() int { return logs.count(slog.LevelWarn, msgDown) + logs.count(slog.LevelDebug, msgStillDown) }
		before := failures()
		px.setDown(true)
		eventually(t, "four heartbeats fail", func() bool { return failures() >= before+4 })
		if n := logs.count(slog.LevelWarn, msgDown); n != outage {
			t.Fatalf("outage %d: %d warning(s) so far, want %d", outage, n, outage)
		}
		// Lose the registration during the outage too: Keep must put it back.
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		px.setDown(false)
		eventually(t, "Keep says Redis is back", func() bool { return logs.count(slog.LevelInfo, msgBack) == outage })
		eventually(t, "Keep registers again", func() bool { _, err := direct.Get(ctx, ordersURN); return err == nil })
	}
	stop()
	if _, err := direct.Get(ctx, ordersURN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Keep stopped: %v, want ErrNotFound", err)
	}
}

// proxy forwards TCP to a target until set down; while down it closes
// every connection, open and new, as a dead network path would.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		// Held until both ends are tracked, so setDown cannot miss them.
		p.mu.Lock()
		u, err := net.Dial("tcp", p.target)
		if p.down || err != nil {
			c.Close()
			if u != nil {
				u.Close()
			}
			p.mu.Unlock()
			continue
		}
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go pipe(c, u)
		go pipe(u, c)
	}
}

func pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

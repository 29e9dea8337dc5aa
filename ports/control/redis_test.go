package control

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

const testStream = "meshlet.control." + testProduct

func newRedisBus(t *testing.T, rdb *redis.Client, instance string, opts ...Option) *Bus {
	t.Helper()
	b, err := NewRedisBus(rdb, testProduct, instance, testLogger(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// pendingCount is how many entries instance's group has delivered and not
// acked.
func pendingCount(t *testing.T, rdb *redis.Client, instance string) int64 {
	t.Helper()
	p, err := rdb.XPending(context.Background(), testStream, instance).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

func TestRedisEveryInstanceRunsEveryCommandOnce(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	api := newRedisBus(t, rdb, "control-port") // publishes only, like the HTTP port's
	a, b := newRedisBus(t, rdb, "a"), newRedisBus(t, rdb, "b")
	var ra, rb recorder
	start(t, a, ra.handle)
	start(t, b, rb.handle)

	c1, c2, c3 := validCommand(KindPause), validCommand(KindPolicy), validCommand(KindResume)
	publish(t, api, c1)
	publish(t, api, c2)
	publish(t, api, c1) // redelivered by an issuer's retry
	publish(t, api, c3)
	outcomes(t, api, c3.ID, "a", "b")

	want := []string{c1.ID, c2.ID, c3.ID}
	for name, r := range map[string]*recorder{"a": &ra, "b": &rb} {
		if got := r.ids(); !slices.Equal(got, want) {
			t.Errorf("instance %s handled %v, want %v", name, got, want)
		}
	}
	for in, o := range outcomes(t, api, c1.ID, "a", "b") {
		if !o.OK() || o.Instance != in || o.Kind != KindPause {
			t.Errorf("outcome of %s on %s: %+v", c1.ID, in, o)
		}
	}
	for _, in := range []string{"a", "b"} {
		waitFor(t, "every delivery acked on "+in, func() bool { return pendingCount(t, rdb, in) == 0 })
	}

	// The records behind idempotency and Results, and their expiry.
	ctx := context.Background()
	for _, key := range []string{
		"meshlet:" + testProduct + ":control:done:a:" + c1.ID,
		"meshlet:" + testProduct + ":control:done:b:" + c1.ID,
		"meshlet:" + testProduct + ":control:outcome:" + c1.ID,
	} {
		ttl, err := rdb.TTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > DefaultRetention {
			t.Errorf("%s: ttl %v, %v; want a TTL of at most %v", key, ttl, err, DefaultRetention)
		}
	}
}

func TestRedisNewInstanceStartsAtStreamEnd(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	a := newRedisBus(t, rdb, "a")
	var ra recorder
	start(t, a, ra.handle)
	old := validCommand(KindReprocess)
	publish(t, a, old)
	outcomes(t, a, old.ID, "a")

	b := newRedisBus(t, rdb, "b")
	var rb recorder
	start(t, b, rb.handle) // joins after old was published
	fresh := validCommand(KindPause)
	publish(t, a, fresh)
	outcomes(t, a, fresh.ID, "a", "b")
	if got := rb.ids(); !slices.Equal(got, []string{fresh.ID}) {
		t.Fatalf("new instance handled %v, want only %s", got, fresh.ID)
	}
	if res, _ := a.Results(context.Background(), old.ID); len(res) != 1 {
		t.Fatalf("old command has outcomes %+v, want only a's", res)
	}
}

// An instance stopped mid-command and restarted under the same name runs
// the command it was stopped in, and those published while it was down,
// and nothing it had finished.
func TestRedisRestartResumesWithoutLossOrRerun(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	ctx := context.Background()
	bus := newRedisBus(t, rdb, "a")
	c1, c2, c3, c4 := validCommand(KindPause), validCommand(KindForget), validCommand(KindResume), validCommand(KindPolicy)

	// First run: c1 completes; c2 is in hand when the instance stops, and
	// its handler gives up as its context ends.
	inHand := make(chan struct{})
	var first recorder
	stop := start(t, bus, func(ctx context.Context, c Command) error {
		first.handle(ctx, c)
		if c.ID == c2.ID {
			close(inHand)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	publish(t, bus, c1)
	outcomes(t, bus, c1.ID, "a")
	publish(t, bus, c2)
	<-inHand
	stop()

	// While it is down: c4 reaches the instance and is handled and marked
	// done, but the instance dies before acking it (staged by hand); then
	// c3 is published. The stopped run's last blocking read may itself
	// have taken c4 (or c3) into the pending list: the same state.
	publish(t, bus, c4)
	err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "a", Consumer: "a", Streams: []string{testStream, ">"}, Count: 1, Block: -1}).Err()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	if err := bus.done.Add(ctx, c4.ID); err != nil {
		t.Fatal(err)
	}
	publish(t, bus, c3)
	if n := pendingCount(t, rdb, "a"); n < 2 {
		t.Fatalf("%d pending before restart, want c2 and c4 at least", n)
	}

	// Second run, same instance.
	var second recorder
	start(t, bus, second.handle)
	outcomes(t, bus, c3.ID, "a")
	if got := second.ids(); !slices.Equal(got, []string{c2.ID, c3.ID}) {
		t.Fatalf("after restart handled %v, want [%s %s] (c2 finished, c3 new; c1 and c4 were done)", got, c2.ID, c3.ID)
	}
	if o := outcomes(t, bus, c2.ID, "a")["a"]; !o.OK() {
		t.Fatalf("c2 outcome %+v", o)
	}
	if first.count(c1.ID)+second.count(c1.ID) != 1 || second.count(c4.ID) != 0 {
		t.Fatalf("a finished command ran again: first %v, second %v", first.ids(), second.ids())
	}
	waitFor(t, "every delivery acked", func() bool { return pendingCount(t, rdb, "a") == 0 })
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("the caller's client was closed by the bus: %v", err)
	}
}

func TestRedisMalformedEntryDoesNotStopBus(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	bus := newRedisBus(t, rdb, "a")
	var r recorder
	start(t, bus, r.handle)
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: testStream, Values: map[string]any{"cmd": "pause"}}).Err(); err != nil {
		t.Fatal(err)
	}
	c := validCommand(KindPause)
	publish(t, bus, c)
	if !outcomes(t, bus, c.ID, "a")["a"].OK() {
		t.Fatal("command after a malformed entry not applied")
	}
	entries, err := rdb.XRange(context.Background(), testStream+".poison", "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("poison stream: %v, %v; want the malformed entry", entries, err)
	}
	m, _ := tolerant{}.Unmarshal(entries[0].Values)
	if !strings.Contains(m.Metadata.Get("reason"), "malformed stream entry") {
		t.Fatalf("poison reason %q", m.Metadata.Get("reason"))
	}
	waitFor(t, "every delivery acked", func() bool { return pendingCount(t, rdb, "a") == 0 })
}

func TestNewRedisBusChecksArguments(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	for _, tc := range []struct{ product, instance, want string }{
		{"products", "a", "product"},
		{testProduct, "", "instance"},
		{testProduct, "pod 1", "instance"},
	} {
		if _, err := NewRedisBus(rdb, tc.product, tc.instance, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewRedisBus(%q, %q): %v; want an error about %s", tc.product, tc.instance, err, tc.want)
		}
	}
	if _, err := NewRedisBus(nil, testProduct, "a", nil); err == nil {
		t.Error("NewRedisBus accepted a nil client")
	}
}

const crashRedisEnv = "CONTROL_CRASH_REDIS"

// TestCrashChild is the child of TestRedisKilledInstanceRedoesOnlyUnfinished:
// instance "a" on the Redis at $CONTROL_CRASH_REDIS, whose forget handler
// says it started and then hangs until the process is killed.
func TestCrashChild(t *testing.T) {
	addr := os.Getenv(crashRedisEnv)
	if addr == "" {
		t.Skip("child process of TestRedisKilledInstanceRedoesOnlyUnfinished")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	bus, err := NewRedisBus(rdb, testProduct, "a", slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	err = bus.Run(context.Background(), func(ctx context.Context, c Command) error {
		if c.Kind == KindForget {
			rdb.Set(ctx, "test:started:"+c.ID, "1", 0)
			select {}
		}
		return nil
	})
	fmt.Fprintln(os.Stderr, "Run:", err)
	os.Exit(3)
}

// A replica killed (SIGKILL) in the middle of a command: the replica
// restarted under the same name runs that command, and not the one it had
// finished.
func TestRedisKilledInstanceRedoesOnlyUnfinished(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns a process")
	}
	rdb := redistest.Client(t)
	ctx := context.Background()
	api := newRedisBus(t, rdb, "control-port")

	child := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	child.Env = append(os.Environ(), crashRedisEnv+"="+rdb.Options().Addr)
	var stderr lockedBuffer
	child.Stdout, child.Stderr = &stderr, &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	})
	waitFor(t, "the child to join", func() bool {
		groups, _ := rdb.XInfoGroups(ctx, testStream).Result()
		return slices.ContainsFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == "a" })
	})

	done, hung, later := validCommand(KindPause), validCommand(KindForget), validCommand(KindResume)
	publish(t, api, done)
	outcomes(t, api, done.ID, "a")
	publish(t, api, hung)
	waitFor(t, "the child to start the forget command", func() bool {
		return rdb.Exists(ctx, "test:started:"+hung.ID).Val() == 1
	})
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	killed = true
	publish(t, api, later)

	bus := newRedisBus(t, rdb, "a")
	var r recorder
	start(t, bus, r.handle)
	outcomes(t, api, later.ID, "a")
	if got := r.ids(); !slices.Equal(got, []string{hung.ID, later.ID}) {
		t.Fatalf("restarted replica handled %v, want [%s %s]; child log:\n%s", got, hung.ID, later.ID, stderr.String())
	}
	if o := outcomes(t, api, hung.ID, "a")["a"]; !o.OK() {
		t.Fatalf("outcome of the interrupted command: %+v", o)
	}
	waitFor(t, "every delivery acked", func() bool { return pendingCount(t, rdb, "a") == 0 })
}

// Redis restarted without persistence (here: flushed) loses the stream and
// the instance's group: the instance joins again by itself and runs the
// commands issued after that.
func TestRedisLostGroupIsJoinedAgain(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	a := newRedisBus(t, rdb, "a")
	var ra recorder
	start(t, a, ra.handle)
	before := validCommand(KindPause)
	publish(t, a, before)
	outcomes(t, a, before.ID, "a")

	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the group joined again", func() bool {
		groups, err := rdb.XInfoGroups(context.Background(), testStream).Result()
		return err == nil && slices.ContainsFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == "a" })
	})
	after := validCommand(KindResume)
	publish(t, a, after)
	outcomes(t, a, after.ID, "a")
	if got := ra.ids(); !slices.Equal(got, []string{before.ID, after.ID}) {
		t.Fatalf("handled %v, want %s then %s", got, before.ID, after.ID)
	}
}

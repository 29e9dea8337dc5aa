package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

// The tests below run against both backends: the behaviour a Handler sees
// must not depend on which one carries the commands.

type backend struct {
	name string
	// open starts whatever the backend needs and returns a factory for
	// buses (one per instance) and, for Redis, the client.
	open func(t *testing.T) (newBus func(instance string, opts ...Option) *Bus, rdb *redis.Client)
}

var backends = []backend{
	{"channel", func(t *testing.T) (func(string, ...Option) *Bus, *redis.Client) {
		log := testLogger(t)
		return func(instance string, opts ...Option) *Bus {
			b := NewChannelBus(append([]Option{Instance(instance), Logger(log)}, opts...)...)
			t.Cleanup(func() { b.Close() })
			return b
		}, nil
	}},
	{"redis", func(t *testing.T) (func(string, ...Option) *Bus, *redis.Client) {
		rdb := redistest.Client(t)
		log := testLogger(t)
		return func(instance string, opts ...Option) *Bus {
			b, err := NewRedisBus(rdb, testProduct, instance, log, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		}, rdb
	}},
}

func eachBackend(t *testing.T, f func(t *testing.T, newBus func(string, ...Option) *Bus, rdb *redis.Client)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			newBus, rdb := be.open(t)
			f(t, newBus, rdb)
		})
	}
}

// testLogger collects the bus's log and prints it only if the test fails,
// so goroutines that log while the test ends are harmless.
func testLogger(t *testing.T) *slog.Logger {
	var buf lockedBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bus log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// recorder is a Handler that remembers every call in order and answers
// with whatever the test says for that command.
type recorder struct {
	mu     sync.Mutex
	calls  []Command
	answer func(c Command, call int) error // call counts from 1 per ID; nil: succeed
}

func (r *recorder) handle(ctx context.Context, c Command) error {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	n := 0
	for _, x := range r.calls {
		if x.ID == c.ID {
			n++
		}
	}
	answer := r.answer
	r.mu.Unlock()
	if answer == nil {
		return nil
	}
	return answer(c, n)
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.ID == id {
			n++
		}
	}
	return n
}

func (r *recorder) call(i int) Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[i]
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.calls))
	for i, c := range r.calls {
		out[i] = c.ID
	}
	return out
}

// start joins b and runs it with h until the returned stop is called (or
// the test ends); stop waits for Run and fails the test if it erred.
func start(t *testing.T, b *Bus, h Handler) (stop func()) {
	t.Helper()
	if err := b.Join(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds; the deadline is there only so that a
// broken bus fails the test instead of hanging it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// outcomes waits until id has an outcome from each of instances and
// returns them, by instance.
func outcomes(t *testing.T, b *Bus, id string, instances ...string) map[string]Outcome {
	t.Helper()
	var got map[string]Outcome
	waitFor(t, fmt.Sprintf("outcomes of %s on %v", id, instances), func() bool {
		res, err := b.Results(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]Outcome{}
		for _, o := range res {
			got[o.Instance] = o
		}
		for _, in := range instances {
			if _, ok := got[in]; !ok {
				return false
			}
		}
		return true
	})
	if len(got) != len(instances) {
		t.Fatalf("outcomes of %s from %d instances, want %d: %+v", id, len(got), len(instances), got)
	}
	return got
}

func publish(t *testing.T, b *Bus, c Command) {
	t.Helper()
	if err := b.Publish(context.Background(), c); err != nil {
		t.Fatalf("publish %s: %v", c.ID, err)
	}
}

func TestBusDeliversCommand(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, _ *redis.Client) {
		b := newBus("a")
		var r recorder
		start(t, b, r.handle)

		sent := validCommand(KindReprocess)
		publish(t, b, sent)
		o := outcomes(t, b, sent.ID, "a")["a"]
		if !o.OK() || o.Kind != KindReprocess || o.Attempts != 1 || o.Error != "" || o.Handled.IsZero() {
			t.Fatalf("outcome %+v", o)
		}
		if r.count(sent.ID) != 1 {
			t.Fatalf("handler ran %d times", r.count(sent.ID))
		}
		got := r.call(0)
		if got.ID != sent.ID || got.Kind != sent.Kind || got.Product != sent.Product || *got.Reprocess != *sent.Reprocess ||
			got.Issuer != sent.Issuer || !got.IssuedAt.Equal(sent.IssuedAt) {
			t.Fatalf("handler got %+v, sent %+v", got, sent)
		}
	})
}

func TestBusPublishFillsDefaultsAndRefusesInvalid(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, rdb *redis.Client) {
		b := newBus("a")
		var r recorder
		start(t, b, r.handle)

		bad := validCommand(KindForget)
		bad.Forget.Subject = ""
		var fe *FieldError
		if err := b.Publish(context.Background(), bad); !errors.As(err, &fe) || fe.Field != "forget.subject" {
			t.Fatalf("Publish of an invalid command: %v", err)
		}
		if rdb != nil {
			other := validCommand(KindPause)
			other.Product = "urn:dataproduct:sales:orders"
			if err := b.Publish(context.Background(), other); !errors.As(err, &fe) || fe.Field != "product" {
				t.Fatalf("Publish of another product's command: %v", err)
			}
		}

		c := validCommand(KindPause)
		c.ID, c.IssuedAt = "", time.Time{}
		if rdb != nil {
			c.Product = "" // the Redis bus knows its product
		}
		publish(t, b, c)
		waitFor(t, "the command", func() bool { return len(r.ids()) == 1 })
		got := r.call(0)
		if got.ID == "" || got.IssuedAt.IsZero() || got.Product != testProduct {
			t.Fatalf("defaults not filled: %+v", got)
		}
		if len(r.ids()) != 1 {
			t.Fatalf("handled %v; the refused commands must not travel", r.ids())
		}
	})
}

func TestBusRunsEachIDOncePerInstance(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, _ *redis.Client) {
		b := newBus("a")
		var r recorder
		start(t, b, r.handle)

		c1, c2 := validCommand(KindPause), validCommand(KindResume)
		publish(t, b, c1)
		publish(t, b, c1) // an issuer's retry: same ID
		publish(t, b, c2)
		outcomes(t, b, c2.ID, "a")
		// Commands are handled one at a time in order, so the duplicate,
		// published before c2, has been settled by now.
		if got := r.ids(); len(got) != 2 || got[0] != c1.ID || got[1] != c2.ID {
			t.Fatalf("handled %v, want [%s %s]", got, c1.ID, c2.ID)
		}
	})
}

func TestBusRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, _ *redis.Client) {
		b := newBus("a", Retries(3, time.Millisecond))
		flaky := validCommand(KindPolicy)
		r := recorder{answer: func(c Command, call int) error {
			if c.ID == flaky.ID && call <= 2 {
				return errors.New("policy store unavailable")
			}
			return nil
		}}
		start(t, b, r.handle)

		publish(t, b, flaky)
		o := outcomes(t, b, flaky.ID, "a")["a"]
		if !o.OK() || o.Attempts != 3 {
			t.Fatalf("outcome %+v, want applied after 3 attempts", o)
		}
		publish(t, b, flaky) // recorded once: not run again
		next := validCommand(KindResume)
		publish(t, b, next)
		outcomes(t, b, next.ID, "a")
		if n := r.count(flaky.ID); n != 3 {
			t.Fatalf("handler ran %d times, want 3", n)
		}
	})
}

func TestBusDoesNotRetryRejected(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, _ *redis.Client) {
		b := newBus("a", Retries(3, time.Millisecond))
		bad := validCommand(KindReprocess)
		r := recorder{answer: func(c Command, _ int) error {
			if c.ID == bad.ID {
				return fmt.Errorf("topic %s is not an input of this product: %w", c.Reprocess.Topic, ErrRejected)
			}
			return nil
		}}
		start(t, b, r.handle)

		publish(t, b, bad)
		o := outcomes(t, b, bad.ID, "a")["a"]
		if o.Status != StatusRejected || o.Attempts != 1 || !strings.Contains(o.Error, "is not an input of this product") {
			t.Fatalf("outcome %+v, want rejected after 1 attempt, saying why", o)
		}
		publish(t, b, bad) // done, even though rejected: not run again
		next := validCommand(KindPause)
		publish(t, b, next)
		if !outcomes(t, b, next.ID, "a")["a"].OK() {
			t.Fatal("the command after a rejected one was not applied")
		}
		if n := r.count(bad.ID); n != 1 {
			t.Fatalf("rejected command ran %d times, want 1", n)
		}
	})
}

func TestBusSurvivesPanickingHandler(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, _ *redis.Client) {
		b := newBus("a", Retries(3, time.Millisecond))
		boom := validCommand(KindForget)
		r := recorder{answer: func(c Command, _ int) error {
			if c.ID == boom.ID {
				panic("subject index is nil")
			}
			return nil
		}}
		start(t, b, r.handle)

		publish(t, b, boom)
		o := outcomes(t, b, boom.ID, "a")["a"]
		if o.Status != StatusRejected || !strings.Contains(o.Error, "panic: subject index is nil") || o.Attempts != 1 {
			t.Fatalf("outcome %+v, want rejected with the panic, not retried", o)
		}
		next := validCommand(KindPause)
		publish(t, b, next)
		if !outcomes(t, b, next.ID, "a")["a"].OK() {
			t.Fatal("the bus did not go on after a panic")
		}
	})
}

func TestBusGivesUpAndParksTransientFailure(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, rdb *redis.Client) {
		b := newBus("a", Retries(2, time.Millisecond))
		stuck := validCommand(KindForget)
		var mu sync.Mutex
		healthy := false
		r := recorder{answer: func(c Command, _ int) error {
			mu.Lock()
			defer mu.Unlock()
			if c.ID == stuck.ID && !healthy {
				return errors.New("erasure service unavailable")
			}
			return nil
		}}
		start(t, b, r.handle)

		publish(t, b, stuck)
		o := outcomes(t, b, stuck.ID, "a")["a"]
		if o.Status != StatusFailed || o.Attempts != 3 || !strings.Contains(o.Error, "gave up after 3 attempts: erasure service unavailable") {
			t.Fatalf("outcome %+v, want failed after 3 attempts", o)
		}
		next := validCommand(KindPause)
		publish(t, b, next)
		if !outcomes(t, b, next.ID, "a")["a"].OK() {
			t.Fatal("a failed command blocked the next one")
		}

		if rdb != nil {
			entries, err := rdb.XRange(context.Background(), "meshlet.control."+testProduct+".poison", "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("poison stream has %d entries, want 1", len(entries))
			}
			m, err := tolerant{}.Unmarshal(entries[0].Values)
			if err != nil {
				t.Fatal(err)
			}
			if m.UUID != stuck.ID || m.Metadata.Get("instance") != "a" || !strings.Contains(m.Metadata.Get("reason"), "erasure service unavailable") {
				t.Fatalf("poison entry %s %v", m.UUID, m.Metadata)
			}
			var parkedCmd Command
			if err := json.Unmarshal(m.Payload, &parkedCmd); err != nil || parkedCmd.ID != stuck.ID {
				t.Fatalf("poison entry payload %s: %v", m.Payload, err)
			}
		}

		// Failed is not done: once the cause is fixed, the same ID runs.
		mu.Lock()
		healthy = true
		mu.Unlock()
		publish(t, b, stuck)
		waitFor(t, "the retried command to be applied", func() bool {
			res, err := b.Results(context.Background(), stuck.ID)
			return err == nil && len(res) == 1 && res[0].OK()
		})
		if n := r.count(stuck.ID); n != 4 {
			t.Fatalf("handler ran %d times, want 3 then 1", n)
		}
	})
}

// A command written by another tool, bypassing Publish's checks, is
// rejected on arrival with the reason, and does not stop the bus.
func TestBusRejectsInvalidCommandOnArrival(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, newBus func(string, ...Option) *Bus, _ *redis.Client) {
		b := newBus("a")
		var r recorder
		start(t, b, r.handle)

		raw := func(id, payload string) {
			msg := message.NewMessage(id, []byte(payload))
			msg.SetContext(context.Background())
			if err := b.t.publisher().Publish(b.topic, msg); err != nil {
				t.Fatal(err)
			}
		}
		invalid := validCommand(KindReprocess)
		invalid.Reprocess.Offset = -1
		p, _ := json.Marshal(invalid)
		raw(invalid.ID, string(p))
		raw("unknown-field", `{"id":"unknown-field","kind":"pause","product":"`+testProduct+`","force":true}`)
		raw("no-id", `{"kind":"pause"}`)

		next := validCommand(KindResume)
		publish(t, b, next)
		outcomes(t, b, next.ID, "a")

		o := outcomes(t, b, invalid.ID, "a")["a"]
		if o.Status != StatusRejected || !strings.Contains(o.Error, "reprocess.offset") || o.Attempts != 0 {
			t.Fatalf("outcome %+v, want rejected naming reprocess.offset", o)
		}
		o = outcomes(t, b, "unknown-field", "a")["a"]
		if o.Status != StatusRejected || !strings.Contains(o.Error, `unknown field "force"`) {
			t.Fatalf("outcome %+v, want rejected naming the unknown field", o)
		}
		if got := r.ids(); len(got) != 1 || got[0] != next.ID {
			t.Fatalf("handler saw %v; only %s is valid", got, next.ID)
		}
	})
}

func TestRunRefusesSecondRunAndNilHandler(t *testing.T) {
	t.Parallel()
	b := NewChannelBus(Logger(testLogger(t)))
	t.Cleanup(func() { b.Close() }) // after Run has stopped
	if err := b.Run(context.Background(), nil); err == nil {
		t.Fatal("Run with a nil handler succeeded")
	}
	var r recorder
	start(t, b, r.handle)
	c := validCommand(KindPause)
	publish(t, b, c) // the first Run is subscribed and handling
	outcomes(t, b, c.ID, "local")
	if err := b.Run(context.Background(), r.handle); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Run: %v", err)
	}
}

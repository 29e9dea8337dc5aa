package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/redis/go-redis/v9"
)

// ErrRejected marks a permanent failure: a Handler wraps it (fmt.Errorf("…:
// %w", control.ErrRejected)) to say the command cannot succeed, so it is
// recorded as rejected and not retried. Any other error is transient.
var ErrRejected = errors.New("control: rejected")

// Handler applies one command on one instance. It must be idempotent: a
// command is marked done only after its handler returned, so a crash in
// between runs it again. It should return when ctx ends; the command is
// then left for the instance's next run.
type Handler func(ctx context.Context, c Command) error

// Bus carries a product's control commands to every instance. One Bus
// value is one instance; the control port and the runtime of a process
// share it.
type Bus struct {
	product  string // empty on a channel bus: it carries any product's commands
	instance string
	topic    string

	t       transport
	done    Done
	journal journal
	retry   message.HandlerMiddleware
	timeout time.Duration
	logger  *slog.Logger
	wlog    watermill.LoggerAdapter

	running atomic.Bool
}

// Option configures a Bus.
type Option func(*config)

type config struct {
	retries          int
	backoff, maxWait time.Duration
	timeout          time.Duration
	retention        time.Duration
	maxLen           int64
	done             Done
	instance         string
	logger           *slog.Logger
}

// Every default of a Bus is here.
func defaults() config {
	return config{
		retries:   3,
		backoff:   200 * time.Millisecond,
		maxWait:   5 * time.Second,
		timeout:   time.Minute,
		retention: DefaultRetention,
		maxLen:    10_000,
		instance:  "local",
		logger:    slog.Default(),
	}
}

// CommandTimeout bounds one attempt at a command (default 1m): the
// handler's context ends then, and the attempt counts as a transient
// failure.
func CommandTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = max(d, time.Millisecond) }
}

// Retries sets how many times a transient failure is retried (default 3,
// so 4 attempts) and the first wait (default 200ms), doubled each time up
// to 5s.
func Retries(n int, backoff time.Duration) Option {
	return func(c *config) {
		c.retries, c.backoff = max(n, 0), max(backoff, time.Millisecond)
		c.maxWait = max(c.maxWait, c.backoff)
	}
}

// Retention sets how long the Redis bus keeps done records and outcomes
// (default DefaultRetention).
func Retention(d time.Duration) Option { return func(c *config) { c.retention = d } }

// StreamMaxLen caps the Redis stream at about n commands (default 10000);
// an instance down for longer than n commands loses the oldest.
func StreamMaxLen(n int64) Option { return func(c *config) { c.maxLen = n } }

// WithDone replaces the record of handled IDs (default: RedisDone on the
// Redis bus, MemoryDone on the channel bus).
func WithDone(d Done) Option { return func(c *config) { c.done = d } }

// Instance names the channel bus's instance (default "local"); the Redis
// bus takes it as an argument.
func Instance(name string) Option { return func(c *config) { c.instance = name } }

// Logger sets the channel bus's logger (default slog.Default()); the Redis
// bus takes it as an argument.
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// NewRedisBus carries product's commands on the Redis stream
// meshlet.control.<product>. instance names this replica: it must be
// unique among the product's replicas and the same across its restarts
// (a pod or host name), since Redis keeps each instance's place and its
// unfinished commands under that name.
func NewRedisBus(rdb redis.UniversalClient, product, instance string, logger *slog.Logger, opts ...Option) (*Bus, error) {
	if rdb == nil {
		return nil, errors.New("control: NewRedisBus needs a Redis client")
	}
	if !urnPattern.MatchString(product) {
		return nil, fmt.Errorf("control: product is %q; want the product's URN", product)
	}
	if err := checkInstance(instance); err != nil {
		return nil, err
	}
	c := defaults()
	if logger != nil {
		c.logger = logger
	}
	for _, o := range opts {
		o(&c)
	}
	if c.retention <= 0 {
		c.retention = DefaultRetention
	}
	if c.done == nil {
		c.done = NewRedisDone(rdb, product, instance, c.retention)
	}
	wlog := newWatermillLogger(c.logger)
	client := keepOpen{rdb}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client, DefaultMaxlen: c.maxLen}, wlog)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	topic := "meshlet.control." + product
	b := newBus(c, product, instance, topic, wlog)
	b.t = &redisTransport{rdb: client, stream: topic, group: instance, pub: pub, wlog: wlog}
	b.journal = newRedisJournal(rdb, product, c.retention)
	return b, nil
}

// NewChannelBus carries commands in process over watermill's gochannel,
// for `meshlet dev` and tests. Its Publish returns once the running
// instance has handled the command, so a Handler must not Publish on the
// same channel bus. Nothing outlives the process, and a command published
// while the bus is neither running nor joined reaches no one.
func NewChannelBus(opts ...Option) *Bus {
	c := defaults()
	for _, o := range opts {
		o(&c)
	}
	if checkInstance(c.instance) != nil {
		c.instance = "local"
	}
	if c.done == nil {
		c.done = NewMemoryDone()
	}
	wlog := newWatermillLogger(c.logger)
	b := newBus(c, "", c.instance, "meshlet.control", wlog)
	b.t = newChannelTransport(b.topic, wlog)
	b.journal = newMemoryJournal()
	return b
}

func newBus(c config, product, instance, topic string, wlog watermill.LoggerAdapter) *Bus {
	return &Bus{
		product: product, instance: instance, topic: topic,
		done:    c.done,
		retry:   retry(c.retries, c.backoff, c.maxWait, c.logger),
		timeout: c.timeout,
		logger:  c.logger,
		wlog:    wlog,
	}
}

func checkInstance(instance string) error {
	if instance == "" || strings.IndexFunc(instance, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("control: instance is %q; want a name without spaces, unique per replica and stable across restarts", instance)
	}
	return nil
}

// Instance is the name of the instance this Bus runs as.
func (b *Bus) Instance() string { return b.instance }

// check is Validate plus: a product's bus carries only its own commands.
func (b *Bus) check(c Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if b.product != "" && c.Product != b.product {
		return &FieldError{Field: "product", Msg: fmt.Sprintf("is %q; this bus carries the commands of %q", c.Product, b.product)}
	}
	return nil
}

// Publish sends c to every instance. An empty ID becomes NewID(), a zero
// IssuedAt now, and an empty Product the bus's product; set the ID yourself
// to follow the command with Results. Publishing the same ID again is safe:
// no instance runs it twice (unless it failed there; see StatusFailed). An
// invalid command is refused with *FieldError.
func (b *Bus) Publish(ctx context.Context, c Command) error {
	if c.ID == "" {
		c.ID = NewID()
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now().UTC()
	}
	if c.Product == "" {
		c.Product = b.product
	}
	if err := b.check(c); err != nil {
		return err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("control: encode command %s: %w", c.ID, err)
	}
	msg := message.NewMessage(c.ID, payload)
	msg.Metadata.Set("kind", string(c.Kind))
	msg.SetContext(ctx)
	if err := b.t.publisher().Publish(b.topic, msg); err != nil {
		return fmt.Errorf("control: publish %s command %s: %w", c.Kind, c.ID, err)
	}
	return nil
}

// Join makes sure this instance receives every command published from now
// on, even before Run starts; Run joins by itself. A runtime that reads
// durable state (paused or not, policies) at start-up joins first, so no
// command slips between that read and Run.
func (b *Bus) Join(ctx context.Context) error { return b.t.join(ctx) }

// Run handles this instance's commands, one at a time in publication
// order, until ctx ends; then it waits for the command in hand and returns
// nil. A bus runs once at a time.
func (b *Bus) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("control: Run needs a handler")
	}
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("control: bus is already running")
	}
	defer b.running.Store(false)

	if err := b.t.join(ctx); err != nil {
		return err
	}
	sub, err := b.t.subscriber(ctx)
	if err != nil {
		return err
	}
	defer b.t.stopped()
	defer sub.Close()
	router, err := message.NewRouter(message.RouterConfig{}, b.wlog)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	r := &runner{b: b, h: h}
	pub, poison := b.t.poison()
	router.AddMiddleware(park(pub, poison, b.instance), r.settle, b.retry, middleware.Timeout(b.timeout), middleware.Recoverer)
	router.AddConsumerHandler("meshlet.control", b.topic, sub, r.apply)
	b.logger.Info("control: running", "topic", b.topic, "instance", b.instance)
	if err := router.Run(ctx); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if ctx.Err() == nil {
		return fmt.Errorf("control: subscription to %s ended", b.topic)
	}
	return nil
}

// Results returns the outcome of command id on each instance that has
// handled it, by instance name; an instance that has not handled it yet
// is absent.
func (b *Bus) Results(ctx context.Context, id string) ([]Outcome, error) {
	return b.journal.results(ctx, id)
}

// Close releases the publisher; a channel bus also stops delivering.
// The Redis client stays open: it is the caller's.
func (b *Bus) Close() error { return b.t.close() }

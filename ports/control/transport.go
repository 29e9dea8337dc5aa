package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/redis/go-redis/v9"
)

// transport is what differs between the Redis and the channel bus.
type transport interface {
	publisher() message.Publisher
	// join makes sure this instance receives every command published from
	// now on, whether or not it is running.
	join(ctx context.Context) error
	// subscriber returns a fresh subscriber for one Run.
	subscriber(ctx context.Context) (message.Subscriber, error)
	// poison is where commands that failed every attempt are parked; nil
	// when there is nowhere.
	poison() (message.Publisher, string)
	// stopped returns once nothing started by an ended run can still
	// take a command.
	stopped()
	close() error
}

// redisTransport: one stream per product; each instance reads it through
// its own consumer group (named after the instance, as is its only
// consumer), so every instance gets every command, and Redis keeps what an
// instance has not acked in the group's pending list.
type redisTransport struct {
	rdb    redis.UniversalClient
	stream string
	group  string
	pub    *redisstream.Publisher
	wlog   watermill.LoggerAdapter
}

func (t *redisTransport) publisher() message.Publisher { return t.pub }

func (t *redisTransport) poison() (message.Publisher, string) { return t.pub, t.stream + ".poison" }

func (t *redisTransport) close() error { return t.pub.Close() }

// join creates the instance's group at the stream's end: a new instance
// applies the commands issued after it joined, not the stream's history (an
// old reprocess replayed would rewind it). A restarted instance's group
// exists and keeps its place.
func (t *redisTransport) join(ctx context.Context) error {
	err := t.rdb.XGroupCreateMkStream(ctx, t.stream, t.group, "$").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("control: join %s as %s: %w", t.stream, t.group, err)
	}
	return nil
}

// blockTime bounds each of watermill's blocking stream reads. go-redis
// cannot cancel a blocked read, so one may outlive its run by this much.
const blockTime = 100 * time.Millisecond

func (t *redisTransport) subscriber(context.Context) (message.Subscriber, error) {
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:          t.rdb,
		Unmarshaller:    tolerant{},
		Consumer:        t.group,
		ConsumerGroup:   t.group,
		OldestId:        "$",
		NackResendSleep: nackSleep,
		BlockTime:       blockTime,
		// Claiming is for taking over a dead consumer's entries after an
		// idle time. A group here has one consumer, the instance itself,
		// whose unfinished entries replay takes back on restart, in order;
		// a claim could only take back an entry this run is still handling.
		ShouldClaimPendingMessage:     func(redis.XPendingExt) bool { return false },
		DisableIndefiniteInitialBlock: true, // bound every read by blockTime
		ShouldStopOnReadErrors: func(err error) bool {
			// NOGROUP: Redis lost the group (see Subscribe); watermill
			// would retry the read forever.
			return errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) || strings.HasPrefix(err.Error(), "NOGROUP")
		},
	}, t.wlog)
	if err != nil {
		return nil, fmt.Errorf("control: subscribe to %s: %w", t.stream, err)
	}
	return &resumingSubscriber{t: t, sub: sub}, nil
}

// stopped waits until a read started by the run that just ended can no
// longer take an entry: such an entry would sit in the pending list, past
// the replay of a run that started meanwhile, until the next restart.
func (t *redisTransport) stopped() { time.Sleep(blockTime) }

// nackSleep: a nack means bookkeeping failed; give Redis a moment.
const nackSleep = time.Second

// resumingSubscriber first hands over what an earlier run of this instance
// left unfinished: the entries the group delivered to it and it never
// acked (it stopped or crashed while handling one, or a last read took one
// as it stopped). Those are read back as a Redis consumer reads its own
// history (XREADGROUP from ID 0), in stream order and before any new
// entry, and acked once handled. Then it passes on watermill's
// subscription, which reads new entries.
type resumingSubscriber struct {
	t   *redisTransport
	sub *redisstream.Subscriber
}

func (s *resumingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		if !s.replay(ctx, out) {
			return
		}
		for {
			in, err := s.sub.Subscribe(ctx, topic)
			if err != nil {
				s.t.wlog.Error("control: subscribe", err, watermill.LogFields{"stream": s.t.stream})
				return
			}
			for m := range in {
				select {
				case out <- m:
				case <-ctx.Done():
					return // m stays pending; the next run replays it
				}
			}
			if ctx.Err() != nil {
				return
			}
			// The read stopped while the run goes on: Redis lost the
			// group (it restarted without persistence, or was flushed),
			// and with it the stream. Join again, at the stream's end as
			// a new instance does, and read on.
			s.t.wlog.Info("control: the consumer group is gone from Redis; joining again", watermill.LogFields{"stream": s.t.stream})
			for s.t.join(ctx) != nil {
				if !sleep(ctx, nackSleep) {
					return
				}
			}
		}
	}()
	return out, nil
}

func (s *resumingSubscriber) Close() error { return s.sub.Close() }

// replay delivers the instance's pending entries; false if ctx ended first.
func (s *resumingSubscriber) replay(ctx context.Context, out chan<- *message.Message) bool {
	t := s.t
	after := "0"
	for {
		xs, err := t.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: t.group, Consumer: t.group, Streams: []string{t.stream, after}, Count: 64, Block: -1,
		}).Result()
		if err != nil && err != redis.Nil {
			if ctx.Err() != nil {
				return false
			}
			t.wlog.Error("control: read unfinished commands", err, watermill.LogFields{"stream": t.stream})
			if !sleep(ctx, nackSleep) {
				return false
			}
			continue
		}
		if len(xs) == 0 || len(xs[0].Messages) == 0 {
			return true
		}
		for _, xm := range xs[0].Messages {
			after = xm.ID
			if xm.Values == nil { // trimmed from the stream since
				s.ack(ctx, xm.ID)
				continue
			}
			msg, _ := tolerant{}.Unmarshal(xm.Values)
			t.wlog.Info("control: resuming unfinished command", watermill.LogFields{"xid": xm.ID, "message_uuid": msg.UUID})
			if !s.deliver(ctx, out, xm.ID, msg) {
				return false
			}
		}
	}
}

// deliver hands msg over until it is acked (then XACKs it), resending it
// after a nack as watermill's subscriber does.
func (s *resumingSubscriber) deliver(ctx context.Context, out chan<- *message.Message, xid string, msg *message.Message) bool {
	for {
		m := msg.Copy()
		m.SetContext(ctx)
		select {
		case out <- m:
		case <-ctx.Done():
			return false
		}
		select {
		case <-m.Acked():
			s.ack(ctx, xid)
			return true
		case <-m.Nacked():
			if !sleep(ctx, nackSleep) {
				return false
			}
		case <-ctx.Done():
			return false
		}
	}
}

// ack XACKs a settled entry even as the run stops; if it fails, the next
// run replays the entry, and finds it done.
func (s *resumingSubscriber) ack(ctx context.Context, xid string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if err := s.t.rdb.XAck(actx, s.t.stream, s.t.group, xid).Err(); err != nil {
		s.t.wlog.Error("control: ack resumed command", err, watermill.LogFields{"xid": xid})
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// keepOpen hands watermill a client it cannot close: its Publisher and
// Subscriber close their client on Close, and this one is the caller's.
type keepOpen struct{ redis.UniversalClient }

func (keepOpen) Close() error { return nil }

// malformedKey marks a message made from a stream entry that watermill
// could not read; settle parks it.
const malformedKey = "meshlet_malformed"

// tolerant turns an unreadable stream entry (written by some other tool)
// into a message settle can reject and ack. With watermill's own
// unmarshaller the subscription would stop on it, and stop again on it
// after every restart.
type tolerant struct {
	redisstream.DefaultMarshallerUnmarshaller
}

func (u tolerant) Unmarshal(values map[string]any) (*message.Message, error) {
	msg, err := u.DefaultMarshallerUnmarshaller.Unmarshal(values)
	if err == nil {
		return msg, nil
	}
	m := message.NewMessage(watermill.NewUUID(), nil)
	m.Metadata.Set(malformedKey, err.Error())
	return m, nil
}

// channelTransport is watermill's in-process gochannel. Publish blocks
// until every running subscriber has handled the command, which keeps
// commands in order (gochannel would otherwise race them). Nothing outlives
// the process; commands published while no Run is subscribed (and no Join
// is pending) are dropped.
type channelTransport struct {
	gc    *gochannel.GoChannel
	topic string

	mu     sync.Mutex
	joined <-chan *message.Message // a subscription made by join, for the next Run
	leave  context.CancelFunc
}

func newChannelTransport(topic string, wlog watermill.LoggerAdapter) *channelTransport {
	gc := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, wlog)
	return &channelTransport{gc: gc, topic: topic}
}

func (t *channelTransport) publisher() message.Publisher { return t.gc }

func (t *channelTransport) poison() (message.Publisher, string) { return nil, "" }

func (t *channelTransport) close() error { return t.gc.Close() }

func (t *channelTransport) stopped() {}

// join subscribes now, so commands published before Run starts wait for it
// (their Publish blocks until then).
func (t *channelTransport) join(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.joined != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := t.gc.Subscribe(ctx, t.topic)
	if err != nil {
		cancel()
		return fmt.Errorf("control: subscribe to %s: %w", t.topic, err)
	}
	t.joined, t.leave = ch, cancel
	return nil
}

func (t *channelTransport) subscriber(context.Context) (message.Subscriber, error) {
	return joinedSubscriber{t}, nil
}

// joinedSubscriber hands the router the subscription join made, and ends
// it when the router's context ends.
type joinedSubscriber struct{ t *channelTransport }

func (s joinedSubscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	if err := s.t.join(ctx); err != nil {
		return nil, err
	}
	s.t.mu.Lock()
	ch, leave := s.t.joined, s.t.leave
	s.t.joined, s.t.leave = nil, nil
	s.t.mu.Unlock()
	context.AfterFunc(ctx, leave)
	return ch, nil
}

func (joinedSubscriber) Close() error { return nil }

// watermillLogger adapts slog for watermill. watermill's info lines are its
// own plumbing (adding handlers, subscribing), so they become debug; and a
// read cut short by shutdown, which it reports as an error, is not one.
type watermillLogger struct{ watermill.LoggerAdapter }

func newWatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return watermillLogger{watermill.NewSlogLoggerWithLevelMapping(l, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})}
}

func (w watermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	if errors.Is(err, context.Canceled) || errors.Is(err, redis.ErrClosed) {
		w.Debug(msg, fields.Add(watermill.LogFields{"error": err}))
		return
	}
	w.LoggerAdapter.Error(msg, err, fields)
}

func (w watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return watermillLogger{w.LoggerAdapter.With(fields)}
}

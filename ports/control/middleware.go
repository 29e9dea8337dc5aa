package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// The handler chain, outermost first, each a watermill HandlerMiddleware:
//
//	park       a command that failed every attempt is parked on the poison stream and acked
//	settle     decode, skip handled IDs, record the outcome, then mark the ID done
//	retry      transient errors: a few attempts with exponential back-off
//	recoverer  a panic becomes a permanent error
//	apply      call the product's Handler
//
// watermill ships Retry, Recoverer and PoisonQueue middlewares, but its
// middleware package needs modules (cenkalti/backoff/v5, sony/gobreaker)
// this module does not carry; these small ones have the same shape and
// know which errors are permanent.

// bookkeepingTimeout bounds recording an outcome and a done mark. They run
// on a context detached from shutdown: a command whose handler succeeded
// should be recorded even when the instance is stopping, or it would run
// again after the restart.
const bookkeepingTimeout = 10 * time.Second

// panicError is a handler's panic. It is permanent: the same command would
// panic again.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// parked marks an error whose message is acked after being parked (poison
// stream) rather than nacked for redelivery.
type parked struct{ err error }

func (p *parked) Error() string { return p.err.Error() }
func (p *parked) Unwrap() error { return p.err }

// permanent reports whether retrying cannot help.
func permanent(err error) bool {
	var p *panicError
	return errors.Is(err, ErrRejected) || errors.As(err, &p)
}

func recoverer(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if v := recover(); v != nil {
				out, err = nil, &panicError{value: v, stack: debug.Stack()}
			}
		}()
		return h(msg)
	}
}

// retry calls h up to 1+max times while it fails with a transient error,
// waiting initial, then twice as long each time up to maxWait, ±20% so
// replicas retrying the same command do not hit a shared dependency in
// step. It stops waiting when the message's context ends.
type retry struct {
	max              int
	initial, maxWait time.Duration
	logger           *slog.Logger
}

func (r retry) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		wait := r.initial
		for attempt := 1; ; attempt++ {
			out, err := h(msg)
			if err == nil || permanent(err) || attempt > r.max || msg.Context().Err() != nil {
				return out, err
			}
			d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
			r.logger.Warn("control: command failed, retrying", "command", msg.UUID, "attempt", attempt, "wait", d, "err", err)
			t := time.NewTimer(d)
			select {
			case <-msg.Context().Done():
				t.Stop()
				return out, err
			case <-t.C:
			}
			wait = min(2*wait, r.maxWait)
		}
	}
}

// park acks a parked message after publishing a copy to topic with why and
// where it failed; with no publisher the outcome and the log are the only
// record. If publishing fails the message is nacked and comes back.
func park(pub message.Publisher, topic, instance string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			var p *parked
			if !errors.As(err, &p) {
				return out, err
			}
			if pub == nil {
				return out, nil
			}
			m := message.NewMessage(msg.UUID, msg.Payload) // msg's ack belongs to its subscriber
			maps.Copy(m.Metadata, msg.Metadata)
			m.Metadata.Set("reason", p.Error())
			m.Metadata.Set("instance", instance)
			m.Metadata.Set("failed_at", time.Now().UTC().Format(time.RFC3339Nano))
			ctx, cancel := context.WithTimeout(context.WithoutCancel(msg.Context()), bookkeepingTimeout)
			defer cancel()
			m.SetContext(ctx)
			if perr := pub.Publish(topic, m); perr != nil {
				return out, fmt.Errorf("control: park command %s on %s: %w", msg.UUID, topic, perr)
			}
			return out, nil
		}
	}
}

// runner runs one Handler for one Bus.Run.
type runner struct {
	b *Bus
	h Handler
}

// delivery carries the decoded command from settle to apply, and the
// number of handler calls back.
type delivery struct {
	cmd      Command
	attempts int
}

type deliveryKey struct{}

func (r *runner) settle(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		if ctx.Err() != nil {
			return nil, ctx.Err() // stopping; a redelivery during shutdown is left for the next run
		}
		log := r.b.logger.With("instance", r.b.instance)
		if reason := msg.Metadata.Get(malformedKey); reason != "" {
			log.Error("control: stream entry is not a watermill message; parking it", "reason", reason)
			return nil, &parked{fmt.Errorf("%w: malformed stream entry: %s", ErrRejected, reason)}
		}
		cmd, id, err := decodeCommand(msg.Payload)
		if err == nil {
			err = r.b.check(cmd)
		}
		if id == "" {
			log.Error("control: command without an id; parking it", "message", msg.UUID, "err", err)
			return nil, &parked{fmt.Errorf("%w: %w", ErrRejected, err)}
		}
		seen, herr := r.b.done.Has(ctx, id)
		if herr != nil {
			return nil, fmt.Errorf("control: command %s: done record: %w", id, herr)
		}
		if seen {
			log.Debug("control: command already handled; skipping", "command", id)
			return nil, nil
		}
		if err != nil {
			return r.finish(ctx, log, id, cmd.Kind, 0, fmt.Errorf("%w: %w", ErrRejected, err))
		}

		d := &delivery{cmd: cmd}
		msg.SetContext(context.WithValue(ctx, deliveryKey{}, d))
		_, err = next(msg)
		if err != nil && ctx.Err() != nil {
			// Stopping: leave the message unacked; the restarted instance
			// gets it again and, as it is not done, runs it again.
			return nil, fmt.Errorf("control: command %s interrupted: %w (%v)", id, ctx.Err(), err)
		}
		return r.finish(ctx, log, id, cmd.Kind, d.attempts, err)
	}
}

func (r *runner) apply(msg *message.Message) error {
	d := msg.Context().Value(deliveryKey{}).(*delivery)
	d.attempts++
	return r.h(msg.Context(), d.cmd)
}

// finish records the outcome, then, unless the command may be retried,
// marks it done. A failure here nacks the message: it comes back and, not
// being done, runs again, which idempotent handlers allow.
func (r *runner) finish(ctx context.Context, log *slog.Logger, id string, kind Kind, attempts int, err error) ([]*message.Message, error) {
	o := Outcome{ID: id, Kind: kind, Instance: r.b.instance, Status: StatusApplied, Attempts: attempts, Handled: time.Now().UTC()}
	switch {
	case err == nil:
	case permanent(err):
		o.Status, o.Error = StatusRejected, err.Error()
	default:
		o.Status, o.Error = StatusFailed, fmt.Sprintf("gave up after %d attempts: %v", attempts, err)
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if rerr := r.b.journal.record(bctx, o); rerr != nil {
		return nil, rerr
	}
	if o.Status != StatusFailed {
		if derr := r.b.done.Add(bctx, id); derr != nil {
			return nil, fmt.Errorf("control: command %s: done record: %w", id, derr)
		}
	}

	log = log.With("command", id, "kind", kind, "attempts", attempts)
	switch o.Status {
	case StatusApplied:
		log.Info("control: command applied")
	case StatusRejected:
		var p *panicError
		if errors.As(err, &p) {
			log.Error("control: command handler panicked", "err", err, "stack", string(p.stack))
		} else {
			log.Warn("control: command rejected", "err", err)
		}
	case StatusFailed:
		log.Error("control: command failed", "err", err)
		return nil, &parked{errors.New(o.Error)}
	}
	return nil, nil
}

package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// The handler chain, outermost first, each a watermill HandlerMiddleware:
//
//	park       a command that failed every attempt is parked on the poison stream and acked
//	settle     decode, skip handled IDs, record the outcome, then mark the ID done
//	retry      watermill's Retry: transient errors, a few attempts with exponential back-off
//	timeout    watermill's Timeout: a handler's context ends after the bus's command timeout
//	recoverer  watermill's Recoverer: a panic becomes an error, permanent here
//	apply      call the product's Handler
//
// park and settle are Meshlet's own: watermill's PoisonQueue records the
// reason under its own metadata keys and needs a publisher, while the
// poison stream here names the instance and the time, and the channel bus
// has none; settle is the bus's idempotency.

// bookkeepingTimeout bounds recording an outcome and a done mark. They run
// on a context detached from shutdown: a command whose handler succeeded
// should be recorded even when the instance is stopping, or it would run
// again after the restart.
const bookkeepingTimeout = 10 * time.Second

// parked marks an error whose message is acked after being parked (poison
// stream) rather than nacked for redelivery.
type parked struct{ err error }

func (p *parked) Error() string { return p.err.Error() }
func (p *parked) Unwrap() error { return p.err }

// permanent reports whether retrying cannot help: a rejection, or a panic
// (the same command would panic again).
func permanent(err error) bool {
	var p middleware.RecoveredPanicError
	return errors.Is(err, ErrRejected) || errors.As(err, &p)
}

// recovered finds the panic watermill's Recoverer made of a handler's.
func recovered(err error) (middleware.RecoveredPanicError, bool) {
	var p middleware.RecoveredPanicError
	ok := errors.As(err, &p)
	return p, ok
}

// retry is watermill's Retry for transient errors: 1+max attempts, waiting
// initial, then twice as long each time up to maxWait, ±20% so replicas
// retrying the same command do not hit a shared dependency in step.
func retry(max int, initial, maxWait time.Duration, logger *slog.Logger) message.HandlerMiddleware {
	return middleware.Retry{
		MaxRetries: max, InitialInterval: initial, MaxInterval: maxWait, Multiplier: 2, RandomizationFactor: 0.2,
		ShouldRetry: func(p middleware.RetryParams) bool { return !permanent(p.Err) },
		OnRetryHook: func(n int, wait time.Duration) {
			logger.Warn("control: command failed, retrying", "attempt", n, "wait", wait)
		},
	}.Middleware
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
		if p, ok := recovered(err); ok {
			o.Error = fmt.Sprintf("panic: %v", p.V) // the stack goes to the log, not the outcome
		}
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
		if p, ok := recovered(err); ok {
			log.Error("control: command handler panicked", "err", o.Error, "stack", p.Stacktrace)
		} else {
			log.Warn("control: command rejected", "err", err)
		}
	case StatusFailed:
		log.Error("control: command failed", "err", err)
		return nil, &parked{errors.New(o.Error)}
	}
	return nil, nil
}

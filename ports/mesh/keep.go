package mesh

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Keep keeps instance of p registered until ctx is done, then deregisters
// it. It registers, heartbeats every `every` (a third of the TTL or less),
// and registers again whenever the heartbeat finds the registration gone
// (expired, flushed, lost in a failover) or Redis failed. An outage is
// logged once as a warning when it starts and once at info when it ends;
// the failed attempts in between are logged at debug. A product that
// cannot be registered at all (ErrInvalid) is logged as an error and Keep
// returns at once. every <= 0 means a third of the TTL; log may be nil.
func (r *Registry) Keep(ctx context.Context, p Product, instance string, every time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("urn", p.URN, "instance", instance)
	if err := validate(p.URN, instance); err != nil {
		log.Error("mesh registry: cannot register", "err", err)
		return
	}
	if every <= 0 {
		every = r.ttl / 3
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	registered, down, announced := false, false, false
	for {
		err := r.beat(ctx, p, instance, registered, log)
		registered = err == nil
		switch {
		case err == nil && down:
			down, announced = false, true
			log.Info("mesh registry reachable again; registered")
		case err == nil && !announced:
			announced = true
			log.Info("registered in the mesh registry", "ttl", r.ttl, "every", every)
		case err == nil:
		case ctx.Err() != nil: // stopping: not an outage
		case !down:
			down = true
			log.Warn("mesh registry unreachable; retrying until it answers", "every", every, "err", err)
		default:
			log.Debug("mesh registry still unreachable", "err", err)
		}
		select {
		case <-ctx.Done():
			// The TTL bounds the wait: after it the entry is gone anyway.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.ttl)
			if err := r.Deregister(dctx, p.URN, instance); err != nil {
				log.Warn("mesh registry: could not deregister; the entry expires with its TTL", "ttl", r.ttl, "err", err)
			}
			cancel()
			return
		case <-tick.C:
		}
	}
}

// beat heartbeats a registered instance and registers one that is not,
// or whose registration vanished.
func (r *Registry) beat(ctx context.Context, p Product, instance string, registered bool, log *slog.Logger) error {
	if registered {
		err := r.Heartbeat(ctx, p.URN, instance)
		if !errors.Is(err, ErrNotRegistered) {
			return err
		}
		log.Info("mesh registry: registration gone (expired or lost); registering again")
	}
	return r.Register(ctx, p, instance)
}

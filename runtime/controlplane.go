package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meshlet/meshlet/ports/control"
	"github.com/meshlet/meshlet/ports/mgmt"
)

// controlPlane carries control commands to every replica: the management
// port publishes them on a watermill bus (Redis Streams when the product
// has a Redis, an in-process channel otherwise) and each replica handles
// each command once (ports/control).
type controlPlane struct {
	bus    *control.Bus
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (r *Runner) startControl() error {
	cp := &r.plane
	var err error
	switch {
	case r.cfg.ControlBus != nil:
		cp.bus = r.cfg.ControlBus
	case r.rdb != nil:
		if cp.bus, err = control.NewRedisBus(r.rdb, r.product.Manifest.ID, r.cfg.Instance, r.log); err != nil {
			return fmt.Errorf("control bus: %w", err)
		}
	default:
		cp.bus = control.NewChannelBus(control.Instance(r.cfg.Instance), control.Logger(r.log))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp.cancel = cancel
	cp.done.Add(1)
	go func() {
		defer cp.done.Done()
		if err := cp.bus.Run(ctx, r.handleCommand); err != nil && ctx.Err() == nil {
			r.log.Error("control bus stopped; control commands are not received", "err", err)
		}
	}()
	return nil
}

func (r *Runner) stopControl() {
	cp := &r.plane
	if cp.bus == nil {
		return
	}
	cp.cancel()
	cp.done.Wait()
	if r.cfg.ControlBus == nil {
		cp.bus.Close()
	}
}

// handleCommand carries out one control command on this replica. Each is
// idempotent: the bus runs a command once per replica, but a crash between
// running it and recording it runs it again.
func (r *Runner) handleCommand(ctx context.Context, c control.Command) error {
	r.log.Info("control command", "id", c.ID, "kind", c.Kind, "issuer", c.Issuer.Name, "role", c.Issuer.Role)
	var err error
	switch c.Kind {
	case control.KindPause:
		r.Pause()
	case control.KindResume:
		r.Resume()
	case control.KindReprocess:
		err = r.Reprocess(ctx, c.Reprocess.Topic, c.Reprocess.Partition, c.Reprocess.Offset)
		if errors.Is(err, errNotOwned) {
			return nil // another replica owns the partition and reprocesses it
		}
	case control.KindPolicy:
		err = r.SetPolicy(c.Policy.Actions)
	case control.KindForget:
		err = r.Forget(ctx, c.Forget.Subject)
	default:
		err = fmt.Errorf("%w: unknown command kind %q", ErrRefused, c.Kind)
	}
	if errors.Is(err, ErrRefused) {
		return fmt.Errorf("%w: %w", control.ErrRejected, err)
	}
	return err
}

// controller is the management port's view of the control plane.
type controller struct{ r *Runner }

func (c controller) Issue(ctx context.Context, req mgmt.ControlRequest, by mgmt.Principal) (string, error) {
	cmd := control.Command{
		ID: req.ID, Product: c.r.product.Manifest.ID,
		Issuer: control.Issuer{Name: by.Name, Role: string(by.Role)}, IssuedAt: time.UnixMicro(c.r.cfg.Now()).UTC(),
	}
	if cmd.ID == "" {
		cmd.ID = control.NewID()
	}
	switch req.Command {
	case mgmt.CommandPause:
		cmd.Kind = control.KindPause
	case mgmt.CommandResume:
		cmd.Kind = control.KindResume
	case mgmt.CommandReprocess:
		cmd.Kind = control.KindReprocess
		cmd.Reprocess = &control.Reprocess{Topic: req.Topic, Partition: req.Partition, Offset: req.Offset}
	case mgmt.CommandPolicies:
		cmd.Kind = control.KindPolicy
		cmd.Policy = &control.Policy{Actions: req.Actions}
	case mgmt.CommandForget:
		cmd.Kind = control.KindForget
		cmd.Forget = &control.Forget{Subject: req.Subject}
	default:
		return "", fmt.Errorf("%w: command %q", mgmt.ErrInvalid, req.Command)
	}
	if err := c.r.plane.bus.Publish(ctx, cmd); err != nil {
		return "", err
	}
	return cmd.ID, nil
}

func (c controller) Outcomes(ctx context.Context, id string) ([]mgmt.Outcome, error) {
	res, err := c.r.plane.bus.Results(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]mgmt.Outcome, 0, len(res))
	for _, o := range res {
		out = append(out, mgmt.Outcome{Replica: o.Instance, State: string(o.Status), Detail: o.Error, At: o.Handled})
	}
	return out, nil
}

package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshlet/meshlet/ports/control"
	"github.com/meshlet/meshlet/ports/mgmt"
)

// controlPlane carries control commands to every replica: the management
// port publishes them on a watermill bus (Redis Streams when the product
// has a Redis, an in-process channel otherwise) and each replica handles
// each command once (ports/control). It also runs the scheduled snapshot
// ports, which the snapshot command triggers at once.
type controlPlane struct {
	bus       *control.Bus
	owned     bool         // the plane made the bus, so it closes it
	snapshots *snapshotter // nil without snapshot ports
	cancel    context.CancelFunc
	done      sync.WaitGroup
}

// planeParts are what the control plane runs on: its bus and the
// snapshot ports.
type planeParts struct {
	bus       *control.Bus
	snapshots *snapshotter
}

// controlBus is the bus the options give, else Redis Streams when the
// product has a Redis, else an in-process channel; owned says the product
// made it. The snapshot ports' buckets are opened with it.
func (r *Runner) controlBus() (parts planeParts, owned bool, err error) {
	if parts.snapshots, err = r.newSnapshotter(context.Background()); err != nil {
		return planeParts{}, false, err
	}
	switch {
	case r.cfg.controlBus != nil:
		parts.bus = r.cfg.controlBus
		return parts, false, nil
	case r.rdb != nil:
		parts.bus, err = control.NewRedisBus(r.rdb, r.product.Manifest.ID, r.cfg.instance, r.log)
		if err != nil {
			parts.snapshots.stop()
			return planeParts{}, false, fmt.Errorf("control bus: %w", err)
		}
		return parts, true, nil
	}
	parts.bus = control.NewChannelBus(control.Instance(r.cfg.instance), control.Logger(r.log))
	return parts, true, nil
}

// startControlPlane runs handle for every command the bus delivers, and
// the snapshot schedule, until stop.
func startControlPlane(parts planeParts, owned bool, handle func(context.Context, control.Command) error, log *slog.Logger) *controlPlane {
	cp := &controlPlane{bus: parts.bus, owned: owned, snapshots: parts.snapshots}
	cp.snapshots.start()
	ctx, cancel := context.WithCancel(context.Background())
	cp.cancel = cancel
	cp.done.Add(1)
	go func() {
		defer cp.done.Done()
		if err := cp.bus.Run(ctx, handle); err != nil && ctx.Err() == nil {
			log.Error("control bus stopped; control commands are not received", "err", err)
		}
	}()
	return cp
}

func (cp *controlPlane) stop() {
	if cp == nil {
		return
	}
	cp.cancel()
	cp.done.Wait()
	cp.snapshots.stop()
	if cp.owned {
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
	case control.KindSnapshot:
		err = r.plane.snapshots.command(ctx, c)
	default:
		err = fmt.Errorf("%w: unknown command kind %q", ErrRefused, c.Kind)
	}
	if errors.Is(err, ErrRefused) {
		return fmt.Errorf("%w: %w", control.ErrRejected, err)
	}
	return err
}

// controller is the management port's view of the control plane.
type controller struct {
	bus     *control.Bus
	product string
	now     func() int64
}

func (c controller) Issue(ctx context.Context, req mgmt.ControlRequest, by mgmt.Principal) (string, error) {
	cmd := control.Command{
		ID: req.ID, Product: c.product,
		Issuer: control.Issuer{Name: by.Name, Role: string(by.Role)}, IssuedAt: time.UnixMicro(c.now()).UTC(),
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
	case mgmt.CommandSnapshot:
		cmd.Kind = control.KindSnapshot
		cmd.Snapshot = &control.Snapshot{Port: req.Port}
	default:
		return "", fmt.Errorf("%w: command %q", mgmt.ErrInvalid, req.Command)
	}
	if err := c.bus.Publish(ctx, cmd); err != nil {
		return "", err
	}
	return cmd.ID, nil
}

func (c controller) Outcomes(ctx context.Context, id string) ([]mgmt.Outcome, error) {
	res, err := c.bus.Results(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]mgmt.Outcome, 0, len(res))
	for _, o := range res {
		out = append(out, mgmt.Outcome{Replica: o.Instance, State: string(o.Status), Detail: o.Error, At: o.Handled})
	}
	return out, nil
}

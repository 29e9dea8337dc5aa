package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/meshlet/meshlet/governance"
)

// startGovernance builds the output port's governance gate from the
// contract's classifications and the manifest's policy. Fields classified
// pii need a key store: the one given to Start, else Redis.
func (r *Runner) startGovernance() error {
	port := r.product.Manifest.OutputPorts[0]
	cfg := governance.GateConfig{Classes: map[string]string{}, Actions: port.Policy.Actions, DataSubject: port.Policy.DataSubject}
	if obj, err := r.product.Contract.Object(port.Name); err == nil {
		for _, p := range obj.Properties {
			if p.Classification != "" {
				cfg.Classes[p.Name] = p.Classification
			}
		}
	}
	cfg.Keys = r.cfg.keys
	if cfg.Keys == nil && r.rdb != nil {
		cfg.Keys = governance.RedisKeys(r.rdb, r.product.Manifest.ID)
	}
	g, err := governance.NewGate(cfg)
	if errors.Is(err, governance.ErrMisfit) {
		return fmt.Errorf("%w: output port %s: %w: give the product a Redis (--redis)", ErrFatal, port.Name, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: outputPorts[0].policy: %w", ErrFatal, r.product.Manifest.File(), err)
	}
	r.gate = g
	if pii := g.PII(); len(pii) > 0 {
		r.log.Info("pii fields are sealed in the change log per data subject", "fields", pii, "subject", cmp.Or(cfg.DataSubject, "entity key"))
	}
	return nil
}

// SetPolicy replaces the output port's policy actions (pass, mask or drop
// by classification or field). It refuses, with ErrRefused, a policy that
// cannot apply to the records the product has published, such as dropping
// a field that is not nullable.
func (r *Runner) SetPolicy(actions map[string]string) error {
	p, err := r.gate.SetPolicy(actions)
	if err != nil {
		return refused(err)
	}
	r.log.Info("output port policy updated", "policy", p.String())
	return nil
}

// Forget destroys the key of a data subject: every pii field sealed under
// it, in the change log and the current-state store, reads as erased from
// now on, while the log's hash chain still verifies.
func (r *Runner) Forget(ctx context.Context, subject string) error {
	if r.gate.Keys() == nil {
		return fmt.Errorf("%w: output port %s has no pii fields: nothing is sealed per data subject", ErrRefused, r.product.Manifest.OutputPorts[0].Name)
	}
	if err := r.gate.Forget(ctx, subject); err != nil {
		return refused(err)
	}
	r.log.Info("data subject forgotten: its key is destroyed", "subject", subject)
	return nil
}

// refused marks governance's refusals as the runtime's ErrRefused.
func refused(err error) error {
	if errors.Is(err, governance.ErrRefused) {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return err
}

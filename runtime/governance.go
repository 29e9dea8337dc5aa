package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/meshlet/meshlet/governance"
)

// startGovernance builds each output port's governance gate from its
// contract's classifications and its policy. Fields classified pii need a
// key store: the one given to Start, else Redis; the ports share it, so a
// data subject has one key across them.
func (r *Runner) startGovernance() error {
	m := r.product.Manifest
	for i, port := range m.OutputPorts {
		cfg := governance.GateConfig{Classes: map[string]string{}, Actions: port.Policy.Actions, DataSubject: port.Policy.DataSubject}
		if obj, err := r.product.Contracts[i].Object(port.Name); err == nil {
			for _, p := range obj.Properties {
				if p.Classification != "" {
					cfg.Classes[p.Name] = p.Classification
				}
			}
		}
		cfg.Keys = r.cfg.keys
		if cfg.Keys == nil && r.rdb != nil {
			cfg.Keys = governance.RedisKeys(r.rdb, m.ID)
		}
		g, err := governance.NewGate(cfg)
		if errors.Is(err, governance.ErrMisfit) {
			return fmt.Errorf("%w: output port %s: %w: give the product a Redis (--redis)", ErrFatal, port.Name, err)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: outputPorts[%d].policy: %w", ErrFatal, m.File(), i, err)
		}
		r.outputs[i].gate = g
		if pii := g.PII(); len(pii) > 0 {
			r.log.Info("pii fields are sealed in the change log per data subject", "port", port.Name, "fields", pii, "subject", cmp.Or(cfg.DataSubject, "entity key"))
		}
	}
	return nil
}

// keys is the key cache pii is sealed with, nil when no port has pii.
func (r *Runner) keys() *governance.CachedKeys {
	for _, o := range r.outputs {
		if k := o.gate.Keys(); k != nil {
			return k
		}
	}
	return nil
}

// SetPolicy replaces the first output port's policy actions (pass, mask or
// drop by classification or field). It refuses, with ErrRefused, a policy
// that cannot apply to the records the product has published, such as
// dropping a field that is not nullable.
func (r *Runner) SetPolicy(actions map[string]string) error {
	p, err := r.outputs[0].gate.SetPolicy(actions)
	if err != nil {
		return refused(err)
	}
	r.log.Info("output port policy updated", "port", r.outputs[0].name, "policy", p.String())
	return nil
}

// Forget destroys the key of a data subject: every pii field sealed under
// it, on every output port, in the change log and the current-state store,
// reads as erased from now on, while the log's hash chain still verifies.
func (r *Runner) Forget(ctx context.Context, subject string) error {
	var sealing *governance.Gate
	for _, o := range r.outputs {
		if o.gate.Keys() != nil {
			sealing = o.gate
			break
		}
	}
	if sealing == nil {
		what := "output port " + r.outputs[0].name
		if len(r.outputs) > 1 {
			what = "each of output ports " + strings.Join(r.outputs.names(), ", ")
		}
		return fmt.Errorf("%w: %s has no pii fields: nothing is sealed per data subject", ErrRefused, what)
	}
	if err := sealing.Forget(ctx, subject); err != nil {
		return refused(err)
	}
	for _, o := range r.outputs {
		o.gate.Forgotten(subject) // the key store is shared; the caches are each port's
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

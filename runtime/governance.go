package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/meshlet/meshlet/ports/seal"
)

// governance applies the output port's policy to each record: fields the
// contract classifies pii are sealed in the change log under their data
// subject's key, and the output topic carries classified fields as the
// policy's actions say (pass, mask, drop). See ports/seal.
type governance struct {
	keys    *seal.CachedKeys // nil when the product has no pii fields
	pii     []string
	classes map[string]string // field -> classification
	subject string            // the data-subject field; "" = the entity key

	// inert: no pii and a policy without rules, so records pass untouched
	// and the loop pays nothing per record.
	inert atomic.Bool

	mu       sync.Mutex
	policy   *seal.Policy
	sealers  map[reflect.Type]*seal.Sealer
	redactor map[reflect.Type]*seal.Redactor
}

func (r *Runner) startGovernance() error {
	port := r.product.Manifest.OutputPorts[0]
	g := &r.gov
	g.classes = map[string]string{}
	g.subject = port.Policy.DataSubject
	g.sealers = map[reflect.Type]*seal.Sealer{}
	g.redactor = map[reflect.Type]*seal.Redactor{}
	if obj, err := r.product.Contract.Object(port.Name); err == nil {
		for _, p := range obj.Properties {
			if p.Classification == "" {
				continue
			}
			g.classes[p.Name] = p.Classification
			if strings.EqualFold(p.Classification, "pii") {
				g.pii = append(g.pii, p.Name)
			}
		}
	}
	sort.Strings(g.pii)
	policy, err := seal.ParsePolicy(policySpec(port.Policy.Actions, g.classes))
	if err != nil {
		return fmt.Errorf("%w: %s: outputPorts[0].policy: %w", ErrFatal, r.product.Manifest.File(), err)
	}
	g.policy = policy
	g.inert.Store(len(g.pii) == 0 && policy.String() == "")
	if len(g.pii) == 0 {
		return nil
	}
	ks := r.cfg.Keys
	if ks == nil {
		if r.cfg.RedisAddr == "" {
			return fmt.Errorf("%w: output port %s has pii fields (%s): their keys need a key store: give the product a Redis (--redis)",
				ErrFatal, port.Name, strings.Join(g.pii, ", "))
		}
		ks = seal.RedisKeys(r.rdb, r.product.Manifest.ID)
	}
	g.keys = seal.Cached(ks, seal.DefaultCacheSize)
	r.log.Info("pii fields are sealed in the change log per data subject", "fields", g.pii, "subject", cmp.Or(g.subject, "entity key"))
	return nil
}

// policySpec writes manifest actions in seal.ParsePolicy's syntax: a key
// that names a field is a field rule, anything else a classification.
func policySpec(actions map[string]string, classes map[string]string) string {
	var rules []string
	for target, action := range actions {
		if _, isField := classes[target]; isField {
			target = "field:" + target
		}
		rules = append(rules, target+"="+action)
	}
	sort.Strings(rules)
	return strings.Join(rules, ", ")
}

// apply returns what the change log keeps of a record (sealed, with the
// envelope to frame it with) and what the output topic publishes.
//
// redacted says whether published differs from value; when it does not,
// and nothing is sealed, the log and the topic get the same bytes.
func (g *governance) apply(ctx context.Context, key string, value any) (logged any, sealed []byte, published any, redacted bool, err error) {
	logged, published = value, value
	if g.inert.Load() {
		return logged, nil, published, false, nil
	}
	t := reflect.TypeOf(value)
	g.mu.Lock()
	sealer, redactor, policy := g.sealers[t], g.redactor[t], g.policy
	g.mu.Unlock()
	if g.keys != nil {
		if sealer == nil {
			opts := []seal.SealerOption{}
			if g.subject != "" {
				opts = append(opts, seal.SubjectField(g.subject))
			}
			if sealer, err = seal.NewSealer(g.keys, value, g.pii, opts...); err != nil {
				return nil, nil, nil, false, fmt.Errorf("%w: pii fields of %s: %w", ErrFatal, t, err)
			}
			g.mu.Lock()
			g.sealers[t] = sealer
			g.mu.Unlock()
		}
		if logged, sealed, err = sealer.Seal(ctx, key, value); err != nil {
			if errors.Is(err, seal.ErrKeyStore) {
				return nil, nil, nil, false, fmt.Errorf("%w: %w", errTransient, err)
			}
			return nil, nil, nil, false, err
		}
	}
	if redactor == nil {
		if redactor, err = policy.Bind(value, g.classes); err != nil {
			return nil, nil, nil, false, fmt.Errorf("%w: output port policy %s on %s: %w", ErrFatal, policy, t, err)
		}
		g.mu.Lock()
		if g.policy == policy {
			g.redactor[t] = redactor
		}
		g.mu.Unlock()
	}
	if redactor.Passes() {
		return logged, sealed, value, false, nil
	}
	return logged, sealed, redactor.Apply(value), true, nil
}

// SetPolicy replaces the output port's policy actions (pass, mask or drop
// by classification or field). It refuses, with ErrRefused, a policy that
// cannot apply to the records the product has published, such as dropping
// a field that is not nullable.
func (r *Runner) SetPolicy(actions map[string]string) error {
	g := &r.gov
	p, err := seal.ParsePolicy(policySpec(actions, g.classes))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	bound := map[reflect.Type]*seal.Redactor{}
	for t := range g.redactor {
		rd, err := p.Bind(reflect.New(t).Elem().Interface(), g.classes)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		bound[t] = rd
	}
	g.policy, g.redactor = p, bound
	g.inert.Store(g.keys == nil && p.String() == "")
	r.log.Info("output port policy updated", "policy", p.String())
	return nil
}

// Forget destroys the key of a data subject: every pii field sealed under
// it, in the change log and the current-state store, reads as erased from
// now on, while the log's hash chain still verifies.
func (r *Runner) Forget(ctx context.Context, subject string) error {
	if r.gov.keys == nil {
		return fmt.Errorf("%w: output port %s has no pii fields: nothing is sealed per data subject", ErrRefused, r.product.Manifest.OutputPorts[0].Name)
	}
	if subject == "" {
		return fmt.Errorf("%w: forget needs a data subject", ErrRefused)
	}
	if err := r.gov.keys.Destroy(ctx, subject); err != nil {
		return fmt.Errorf("forget %q: %w", subject, err)
	}
	r.gov.keys.Invalidate(subject)
	r.log.Info("data subject forgotten: its key is destroyed", "subject", subject)
	return nil
}

// forgotten drops a subject from this replica's key cache: another replica
// destroyed its key.
func (r *Runner) forgotten(subject string) {
	if r.gov.keys != nil {
		r.gov.keys.Invalidate(subject)
	}
}

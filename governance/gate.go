package governance

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrMisfit marks a policy or pii declaration that cannot apply to the
// records a product publishes (a pii field the row type lacks, dropping a
// field that is not nullable). It is a configuration error, not a bad
// record: the product should stop rather than publish around it.
var ErrMisfit = errors.New("governance: does not fit the records")

// ErrRefused marks a governance request that cannot be carried out as asked:
// retrying it does not help.
var ErrRefused = errors.New("refused")

// GateConfig says what a Gate enforces.
type GateConfig struct {
	// Classes maps a field to the classification the port's contract gives
	// it; fields classified pii are sealed in the change log.
	Classes map[string]string
	// Actions are the port's policy: a classification or field name ->
	// pass, mask or drop. A name that is a field in Classes is a field rule.
	Actions map[string]string
	// DataSubject names the field whose value identifies the person the pii
	// fields are about; empty: the record's entity key.
	DataSubject string
	// Keys holds the data subjects' keys; needed when any field is pii.
	Keys KeyStore
}

// Gate applies an output port's governance to each record: fields the
// contract classifies pii are sealed for the change log under their data
// subject's key, and the output topic gets classified fields as the policy
// says. A Gate is safe for concurrent use; the policy can change while
// records flow.
type Gate struct {
	keys    *CachedKeys // nil without pii fields
	pii     []string
	classes map[string]string
	subject string
	// inert: no pii and a policy without rules, so records pass untouched
	// and the caller pays nothing per record.
	inert atomic.Bool

	mu        sync.Mutex
	policy    *Policy
	sealers   map[reflect.Type]*Sealer
	redactors map[reflect.Type]*Redactor
}

// NewGate checks cfg and returns its gate. A pii field without a key store
// is refused with ErrMisfit.
func NewGate(cfg GateConfig) (*Gate, error) {
	g := &Gate{
		classes: map[string]string{}, subject: cfg.DataSubject,
		sealers: map[reflect.Type]*Sealer{}, redactors: map[reflect.Type]*Redactor{},
	}
	for f, c := range cfg.Classes {
		g.classes[f] = c
		if strings.EqualFold(c, "pii") {
			g.pii = append(g.pii, f)
		}
	}
	sort.Strings(g.pii)
	policy, err := ParsePolicy(policySpec(cfg.Actions, g.classes))
	if err != nil {
		return nil, err
	}
	g.policy = policy
	if len(g.pii) > 0 {
		if cfg.Keys == nil {
			return nil, fmt.Errorf("%w: fields %s are pii: their keys need a key store", ErrMisfit, strings.Join(g.pii, ", "))
		}
		g.keys = Cached(cfg.Keys, DefaultCacheSize)
	}
	g.inert.Store(g.keys == nil && policy.String() == "")
	return g, nil
}

// PII lists the fields sealed per data subject, sorted.
func (g *Gate) PII() []string { return g.pii }

// Classes maps each classified field to its classification.
func (g *Gate) Classes() map[string]string { return g.classes }

// Keys is the key cache pii is sealed with; nil when nothing is pii.
func (g *Gate) Keys() *CachedKeys { return g.keys }

// Applied is what a Gate made of one record.
type Applied struct {
	Logged    any    // what the change log keeps (pii fields cleared when sealed)
	Sealed    []byte // the envelope to Frame the logged bytes with; nil when nothing is sealed
	Published any    // what the output topic carries
	// Redacted says Published differs from the record; when it does not and
	// nothing is sealed, the log and the topic get the same bytes.
	Redacted bool
}

// Apply governs one record of entity key. Errors wrap ErrKeyStore when the
// key store is unreachable (retry later) and ErrMisfit when the
// configuration cannot apply to the record's type.
func (g *Gate) Apply(ctx context.Context, key string, value any) (Applied, error) {
	a := Applied{Logged: value, Published: value}
	if g.inert.Load() {
		return a, nil
	}
	t := reflect.TypeOf(value)
	g.mu.Lock()
	sealer, redactor, policy := g.sealers[t], g.redactors[t], g.policy
	g.mu.Unlock()
	var err error
	if g.keys != nil {
		if sealer == nil {
			var opts []SealerOption
			if g.subject != "" {
				opts = append(opts, SubjectField(g.subject))
			}
			if sealer, err = NewSealer(g.keys, value, g.pii, opts...); err != nil {
				return Applied{}, fmt.Errorf("%w: pii fields of %s: %w", ErrMisfit, t, err)
			}
			g.mu.Lock()
			g.sealers[t] = sealer
			g.mu.Unlock()
		}
		if a.Logged, a.Sealed, err = sealer.Seal(ctx, key, value); err != nil {
			return Applied{}, err
		}
	}
	if redactor == nil {
		if redactor, err = policy.Bind(value, g.classes); err != nil {
			return Applied{}, fmt.Errorf("%w: output port policy %s on %s: %w", ErrMisfit, policy, t, err)
		}
		g.mu.Lock()
		if g.policy == policy {
			g.redactors[t] = redactor
		}
		g.mu.Unlock()
	}
	if !redactor.Passes() {
		a.Published, a.Redacted = redactor.Apply(value), true
	}
	return a, nil
}

// SetPolicy replaces the policy's actions. It refuses, with ErrRefused, a
// policy that cannot apply to the records already seen, such as dropping a
// field that is not nullable.
func (g *Gate) SetPolicy(actions map[string]string) (*Policy, error) {
	p, err := ParsePolicy(policySpec(actions, g.classes))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	bound := map[reflect.Type]*Redactor{}
	for t := range g.redactors {
		rd, err := p.Bind(reflect.New(t).Elem().Interface(), g.classes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRefused, err)
		}
		bound[t] = rd
	}
	g.policy, g.redactors = p, bound
	g.inert.Store(g.keys == nil && p.String() == "")
	return p, nil
}

// Forget destroys a data subject's key: every pii field sealed under it
// reads as erased from now on, while the log's hash chain still verifies.
func (g *Gate) Forget(ctx context.Context, subject string) error {
	if g.keys == nil {
		return fmt.Errorf("%w: no field is pii: nothing is sealed per data subject", ErrRefused)
	}
	if subject == "" {
		return fmt.Errorf("%w: forget needs a data subject", ErrRefused)
	}
	if err := g.keys.Destroy(ctx, subject); err != nil {
		return fmt.Errorf("forget %q: %w", subject, err)
	}
	g.keys.Invalidate(subject)
	return nil
}

// Forgotten drops a subject from this replica's key cache: another replica
// destroyed its key.
func (g *Gate) Forgotten(subject string) {
	if g.keys != nil {
		g.keys.Invalidate(subject)
	}
}

// policySpec writes manifest actions in ParsePolicy's syntax: a key that
// names a field is a field rule, anything else a classification.
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

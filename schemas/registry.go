package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// ErrIncompatible classes a schema refused by a compatibility check. It is
// a contract problem for the domain team, not a transient failure.
var ErrIncompatible = errors.New("incompatible schema")

// Registry is a schema registry client with the checks and the decode cache
// Meshlet needs. It is safe for concurrent use.
type Registry struct {
	cl *sr.Client

	mu         sync.RWMutex
	byID       map[int]*writer
	resolvedBy map[resolvedKey]avro.Schema
}

// NewRegistry returns a Registry for the registry at urls (franz-go's
// default, http://localhost:8081, when empty). opts are passed to
// sr.NewClient after the URLs.
func NewRegistry(urls []string, opts ...sr.ClientOpt) (*Registry, error) {
	if len(urls) > 0 {
		opts = append([]sr.ClientOpt{sr.URLs(urls...)}, opts...)
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schemas: registry client: %w", err)
	}
	return &Registry{cl: cl, byID: make(map[int]*writer), resolvedBy: make(map[resolvedKey]avro.Schema)}, nil
}

// Client is the underlying franz-go client, for calls this type does not wrap.
func (r *Registry) Client() *sr.Client { return r.cl }

// Register makes sure the published schema of s is registered under subject
// and returns its id, which is what every event encoded with s must carry.
//
// Meshlet checks compatibility itself, before registering, instead of
// trusting the registry to: the embedded registry (srfake) answers every
// check "compatible", and a refused contract change should be reported
// the same way whichever registry is behind the URL. A refusal is a
// *CompatError (errors.Is ErrIncompatible) and nothing is registered.
func (r *Registry) Register(ctx context.Context, subject string, s *Schema, level Compat) (int, error) {
	res, err := r.Check(ctx, subject, s, level)
	if err != nil {
		return 0, err
	}
	if res.Registered != nil {
		return res.Registered.ID, nil
	}
	if len(res.Refusals) > 0 {
		return 0, res.Refusals[0]
	}
	id, err := r.cl.RegisterSchema(ctx, subject, sr.Schema{Schema: s.pubText, Type: sr.TypeAvro}, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("schemas: subject %s: register %s: %w", subject, s.RowName(), err)
	}
	return id, nil
}

// Version is one registered version of a subject.
type Version struct {
	Version int
	ID      int
}

// CheckResult is what Check found for one subject.
type CheckResult struct {
	Subject string
	Level   Compat
	// Registered is set when the schema is already registered under the
	// subject; nothing else is checked then, as with Confluent's registry.
	Registered *Version
	// Compared lists the versions the level compares against, newest first:
	// the latest, or every version for the transitive levels, or none.
	Compared []Version
	// Next is the version number registering would create.
	Next int
	// Refusals has one entry per version and direction that fails.
	Refusals []*CompatError
}

// Check compares s with the subject's registered versions under level,
// without registering anything. Only errors reaching the registry, or a
// registered version Meshlet cannot parse, are returned as errors;
// incompatibilities are in the result.
func (r *Registry) Check(ctx context.Context, subject string, s *Schema, level Compat) (*CheckResult, error) {
	if err := level.Validate(); err != nil {
		return nil, fmt.Errorf("schemas: subject %s: %w", subject, err)
	}
	res := &CheckResult{Subject: subject, Level: level, Next: 1}
	got, err := r.cl.LookupSchema(ctx, subject, sr.Schema{Schema: s.pubText, Type: sr.TypeAvro})
	switch {
	case err == nil:
		res.Registered = &Version{Version: got.Version, ID: got.ID}
		return res, nil
	case !notFound(err):
		return nil, fmt.Errorf("schemas: subject %s: look up %s: %w", subject, s.RowName(), err)
	}
	all, err := r.cl.Schemas(ctx, subject)
	if err != nil && !notFound(err) {
		return nil, fmt.Errorf("schemas: subject %s: fetch versions: %w", subject, err)
	}
	slices.SortFunc(all, func(a, b sr.SubjectSchema) int { return b.Version - a.Version })
	if len(all) > 0 {
		res.Next = all[0].Version + 1
	}
	olds := make([]versioned, 0, len(all))
	for _, o := range all {
		old, err := parseRegistered(o.Schema)
		if err != nil {
			return nil, fmt.Errorf("schemas: subject %s version %d (id %d): %w", subject, o.Version, o.ID, err)
		}
		olds = append(olds, versioned{Version{Version: o.Version, ID: o.ID}, old})
	}
	compare(res, s, olds)
	return res, nil
}

// versioned is one earlier version of a subject's published schema.
type versioned struct {
	v   Version
	pub *avro.RecordSchema
}

// compare checks s against olds (newest first) as res.Level says, filling
// res.Compared and res.Refusals.
func compare(res *CheckResult, s *Schema, olds []versioned) {
	rule := compatRules[res.Level]
	if !rule.transitive && len(olds) > 1 {
		olds = olds[:1]
	}
	if !rule.backward && !rule.forward {
		return
	}
	for _, o := range olds {
		res.Compared = append(res.Compared, o.v)
		refuse := func(forward bool, ms []Mismatch) {
			for _, m := range ms {
				res.Refusals = append(res.Refusals, &CompatError{
					Subject: res.Subject, Level: res.Level, Version: o.v.Version, ID: o.v.ID, Forward: forward, Mismatch: m,
				})
			}
		}
		if rule.backward {
			refuse(false, resolve(s.pub, o.pub))
		}
		if rule.forward {
			refuse(true, resolve(o.pub, s.pub))
		}
	}
}

func deref(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}

// fieldFor finds the writer field a reader field reads, by name or alias,
// as hamba's resolution does.
func fieldFor(w *avro.RecordSchema, rf *avro.Field) *avro.Field {
	for _, wf := range w.Fields() {
		if wf.Name() == rf.Name() {
			return wf
		}
	}
	for _, wf := range w.Fields() {
		for _, a := range rf.Aliases() {
			if wf.Name() == a {
				return wf
			}
		}
	}
	return nil
}

// parseRegistered parses a schema fetched from the registry. References
// are not followed: Meshlet never registers schemas that use them.
func parseRegistered(s sr.Schema) (*avro.RecordSchema, error) {
	if s.Type != sr.TypeAvro {
		return nil, fmt.Errorf("schema type is %s, want AVRO", s.Type)
	}
	if len(s.References) > 0 {
		return nil, errors.New("schema references are not supported")
	}
	parsed, err := parseIsolated(s.Schema)
	if err != nil {
		return nil, err
	}
	rec, ok := parsed.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("top-level type is %s, want record", parsed.Type())
	}
	return rec, nil
}

func notFound(err error) bool {
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.ErrorCode {
	case sr.ErrSubjectNotFound.Code, sr.ErrVersionNotFound.Code, sr.ErrSchemaNotFound.Code:
		return true
	}
	return re.ErrorCode == 0 && re.StatusCode == http.StatusNotFound
}

// SchemaByID returns the Meshlet schema registered under id, fetched once
// and cached. It fails for a schema that lacks the meta fields.
func (r *Registry) SchemaByID(ctx context.Context, id int) (*Schema, error) {
	w, err := r.writerByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if w.meta == nil {
		return nil, fmt.Errorf("schemas: schema id %d: %s does not end with Meshlet's meta fields", id, w.schema.FullName())
	}
	return w.meta, nil
}

// writerByID fetches and caches any Avro record schema by id. Registered
// ids are immutable, so entries never expire; only successful fetches are
// cached, so the map holds no more than the registry does.
func (r *Registry) writerByID(ctx context.Context, id int) (*writer, error) {
	r.mu.RLock()
	w := r.byID[id]
	r.mu.RUnlock()
	if w != nil {
		return w, nil
	}
	// Concurrent misses may fetch twice; the answers are identical.
	got, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("schemas: fetch schema id %d: %w", id, err)
	}
	rec, err := parseRegistered(got)
	if err != nil {
		return nil, fmt.Errorf("schemas: schema id %d: %w", id, err)
	}
	if w, err = newWriter(id, rec); err != nil {
		return nil, fmt.Errorf("schemas: schema id %d: %w", id, err)
	}
	r.mu.Lock()
	if prev := r.byID[id]; prev != nil {
		w = prev
	} else {
		r.byID[id] = w
	}
	r.mu.Unlock()
	return w, nil
}

// DecodeMap decodes a wire-format event into a map keyed by field name,
// meta fields included, for display. Timestamps become time.Time and a
// ["null", T] union its value or nil.
func (r *Registry) DecodeMap(ctx context.Context, wire []byte) (id int, fields map[string]any, err error) {
	id, body, err := SplitWire(wire)
	if err != nil {
		return 0, nil, err
	}
	w, err := r.writerByID(ctx, id)
	if err != nil {
		return id, nil, err
	}
	fields, err = w.decodeMap(body)
	return id, fields, err
}

// Decode decodes a wire-format event into row, a pointer to the
// engineer's struct, and returns the meta fields separately.
func (r *Registry) Decode(ctx context.Context, wire []byte, row any) (id int, m Meta, err error) {
	id, body, err := SplitWire(wire)
	if err != nil {
		return 0, Meta{}, err
	}
	w, err := r.writerByID(ctx, id)
	if err != nil {
		return id, Meta{}, err
	}
	m, err = w.decodeRow(body, row)
	return id, m, err
}

package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// ErrIncompatible classes a schema refused by a compatibility check. It is
// a contract problem for the domain team, not a transient failure.
var ErrIncompatible = errors.New("incompatible schema")

// Compat is a subject's compatibility level, named as in Confluent's API.
type Compat string

// CompatBackward: the new schema can read data written with the latest one,
// so consumers may upgrade before producers.
const CompatBackward Compat = "BACKWARD"

// compatRule is what a level checks. Levels differ only in direction and
// in how far back they look, so a new level is one more table entry.
type compatRule struct {
	backward   bool // new schema reads old data
	forward    bool // old schemas read new data
	transitive bool // every registered version, not only the latest
}

var compatRules = map[Compat]compatRule{
	CompatBackward: {backward: true},
}

// Registry is a schema registry client with the checks and the decode cache
// Meshlet needs. It is safe for concurrent use.
type Registry struct {
	cl *sr.Client

	mu   sync.RWMutex
	byID map[int]*writer
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
	return &Registry{cl: cl, byID: make(map[int]*writer)}, nil
}

// Client is the underlying franz-go client, for calls this type does not wrap.
func (r *Registry) Client() *sr.Client { return r.cl }

// Register makes sure the published schema of s is registered under subject
// and returns its id.
//
// Meshlet checks compatibility itself, before registering, instead of
// trusting the registry to: the embedded registry (srfake) answers every
// check "compatible", and a refused contract change should be reported
// the same way whichever registry is behind the URL.
func (r *Registry) Register(ctx context.Context, subject string, s *Schema, level Compat) (int, error) {
	rule, ok := compatRules[level]
	if !ok {
		return 0, fmt.Errorf("schemas: subject %q: compatibility level %q is not supported", subject, level)
	}
	want := sr.Schema{Schema: s.pubText, Type: sr.TypeAvro}
	got, err := r.cl.LookupSchema(ctx, subject, want)
	switch {
	case err == nil:
		return got.ID, nil
	case !notFound(err):
		return 0, fmt.Errorf("schemas: subject %q: look up %s: %w", subject, s.RowName(), err)
	}
	if err := r.checkCompat(ctx, subject, s, level, rule); err != nil {
		return 0, err
	}
	id, err := r.cl.RegisterSchema(ctx, subject, want, -1, -1)
	if err != nil {
		return 0, fmt.Errorf("schemas: subject %q: register %s: %w", subject, s.RowName(), err)
	}
	return id, nil
}

func (r *Registry) checkCompat(ctx context.Context, subject string, s *Schema, level Compat, rule compatRule) error {
	var olds []sr.SubjectSchema
	if rule.transitive {
		all, err := r.cl.Schemas(ctx, subject)
		if err != nil && !notFound(err) {
			return fmt.Errorf("schemas: subject %q: fetch versions: %w", subject, err)
		}
		olds = all
	} else {
		latest, err := r.cl.SchemaByVersion(ctx, subject, -1)
		if err != nil && !notFound(err) {
			return fmt.Errorf("schemas: subject %q: fetch latest version: %w", subject, err)
		}
		if err == nil {
			olds = []sr.SubjectSchema{latest}
		}
	}
	next := 1
	for _, o := range olds {
		next = max(next, o.Version+1)
	}
	for _, o := range olds {
		old, err := parseRegistered(o.Schema)
		if err != nil {
			return fmt.Errorf("schemas: subject %q version %d (id %d): %w", subject, o.Version, o.ID, err)
		}
		refuse := func(dir string, reason error) error {
			return fmt.Errorf("%w: subject %q is %s: new %s (would be version %d) %s version %d (id %d): %w",
				ErrIncompatible, subject, level, s.RowName(), next, dir, o.Version, o.ID, reason)
		}
		if rule.backward {
			if err := compatible(s.pub, old); err != nil {
				return refuse("cannot read data written with", err)
			}
		}
		if rule.forward {
			if err := compatible(old, s.pub); err != nil {
				return refuse("writes data unreadable by", err)
			}
		}
	}
	return nil
}

// compatible runs hamba's check and, because hamba's reason for a type
// change does not say where, adds the path of the first offending field.
func compatible(reader, writer avro.Schema) error {
	// A fresh checker each time: hamba caches verdicts by fingerprint, which
	// ignores defaults, so a shared one could answer for a different schema.
	err := avro.NewSchemaCompatibility().Compatible(reader, writer)
	if err == nil {
		return nil
	}
	if path := offendingField(reader, writer, 0); path != "" {
		return fmt.Errorf("field %s: %w", path, err)
	}
	return err
}

func offendingField(reader, writer avro.Schema, depth int) string {
	if depth > maxDepth {
		return ""
	}
	reader, writer = deref(reader), deref(writer)
	if reader.Type() != writer.Type() {
		return ""
	}
	switch rd := reader.(type) {
	case *avro.RecordSchema:
		wr := writer.(*avro.RecordSchema)
		for _, rf := range rd.Fields() {
			wf := fieldFor(wr, rf)
			if wf == nil {
				if !rf.HasDefault() {
					return rf.Name()
				}
				continue
			}
			if avro.NewSchemaCompatibility().Compatible(rf.Type(), wf.Type()) == nil {
				continue
			}
			if sub := offendingField(rf.Type(), wf.Type(), depth+1); sub != "" {
				if sub[0] == '[' {
					return rf.Name() + sub
				}
				return rf.Name() + "." + sub
			}
			return rf.Name()
		}
	case *avro.ArraySchema:
		if sub := offendingField(rd.Items(), writer.(*avro.ArraySchema).Items(), depth+1); sub != "" {
			return "[]" + sub
		}
	case *avro.MapSchema:
		if sub := offendingField(rd.Values(), writer.(*avro.MapSchema).Values(), depth+1); sub != "" {
			return "[]" + sub
		}
	}
	return ""
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

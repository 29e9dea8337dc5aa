package query

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/schemas"
)

// Decoder turns change-log payloads (Confluent wire format, or a sealed
// frame around it: package seal) into fields.
// It reads writer schemas from a product's ROOT/schemas/<id>.avsc, where
// the runtime writes every schema it registers, so an auditor needs no
// registry; a registry URL, when given, is asked for ids the directory
// lacks.
type Decoder struct {
	// Keys opens the PII fields of sealed payloads. Without it they read
	// as null, named under "_sealed". Set it before the first Fields.
	Keys governance.KeyStore

	dir    string
	local  *schemas.Registry
	remote *schemas.Registry
}

// SchemaDir is where a product keeps its registered schemas: root/schemas.
func SchemaDir(root string) string { return filepath.Join(root, "schemas") }

// NewDecoder reads schemas from dir, then from registryURL ("" for none).
func NewDecoder(dir, registryURL string) (*Decoder, error) {
	local, err := schemas.NewRegistry([]string{"http://schema-dir.invalid"}, sr.HTTPClient(&http.Client{Transport: dirTransport{dir}}))
	if err != nil {
		return nil, err
	}
	d := &Decoder{dir: dir, local: local}
	if registryURL != "" {
		if d.remote, err = schemas.NewRegistry([]string{registryURL}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Fields decodes payload into its row fields by name; the meta fields
// (_valid_from and the like) are left out, since a version's periods are
// the store's to say, not the payload's.
//
// The PII fields of a sealed payload get their values from Keys. When the
// subject was forgotten they are null and "_erased" lists them; with no
// Keys they are null and "_sealed" lists them. A key store that cannot be
// reached, or an envelope that fails authentication, is an error, never
// an erasure.
func (d *Decoder) Fields(ctx context.Context, payload []byte) (map[string]any, error) {
	o, err := governance.Open(ctx, d.Keys, payload)
	if err != nil {
		return nil, err
	}
	m, err := d.wireFields(ctx, o.Wire)
	if err != nil || !o.Sealed {
		return m, err
	}
	switch {
	case o.Fields != nil:
		for _, name := range o.Names {
			if v, ok := o.Fields[name]; ok {
				m[name] = conform(m[name], v)
			}
		}
	case o.Erased != nil:
		for _, name := range o.Erased {
			m[name] = nil
		}
		m["_erased"] = o.Erased
	default:
		for _, name := range o.Names {
			m[name] = nil
		}
		m["_sealed"] = o.Names
	}
	return m, nil
}

func (d *Decoder) wireFields(ctx context.Context, wire []byte) (map[string]any, error) {
	id, m, err := d.local.DecodeMap(ctx, wire)
	if err != nil && d.remote != nil && !errors.Is(err, schemas.ErrMalformed) {
		id, m, err = d.remote.DecodeMap(ctx, wire)
	}
	if err != nil {
		return nil, d.explain(id, err)
	}
	for k := range m {
		if strings.HasPrefix(k, "_") {
			delete(m, k)
		}
	}
	return m, nil
}

// conform gives an unsealed value (JSON: strings, json.Number, bools)
// the Go type the wire decoder gives the field, which the cleared field's
// own value shows; a null field shows nothing, so its numbers become
// int64 or float64 and its bytes and times stay JSON strings.
func conform(wire, v any) any {
	n, isNum := v.(json.Number)
	s, isStr := v.(string)
	switch w := wire.(type) {
	case int32:
		if i, err := n.Int64(); isNum && err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
			return int32(i)
		}
	case int64:
		if i, err := n.Int64(); isNum && err == nil {
			return i
		}
	case int:
		if i, err := n.Int64(); isNum && err == nil {
			return int(i)
		}
	case float32:
		if f, err := n.Float64(); isNum && err == nil {
			return float32(f)
		}
	case float64:
		if f, err := n.Float64(); isNum && err == nil {
			return f
		}
	case []byte:
		if b, err := base64.StdEncoding.DecodeString(s); isStr && err == nil {
			return b
		}
	case time.Time:
		if t, err := time.Parse(time.RFC3339Nano, s); isStr && err == nil {
			return t.In(w.Location())
		}
	case nil:
		if isNum {
			if i, err := n.Int64(); err == nil {
				return i
			}
			if f, err := n.Float64(); err == nil {
				return f
			}
		}
	}
	return v
}

// FieldNames lists the row fields of the schema registered under id, in
// schema order, leaving out the meta fields.
func (d *Decoder) FieldNames(ctx context.Context, id int) ([]string, error) {
	text, err := d.Published(ctx, id)
	if err != nil {
		return nil, err
	}
	var rec struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(text), &rec); err != nil {
		return nil, fmt.Errorf("schema id %d: %w", id, err)
	}
	var names []string
	for _, f := range rec.Fields {
		if !strings.HasPrefix(f.Name, "_") {
			names = append(names, f.Name)
		}
	}
	return names, nil
}

// Published returns the writer schema registered under id, as JSON text.
func (d *Decoder) Published(ctx context.Context, id int) (string, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, strconv.Itoa(id)+".avsc"))
	if err == nil {
		return string(b), nil
	}
	if d.remote != nil {
		s, rerr := d.remote.Client().SchemaByID(ctx, id)
		if rerr == nil {
			return s.Schema, nil
		}
		err = rerr
	}
	return "", d.explain(id, err)
}

func (d *Decoder) explain(id int, err error) error {
	if errors.Is(err, schemas.ErrMalformed) {
		return err
	}
	where := filepath.Join(d.dir, strconv.Itoa(id)+".avsc")
	if d.remote == nil {
		return fmt.Errorf("schema id %d: not in %s and no --registry given: %w", id, where, err)
	}
	return fmt.Errorf("schema id %d: neither in %s nor in the registry: %w", id, where, err)
}

// dirTransport answers the one registry call decoding makes,
// GET /schemas/ids/{id}, from dir/{id}.avsc.
type dirTransport struct{ dir string }

func (t dirTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	respond := func(code int, v any) (*http.Response, error) {
		b, _ := json.Marshal(v)
		return &http.Response{StatusCode: code, Status: http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/vnd.schemaregistry.v1+json"}},
			Body:   io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: r}, nil
	}
	if r.Body != nil {
		r.Body.Close()
	}
	idText, ok := strings.CutPrefix(r.URL.Path, "/schemas/ids/")
	id, err := strconv.Atoi(idText)
	if r.Method != http.MethodGet || !ok || err != nil || id < 0 {
		return respond(http.StatusNotFound, map[string]any{"error_code": 404, "message": "only schemas by id are served from a directory"})
	}
	b, err := os.ReadFile(filepath.Join(t.dir, strconv.Itoa(id)+".avsc"))
	if errors.Is(err, fs.ErrNotExist) {
		return respond(http.StatusNotFound, map[string]any{"error_code": 40403, "message": "Schema " + idText + " not found"})
	}
	if err != nil {
		return nil, err
	}
	return respond(http.StatusOK, sr.Schema{Schema: string(b), Type: sr.TypeAvro})
}

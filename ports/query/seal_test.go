package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/internal/localredis"
	"github.com/meshlet/meshlet/internal/localredis/redistest"
	"github.com/meshlet/meshlet/schemas"
)

const customerSchema = `{"type":"record","name":"Customer","namespace":"test.crm","fields":[
	{"name":"id","type":"string"},
	{"name":"name","type":"string"},
	{"name":"email","type":"string"},
	{"name":"phone","type":["null","string"],"default":null},
	{"name":"salary","type":"long"},
	{"name":"credit","type":["null","long"],"default":null},
	{"name":"photo","type":"bytes"},
	{"name":"joined","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

type customer struct {
	ID     string    `avro:"id"`
	Name   string    `avro:"name"`
	Email  string    `avro:"email"`
	Phone  *string   `avro:"phone"`
	Salary int64     `avro:"salary"`
	Credit *int64    `avro:"credit"`
	Photo  []byte    `avro:"photo"`
	Joined time.Time `avro:"joined"`
}

var customerPII = []string{"email", "phone", "salary", "credit", "photo", "joined"}

func person(id, name string) customer {
	phone, credit := "+1 555 0100", int64(-7)
	return customer{ID: id, Name: name, Email: name + "@example.com", Phone: &phone, Salary: 123_456_789_012, Credit: &credit,
		Photo: []byte{0, 0xff, 'x'}, Joined: time.Date(2024, 5, 6, 7, 8, 9, 10_000_000, time.UTC)}
}

// sealedProduct is a product whose change log seals customers' PII.
type sealedProduct struct {
	root   string
	enc    *schemas.Encoder
	sealer *governance.Sealer
	keys   governance.KeyStore
}

func newSealedProduct(t *testing.T, keys governance.KeyStore) *sealedProduct {
	t.Helper()
	root := t.TempDir()
	s, err := schemas.Parse("customer.avsc", customerSchema)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(SchemaDir(root), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(SchemaDir(root), "9.avsc"), []byte(s.Published()), 0o644); err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEncoder(s, 9)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := governance.NewSealer(keys, customer{}, customerPII)
	if err != nil {
		t.Fatal(err)
	}
	return &sealedProduct{root: root, enc: enc, sealer: sealer, keys: keys}
}

func (p *sealedProduct) plain(t *testing.T, c customer) []byte {
	t.Helper()
	b, err := p.enc.Append(nil, c, schemas.Meta{ValidFrom: 1, SystemFrom: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealed is the payload the runtime logs for c: sealed PII, framed with
// the wire bytes of the cleared row.
func (p *sealedProduct) sealed(t *testing.T, c customer) []byte {
	t.Helper()
	cleared, env, err := p.sealer.Seal(context.Background(), c.ID, c)
	if err != nil {
		t.Fatal(err)
	}
	return governance.Frame(nil, env, p.plain(t, cleared.(customer)))
}

func (p *sealedProduct) decoder(t *testing.T, keys governance.KeyStore) *Decoder {
	t.Helper()
	d, err := NewDecoder(SchemaDir(p.root), "")
	if err != nil {
		t.Fatal(err)
	}
	d.Keys = keys
	return d
}

func fieldsOf(t *testing.T, d *Decoder, payload []byte) map[string]any {
	t.Helper()
	m, err := d.Fields(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// withPII is m with the PII fields set to v, and extra added.
func withPII(m map[string]any, v any, extra map[string]any) map[string]any {
	out := map[string]any{}
	for k, x := range m {
		out[k] = x
	}
	for _, name := range customerPII {
		out[name] = v
	}
	for k, x := range extra {
		out[k] = x
	}
	return out
}

func TestFieldsOpensSealedPayloads(t *testing.T) {
	ctx := context.Background()
	keys := governance.RedisKeys(redistest.Client(t), "crm")
	p := newSealedProduct(t, keys)
	d := p.decoder(t, keys)
	ada, bob := person("c-1", "ada"), person("c-2", "bob")
	bob.Phone, bob.Credit = nil, nil
	adaSealed, bobSealed := p.sealed(t, ada), p.sealed(t, bob)

	// Opened, a sealed payload reads exactly as the record would unsealed.
	for _, c := range []customer{ada, bob} {
		want := fieldsOf(t, d, p.plain(t, c))
		if got := fieldsOf(t, d, p.sealed(t, c)); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s sealed reads\n%#v\nunsealed\n%#v", c.ID, got, want)
		}
	}

	// Forgotten: the PII fields are null and named; the rest still reads.
	if err := keys.Destroy(ctx, "c-1"); err != nil {
		t.Fatal(err)
	}
	want := withPII(fieldsOf(t, d, p.plain(t, ada)), nil, map[string]any{"_erased": customerPII})
	if got := fieldsOf(t, d, adaSealed); !reflect.DeepEqual(got, want) {
		t.Fatalf("after forgetting c-1:\n%#v\nwant\n%#v", got, want)
	}
	if got, want := fieldsOf(t, d, bobSealed), fieldsOf(t, d, p.plain(t, bob)); !reflect.DeepEqual(got, want) {
		t.Fatalf("c-2 after forgetting c-1:\n%#v\nwant\n%#v", got, want)
	}

	// With no key store: null, named as sealed, not as erased.
	noKeys := p.decoder(t, nil)
	want = withPII(fieldsOf(t, d, p.plain(t, bob)), nil, map[string]any{"_sealed": customerPII})
	if got := fieldsOf(t, noKeys, bobSealed); !reflect.DeepEqual(got, want) {
		t.Fatalf("without keys:\n%#v\nwant\n%#v", got, want)
	}

	// A damaged envelope is an error, not an erasure.
	bad := bytes.Clone(bobSealed)
	env, _, _ := governance.Split(bad)
	bad[len(env)-40] ^= 1 // in the ciphertext
	if m, err := d.Fields(ctx, bad); !errors.Is(err, governance.ErrCorrupt) {
		t.Fatalf("damaged envelope: %v, %v", m, err)
	}
}

func TestFieldsWithKeyStoreDownFails(t *testing.T) {
	srv, err := localredis.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	keys := governance.RedisKeys(rdb, "crm")
	p := newSealedProduct(t, keys)
	payload := p.sealed(t, person("c-1", "ada"))
	srv.Stop()
	m, err := p.decoder(t, keys).Fields(context.Background(), payload)
	if err == nil || m != nil || errors.Is(err, governance.ErrForgotten) {
		t.Fatalf("Redis down: %v, %v; want an error, not erased fields", m, err)
	}
}

// TestQueryPortServesSealedHistory reads a sealed change log through the
// query port, before and after the subject is forgotten.
func TestQueryPortServesSealedHistory(t *testing.T) {
	keys := governance.MemoryKeys()
	p := newSealedProduct(t, keys)
	ada := person("c-1", "ada")
	moved := ada
	moved.Email = "ada@elsewhere.example"
	l, err := auditlog.Open(filepath.Join(p.root, "changelog", "crm-0"), auditlog.SyncEachAppend(false))
	if err != nil {
		t.Fatal(err)
	}
	var entries []auditlog.Entry
	for i, c := range []customer{ada, moved} {
		e := auditlog.Entry{Seq: uint64(i + 1), SystemTime: us("2026-01-01T00:00:00Z") + int64(i), ValidFrom: us("2026-01-01T00:00:00Z") + int64(i),
			Op: auditlog.OpAssert, Key: []byte(c.ID), Payload: p.sealed(t, c)}
		e.Prov.SchemaID = 9
		entries = append(entries, e)
	}
	if err := l.Append(entries); err != nil {
		t.Fatal(err)
	}
	l.Close()
	st, err := auditlog.OpenStore(p.root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(&Handler{Store: st, Decoder: p.decoder(t, keys)})
	defer srv.Close()

	history := func() []map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL + "/v1/entities/c-1/history")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ans struct{ Versions []VersionJSON }
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != 200 {
			t.Fatalf("history: %d, %v", resp.StatusCode, err)
		}
		var out []map[string]any
		for _, v := range ans.Versions {
			out = append(out, v.Fields)
		}
		return out
	}
	var emails []string
	for _, f := range history() {
		email, _ := f["email"].(string)
		if f["name"] != "ada" || email == "" || f["_erased"] != nil {
			t.Fatalf("version before the forget: %v", f)
		}
		if !slices.Contains(emails, email) {
			emails = append(emails, email)
		}
	}
	if slices.Sort(emails); !slices.Equal(emails, []string{"ada@elsewhere.example", "ada@example.com"}) {
		t.Fatalf("emails in the history: %v", emails)
	}

	if err := keys.Destroy(context.Background(), "c-1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range history() {
		erased, _ := f["_erased"].([]any)
		if f["name"] != "ada" || f["email"] != nil || f["salary"] != nil || len(erased) != len(customerPII) || erased[0] != "email" {
			t.Fatalf("version after the forget: %v", f)
		}
	}
}

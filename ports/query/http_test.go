package query

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/internal/localredis/redistest"
	"github.com/meshlet/meshlet/schemas"
)

const productSchema = `{"type":"record","name":"Product","namespace":"test.inventory","fields":[
	{"name":"id","type":"int"},
	{"name":"name","type":"string"}]}`

// productLog writes a product's change log the way the runtime does:
// Avro payloads in the wire format, the schema saved under ROOT/schemas.
func productLog(t *testing.T, entries []auditlog.Entry, rows []map[string]any) string {
	t.Helper()
	root := t.TempDir()
	s, err := schemas.Parse("product.avsc", productSchema)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(SchemaDir(root), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(SchemaDir(root), "7.avsc"), []byte(s.Published()), 0o644); err != nil {
		t.Fatal(err)
	}
	enc, err := schemas.NewEncoder(s, 7)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(filepath.Join(root, "changelog", "products-0"), auditlog.SyncEachAppend(false))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range entries {
		e := &entries[i]
		e.Seq = uint64(i + 1)
		e.Prov.SchemaID = 7
		if e.Payload, err = enc.Append(nil, rows[i], schemas.Meta{ValidFrom: e.ValidFrom, ValidTo: e.ValidTo, SystemFrom: e.SystemTime, Deleted: e.Op == auditlog.OpRetract}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(entries); err != nil {
		t.Fatal(err)
	}
	return root
}

func us(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

func TestQueryPort(t *testing.T) {
	e := func(sys, vf string, key string) auditlog.Entry {
		return auditlog.Entry{SystemTime: us(sys), ValidFrom: us(vf), Op: auditlog.OpAssert, Key: []byte(key)}
	}
	fix := e("2026-02-15T00:00:00Z", "2026-01-15T00:00:00Z", "101") // a back-dated correction of [Jan 15, Feb 1)
	fix.ValidTo = us("2026-02-01T00:00:00Z")
	del := e("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", "a/b")
	del.Op = auditlog.OpRetract
	entries := []auditlog.Entry{
		e("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "101"),
		e("2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z", "a/b"),
		e("2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "101"),
		fix,
		del,
	}
	rows := []map[string]any{
		{"id": 101, "name": "scooter"},
		{"id": 102, "name": "slashed"},
		{"id": 101, "name": "scooter v2"},
		{"id": 101, "name": "scooter fixed"},
		{"id": 102, "name": "slashed"},
	}
	root := productLog(t, entries, rows)
	st, err := auditlog.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dec, err := NewDecoder(SchemaDir(root), "")
	if err != nil {
		t.Fatal(err)
	}
	rs := NewRedisStore(redistest.Client(t), "inventory")
	var facts []auditlog.Fact
	st.Replay(0, auditlog.Latest, func(f *auditlog.Fact) error {
		c := *f
		c.Key, c.Payload = append([]byte(nil), f.Key...), append([]byte(nil), f.Payload...)
		facts = append(facts, c)
		return nil
	})
	if err := rs.Apply(context.Background(), facts...); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(&Handler{Store: st, Current: rs, Decoder: dec, Now: func() time.Time { return now }})
	defer srv.Close()

	get := func(path string, code int, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != code {
			t.Fatalf("GET %s: %d, want %d", path, resp.StatusCode, code)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var ent struct {
		Key, Source string
		Found       bool
		Entry       EntryJSON
	}
	get("/v1/entities/101", 200, &ent)
	if ent.Source != "redis" || ent.Entry.Fields["name"] != "scooter v2" || ent.Entry.Seq != 3 {
		t.Fatalf("current 101: %+v", ent)
	}
	// As of mid-January, valid mid-January: the original insert.
	get("/v1/entities/101?asOf=2026-01-20T00:00:00Z&validAt=2026-01-20T00:00:00Z", 200, &ent)
	if ent.Source != "index" || ent.Entry.Fields["name"] != "scooter" {
		t.Fatalf("as of January: %+v", ent)
	}
	// Valid mid-January as believed now: the back-dated correction.
	get("/v1/entities/101?validAt=2026-01-20T00:00:00Z", 200, &ent)
	if ent.Entry.Fields["name"] != "scooter fixed" || ent.Entry.Seq != 4 {
		t.Fatalf("valid January as of now: %+v", ent)
	}
	get("/v1/entities/"+url.PathEscape("a/b"), 404, &ent)
	if ent.Found || ent.Key != "a/b" {
		t.Fatalf("deleted a/b: %+v", ent)
	}
	get("/v1/entities/"+url.PathEscape("a/b")+"?asOf=2026-02-01T00:00:00Z", 200, &ent)
	if ent.Entry.Fields["name"] != "slashed" {
		t.Fatalf("a/b before its delete: %+v", ent)
	}
	var hist struct {
		Key      string
		Versions []VersionJSON
	}
	get("/v1/entities/101/history", 200, &hist)
	var names []string
	for _, v := range hist.Versions {
		names = append(names, v.Fields["name"].(string)+"@"+v.ValidFrom[:10]+".."+deref(v.ValidTo)+"|"+v.SystemFrom[:10]+".."+deref(v.SystemTo))
	}
	want := []string{
		"scooter@2026-01-01..-|2026-01-01..2026-02-01",
		"scooter@2026-01-01..2026-02-01|2026-02-01..2026-02-15",
		"scooter v2@2026-02-01..-|2026-02-01..-",
		"scooter@2026-01-01..2026-01-15|2026-02-15..-",
		"scooter fixed@2026-01-15..2026-02-01|2026-02-15..-",
	}
	if len(names) != len(want) {
		t.Fatalf("history:\n%q\nwant\n%q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("history:\n%q\nwant\n%q", names, want)
		}
	}
	var bad errorAnswer
	get("/v1/entities/101?asOf=yesterday", 400, &bad)
	get("/v1/entities/nope/history", 404, &hist)
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return (*s)[:10]
}

package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/cdc/samples"
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
	past := e("2026-03-03T00:00:00Z", "2025-12-01T00:00:00Z", "c") // back-dated over c's first days
	past.ValidTo = us("2026-01-10T00:00:00Z")
	entries := []auditlog.Entry{
		e("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "101"),
		e("2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z", "a/b"),
		e("2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "101"),
		fix,
		del,
		e("2026-03-02T00:00:00Z", "2026-01-03T00:00:00Z", "c"),
		past,
	}
	rows := []map[string]any{
		{"id": 101, "name": "scooter"},
		{"id": 102, "name": "slashed"},
		{"id": 101, "name": "scooter v2"},
		{"id": 101, "name": "scooter fixed"},
		{"id": 102, "name": "slashed"},
		{"id": 103, "name": "crate"},
		{"id": 103, "name": "crate before"},
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
		Entry       VersionJSON
	}
	periods := func(v VersionJSON) string {
		return v.ValidFrom[:10] + ".." + deref(v.ValidTo) + "|" + v.SystemFrom[:10] + ".." + deref(v.SystemTo)
	}
	get("/v1/entities/101", 200, &ent)
	if ent.Source != "redis" || ent.Entry.Fields["name"] != "scooter v2" || ent.Entry.Seq != 3 || periods(ent.Entry) != "2026-02-01..-|2026-02-01..-" {
		t.Fatalf("current 101: %+v", ent)
	}
	// As of mid-January, valid mid-January: the original insert, believed
	// valid until further notice then; that belief ended on Feb 1.
	get("/v1/entities/101?asOf=2026-01-20T00:00:00Z&validAt=2026-01-20T00:00:00Z", 200, &ent)
	if ent.Source != "index" || ent.Entry.Fields["name"] != "scooter" || periods(ent.Entry) != "2026-01-01..-|2026-01-01..2026-02-01" {
		t.Fatalf("as of January: %+v", ent)
	}
	// Valid mid-January as believed now: the back-dated correction.
	get("/v1/entities/101?validAt=2026-01-20T00:00:00Z", 200, &ent)
	if ent.Entry.Fields["name"] != "scooter fixed" || ent.Entry.Seq != 4 || periods(ent.Entry) != "2026-01-15..2026-02-01|2026-02-15..-" {
		t.Fatalf("valid January as of now: %+v", ent)
	}
	// Valid early January as believed now: what the correction left of the
	// insert, believed since the correction.
	get("/v1/entities/101?asOf=now&validAt=2026-01-05T00:00:00Z", 200, &ent)
	if ent.Entry.Fields["name"] != "scooter" || ent.Entry.Seq != 1 || periods(ent.Entry) != "2026-01-01..2026-01-15|2026-02-15..-" ||
		ent.Entry.Recorded[:10] != "2026-01-01" {
		t.Fatalf("valid early January as of now: %+v", ent)
	}
	// c now: what the back-dated entry left of it, believed since that was
	// recorded, from Redis as from the index.
	get("/v1/entities/c", 200, &ent)
	current := ent.Entry
	get("/v1/entities/c?asOf=now&validAt=2026-04-01T00:00:00Z", 200, &ent)
	if current.Fields["name"] != "crate" || periods(current) != "2026-01-10..-|2026-03-03..-" || current.Recorded[:10] != "2026-03-02" ||
		asJSON(current) != asJSON(ent.Entry) {
		t.Fatalf("current c:\n  redis %+v\n  index %+v", current, ent.Entry)
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
	// The history as it stood on Feb 10: the insert cut at the update, the update.
	get("/v1/entities/101/history?asOf=2026-02-10T00:00:00Z", 200, &hist)
	names = names[:0]
	for _, v := range hist.Versions {
		names = append(names, v.Fields["name"].(string)+"@"+periods(v))
	}
	if fmt.Sprint(names) != fmt.Sprint([]string{"scooter@2026-01-01..2026-02-01|2026-02-01..2026-02-15", "scooter v2@2026-02-01..-|2026-02-01..-"}) {
		t.Fatalf("history as of Feb 10: %q", names)
	}
	var bad errorAnswer
	get("/v1/entities/101?asOf=yesterday", 400, &bad)
	get("/v1/entities/101/history?asOf=yesterday", 400, &bad)
	get("/v1/entities/nope/history", 404, &hist)
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return (*s)[:10]
}

// captureLog writes the recorded Debezium capture of the inventory
// products table into a product log, as the example product would: keyed
// by id, valid from the source commit time, recorded a second after it.
func captureLog(t *testing.T) (string, []auditlog.Entry) {
	t.Helper()
	lines, err := samples.Lines(samples.DebeziumPostgres)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cdc.NewDecoder("debezium-json")
	if err != nil {
		t.Fatal(err)
	}
	var (
		entries []auditlog.Entry
		rows    []map[string]any
		clock   int64
	)
	for i, line := range lines {
		var c cdc.Change
		if err := dec.Decode(nil, line, &c); err != nil {
			t.Fatalf("%s message %d: %v", samples.DebeziumPostgres, i+1, err)
		}
		img, op := c.After, auditlog.OpAssert
		if c.Op == cdc.OpDelete {
			img, op = c.Before, auditlog.OpRetract
		}
		var r struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(img, &r); err != nil {
			t.Fatal(err)
		}
		commit := c.CommitTime.UnixMicro()
		clock = max(clock+1, commit+1_000_000)
		entries = append(entries, auditlog.Entry{SystemTime: clock, ValidFrom: commit, Op: op, Key: []byte(fmt.Sprint(r.ID)),
			Prov: auditlog.Provenance{Topic: "dbserver1.inventory.products", Offset: int64(i), SourcePosition: c.Source.Position.String()}})
		rows = append(rows, map[string]any{"id": r.ID, "name": r.Name})
	}
	root := productLog(t, entries, rows)
	return root, entries
}

// TestQueryPort106AgreesWithHistory is the case over HTTP: asked
// now about 07:00, product 106 is its snapshot row, with the periods of
// the matching row of its history as believed now - valid until the
// update's commit at 08:21:29.629, believed since the update was recorded
// - and the current version from Redis is the row of that history that
// holds now.
func TestQueryPort106AgreesWithHistory(t *testing.T) {
	root, entries := captureLog(t)
	st, err := auditlog.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs := NewRedisStore(redistest.Client(t), "inventory")
	var facts []auditlog.Fact
	for _, e := range entries {
		facts = append(facts, auditlog.Fact{Log: "products-0", Entry: e})
	}
	if err := rs.Apply(context.Background(), facts...); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2020, 7, 30, 0, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(&Handler{Store: st, Current: rs, Now: func() time.Time { return now }})
	defer srv.Close()
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var hist struct{ Versions []VersionJSON }
	get("/v1/entities/106/history?asOf=now", &hist)
	holding := func(at string) VersionJSON {
		t.Helper()
		var hit []VersionJSON
		for _, v := range hist.Versions {
			if v.ValidFrom <= at && (v.ValidTo == nil || at < *v.ValidTo) {
				hit = append(hit, v)
			}
		}
		if len(hit) != 1 {
			t.Fatalf("history of 106 as believed now: %d versions hold %s: %+v", len(hit), at, hist.Versions)
		}
		return hit[0]
	}
	var ent struct {
		Source string
		Entry  VersionJSON
	}
	get("/v1/entities/106?asOf=now&validAt=2020-07-29T07:00:00Z", &ent)
	row := holding("2020-07-29T07:00:00.000000Z")
	if asJSON(ent.Entry) != asJSON(row) || ent.Source != "index" {
		t.Fatalf("106 as of now, valid at 07:00:\n  asof    %s\n  history %s", show(ent.Entry), show(row))
	}
	// By hand from the capture: the snapshot read at 05:38:19.436, the
	// update committed at 08:21:29.629 and recorded a second later.
	if want := "[2020-07-29T05:38:19.436000Z, 2020-07-29T08:21:29.629000Z) since 2020-07-29T08:21:30.629000Z until -"; show(ent.Entry) != want {
		t.Fatalf("106 as of now, valid at 07:00: %s, want %s", show(ent.Entry), want)
	}

	get("/v1/entities/106", &ent)
	row = holding(FormatTime(now.UnixMicro()))
	if ent.Source != "redis" || asJSON(ent.Entry) != asJSON(row) {
		t.Fatalf("106 now:\n  current %s\n  history %s", show(ent.Entry), show(row))
	}
	if want := "[2020-07-29T08:21:29.629000Z, -) since 2020-07-29T08:21:30.629000Z until -"; show(ent.Entry) != want {
		t.Fatalf("106 now: %s, want %s", show(ent.Entry), want)
	}
}

func asJSON(v VersionJSON) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func show(v VersionJSON) string {
	opt := func(s *string) string {
		if s == nil {
			return "-"
		}
		return *s
	}
	return fmt.Sprintf("[%s, %s) since %s until %s", v.ValidFrom, opt(v.ValidTo), v.SystemFrom, opt(v.SystemTo))
}

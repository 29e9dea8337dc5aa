package snapshot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/snapshot/snapshottest"
)

var ctx = context.Background()

// fixture is a data directory with what a test needs to take snapshots of it.
type fixture struct {
	dd      *snapshottest.DataDir
	product snapshot.Product
	st      *auditlog.Store
	dec     *query.Decoder
	cols    []col // payload columns as DuckDB is asked for them
}

func (f *fixture) source() snapshot.Source {
	return snapshot.Source{Store: f.st, SchemaDir: f.dd.SchemaDir()}
}

func (f *fixture) take(t *testing.T, opts ...snapshot.Option) (string, *snapshot.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "snap")
	m, err := snapshot.Take(ctx, f.source(), f.product, dir, opts...)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	return dir, m
}

// col is a payload column: how DuckDB is asked for it, and what the
// answer must be given the value the store's decoder (asof, history) gives.
type col struct {
	name, sql string
	want      func(v any) any
}

func text(v any) any { return v }
func decimalText(scale int) func(any) any {
	return func(v any) any { return v.(*big.Rat).FloatString(scale) }
}
func millisText(v any) any { return strconv.FormatInt(v.(time.Time).UnixMilli(), 10) }
func dateText(v any) any   { return v.(time.Time).Format("2006-01-02") }
func intText(v any) any    { return fmt.Sprint(v) }
func number(v any) any     { return v.(float64) }
func jsonLen(v any) any    { return strconv.Itoa(len(v.([]any))) }

var orderCols = []col{
	{"id", "id", text},
	{"customer", "customer", text},
	{"email", "email", text},
	{"amount", "amount::VARCHAR", decimalText(2)},
	{"placed_at", "epoch_ms(placed_at)::VARCHAR", millisText},
	{"ship_date", "ship_date::VARCHAR", dateText},
	{"status", "status", text},
	{"quantity", "quantity::VARCHAR", intText},
	{"weight_kg", "weight_kg", number},
	{"tags", "json_array_length(tags)::VARCHAR", jsonLen},
}

var inventoryCols = []col{
	{"id", "id::VARCHAR", intText},
	{"name", "name", text},
	{"description", "description", text},
	{"weight_kg", "weight_kg", number},
}

func ordersFixture(t *testing.T, spec snapshottest.OrdersSpec) (*fixture, *snapshottest.Orders) {
	t.Helper()
	o := snapshottest.NewOrders(t, spec)
	o.Checkpoint(t)
	for _, k := range []string{"insert", "update", "delete", "reinsert", "correction"} {
		if o.Wrote[k] == 0 {
			t.Fatalf("the stream has no %s (%v): make it longer", k, o.Wrote)
		}
	}
	return newFixture(t, o.DataDir, snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}, orderCols), o
}

func newFixture(t *testing.T, dd *snapshottest.DataDir, p snapshot.Product, cols []col) *fixture {
	t.Helper()
	dec, err := query.NewDecoder(dd.SchemaDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dd: dd, product: p, st: dd.Store(t), dec: dec, cols: cols}
}

// storeRow is what asof or history prints for one entry, in the shape the
// DuckDB queries below answer: key, log, seq, then the payload columns.
func (f *fixture) storeRow(t *testing.T, fact *auditlog.Fact) []any {
	t.Helper()
	fields, err := f.dec.Fields(ctx, fact.Payload)
	if err != nil {
		t.Fatalf("log %s seq %d: %v", fact.Log, fact.Seq, err)
	}
	row := []any{string(fact.Key), fact.Log, strconv.FormatUint(fact.Seq, 10)}
	for _, c := range f.cols {
		if v := fields[c.name]; v == nil {
			row = append(row, nil)
		} else {
			row = append(row, c.want(v))
		}
	}
	return row
}

func (f *fixture) selectList() string {
	parts := []string{"_key", "_log", "_seq::VARCHAR"}
	for _, c := range f.cols {
		parts = append(parts, c.sql)
	}
	return strings.Join(parts, ", ")
}

// asOfRows is Store.AsOf(T).ValidAt(V).Scan, as asof prints it, by key.
func (f *fixture) asOfRows(t *testing.T, system, valid int64) [][]any {
	t.Helper()
	var rows [][]any
	err := f.st.AsOf(system).ValidAt(valid).Scan(func(v *auditlog.Version) error {
		rows = append(rows, f.storeRow(t, &v.Fact))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b []any) int { return strings.Compare(a[0].(string), b[0].(string)) })
	return rows
}

// historyRows is Store.History(key), as history prints it, with the periods.
func (f *fixture) historyRows(t *testing.T, key string) [][]any {
	t.Helper()
	vs, err := f.st.History([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	for _, v := range vs {
		r := f.storeRow(t, &v.Fact)
		r = append(r, us(v.ValidFrom), usOrNil(v.ValidTo), us(v.SystemFrom), usOrNil(v.SystemTo))
		rows = append(rows, r)
	}
	return rows
}

func us(v int64) any { return strconv.FormatInt(v, 10) }
func usOrNil(v int64) any {
	if v == 0 {
		return nil
	}
	return us(v)
}

func tsLiteral(v int64) string {
	return "TIMESTAMPTZ '" + time.UnixMicro(v).UTC().Format("2006-01-02 15:04:05.000000") + "+00'"
}

func sameRows(t *testing.T, what string, got, want [][]any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s:\n got %d rows %s\nwant %d rows %s", what, len(got), g, len(want), w)
	}
	if len(want) == 0 {
		t.Fatalf("%s: no rows to compare: the test would prove nothing", what)
	}
}

// moments picks system times inside the stream, where history matters.
func moments(t *testing.T, st *auditlog.Store, log string) []int64 {
	t.Helper()
	var out []int64
	info := st.Logs()
	for _, l := range info {
		if l.Name != log {
			continue
		}
		for _, seq := range []uint64{l.Entries / 4, l.Entries / 2, l.Entries * 3 / 4} {
			f, err := st.Fact(log, max(seq, 1))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f.SystemTime)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no log %s", log)
	}
	return out
}

// busiest is the key with the most versions: the entity whose history is checked.
func busiest(t *testing.T, st *auditlog.Store, cut auditlog.Cut) string {
	t.Helper()
	best, n := "", 0
	err := st.ScanKeys(cut, func(key []byte, facts []auditlog.Fact) error {
		corrected := false
		for i := 1; i < len(facts); i++ {
			corrected = corrected || facts[i].ValidFrom < facts[i-1].ValidFrom || facts[i].Op == auditlog.OpRetract
		}
		if len(facts) > n && (corrected || best == "") {
			best, n = string(key), len(facts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return best
}

func cutOf(m *snapshot.Manifest) auditlog.Cut {
	c := auditlog.Cut{}
	for _, l := range m.Logs {
		c[l.Name] = l.Entries
	}
	return c
}

// checkWithDuckDB asks DuckDB, reading the snapshot's files, the questions
// asof and history answer, and compares.
func checkWithDuckDB(t *testing.T, f *fixture, dir string, m *snapshot.Manifest, log string) {
	t.Helper()
	table := snapshottest.Quote(filepath.Join(dir, "table.parquet"))
	hist := snapshottest.Quote(filepath.Join(dir, "history.parquet"))
	key := busiest(t, f.st, cutOf(m))
	when := moments(t, f.st, log)

	queries := []string{
		"SELECT count(*)::VARCHAR FROM " + table,
		"SELECT " + f.selectList() + " FROM " + table + " ORDER BY _key",
		"SELECT " + f.selectList() + `, epoch_us(_valid_from)::VARCHAR, epoch_us(_valid_to)::VARCHAR,
			epoch_us(_system_from)::VARCHAR, epoch_us(_system_to)::VARCHAR
			FROM ` + hist + " WHERE _key = " + snapshottest.Quote(key) + " AND NOT _deleted ORDER BY _system_from, _valid_from",
	}
	type asOf struct{ system, valid int64 }
	var asOfs []asOf
	for i, T := range when {
		// Valid times before, at and after the moment: back-dated
		// corrections make these differ.
		for _, dv := range []int64{-3_600_000_000, -1_500_000, 0, int64(i) * 86_400_000_000} {
			asOfs = append(asOfs, asOf{T, T + dv})
		}
	}
	for _, a := range asOfs {
		queries = append(queries, "SELECT "+f.selectList()+" FROM "+hist+" WHERE NOT _deleted"+
			" AND _system_from <= "+tsLiteral(a.system)+" AND (_system_to IS NULL OR "+tsLiteral(a.system)+" < _system_to)"+
			" AND _valid_from <= "+tsLiteral(a.valid)+" AND (_valid_to IS NULL OR "+tsLiteral(a.valid)+" < _valid_to)"+
			" ORDER BY _key")
	}
	res := snapshottest.DuckDB(t, queries...)

	want := f.asOfRows(t, m.System, m.Valid)
	if got := res[0].Rows[0][0]; got != strconv.Itoa(len(want)) {
		t.Fatalf("DuckDB counts %v rows in the table, the store answers %d", got, len(want))
	}
	sameRows(t, "table as of T valid at V (DuckDB vs asof)", res[1].Rows, want)
	sameRows(t, "history of "+key+" (DuckDB vs history)", res[2].Rows, f.historyRows(t, key))
	distinct := map[string]bool{}
	for i, a := range asOfs {
		want := f.asOfRows(t, a.system, a.valid)
		got := res[3+i].Rows
		if len(want) == 0 && len(got) == 0 {
			continue
		}
		sameRows(t, fmt.Sprintf("history as of %s valid at %s (DuckDB vs asof)", formatUS(a.system), formatUS(a.valid)), got, want)
		b, _ := json.Marshal(want)
		distinct[string(b)] = true
	}
	if len(distinct) < 3 {
		t.Fatalf("the as-of questions gave only %d different tables: they test too little", len(distinct))
	}
}

func formatUS(v int64) string { return time.UnixMicro(v).UTC().Format(time.RFC3339Nano) }

// TestDuckDBReadsSnapshotOfOrders: DuckDB reads the files a snapshot of a
// stream with updates, deletes, re-inserts and back-dated corrections
// writes, and its answers (row count, the table, an as-of query by valid
// and system time on the history file, one entity's history) are the
// store's, as asof and history print them. The logical types are DuckDB's
// own: decimals, timestamps with time zone, dates, JSON.
func TestDuckDBReadsSnapshotOfOrders(t *testing.T) {
	f, _ := ordersFixture(t, snapshottest.OrdersSpec{Seed: 1, Keys: 30, Entries: 900, Logs: 2})
	// A V inside the stream, so the table is not just the latest rows.
	mid := moments(t, f.st, snapshottest.LogName(0))[1]
	dir, m := f.take(t, snapshot.ValidAt(mid))
	checkWithDuckDB(t, f, dir, m, snapshottest.LogName(0))

	hist := snapshottest.Quote(filepath.Join(dir, "history.parquet"))
	res := snapshottest.DuckDB(t,
		"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+hist+")",
		"SELECT name, repetition_type FROM parquet_schema("+hist+") WHERE name <> 'meshlet_history'",
		"SELECT _log, _seq::VARCHAR FROM "+hist+" WHERE _deleted ORDER BY _log, _seq")
	types := map[string]string{}
	for _, r := range res[0].Rows {
		types[r[0].(string)] = r[1].(string)
	}
	wantTypes := map[string]string{
		"_key": "VARCHAR", "id": "VARCHAR", "email": "VARCHAR", "amount": "DECIMAL(12,2)",
		"placed_at": "TIMESTAMP WITH TIME ZONE", "ship_date": "DATE", "status": "VARCHAR",
		"quantity": "INTEGER", "weight_kg": "DOUBLE", "tags": "JSON",
		"_valid_from": "TIMESTAMP WITH TIME ZONE", "_valid_to": "TIMESTAMP WITH TIME ZONE",
		"_system_from": "TIMESTAMP WITH TIME ZONE", "_system_to": "TIMESTAMP WITH TIME ZONE",
		"_deleted": "BOOLEAN", "_log": "VARCHAR", "_seq": "BIGINT",
	}
	for name, want := range wantTypes {
		if types[name] != want {
			t.Errorf("column %s: DuckDB type %q, want %q", name, types[name], want)
		}
	}
	order := []string{}
	for _, r := range res[0].Rows {
		order = append(order, r[0].(string))
	}
	if want := "_key id customer email amount placed_at ship_date status quantity weight_kg tags _valid_from _valid_to _system_from _system_to _deleted _log _seq"; strings.Join(order, " ") != want {
		t.Errorf("columns in order %v, want %s", order, want)
	}
	rep := map[string]string{}
	for _, r := range res[1].Rows {
		rep[r[0].(string)] = r[1].(string)
	}
	for name, want := range map[string]string{"id": "REQUIRED", "amount": "REQUIRED", "placed_at": "REQUIRED", "_valid_from": "REQUIRED",
		"email": "OPTIONAL", "ship_date": "OPTIONAL", "weight_kg": "OPTIONAL", "_valid_to": "OPTIONAL", "_system_to": "OPTIONAL"} {
		if rep[name] != want {
			t.Errorf("column %s: repetition %q, want %q", name, rep[name], want)
		}
	}
	// Every deleted row shows a retraction, and every retraction shows.
	var retractions [][]any
	err := f.st.ScanKeys(cutOf(m), func(_ []byte, facts []auditlog.Fact) error {
		for _, fc := range facts {
			if fc.Op == auditlog.OpRetract {
				retractions = append(retractions, []any{fc.Log, strconv.FormatUint(fc.Seq, 10)})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deleted := slices.CompactFunc(res[2].Rows, func(a, b []any) bool { return fmt.Sprint(a) == fmt.Sprint(b) })
	slices.SortFunc(retractions, func(a, b []any) int {
		if c := strings.Compare(a[0].(string), b[0].(string)); c != 0 {
			return c
		}
		x, _ := strconv.Atoi(a[1].(string))
		y, _ := strconv.Atoi(b[1].(string))
		return x - y
	})
	slices.SortFunc(deleted, func(a, b []any) int {
		if c := strings.Compare(a[0].(string), b[0].(string)); c != 0 {
			return c
		}
		x, _ := strconv.Atoi(a[1].(string))
		y, _ := strconv.Atoi(b[1].(string))
		return x - y
	})
	sameRows(t, "deleted rows (log, seq) vs the log's retractions", deleted, retractions)
}

// TestDuckDBReadsSnapshotOfInventory does the same for the example
// product, fed the recorded Debezium capture through its handler.
func TestDuckDBReadsSnapshotOfInventory(t *testing.T) {
	dd := snapshottest.Inventory(t)
	f := newFixture(t, dd, snapshot.Product{URN: snapshottest.InventoryURN, Port: "products", Topic: "inventory.products.v1"}, inventoryCols)
	dir, m := f.take(t)
	if m.Logs[0].Entries == 0 {
		t.Fatal("the recorded capture wrote no entries")
	}
	checkWithDuckDB(t, f, dir, m, snapshottest.InventoryLog)
}

func TestVerifyProvesSnapshot(t *testing.T) {
	f, o := ordersFixture(t, snapshottest.OrdersSpec{Seed: 2, Keys: 15, Entries: 400, Logs: 2})
	dir, m := f.take(t)
	rep, err := snapshot.Verify(ctx, dir, f.source(), o.Verifier)
	if err != nil {
		t.Fatalf("Verify of a fresh snapshot: %v", err)
	}
	if len(rep.Logs) != 2 || rep.Rows[snapshot.Table] != m.Files[0].Rows || rep.Rows[snapshot.History] != m.Files[1].Rows {
		t.Fatalf("report %+v for manifest files %+v", rep, m.Files)
	}
	// The log grows after the snapshot: it still verifies, against the
	// same cut.
	o.Next(t, 50)
	o.Checkpoint(t)
	if err := f.st.Refresh(); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Verify(ctx, dir, f.source(), o.Verifier); err != nil {
		t.Fatalf("Verify after the log grew: %v", err)
	}
}

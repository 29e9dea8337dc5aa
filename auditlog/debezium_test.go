package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/cdc/samples"
)

// row is a products row as the samples carry it; Weight keeps the JSON
// number's text so the expected tables can be written as it appears.
type row struct {
	ID          int         `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Weight      json.Number `json:"weight"`
}

func (r row) String() string { return fmt.Sprintf("%s|%s|%s", r.Name, r.Description, r.Weight) }

// loadDebezium runs a Debezium sample into a log: one entry per change,
// keyed by the row id, valid from the source commit time, recorded by a
// test clock one second behind the source (a consumer's lag), payload the
// row image as JSON. A delete is a retraction from its commit time on.
func loadDebezium(t *testing.T, file string) string {
	t.Helper()
	b, err := samples.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cdc.NewDecoder("debezium-json")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	l := mustOpen(t, filepath.Join(root, "products-0"), SyncEachAppend(false))
	defer l.Close()
	var (
		c     cdc.Change
		batch []Entry
		clock int64
	)
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := dec.Decode(nil, []byte(line), &c); err != nil {
			t.Fatalf("%s line %d: %v", file, i+1, err)
		}
		img := c.After
		op := OpAssert
		if c.Op == cdc.OpDelete {
			img, op = c.Before, OpRetract
		}
		var r row
		jd := json.NewDecoder(bytes.NewReader(img))
		jd.UseNumber()
		if err := jd.Decode(&r); err != nil {
			t.Fatalf("%s line %d: row: %v", file, i+1, err)
		}
		commit := c.CommitTime.UnixMicro()
		clock = max(clock+1, commit+1_000_000)
		batch = append(batch, Entry{
			Seq: uint64(len(batch) + 1), SystemTime: clock, ValidFrom: commit, Op: op,
			Key: []byte(fmt.Sprint(r.ID)), Payload: slices.Clone(img),
			Prov: Provenance{Topic: "dbserver1.inventory.products", Offset: int64(i), SourcePosition: c.Source.Position.String()},
		})
	}
	if err := l.Append(batch); err != nil {
		t.Fatal(err)
	}
	return root
}

func table(t *testing.T, st *Store, asOf, validAt int64) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := st.Scan(asOf, validAt, func(v *Version) error {
		f := &v.Fact
		var r row
		jd := json.NewDecoder(bytes.NewReader(f.Payload))
		jd.UseNumber()
		if err := jd.Decode(&r); err != nil {
			return err
		}
		out[string(f.Key)] = r.String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ms(v int64) int64 { return time.UnixMilli(v).UnixMicro() }

// TestDebeziumAsOf replays the recorded Debezium captures and asks what
// the products table was at moments between the recorded changes. The
// expected tables are written out by hand from the samples.
func TestDebeziumAsOf(t *testing.T) {
	pgSnapshot := map[string]string{
		"101": "scooter|Small 2-wheel scooter|3.14",
		"102": "car battery|12V car battery|8.1",
		"103": "12-pack drill bits|12-pack of drill bits with sizes ranging from #40 to #3|0.8",
		"104": "hammer|12oz carpenter's hammer|0.75",
		"105": "hammer|14oz carpenter's hammer|0.875",
		"106": "hammer|16oz carpenter's hammer|1.0",
		"107": "rocks|box of assorted rocks|5.3",
		"108": "jacket|water resistent black wind breaker|0.1",
		"109": "spare tire|24 inch spare tire|22.2",
	}
	myInsert := map[string]string{
		"101": "scooter|Small 2-wheel scooter|3.140000104904175",
		"102": "car battery|12V car battery|8.100000381469727",
		"103": "12-pack drill bits|12-pack of drill bits with sizes ranging from #40 to #3|0.800000011920929",
		"104": "hammer|12oz carpenter's hammer|0.75",
		"105": "hammer|14oz carpenter's hammer|0.875",
		"106": "hammer|16oz carpenter's hammer|1.0",
		"107": "rocks|box of assorted rocks|5.300000190734863",
		"108": "jacket|water resistent black wind breaker|0.10000000149011612",
		"109": "spare tire|24 inch spare tire|22.200000762939453",
	}
	with := func(base map[string]string, changes ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(changes); i += 2 {
			if changes[i+1] == "" {
				delete(m, changes[i])
			} else {
				m[changes[i]] = changes[i+1]
			}
		}
		return m
	}
	type moment struct {
		name string
		at   int64 // unix ms: both the system time asked as of and the valid time asked about
		want map[string]string
	}
	pg := []moment{
		{"before the snapshot", 1596001099000, map[string]string{}},
		{"after the snapshot", 1596005000000, pgSnapshot},
		{"after 106 was renamed", 1596010900000, with(pgSnapshot, "106", "hammer|18oz carpenter hammer|1.0")},
		{"after 110 and 111 were inserted", 1596010980000, with(pgSnapshot,
			"106", "hammer|18oz carpenter hammer|1.0",
			"107", "rocks|box of assorted rocks|5.1",
			"110", "jacket|water resistent white wind breaker|0.2",
			"111", "scooter|Big 2-wheel scooter |5.18")},
		{"after 110 and 111 were updated", 1596010987000, with(pgSnapshot,
			"106", "hammer|18oz carpenter hammer|1.0",
			"107", "rocks|box of assorted rocks|5.1",
			"110", "jacket|new water resistent white wind breaker|0.5",
			"111", "scooter|Big 2-wheel scooter |5.17")},
		{"after 111 was deleted", 1596011000000, with(pgSnapshot,
			"106", "hammer|18oz carpenter hammer|1.0",
			"107", "rocks|box of assorted rocks|5.1",
			"110", "jacket|new water resistent white wind breaker|0.5")},
	}
	my := []moment{
		{"before the inserts", 1589355606000, map[string]string{}},
		{"after the inserts", 1589360000000, myInsert},
		{"after 106 was renamed", 1589362000000, with(myInsert, "106", "hammer|18oz carpenter hammer|1.0")},
		{"after 110 and 111 were inserted", 1589362250000, with(myInsert,
			"106", "hammer|18oz carpenter hammer|1.0",
			"107", "rocks|box of assorted rocks|5.099999904632568",
			"110", "jacket|water resistent white wind breaker|0.20000000298023224",
			"111", "scooter|Big 2-wheel scooter |5.179999828338623")},
		{"after 110 and 111 were updated", 1589362340000, with(myInsert,
			"106", "hammer|18oz carpenter hammer|1.0",
			"107", "rocks|box of assorted rocks|5.099999904632568",
			"110", "jacket|new water resistent white wind breaker|0.5",
			"111", "scooter|Big 2-wheel scooter |5.170000076293945")},
		{"after 111 was deleted", 1589362400000, with(myInsert,
			"106", "hammer|18oz carpenter hammer|1.0",
			"107", "rocks|box of assorted rocks|5.099999904632568",
			"110", "jacket|new water resistent white wind breaker|0.5")},
	}
	for _, tc := range []struct {
		file    string
		moments []moment
		life111 [3]int64 // commit times (ms) of 111's insert, update and delete
	}{
		{"debezium-postgres-data-schema-exclude.txt", pg, [3]int64{1596010976756, 1596010985627, 1596010988168}},
		{"debezium-data-schema-include.txt", my, [3]int64{1589362243000, 1589362330000, 1589362344000}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			st := openStore(t, loadDebezium(t, tc.file))
			for i, m := range tc.moments {
				at := ms(m.at)
				// As the product saw it then, and as it sees that moment now:
				// without back-dated corrections the two agree.
				for _, asOf := range []int64{at, Latest} {
					if got := table(t, st, asOf, at); fmt.Sprint(got) != fmt.Sprint(m.want) {
						t.Errorf("%s (as of %d): table\n got %v\nwant %v", m.name, asOf, got, m.want)
					}
					for id := 101; id <= 111; id++ {
						key := fmt.Sprint(id)
						v, ok, err := st.AsOf(asOf).ValidAt(at).Get([]byte(key))
						f := v.Fact
						if err != nil {
							t.Fatal(err)
						}
						want, present := m.want[key]
						if ok != present || ok && !strings.Contains(string(f.Payload), `"weight":`+strings.Split(want, "|")[2]) {
							t.Errorf("%s: Get(%s) = %s ok=%v, want %q", m.name, key, f.Payload, ok, want)
						}
					}
				}
				// What the product believed then about every later moment:
				// only the changes it had recorded.
				for _, later := range tc.moments[i:] {
					if got := table(t, st, at, ms(later.at)); fmt.Sprint(got) != fmt.Sprint(m.want) {
						t.Errorf("as of %s, valid %s: got %v, want %v", m.name, later.name, got, m.want)
					}
				}
			}
			// Nothing here is back-dated, so there are no corrections.
			if cs, err := st.Corrections(0, Latest); err != nil || len(cs) != 0 {
				t.Fatalf("corrections %v, %v", cs, err)
			}
			// 111's history: inserted, updated, deleted. Each change closes
			// the version it overrides and re-emits what is still believed
			// of it, so as believed now 111 existed from its insert to its
			// delete, in two versions.
			vs, err := st.History([]byte("111"))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				got = append(got, fmt.Sprintf("valid %d..%d system %d..%d seq %d", v.ValidFrom, v.ValidTo, v.SystemFrom, v.SystemTo, v.Fact.Seq))
			}
			c, u, d := ms(tc.life111[0]), ms(tc.life111[1]), ms(tc.life111[2])
			const lag = 1_000_000
			want := []string{
				fmt.Sprintf("valid %d..0 system %d..%d seq 13", c, c+lag, u+lag), // as inserted
				fmt.Sprintf("valid %d..%d system %d..0 seq 13", c, u, u+lag),     // what the update left of it
				fmt.Sprintf("valid %d..0 system %d..%d seq 15", u, u+lag, d+lag), // as updated
				fmt.Sprintf("valid %d..%d system %d..0 seq 15", u, d, d+lag),     // what the delete left of it
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("history of 111:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
		})
	}
}

// TestDebezium106AsOfAgreesWithHistory is the case of the issue "time
// travel answers agree": Postgres snapshotted product 106 at 05:38:19.436
// and updated it at 08:21:29.629 (source commit times in the capture).
// Asked now about 07:00, the answer is the snapshot's row, and its periods
// must be those of the matching row of the history as believed now: valid
// until the update's commit time, believed since the update was recorded.
func TestDebezium106AsOfAgreesWithHistory(t *testing.T) {
	st := openStore(t, loadDebezium(t, samples.DebeziumPostgres))
	at := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMicro()
	}
	const lag = 1_000_000 // loadDebezium records each change a second after its commit
	var (
		snapshot = at("2020-07-29T05:38:19.436Z") // source.ts_ms of 106's snapshot read
		update   = at("2020-07-29T08:21:29.629Z") // source.ts_ms of its update
		valid    = at("2020-07-29T07:00:00Z")
	)
	key := []byte("106")
	agree := func(T int64, want Version) {
		t.Helper()
		got, ok, err := st.AsOf(T).ValidAt(valid).Get(key)
		if err != nil || !ok {
			t.Fatalf("as of %d: Get(106) ok=%v err=%v", T, ok, err)
		}
		if !strings.Contains(string(got.Fact.Payload), `"description":"16oz carpenter's hammer"`) {
			t.Fatalf("as of %d: 106 valid at 07:00 is %s, want the 16oz hammer", T, got.Fact.Payload)
		}
		if got.ValidFrom != want.ValidFrom || got.ValidTo != want.ValidTo || got.SystemFrom != want.SystemFrom || got.SystemTo != want.SystemTo {
			t.Fatalf("as of %d: asof says %s, want %s", T, showVersion(&got), showVersion(&want))
		}
		hist, err := st.AsOf(T).History(key)
		if err != nil {
			t.Fatal(err)
		}
		var rows []Version
		for _, v := range hist {
			if v.ValidFrom <= valid && (v.ValidTo == 0 || valid < v.ValidTo) {
				rows = append(rows, v)
			}
		}
		if len(rows) != 1 || showVersion(&rows[0]) != showVersion(&got) || !sameFact(&rows[0].Fact, &got.Fact) {
			t.Fatalf("as of %d: asof says %s, the history as believed then has %d matching rows %v", T, showVersion(&got), len(rows), rows)
		}
	}
	// Now: the snapshot's row is believed valid until the update's commit,
	// and has been since the update was recorded.
	agree(Latest, Version{ValidFrom: snapshot, ValidTo: update, SystemFrom: update + lag})
	// At 08:00, before the update was recorded, it was valid until further
	// notice; that belief ended when the update was recorded.
	before, _, err := st.AsOf(at("2020-07-29T08:00:00Z")).ValidAt(valid).Get(key)
	if err != nil {
		t.Fatal(err)
	}
	agree(at("2020-07-29T08:00:00Z"), Version{ValidFrom: snapshot, SystemFrom: before.Fact.SystemTime, SystemTo: update + lag})
	if before.Fact.SystemTime <= snapshot || before.Fact.SystemTime > snapshot+lag+100 {
		t.Fatalf("snapshot of 106 recorded at %d, want about a second after %d", before.Fact.SystemTime, snapshot)
	}
	// The history as believed now, in full: the snapshot's row cut at the
	// update and the update's own.
	hist, err := st.AsOf(Latest).History(key)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range hist {
		got = append(got, fmt.Sprintf("[%d, %d) since %d", hist[i].ValidFrom, hist[i].ValidTo, hist[i].SystemFrom))
	}
	want := []string{
		fmt.Sprintf("[%d, %d) since %d", snapshot, update, update+lag),
		fmt.Sprintf("[%d, 0) since %d", update, update+lag),
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("106 as believed now: %v, want %v", got, want)
	}
}

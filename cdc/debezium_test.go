package cdc

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/cdc/samples"
)

// readLines returns the messages of a sample file: one per line, split on
// "\n" with empty lines skipped (the files have no trailing newline).
func readLines(tb testing.TB, name string) [][]byte {
	tb.Helper()
	lines, err := samples.Lines(name)
	if err != nil {
		tb.Fatal(err)
	}
	return lines
}

func decoder(tb testing.TB) Decoder {
	tb.Helper()
	d, err := NewDecoder("debezium-json")
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// idOf reads the "id" member of a row image or key with encoding/json, an
// implementation independent of the code under test.
func idOf(t *testing.T, raw json.RawMessage) int {
	t.Helper()
	var row struct{ ID *int }
	if err := json.Unmarshal(raw, &row); err != nil || row.ID == nil {
		t.Fatalf("no id in %s (%v)", raw, err)
	}
	return *row.ID
}

// fold applies changes in order to a table of rows keyed by id. A delete
// finds its row by the record key when there is one (Debezium always keys
// records by primary key), else by the old image.
func fold(t *testing.T, changes []Change) map[int]string {
	t.Helper()
	table := map[int]string{}
	for i, c := range changes {
		switch c.Op {
		case OpCreate, OpRead, OpUpdate:
			table[idOf(t, c.After)] = string(c.After)
		case OpDelete:
			switch {
			case c.Key != nil:
				delete(table, idOf(t, c.Key))
			case c.Before != nil:
				delete(table, idOf(t, c.Before))
			default:
				t.Fatalf("message %d: delete with neither key nor old image", i+1)
			}
		default:
			t.Fatalf("message %d: unexpected op %v", i+1, c.Op)
		}
	}
	return table
}

// Final states, written out by reading the files by hand. Each update
// replaces the whole row; 111 is created, updated twice and deleted.
var (
	postgresFinal = map[int]string{
		101: `{"id":101,"name":"scooter","description":"Small 2-wheel scooter","weight":3.14}`,
		102: `{"id":102,"name":"car battery","description":"12V car battery","weight":8.1}`,
		103: `{"id":103,"name":"12-pack drill bits","description":"12-pack of drill bits with sizes ranging from #40 to #3","weight":0.8}`,
		104: `{"id":104,"name":"hammer","description":"12oz carpenter's hammer","weight":0.75}`,
		105: `{"id":105,"name":"hammer","description":"14oz carpenter's hammer","weight":0.875}`,
		106: `{"id":106,"name":"hammer","description":"18oz carpenter hammer","weight":1.0}`,
		107: `{"id":107,"name":"rocks","description":"box of assorted rocks","weight":5.1}`,
		108: `{"id":108,"name":"jacket","description":"water resistent black wind breaker","weight":0.1}`,
		109: `{"id":109,"name":"spare tire","description":"24 inch spare tire","weight":22.2}`,
		110: `{"id":110,"name":"jacket","description":"new water resistent white wind breaker","weight":0.5}`,
	}
	// The MySQL capture stores weight as FLOAT, so its values come widened.
	mysqlFinal = map[int]string{
		101: `{"id":101,"name":"scooter","description":"Small 2-wheel scooter","weight":3.140000104904175}`,
		102: `{"id":102,"name":"car battery","description":"12V car battery","weight":8.100000381469727}`,
		103: `{"id":103,"name":"12-pack drill bits","description":"12-pack of drill bits with sizes ranging from #40 to #3","weight":0.800000011920929}`,
		104: `{"id":104,"name":"hammer","description":"12oz carpenter's hammer","weight":0.75}`,
		105: `{"id":105,"name":"hammer","description":"14oz carpenter's hammer","weight":0.875}`,
		106: `{"id":106,"name":"hammer","description":"18oz carpenter hammer","weight":1.0}`,
		107: `{"id":107,"name":"rocks","description":"box of assorted rocks","weight":5.099999904632568}`,
		108: `{"id":108,"name":"jacket","description":"water resistent black wind breaker","weight":0.10000000149011612}`,
		109: `{"id":109,"name":"spare tire","description":"24 inch spare tire","weight":22.200000762939453}`,
		110: `{"id":110,"name":"jacket","description":"new water resistent white wind breaker","weight":0.5}`,
	}
	// The replica-identity file carries no old images, and its last delete
	// has neither before nor after. Debezium sends the primary key as the
	// Kafka record key, which these samples leave out; the keys below are the
	// ones Debezium would have sent. For the delete (txId 608, lsn 34133800)
	// the same capture in the schema-exclude file has before.id = 111.
	replicaIdentityKeys = []string{
		`{"id":101}`, `{"id":102}`, `{"id":103}`, `{"id":104}`, `{"id":105}`, `{"id":106}`,
		`{"id":107}`, `{"id":108}`, `{"id":109}`, `{"id":106}`, `{"id":107}`, `{"id":110}`,
		`{"id":111}`, `{"id":110}`, `{"id":111}`, `{"id":111}`,
	}
)

func TestDebeziumSamples(t *testing.T) {
	pg := Source{Connector: "postgresql", Name: "fullfillment", DB: "postgres", Schema: "inventory", Table: "products"}
	my := Source{Connector: "mysql", Name: "dbserver1", DB: "inventory", Table: "products"}
	tests := []struct {
		file   string
		keys   []string
		ops    map[Op]int
		source Source // without Snapshot and Position
		final  map[int]string
		// snapshot rows come first
		snapshots int
		// BeforeMissing expected on every u and d
		beforeMissing bool
	}{
		{"debezium-postgres-data-schema-exclude.txt", nil, map[Op]int{OpRead: 9, OpUpdate: 4, OpCreate: 2, OpDelete: 1}, pg, postgresFinal, 9, false},
		{"debezium-postgres-data-schema-include.txt", nil, map[Op]int{OpRead: 9, OpUpdate: 4, OpCreate: 2, OpDelete: 1}, pg, postgresFinal, 9, false},
		{"debezium-postgres-data-replica-identity.txt", replicaIdentityKeys, map[Op]int{OpRead: 9, OpUpdate: 4, OpCreate: 2, OpDelete: 1}, pg, postgresFinal, 9, true},
		{"debezium-data-schema-include.txt", nil, map[Op]int{OpCreate: 11, OpUpdate: 4, OpDelete: 1}, my, mysqlFinal, 9, false},
	}
	d := decoder(t)
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			lines := readLines(t, tt.file)
			if len(lines) != 16 {
				t.Fatalf("%d messages, want 16", len(lines))
			}
			changes := make([]Change, len(lines))
			ops := map[Op]int{}
			for i, line := range lines {
				var key []byte
				if tt.keys != nil {
					key = []byte(tt.keys[i])
				}
				c := &changes[i]
				if err := d.Decode(key, line, c); err != nil {
					t.Fatalf("message %d: %v", i+1, err)
				}
				if c.Kind != KindChange {
					t.Fatalf("message %d: kind %d, want KindChange", i+1, c.Kind)
				}
				ops[c.Op]++
				if got, want := c.Source.Snapshot, i < tt.snapshots; got != want {
					t.Errorf("message %d: Snapshot = %v, want %v", i+1, got, want)
				}
				src := c.Source
				src.Snapshot, src.Position = false, Position{}
				if src != tt.source {
					t.Errorf("message %d: source %+v, want %+v", i+1, src, tt.source)
				}
				if c.Tx != nil {
					t.Errorf("message %d: Tx = %+v, want nil (transaction is null)", i+1, c.Tx)
				}
				missing := tt.beforeMissing && (c.Op == OpUpdate || c.Op == OpDelete)
				if c.BeforeMissing != missing {
					t.Errorf("message %d (%v): BeforeMissing = %v, want %v", i+1, c.Op, c.BeforeMissing, missing)
				}
				if missing && c.Before != nil {
					t.Errorf("message %d: Before = %s with BeforeMissing", i+1, c.Before)
				}
				if c.CommitTime.IsZero() {
					t.Errorf("message %d: no CommitTime", i+1)
				}
				if i > 0 {
					// Positions never go backwards within one capture.
					if cmp, err := ComparePositions(c.Source.Connector, changes[i-1].Source.Position, c.Source.Position); err != nil || cmp > 0 {
						t.Errorf("message %d: position %v before previous %v (%d, %v)", i+1, c.Source.Position, changes[i-1].Source.Position, cmp, err)
					}
				}
			}
			if !mapsEqual(ops, tt.ops) {
				t.Errorf("op counts %v, want %v", ops, tt.ops)
			}
			got := fold(t, changes)
			ids := make([]int, 0, len(got)+len(tt.final))
			for id := range got {
				ids = append(ids, id)
			}
			for id := range tt.final {
				if _, ok := got[id]; !ok {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			for _, id := range ids {
				g, gok := got[id]
				w, wok := tt.final[id]
				switch {
				case !gok:
					t.Errorf("row %d missing, want %s", id, w)
				case !wok:
					t.Errorf("row %d = %s, want no such row", id, g)
				case g != w:
					t.Errorf("row %d:\n got %s\nwant %s", id, g, w)
				}
			}
		})
	}
}

func mapsEqual(a, b map[Op]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDebeziumSampleDetails pins single messages field by field.
func TestDebeziumSampleDetails(t *testing.T) {
	d := decoder(t)
	decodeLine := func(file string, n int, key string) Change {
		t.Helper()
		var c Change
		var k []byte
		if key != "" {
			k = []byte(key)
		}
		if err := d.Decode(k, readLines(t, file)[n-1], &c); err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("postgres update with old image", func(t *testing.T) {
		c := decodeLine("debezium-postgres-data-schema-exclude.txt", 10, "")
		if c.Op != OpUpdate || c.BeforeMissing {
			t.Fatalf("op %v BeforeMissing %v", c.Op, c.BeforeMissing)
		}
		if want := `{"id":106,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0}`; string(c.Before) != want {
			t.Errorf("Before = %s, want %s", c.Before, want)
		}
		if want := time.Date(2020, 7, 29, 8, 21, 29, 629e6, time.UTC); !c.CommitTime.Equal(want) || c.CommitTime.Location() != time.UTC {
			t.Errorf("CommitTime = %v, want %v", c.CommitTime, want)
		}
		if want := (Position{LSN: 34131104, TxID: 602}); c.Source.Position != want {
			t.Errorf("Position = %+v, want %+v", c.Source.Position, want)
		}
	})
	t.Run("postgres wrapped delete", func(t *testing.T) {
		c := decodeLine("debezium-postgres-data-schema-include.txt", 16, "")
		if c.Op != OpDelete || c.After != nil || c.BeforeMissing {
			t.Fatalf("op %v After %s BeforeMissing %v", c.Op, c.After, c.BeforeMissing)
		}
		if want := `{"id":111,"name":"scooter","description":"Big 2-wheel scooter ","weight":5.17}`; string(c.Before) != want {
			t.Errorf("Before = %s, want %s", c.Before, want)
		}
		if want := (Position{LSN: 34133800, TxID: 608}); c.Source.Position != want {
			t.Errorf("Position = %+v, want %+v", c.Source.Position, want)
		}
		if got, want := c.Source.Position.String(), "lsn=34133800,txId=608"; got != want {
			t.Errorf("Position.String() = %q, want %q", got, want)
		}
	})
	t.Run("replica identity delete has only the key", func(t *testing.T) {
		c := decodeLine("debezium-postgres-data-replica-identity.txt", 16, `{"id":111}`)
		if c.Op != OpDelete || c.Before != nil || c.After != nil || !c.BeforeMissing {
			t.Fatalf("op %v Before %s After %s BeforeMissing %v", c.Op, c.Before, c.After, c.BeforeMissing)
		}
		if string(c.Key) != `{"id":111}` {
			t.Errorf("Key = %s", c.Key)
		}
		if want := time.Date(2020, 7, 29, 8, 23, 8, 168e6, time.UTC); !c.CommitTime.Equal(want) {
			t.Errorf("CommitTime = %v, want %v", c.CommitTime, want)
		}
	})
	t.Run("mysql snapshot row without source time", func(t *testing.T) {
		// source.ts_ms is 0 here; the envelope's ts_ms (read time) stands in.
		c := decodeLine("debezium-data-schema-include.txt", 1, "")
		if c.Op != OpCreate || !c.Source.Snapshot {
			t.Fatalf("op %v snapshot %v", c.Op, c.Source.Snapshot)
		}
		if want := time.Date(2020, 5, 13, 7, 40, 6, 100e6, time.UTC); !c.CommitTime.Equal(want) {
			t.Errorf("CommitTime = %v, want %v", c.CommitTime, want)
		}
		if want := (Position{File: "mysql-bin.000003", Pos: 154}); c.Source.Position != want {
			t.Errorf("Position = %+v, want %+v", c.Source.Position, want)
		}
	})
	t.Run("mysql delete", func(t *testing.T) {
		c := decodeLine("debezium-data-schema-include.txt", 16, "")
		if want := time.Date(2020, 5, 13, 9, 32, 24, 0, time.UTC); !c.CommitTime.Equal(want) {
			t.Errorf("CommitTime = %v, want %v", c.CommitTime, want)
		}
		if got, want := c.Source.Position.String(), "file=mysql-bin.000003,pos=2443,row=0"; got != want {
			t.Errorf("Position.String() = %q, want %q", got, want)
		}
	})
}

func TestDecodeCopiesAndResets(t *testing.T) {
	d := decoder(t)
	line := readLines(t, "debezium-postgres-data-schema-exclude.txt")[9]
	buf := bytes.Clone(line)
	key := []byte(`{"id":106}`)
	c := Change{Tx: &Tx{ID: "stale"}, BeforeMissing: true, Origin: Origin{Topic: "stale"}}
	if err := d.Decode(key, buf, &c); err != nil {
		t.Fatal(err)
	}
	before, after := string(c.Before), string(c.After)
	for i := range buf {
		buf[i] = 'x'
	}
	key[0] = 'x'
	if string(c.Before) != before || string(c.After) != after || string(c.Key) != `{"id":106}` {
		t.Error("decoded images alias the input")
	}
	if c.Tx != nil || c.BeforeMissing || c.Origin != (Origin{}) {
		t.Errorf("stale fields kept: %+v", c)
	}
	// The copies share one buffer; appending to one must not clobber another.
	_ = append(c.Key, "zzzzzzzzzzzzzzzz"...)
	_ = append(c.Before, "zzzzzzzzzzzzzzzz"...)
	if string(c.Before) != before || string(c.After) != after {
		t.Error("append to one image overwrote the next")
	}
}

func TestDecodeAllocs(t *testing.T) {
	d := decoder(t)
	for _, file := range []string{"debezium-postgres-data-schema-exclude.txt", "debezium-postgres-data-schema-include.txt"} {
		line := readLines(t, file)[9]
		var c Change
		// One buffer for the row images and key, one string for the source fields.
		if n := testing.AllocsPerRun(50, func() { _ = d.Decode(nil, line, &c) }); n > 2 {
			t.Errorf("%s: %.0f allocations per message, want <= 2", file, n)
		}
	}
}

func TestDecodeControlMessages(t *testing.T) {
	heartbeatSchema := `{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.Heartbeat"}`
	keySchema := `{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"fullfillment.inventory.products.Key"}`
	hb := time.Date(2020, 7, 29, 8, 23, 8, 596e6, time.UTC)
	tests := []struct {
		name       string
		key, value []byte
		kind       Kind
		wantKey    string
		commit     time.Time
	}{
		{"tombstone nil", []byte(`{"id":111}`), nil, KindTombstone, `{"id":111}`, time.Time{}},
		{"tombstone empty", []byte(`{"id":111}`), []byte{}, KindTombstone, `{"id":111}`, time.Time{}},
		{"tombstone wrapped key", []byte(`{"schema":` + keySchema + `,"payload":{"id":111}}`), nil, KindTombstone, `{"id":111}`, time.Time{}},
		{"tombstone JSON null", nil, []byte(` null `), KindTombstone, "", time.Time{}},
		{"tombstone null payload", nil, []byte(`{"schema":null,"payload":null}`), KindTombstone, "", time.Time{}},
		{"heartbeat", []byte(`{"serverName":"fullfillment"}`), []byte(`{"ts_ms":1596010988596}`), KindHeartbeat, `{"serverName":"fullfillment"}`, hb},
		{"heartbeat wrapped", nil, []byte(`{"schema":` + heartbeatSchema + `,"payload":{"ts_ms":1596010988596}}`), KindHeartbeat, "", hb},
		{"heartbeat by schema name only", nil, []byte(`{"schema":{"name":"io.debezium.connector.common.Heartbeat"},"payload":{}}`), KindHeartbeat, "", time.Time{}},
		{"heartbeat in microseconds", nil, []byte(`{"ts_ms":1596010988596,"ts_us":1596010988596001}`), KindHeartbeat, "", hb.Add(time.Microsecond)},
		{"null key", []byte(`null`), []byte(`{"ts_ms":1596010988596}`), KindHeartbeat, "", hb},
	}
	d := decoder(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Change{Op: OpCreate, After: json.RawMessage(`{}`)}
			if err := d.Decode(tt.key, tt.value, &c); err != nil {
				t.Fatal(err)
			}
			if c.Kind != tt.kind || c.Op != 0 || c.After != nil || c.Before != nil {
				t.Errorf("kind %d op %v after %s before %s, want kind %d and no row", c.Kind, c.Op, c.After, c.Before, tt.kind)
			}
			if string(c.Key) != tt.wantKey || (tt.wantKey == "") != (c.Key == nil) {
				t.Errorf("Key = %q, want %q", c.Key, tt.wantKey)
			}
			if !c.CommitTime.Equal(tt.commit) {
				t.Errorf("CommitTime = %v, want %v", c.CommitTime, tt.commit)
			}
		})
	}
}

func TestDecodeEnvelopeVariants(t *testing.T) {
	tests := []struct {
		name  string
		value string
		check func(t *testing.T, c *Change)
	}{
		{"transaction block", `{"op":"c","after":{"id":1},"source":{"connector":"postgresql","ts_ms":1,"lsn":5,"txId":7},"transaction":{"id":"571:53195832","total_order":3,"data_collection_order":2}}`,
			func(t *testing.T, c *Change) {
				if c.Tx == nil || *c.Tx != (Tx{ID: "571:53195832", TotalOrder: 3, DataCollectionOrder: 2}) {
					t.Errorf("Tx = %+v", c.Tx)
				}
			}},
		{"finest source time wins", `{"op":"c","after":{},"source":{"ts_ns":1596010988168000123,"ts_ms":1596010988168,"ts_us":1596010988168000}}`,
			func(t *testing.T, c *Change) {
				if want := time.Unix(0, 1596010988168000123).UTC(); !c.CommitTime.Equal(want) {
					t.Errorf("CommitTime = %v, want %v", c.CommitTime, want)
				}
			}},
		{"boolean snapshot", `{"op":"r","after":{},"source":{"snapshot":true}}`,
			func(t *testing.T, c *Change) {
				if !c.Source.Snapshot {
					t.Error("Snapshot = false")
				}
			}},
		{"incremental snapshot", `{"op":"r","after":{},"source":{"snapshot":"incremental"}}`,
			func(t *testing.T, c *Change) {
				if !c.Source.Snapshot {
					t.Error("Snapshot = false")
				}
			}},
		{"null snapshot", `{"op":"c","after":{},"source":{"snapshot":null}}`,
			func(t *testing.T, c *Change) {
				if c.Source.Snapshot {
					t.Error("Snapshot = true")
				}
			}},
		{"sqlserver position", `{"op":"u","before":null,"after":{"id":1},"source":{"connector":"sqlserver","change_lsn":"00000027:00000758:0003","commit_lsn":"00000027:00000758:0005","event_serial_no":2}}`,
			func(t *testing.T, c *Change) {
				want := Position{CommitLSN: "00000027:00000758:0005", ChangeLSN: "00000027:00000758:0003", EventSerialNo: 2}
				if c.Source.Position != want || !c.BeforeMissing {
					t.Errorf("Position = %+v BeforeMissing = %v", c.Source.Position, c.BeforeMissing)
				}
			}},
		{"mysql gtid", `{"op":"c","after":{},"source":{"connector":"mysql","gtid":"3e11fa47-71ca-11e1-9e33-c80aa9429562:23","file":"mysql-bin.000010","pos":4,"row":1}}`,
			func(t *testing.T, c *Change) {
				if got, want := c.Source.Position.String(), "file=mysql-bin.000010,pos=4,row=1,gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:23"; got != want {
					t.Errorf("String() = %q, want %q", got, want)
				}
			}},
		{"escaped strings", `{"op":"\u0063","after":{"s":"\"\u00e9\""},"source":{"table":"pro\u0064ucts\ud83d\ude00"}}`,
			func(t *testing.T, c *Change) {
				if c.Op != OpCreate || c.Source.Table != "products\U0001F600" || string(c.After) != `{"s":"\"\u00e9\""}` {
					t.Errorf("op %v table %q after %s", c.Op, c.Source.Table, c.After)
				}
			}},
		{"truncate", `{"op":"t","before":null,"after":null,"source":{"connector":"postgresql","table":"products"}}`,
			func(t *testing.T, c *Change) {
				if c.Op != OpTruncate || c.Before != nil || c.After != nil || c.BeforeMissing {
					t.Errorf("%+v", c)
				}
			}},
		{"deep row image", `{"op":"c","after":` + strings.Repeat(`{"a":[`, 150) + `1,[],{}` + strings.Repeat(`]}`, 150) + `}`,
			func(t *testing.T, c *Change) {
				if len(c.After) != 150*8+7 || !json.Valid(c.After) {
					t.Errorf("After has %d bytes", len(c.After))
				}
			}},
		{"unknown members skipped", `{"op":"c","after":{"id":1},"extra":[1,{"a":[true,false,null,-1.5e3]}],"source":{"sequence":"[\"1\",\"2\"]","xmin":null}}`,
			func(t *testing.T, c *Change) {
				if string(c.After) != `{"id":1}` {
					t.Errorf("After = %s", c.After)
				}
			}},
	}
	d := decoder(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Change
			if err := d.Decode(nil, []byte(tt.value), &c); err != nil {
				t.Fatal(err)
			}
			if c.Kind != KindChange {
				t.Fatalf("kind %d", c.Kind)
			}
			tt.check(t, &c)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	plainLine := string(readLines(t, "debezium-postgres-data-schema-exclude.txt")[0])
	wrappedLine := string(readLines(t, "debezium-postgres-data-schema-include.txt")[0])
	cut := func(s, after string) string { return s[:strings.Index(s, after)+len(after)] }
	tests := []struct {
		name      string
		key       string
		value     string
		field     string
		errSubstr string
	}{
		{"not JSON", "", `garbage`, "", "want a JSON object"},
		{"not null", "", `nonsense`, "", `want "null"`},
		{"garbage after the object", "", plainLine + `x`, "", "want end of input"},
		{"two objects", "", `{"op":"c","after":{}} {}`, "", "want end of input"},
		{"trailing comma", "", `{"op":"c","after":{},}`, "", "want a string key"},
		{"bad literal in row", "", `{"op":"c","after":{"a":nul}}`, "after", `want "null"`},
		{"unknown op", "", `{"op":"x","after":{}}`, "op", `unknown op "x" (want c, u, d, r or t)`},
		{"unknown op wrapped", "", `{"schema":null,"payload":{"op":"create","after":{}}}`, "payload.op", `unknown op "create"`},
		{"op not a string", "", `{"op":1,"after":{}}`, "op", "want a string, got a number"},
		{"missing op", "", `{"before":null,"after":{"id":1},"ts_ms":1}`, "op", "missing"},
		{"missing op wrapped", "", `{"schema":{},"payload":{"after":{"id":1}}}`, "payload.op", "missing"},
		{"after not an object", "", `{"op":"c","after":[1,2]}`, "after", "want an object or null, got an array"},
		{"after a string", "", `{"schema":{},"payload":{"op":"u","after":"{}"}}`, "payload.after", "got a string"},
		{"before not an object", "", `{"op":"u","before":1,"after":{}}`, "before", "got a number"},
		{"create without after", "", `{"op":"c","after":null}`, "after", "missing"},
		{"read with before", "", `{"op":"r","before":{},"after":{}}`, "before", "present"},
		{"delete with after", "", `{"op":"d","before":{},"after":{"id":1}}`, "after", "present"},
		{"truncated in after", "", cut(plainLine, `"after":{"id":101,"na`), "after", "unexpected end of JSON input"},
		{"truncated in schema", "", cut(wrappedLine, `"fields":[{"type":"struct","fie`), "schema", "unexpected end of JSON input"},
		{"truncated in source", "", cut(plainLine, `"source":{"version":"1.2.1.Final","connector":"postgr`), "source.connector", "unexpected end of JSON input"},
		{"truncated at the end", "", plainLine[:len(plainLine)-1], "", "unexpected end of JSON input"},
		{"ts_ms a string", "", strings.Replace(plainLine, `"ts_ms":1596001099434,"snapshot"`, `"ts_ms":"1596001099434","snapshot"`, 1), "source.ts_ms", "want an integer, got a string"},
		{"ts_ms a string wrapped", "", strings.Replace(wrappedLine, `"ts_ms":1596001099434,"snapshot"`, `"ts_ms":"1596001099434","snapshot"`, 1), "payload.source.ts_ms", "want an integer, got a string"},
		{"ts_ms a fraction", "", `{"op":"c","after":{},"ts_ms":1.5}`, "ts_ms", "want an integer"},
		{"ts_ms overflows", "", `{"op":"c","after":{},"source":{"ts_ms":9223372036854775808}}`, "source.ts_ms", "out of range"},
		{"lsn a string", "", `{"op":"c","after":{},"source":{"lsn":"0/1"}}`, "source.lsn", "want an integer"},
		{"file a number", "", `{"op":"c","after":{},"source":{"file":3}}`, "source.file", "want a string or null"},
		{"snapshot a number", "", `{"op":"c","after":{},"source":{"snapshot":1}}`, "source.snapshot", "got a number"},
		{"source an array", "", `{"op":"c","after":{},"source":[]}`, "source", "got an array"},
		{"transaction id a number", "", `{"op":"c","after":{},"transaction":{"id":5}}`, "transaction.id", "want a string"},
		{"payload not an object", "", `{"schema":{},"payload":[]}`, "payload", "got an array"},
		{"wrapper mixed with envelope", "", `{"schema":{},"payload":{"op":"c","after":{}},"op":"c"}`, "payload", "beside"},
		{"schema without payload", "", `{"schema":{"name":"x"}}`, "payload", "missing"},
		{"bad escape", "", `{"op":"c","after":{"a":"\x"}}`, "after", "escape"},
		{"control character in string", "", "{\"op\":\"c\",\"after\":{\"a\":\"\n\"}}", "after", "printable"},
		{"deep mismatched close", "", `{"op":"c","after":` + strings.Repeat(`{"a":[`, 100) + `1` + strings.Repeat(`}]`, 100) + `}`, "after", "want ',' or ']'"},
		{"deep nesting", "", `{"op":"c","after":{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`, "after", "deeper than"},
		{"bad key", `{"id":`, `{"ts_ms":1}`, "key", "unexpected end"},
		{"key not JSON", `abc`, `{"ts_ms":1}`, "key", "JSON value"},
	}
	d := decoder(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Change
			var key []byte
			if tt.key != "" {
				key = []byte(tt.key)
			}
			err := d.Decode(key, []byte(tt.value), &c)
			if err == nil {
				t.Fatalf("no error; decoded %+v", c)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not match ErrMalformed", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
			if de.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", de.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.errSubstr) {
				t.Errorf("error %q does not mention %q", err, tt.errSubstr)
			}
		})
	}
}

func TestDecodeErrorText(t *testing.T) {
	var c Change
	err := decoder(t).Decode(nil, []byte(`{"op":"x"}`), &c)
	if got, want := err.Error(), `field "op": unknown op "x" (want c, u, d, r or t)`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	cause := errors.New("cause")
	wrapped := &DecodeError{Field: "after", Reason: "bad", Err: cause}
	if !errors.Is(wrapped, cause) || !errors.Is(wrapped, ErrMalformed) {
		t.Error("DecodeError does not unwrap to both ErrMalformed and its cause")
	}
	if got, want := wrapped.Error(), `field "after": bad: cause`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestNewDecoder(t *testing.T) {
	want := []string{"canal-json", "debezium-avro", "debezium-json", "maxwell-json", "meshlet-avro", "ogg-json"}
	if got := Formats(); !slices.Equal(got, want) {
		t.Errorf("Formats() = %v, want %v", got, want)
	}
	_, err := NewDecoder("avro")
	if err == nil || !strings.Contains(err.Error(), `"avro"`) || !strings.Contains(err.Error(), "debezium-json, maxwell-json") {
		t.Errorf("NewDecoder(avro) error = %v, want it to name the format and list the known ones", err)
	}
	for _, f := range []string{"debezium-avro", "meshlet-avro"} {
		if _, err := NewDecoder(f); err == nil || !strings.Contains(err.Error(), "WithAvro") || !strings.Contains(err.Error(), f) {
			t.Errorf("NewDecoder(%s) without a source: error = %v, want one naming the format and WithAvro", f, err)
		}
	}
	for _, f := range want {
		if strings.HasSuffix(f, "-avro") {
			continue
		}
		d, err := NewDecoder(f, WithAvro(nil)) // options a format does not use are ignored
		if err != nil {
			t.Fatalf("NewDecoder(%s): %v", f, err)
		}
		if _, ok := d.(MultiDecoder); !ok {
			t.Errorf("%s decoder %T is not a MultiDecoder", f, d)
		}
	}
}

var sampleFiles = []string{
	"debezium-postgres-data-schema-exclude.txt",
	"debezium-postgres-data-schema-include.txt",
	"debezium-postgres-data-replica-identity.txt",
	"debezium-data-schema-include.txt",
}

func FuzzDecodeDebeziumJSON(f *testing.F) {
	for _, file := range sampleFiles {
		for _, line := range readLines(f, file) {
			f.Add([]byte(nil), line)
			f.Add([]byte(`{"id":1}`), line[:len(line)/2])
		}
	}
	for _, v := range []string{``, `null`, `{}`, `{"ts_ms":1}`, `{"op":"x"}`, `{"op":"c","after":[]}`, `[`, `{"a":"\ud800"}`, `{"schema":{"name":"Heartbeat"},"payload":{}}`,
		`{"status":"END","id":"1","event_count":2,"data_collections":[{"data_collection":"a.b","event_count":2}]}`,
		`{"schema":{"name":"x.TransactionMetadataValue"},"payload":{"status":"BEGIN","id":"1"}}`,
		`{"source":{"db":"d"},"databaseName":"d","ddl":"DROP TABLE t","tableChanges":[]}`} {
		f.Add([]byte(`{"schema":{},"payload":{"id":1}}`), []byte(v))
	}
	d := decoder(f)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		input := bytes.Clone(value)
		var c Change
		err := d.Decode(key, value, &c)
		if err != nil {
			var de *DecodeError
			if !errors.Is(err, ErrMalformed) || !errors.As(err, &de) {
				t.Fatalf("error %v is not a DecodeError matching ErrMalformed", err)
			}
			return
		}
		if len(value) > 0 && !json.Valid(value) {
			t.Fatalf("accepted invalid JSON %q", value)
		}
		if len(key) > 0 && !json.Valid(key) {
			t.Fatalf("accepted invalid key %q", key)
		}
		switch c.Kind {
		case KindChange:
			if !slices.Contains([]Op{OpCreate, OpUpdate, OpDelete, OpRead, OpTruncate}, c.Op) {
				t.Fatalf("invalid op %q", c.Op)
			}
		case KindTombstone, KindHeartbeat, KindSchemaChange, KindTxBoundary:
			if c.Op != 0 || c.Before != nil || c.After != nil {
				t.Fatalf("kind %d with op %q before %s after %s", c.Kind, c.Op, c.Before, c.After)
			}
			if (c.Kind == KindTxBoundary) != (c.Boundary != nil) {
				t.Fatalf("kind %d with boundary %+v", c.Kind, c.Boundary)
			}
			if b := c.Boundary; b != nil && (b.ID == "" || b.Status != TxBegin && b.Status != TxEnd || b.EventCount < 0) {
				t.Fatalf("boundary %+v", b)
			}
		default:
			t.Fatalf("invalid kind %d", c.Kind)
		}
		for _, img := range []json.RawMessage{c.Before, c.After} {
			if img == nil {
				continue
			}
			if !json.Valid(img) || img[0] != '{' {
				t.Fatalf("row image %q is not a JSON object", img)
			}
		}
		if c.Key != nil && !json.Valid(c.Key) {
			t.Fatalf("key %q is not JSON", c.Key)
		}
		if c.Kind == KindChange {
			checkAgainstEncodingJSON(t, value, &c)
		}
		// Decoded images are copies: scribbling over the input leaves them alone.
		before, after := string(c.Before), string(c.After)
		for i := range value {
			value[i] = '#'
		}
		if string(c.Before) != before || string(c.After) != after {
			t.Fatal("decoded images alias the input")
		}
		copy(value, input)
	})
}

// checkAgainstEncodingJSON reads op and the row images of an accepted
// change with encoding/json and compares them with what the decoder found.
func checkAgainstEncodingJSON(t *testing.T, value []byte, c *Change) {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(value, &env); err != nil {
		t.Fatalf("encoding/json rejects an accepted change: %v", err)
	}
	if p, ok := env["payload"]; ok {
		env = nil
		if err := json.Unmarshal(p, &env); err != nil {
			t.Fatalf("encoding/json rejects the payload: %v", err)
		}
	}
	var op string
	if err := json.Unmarshal(env["op"], &op); err != nil || op != c.Op.String() {
		t.Fatalf("op %q, encoding/json reads %s", c.Op, env["op"])
	}
	for _, img := range []struct {
		name string
		got  json.RawMessage
	}{{"before", c.Before}, {"after", c.After}} {
		want := env[img.name]
		if string(want) == "null" {
			want = nil
		}
		if !bytes.Equal(img.got, want) {
			t.Fatalf("%s = %s, encoding/json reads %s", img.name, img.got, want)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bm := range []struct{ name, file string }{
		{"plain", "debezium-postgres-data-schema-exclude.txt"},
		{"schema-wrapped", "debezium-postgres-data-schema-include.txt"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			lines := readLines(b, bm.file)
			total := 0
			for _, l := range lines {
				total += len(l)
			}
			d := decoder(b)
			var c Change
			b.SetBytes(int64(total / len(lines)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := d.Decode(nil, lines[i%len(lines)], &c); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

package cdc

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDebeziumTransactionMetadata(t *testing.T) {
	d := decoder(t)
	endSchema := `{"type":"struct","name":"io.debezium.connector.common.TransactionMetadataValue","fields":[]}`
	tests := []struct {
		name, key, value string
		want             TxBoundary
		key2             string
		commit           time.Time
	}{
		{"begin", `{"id":"571:53195832"}`, `{"status":"BEGIN","id":"571:53195832","event_count":null,"data_collections":null,"ts_ms":1596010988596}`,
			TxBoundary{Status: TxBegin, ID: "571:53195832"}, `{"id":"571:53195832"}`, time.UnixMilli(1596010988596).UTC()},
		{"end", "", `{"status":"END","id":"571:53195832","event_count":3,"data_collections":[{"data_collection":"inventory.products","event_count":2},{"data_collection":"inventory.orders","event_count":1}],"ts_ms":1596010988600}`,
			TxBoundary{Status: TxEnd, ID: "571:53195832", EventCount: 3, Collections: []CollectionCount{{"inventory.products", 2}, {"inventory.orders", 1}}}, "", time.UnixMilli(1596010988600).UTC()},
		{"end wrapped", "", `{"schema":` + endSchema + `,"payload":{"status":"END","id":"00000025:00000d08:0025","event_count":2,"data_collections":[{"data_collection":"testDB.dbo.tablea","event_count":1},{"data_collection":"testDB.dbo.tableb","event_count":1}]}}`,
			TxBoundary{Status: TxEnd, ID: "00000025:00000d08:0025", EventCount: 2, Collections: []CollectionCount{{"testDB.dbo.tablea", 1}, {"testDB.dbo.tableb", 1}}}, "", time.Time{}},
		{"escaped id", "", `{"status":"\u0042EGIN","id":"a\"b"}`, TxBoundary{Status: TxBegin, ID: `a"b`}, "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var key []byte
			if tt.key != "" {
				key = []byte(tt.key)
			}
			c := Change{Op: OpCreate, After: []byte(`{}`)}
			if err := d.Decode(key, []byte(tt.value), &c); err != nil {
				t.Fatal(err)
			}
			if c.Kind != KindTxBoundary || c.Op != 0 || c.After != nil || c.Boundary == nil {
				t.Fatalf("kind %d op %v boundary %+v, want a transaction boundary", c.Kind, c.Op, c.Boundary)
			}
			if b := *c.Boundary; b.Status != tt.want.Status || b.ID != tt.want.ID || b.EventCount != tt.want.EventCount || !slices.Equal(b.Collections, tt.want.Collections) {
				t.Errorf("Boundary %+v, want %+v", b, tt.want)
			}
			if string(c.Key) != tt.key2 || !c.CommitTime.Equal(tt.commit) {
				t.Errorf("key %s time %v", c.Key, c.CommitTime)
			}
		})
	}
}

func TestDebeziumSchemaChange(t *testing.T) {
	d := decoder(t)
	tests := []struct {
		name, value string
		ddl, db     string
		pos         Position
	}{
		{"mysql", `{"source":{"version":"1.1.1.Final","connector":"mysql","name":"dbserver1","ts_ms":0,"snapshot":"true","db":"inventory","table":"products","server_id":0,"gtid":null,"file":"mysql-bin.000003","pos":154,"row":0,"thread":null,"query":null},"databaseName":"inventory","schemaName":null,"ddl":"CREATE TABLE products (id INT)","tableChanges":[{"type":"CREATE","id":"\"inventory\".\"products\"","table":{"primaryKeyColumnNames":["id"],"columns":[]}}]}`,
			"CREATE TABLE products (id INT)", "inventory", Position{File: "mysql-bin.000003", Pos: 154}},
		{"older form", `{"source":{"server":"dbserver1"},"position":{"file":"mysql-bin.000003","pos":154},"databaseName":"inventory","ddl":"DROP TABLE IF EXISTS inventory.products"}`,
			"DROP TABLE IF EXISTS inventory.products", "inventory", Position{}},
		{"wrapped, ddl null", `{"schema":{"name":"io.debezium.connector.sqlserver.SchemaChangeValue"},"payload":{"source":{"connector":"sqlserver","db":"testDB"},"databaseName":"testDB","ddl":null,"ts_ms":1}}`,
			"", "testDB", Position{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Change
			if err := d.Decode(nil, []byte(tt.value), &c); err != nil {
				t.Fatal(err)
			}
			if c.Kind != KindSchemaChange || c.Op != 0 || c.DDL != tt.ddl || c.Source.DB != tt.db || c.Source.Position != tt.pos || c.Boundary != nil {
				t.Errorf("got kind %d op %v DDL %q source %+v", c.Kind, c.Op, c.DDL, c.Source)
			}
		})
	}
}

func TestDebeziumBoundaryErrors(t *testing.T) {
	tests := []struct{ name, value, field, reason string }{
		{"unknown status", `{"status":"COMMIT","id":"1"}`, "status", `unknown status "COMMIT"`},
		{"status a number", `{"status":1,"id":"1"}`, "status", "want a string"},
		{"no id", `{"status":"BEGIN"}`, "id", "missing"},
		{"end without count", `{"status":"END","id":"1","event_count":null}`, "event_count", "missing"},
		{"schema says transaction, no status", `{"schema":{"name":"io.debezium.connector.common.TransactionMetadataValue"},"payload":{"id":"1","ts_ms":1}}`, "payload.status", "missing"},
		{"negative count", `{"status":"END","id":"1","event_count":-1}`, "event_count", "negative"},
		{"collection without count", `{"status":"END","id":"1","event_count":1,"data_collections":[{"data_collection":"a.b"}]}`, "data_collections[0].event_count", "missing"},
		{"collection without name", `{"status":"END","id":"1","event_count":1,"data_collections":[{"event_count":1}]}`, "data_collections[0].data_collection", "missing"},
		{"collections not an array", `{"status":"END","id":"1","event_count":1,"data_collections":{}}`, "data_collections", "want an array"},
		{"collection count a string", `{"status":"END","id":"1","event_count":1,"data_collections":[{"data_collection":"a","event_count":"1"}]}`, "data_collections[0].event_count", "want an integer"},
		{"ddl a number", `{"ddl":5}`, "ddl", "want a string"},
	}
	d := decoder(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Change
			err := d.Decode(nil, []byte(tt.value), &c)
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want a DecodeError", err)
			}
			if de.Field != tt.field || !strings.Contains(de.Reason, tt.reason) {
				t.Errorf("error %v (field %q), want field %q and %q", err, de.Field, tt.field, tt.reason)
			}
		})
	}
}

// change and boundary build inputs for the assembler.
func txChange(id string, order int64, db, table string, offset int64) Change {
	return Change{Kind: KindChange, Op: OpCreate, Tx: &Tx{ID: id, TotalOrder: order},
		Source: Source{Connector: "mysql", DB: db, Table: table},
		Origin: Origin{Topic: "dbserver1.inventory." + table, Offset: offset}}
}

func txEnd(id string, offset int64, counts ...any) Change {
	b := &TxBoundary{Status: TxEnd, ID: id}
	for i := 0; i < len(counts); i += 2 {
		n := int64(counts[i+1].(int))
		b.Collections = append(b.Collections, CollectionCount{counts[i].(string), n})
		b.EventCount += n
	}
	return Change{Kind: KindTxBoundary, Boundary: b, Origin: Origin{Topic: "dbserver1.transaction", Offset: offset}}
}

func txBegin(id string, offset int64) Change {
	return Change{Kind: KindTxBoundary, Boundary: &TxBoundary{Status: TxBegin, ID: id}, Origin: Origin{Topic: "dbserver1.transaction", Offset: offset}}
}

func orders(tx Transaction) []int64 {
	var o []int64
	for _, c := range tx.Changes {
		o = append(o, c.Tx.TotalOrder)
	}
	return o
}

func TestTxAssemblerInterleaved(t *testing.T) {
	var a TxAssembler
	type step struct {
		in       Change
		released string // ID of the transaction this step completes, "" for none
		orders   []int64
	}
	// Transaction A: 3 changes (2 products, 1 order); B: 2 products.
	// The transaction topic and the two table topics arrive interleaved,
	// END before some changes, one change redelivered, BEGIN last for B.
	steps := []step{
		{txChange("B", 2, "inventory", "products", 10), "", nil},
		{txBegin("A", 0), "", nil},
		{txChange("A", 3, "inventory", "orders", 5), "", nil},
		{txEnd("A", 1, "inventory.products", 2, "inventory.orders", 1), "", nil},
		{txChange("A", 1, "inventory", "products", 8), "", nil},
		{txChange("A", 1, "inventory", "products", 8), "", nil}, // redelivered
		{txEnd("B", 3, "inventory.products", 2), "", nil},
		{txChange("A", 2, "inventory", "products", 9), "A", []int64{1, 2, 3}},
		{txChange("A", 2, "inventory", "products", 9), "", nil}, // late redelivery
		{txChange("B", 1, "inventory", "products", 11), "B", []int64{1, 2}},
		{txBegin("B", 2), "", nil}, // BEGIN after its transaction completed
	}
	for i, s := range steps {
		tx, ok, err := a.Add(s.in)
		if err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		if ok != (s.released != "") || ok && (tx.ID != s.released || !slices.Equal(orders(tx), s.orders)) {
			t.Fatalf("step %d: released %v %q %v, want %q %v", i+1, ok, tx.ID, orders(tx), s.released, s.orders)
		}
		if ok && tx.End == nil {
			t.Errorf("step %d: released without its END", i+1)
		}
		if i == 2 {
			// Held: the lowest offset of each partition still held back.
			if off, held := a.Held("dbserver1.inventory.orders", 0); !held || off != 5 {
				t.Errorf("Held(orders) = %d, %v", off, held)
			}
			if off, held := a.Held("dbserver1.transaction", 0); !held || off != 0 {
				t.Errorf("Held(transaction) = %d, %v; the BEGIN is held", off, held)
			}
		}
	}
	if txs, n := a.Pending(); txs != 0 || n != 0 {
		t.Errorf("Pending() = %d, %d", txs, n)
	}
	if a.Dropped() != 3 {
		t.Errorf("Dropped() = %d, want 3", a.Dropped())
	}
	if _, held := a.Held("dbserver1.inventory.products", 0); held {
		t.Error("something still held")
	}
}

func TestTxAssemblerRules(t *testing.T) {
	t.Run("only consumed collections are waited for", func(t *testing.T) {
		a := TxAssembler{Consumed: func(c string) bool { return c == "inventory.products" }}
		if _, ok, err := a.Add(txEnd("T", 0, "inventory.products", 1, "inventory.orders", 4)); ok || err != nil {
			t.Fatalf("%v %v", ok, err)
		}
		tx, ok, err := a.Add(txChange("T", 3, "inventory", "products", 0))
		if !ok || err != nil || len(tx.Changes) != 1 {
			t.Fatalf("%v %v %+v", ok, err, tx)
		}
		if _, _, err := a.Add(txChange("U", 1, "inventory", "orders", 1)); err != nil {
			t.Fatal(err) // before its END nothing is known about U
		}
		_, _, err = a.Add(txEnd("U", 2, "inventory.orders", 1))
		if !errors.Is(err, ErrTxInconsistent) || !strings.Contains(err.Error(), "Consumed excludes") {
			t.Errorf("a change of an excluded collection: %v", err)
		}
	})
	t.Run("postgres and sqlserver names", func(t *testing.T) {
		var a TxAssembler
		pg := Change{Kind: KindChange, Tx: &Tx{ID: "571", TotalOrder: 1}, Source: Source{Connector: "postgresql", DB: "postgres", Schema: "s1", Table: "a"}}
		ss := Change{Kind: KindChange, Tx: &Tx{ID: "571", TotalOrder: 2}, Source: Source{Connector: "sqlserver", DB: "testDB", Schema: "dbo", Table: "tablea"}}
		a.Add(pg)
		a.Add(ss)
		if tx, ok, err := a.Add(txEnd("571", 0, "s1.a", 1, "testDB.dbo.tablea", 1)); !ok || err != nil || len(tx.Changes) != 2 {
			t.Errorf("%v %v %+v", ok, err, tx)
		}
	})
	t.Run("more changes than counted", func(t *testing.T) {
		var a2 TxAssembler
		a2.Add(txChange("T", 1, "d", "t", 0))
		a2.Add(txChange("T", 2, "d", "t", 1))
		if _, _, err := a2.Add(txEnd("T", 0, "d.t", 1)); !errors.Is(err, ErrTxInconsistent) {
			t.Errorf("END counting fewer than arrived: %v", err)
		}
		if _, _, err := a2.Add(txEnd("T", 0, "d.t", 2)); err != nil {
			t.Errorf("a corrected END after a refused one: %v", err)
		}
	})
	t.Run("unlisted collection", func(t *testing.T) {
		var a TxAssembler
		a.Add(txEnd("T", 0, "d.t", 1))
		if _, _, err := a.Add(txChange("T", 1, "d", "other", 0)); !errors.Is(err, ErrTxInconsistent) {
			t.Errorf("%v", err)
		}
	})
	t.Run("two different ENDs", func(t *testing.T) {
		var a TxAssembler
		a.Add(txEnd("T", 0, "d.t", 2))
		if _, _, err := a.Add(txEnd("T", 0, "d.t", 3)); !errors.Is(err, ErrTxInconsistent) {
			t.Errorf("%v", err)
		}
	})
	t.Run("END without collections counts every change", func(t *testing.T) {
		var a TxAssembler
		end := Change{Kind: KindTxBoundary, Boundary: &TxBoundary{Status: TxEnd, ID: "T", EventCount: 2}}
		a.Add(end)
		a.Add(txChange("T", 1, "d", "x", 0))
		if tx, ok, _ := a.Add(txChange("T", 2, "d", "y", 1)); !ok || len(tx.Changes) != 2 {
			t.Errorf("%v %+v", ok, tx)
		}
	})
	t.Run("empty transaction", func(t *testing.T) {
		a := TxAssembler{Consumed: func(string) bool { return false }}
		if tx, ok, err := a.Add(txEnd("T", 0, "d.t", 3)); !ok || err != nil || len(tx.Changes) != 0 {
			t.Errorf("%v %v %+v", ok, err, tx)
		}
	})
	t.Run("outside any transaction", func(t *testing.T) {
		var a TxAssembler
		for _, c := range []Change{{Kind: KindChange, Op: OpCreate}, {Kind: KindHeartbeat}, {Kind: KindTombstone}, {Kind: KindChange, Tx: &Tx{}}} {
			if tx, ok, err := a.Add(c); !ok || err != nil || tx.ID != "" || len(tx.Changes) != 1 {
				t.Errorf("%+v: %v %v %+v", c, ok, err, tx)
			}
		}
	})
	t.Run("overflow", func(t *testing.T) {
		a := TxAssembler{MaxHeld: 2}
		a.Add(txChange("T", 1, "d", "t", 0))
		a.Add(txChange("T", 2, "d", "t", 1))
		if _, _, err := a.Add(txChange("U", 1, "d", "t", 2)); !errors.Is(err, ErrTxOverflow) {
			t.Errorf("%v", err)
		}
		if tx, ok, err := a.Add(txEnd("T", 0, "d.t", 2)); !ok || err != nil || len(tx.Changes) != 2 {
			t.Errorf("%v %v", ok, err)
		}
		if _, _, err := a.Add(txChange("U", 1, "d", "t", 2)); err != nil {
			t.Errorf("after a release there is room again: %v", err)
		}
	})
}

// FuzzTxAssembler drives the assembler with arbitrary interleavings of a
// few transactions and checks it against the rules: a released
// transaction has exactly its END's changes, each once, in order; nothing
// is released twice; what is held is what was added and not released.
func FuzzTxAssembler(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{9, 3, 0, 3, 1, 3, 2, 3, 0xff})
	f.Add([]byte("\x10\x11\x12\x13\x20\x21\x30\x31\x32"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		a := TxAssembler{MaxHeld: 64}
		released := map[string]bool{}
		added := map[string]map[int64]bool{} // distinct changes fed, per transaction
		ends := map[string]int64{}
		for i, op := range ops {
			id := fmt.Sprint("T", op>>6) // four transactions
			n := int64(op&0x7) + 1       // total order 1..8
			var c Change
			switch op >> 3 & 0x7 {
			case 0:
				// An END: transaction k has k+1 changes, all to d.t.
				k := int64(op>>6) + 1
				c = txEnd(id, int64(i), "d.t", int(k))
				ends[id] = k
			case 1:
				c = txBegin(id, int64(i))
			default:
				if k, ok := ends[id]; ok && n > k || n > int64(op>>6)+1 {
					continue // keep the input consistent: errors are tested elsewhere
				}
				c = txChange(id, n, "d", "t", int64(i))
				if !released[id] {
					if added[id] == nil {
						added[id] = map[int64]bool{}
					}
					added[id][n] = true
				}
			}
			tx, ok, err := a.Add(c)
			if err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			if !ok {
				continue
			}
			if released[tx.ID] {
				t.Fatalf("op %d: %s released twice", i, tx.ID)
			}
			released[tx.ID] = true
			want := ends[tx.ID]
			if int64(len(tx.Changes)) != want {
				t.Fatalf("op %d: %s released with %d changes, END says %d", i, tx.ID, len(tx.Changes), want)
			}
			for j, c := range tx.Changes {
				if c.Tx.ID != tx.ID || c.Tx.TotalOrder != int64(j)+1 {
					t.Fatalf("op %d: %s change %d is %+v", i, tx.ID, j, c.Tx)
				}
			}
			delete(added, tx.ID)
		}
		held := 0
		for _, m := range added {
			held += len(m)
		}
		if _, n := a.Pending(); n != held {
			t.Fatalf("holds %d changes, %d were added and not released", n, held)
		}
	})
}

func BenchmarkTxAssembler(b *testing.B) {
	var a TxAssembler
	changes := make([]Change, 8)
	for i := range changes {
		changes[i] = txChange("", int64(i)+1, "inventory", "products", int64(i))
	}
	end := txEnd("", 0, "inventory.products", len(changes))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		id := fmt.Sprint(n)
		n++
		end.Boundary.ID = id
		if _, _, err := a.Add(end); err != nil {
			b.Fatal(err)
		}
		for i := range changes {
			changes[i].Tx.ID = id
			if _, _, err := a.Add(changes[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

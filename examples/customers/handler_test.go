package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/transforms"
)

// TestHandleRecordedCDC folds the handler's records over the recording and
// checks the table it leaves, against what the recording says by hand.
func TestHandleRecordedCDC(t *testing.T) {
	recs, err := kafka.RecordedCDC(bytes.NewReader(recorded), "customers.jsonl", "crmdb.public.customers", KeyFields)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cdc.NewDecoder("debezium-json")
	if err != nil {
		t.Fatal(err)
	}
	handle := transforms.Typed(Handle)
	table := map[string]Customer{}
	var out []transforms.Output
	for i, r := range recs {
		var c cdc.Change
		if err := dec.Decode(r.Key, r.Value, &c); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if out, err = handle(context.Background(), &c, out[:0]); err != nil || len(out) != 1 {
			t.Fatalf("message %d: %d records, %v", i+1, len(out), err)
		}
		if out[0].Deleted {
			delete(table, out[0].Key)
		} else {
			table[out[0].Key] = out[0].Value.(Customer)
		}
	}
	if len(table) != 3 || table["1004"].ID != 0 {
		t.Fatalf("table after the recording: %+v, want 1001-1003 (1004 deleted)", table)
	}
	if g := table["1002"]; g.Email == nil || *g.Email != "george.bailey@bedfordfalls.com" || g.Country != "US" {
		t.Errorf("1002 after its update: %+v", g)
	}
}

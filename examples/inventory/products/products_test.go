package products

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/meshlet/meshlet/ports/kafka"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/transforms"
)

// TestHandleRecordedCDC runs the handler over the recorded capture the way a
// domain team tests its product: decode each message, call the handler,
// check what comes out.
func TestHandleRecordedCDC(t *testing.T) {
	recs, err := kafka.RecordedCDC(bytes.NewReader(RecordedCDC()), "recorded", "t", KeyFields)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cdc.NewDecoder("debezium-json")
	if err != nil {
		t.Fatal(err)
	}
	handle := transforms.Typed(Handle)
	table := map[string]Product{}
	var out []transforms.Output
	for i, r := range recs {
		var c cdc.Change
		if err := dec.Decode(r.Key, r.Value, &c); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if out, err = handle(context.Background(), &c, out[:0]); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if len(out) != 1 {
			t.Fatalf("message %d: %d records, want 1", i+1, len(out))
		}
		if out[0].Deleted {
			delete(table, out[0].Key)
		} else {
			table[out[0].Key] = out[0].Value.(Product)
		}
	}
	if len(table) != 10 {
		t.Errorf("%d products, want 101..110", len(table))
	}
	if p := table["106"]; p.Name != "hammer" || *p.Description != "18oz carpenter hammer" || *p.WeightKg != 1.0 {
		t.Errorf("106 = %+v, want the updated 18oz hammer", p)
	}
	if _, ok := table["111"]; ok {
		t.Error("111 was deleted at the source but is still published")
	}
}

func TestHandleRefusesTruncate(t *testing.T) {
	c := &cdc.Change{Kind: cdc.KindChange, Op: cdc.OpTruncate, Source: cdc.Source{Schema: "inventory", Table: "products"}}
	_, err := transforms.Typed(Handle)(context.Background(), c, nil)
	if !errors.Is(err, transforms.ErrUnsupportedOp) {
		t.Fatalf("err = %v, want ErrUnsupportedOp so the truncate is a visible dead letter", err)
	}
}

func TestHandleTrimsNames(t *testing.T) {
	c := &cdc.Change{Kind: cdc.KindChange, Op: cdc.OpCreate, After: []byte(`{"id":7,"name":"  drill ","weight":null}`)}
	out, err := transforms.Typed(Handle)(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := out[0].Value.(Product)
	if p.Name != "drill" || p.WeightKg != nil || out[0].Key != "7" {
		t.Fatalf("got %+v key %s, want trimmed name, null weight kept null, key 7", p, out[0].Key)
	}
}

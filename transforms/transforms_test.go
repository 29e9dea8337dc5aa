package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/cdc"
)

type row struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func rowKey(r *row) string { return strconv.Itoa(r.ID) }

func change(op cdc.Op, key, before, after string) *cdc.Change {
	c := &cdc.Change{Kind: cdc.KindChange, Op: op, CommitTime: time.UnixMilli(1596001099434)}
	if key != "" {
		c.Key = json.RawMessage(key)
	}
	if before != "" {
		c.Before = json.RawMessage(before)
	}
	if after != "" {
		c.After = json.RawMessage(after)
	}
	return c
}

func TestProjection(t *testing.T) {
	f := Typed(Projection(rowKey))
	tests := []struct {
		name    string
		change  *cdc.Change
		want    []Output
		wantErr error
	}{
		{"insert publishes after", change(cdc.OpCreate, `{"id":1}`, "", `{"id":1,"name":"a"}`),
			[]Output{{Key: "1", Value: row{1, "a"}}}, nil},
		{"snapshot read publishes after", change(cdc.OpRead, "", "", `{"id":2,"name":"b"}`),
			[]Output{{Key: "2", Value: row{2, "b"}}}, nil},
		{"update publishes after, not before", change(cdc.OpUpdate, "", `{"id":3,"name":"old"}`, `{"id":3,"name":"new"}`),
			[]Output{{Key: "3", Value: row{3, "new"}}}, nil},
		{"delete retracts with before", change(cdc.OpDelete, "", `{"id":4,"name":"gone"}`, ""),
			[]Output{{Key: "4", Deleted: true, Value: row{4, "gone"}}}, nil},
		{"delete without before retracts by record key", change(cdc.OpDelete, `{"id":5}`, "", ""),
			[]Output{{Key: "5", Deleted: true, Value: row{ID: 5}}}, nil},
		{"delete without before or key is refused", change(cdc.OpDelete, "", "", ""), nil, ErrUnsupportedOp},
		{"truncate is refused", change(cdc.OpTruncate, "", "", ""), nil, ErrUnsupportedOp},
		{"row of the wrong shape is refused", change(cdc.OpCreate, "", "", `{"id":"x"}`), nil, ErrRowDecode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f(context.Background(), tt.change, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d outputs %+v, want %+v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("output %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestTypedAppendsToCallersSlice(t *testing.T) {
	f := Typed(Projection(rowKey))
	out := []Output{{Key: "earlier"}}
	out, err := f(context.Background(), change(cdc.OpCreate, "", "", `{"id":7,"name":"x"}`), out)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Key != "earlier" || out[1].Key != "7" {
		t.Fatalf("outputs = %+v, want the earlier one kept and one appended", out)
	}
}

func TestTypedPassesValidTimes(t *testing.T) {
	from, to := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	f := Typed(func(_ context.Context, c Change[row]) ([]Record[row], error) {
		if c.CommitTime.UnixMilli() != 1596001099434 {
			t.Errorf("commit time not passed through: %v", c.CommitTime)
		}
		return []Record[row]{{Key: "k", ValidFrom: from, ValidTo: to, Value: *c.After()}}, nil
	})
	out, err := f(context.Background(), change(cdc.OpCreate, "", "", `{"id":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].ValidFrom.Equal(from) || !out[0].ValidTo.Equal(to) {
		t.Fatalf("valid period = [%v, %v), want [%v, %v)", out[0].ValidFrom, out[0].ValidTo, from, to)
	}
}

func TestRecoverTurnsPanicIntoError(t *testing.T) {
	boom := func(_ context.Context, _ *cdc.Change, out []Output) ([]Output, error) {
		out = append(out, Output{Key: "half-done"})
		panic("nil map write")
	}
	out, err := Chain(boom, Recover())(context.Background(), change(cdc.OpCreate, "", "", `{}`), []Output{{Key: "kept"}})
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("err = %v, want ErrPanic", err)
	}
	if len(out) != 1 || out[0].Key != "kept" {
		t.Fatalf("outputs = %+v, want only the caller's earlier output", out)
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(next Func) Func {
			return func(ctx context.Context, c *cdc.Change, out []Output) ([]Output, error) {
				order = append(order, name)
				return next(ctx, c, out)
			}
		}
	}
	base := func(_ context.Context, _ *cdc.Change, out []Output) ([]Output, error) {
		order = append(order, "handler")
		return out, nil
	}
	if _, err := Chain(base, mw("outer"), mw("inner"))(context.Background(), &cdc.Change{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "outer,inner,handler" {
		t.Fatalf("order = %s, want outer,inner,handler", got)
	}
}

func BenchmarkTypedProjection(b *testing.B) {
	f := Typed(Projection(rowKey))
	c := change(cdc.OpUpdate, `{"id":3}`, `{"id":3,"name":"old name of the row"}`, `{"id":3,"name":"new name of the row"}`)
	var out []Output
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = f(context.Background(), c, out[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// inventoryRow and the images below are the example product's, as the
// pipeline benchmark sends them.
type inventoryRow struct {
	ID          int32    `json:"id"`
	Name        string   `json:"name"`
	Description *string  `json:"description"`
	Weight      *float64 `json:"weight"`
}

func inventoryKey(r *inventoryRow) string { return strconv.Itoa(int(r.ID)) }

var inventoryUpdate = change(cdc.OpUpdate, `{"id":1042}`,
	`{"id":1042,"name":"hammer","description":"16oz carpenter's hammer","weight":1.0}`,
	`{"id":1042,"name":"hammer","description":"18oz carpenter hammer","weight":42.5}`)

// typedEncodingJSON is Typed as it was before cdc.RowDecoder: every image
// through json.Unmarshal into its own allocation. It is the benchmark's
// baseline.
func typedEncodingJSON[In, Out any](h Handler[In, Out]) Func {
	dec := func(raw json.RawMessage) (*In, error) {
		if len(raw) == 0 || string(raw) == "null" {
			return nil, nil
		}
		v := new(In)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return func(ctx context.Context, c *cdc.Change, out []Output) ([]Output, error) {
		r := &rows[In]{read: readBefore | readAfter | readKey}
		var err error
		if r.before, err = dec(c.Before); err != nil {
			return out, err
		}
		if r.after, err = dec(c.After); err != nil {
			return out, err
		}
		if isObject(c.Key) {
			if r.key, err = dec(c.Key); err != nil {
				return out, err
			}
		}
		recs, err := h(ctx, Change[In]{Change: c, rows: r})
		if err != nil {
			return out, err
		}
		for _, r := range recs {
			out = append(out, Output{Key: r.Key, ValidFrom: r.ValidFrom, ValidTo: r.ValidTo, Deleted: r.Deleted, Value: r.Value})
		}
		return out, nil
	}
}

// BenchmarkTyped runs the Projection handler on the pipeline benchmark's
// update (key, before and after images) through the typed adapter, against
// the encoding/json adapter it replaced. after-only is an insert: the cost
// of one image less.
func BenchmarkTyped(b *testing.B) {
	insert := change(cdc.OpCreate, `{"id":1042}`, "", string(inventoryUpdate.After))
	for _, bm := range []struct {
		name string
		f    Func
		c    *cdc.Change
	}{
		{"encoding-json", typedEncodingJSON(Projection(inventoryKey)), inventoryUpdate},
		{"plan", Typed(Projection(inventoryKey)), inventoryUpdate},
		{"encoding-json-after-only", typedEncodingJSON(Projection(inventoryKey)), insert},
		{"plan-after-only", Typed(Projection(inventoryKey)), insert},
	} {
		b.Run(bm.name, func(b *testing.B) {
			var out []Output
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if out, err = bm.f(context.Background(), bm.c, out[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestTypedMatchesEncodingJSON(t *testing.T) {
	var got, want []Output
	var err error
	if got, err = Typed(Projection(inventoryKey))(context.Background(), inventoryUpdate, nil); err != nil {
		t.Fatal(err)
	}
	if want, err = typedEncodingJSON(Projection(inventoryKey))(context.Background(), inventoryUpdate, nil); err != nil {
		t.Fatal(err)
	}
	g, w := got[0].Value.(inventoryRow), want[0].Value.(inventoryRow)
	if len(got) != 1 || got[0].Key != want[0].Key || g.ID != w.ID || g.Name != w.Name || *g.Description != *w.Description || *g.Weight != *w.Weight {
		t.Fatalf("got %+v, encoding/json gives %+v", got, want)
	}
}

// A row that does not fit says which image and which field.
func TestTypedRowErrorNamesField(t *testing.T) {
	readAll := Typed(func(_ context.Context, c Change[inventoryRow]) ([]Record[inventoryRow], error) {
		c.Before()
		c.After()
		c.Key()
		return nil, nil
	})
	for _, tt := range []struct {
		c    *cdc.Change
		want string
	}{
		{change(cdc.OpCreate, "", "", `{"id":1,"weight":"heavy"}`), "after.weight"},
		{change(cdc.OpUpdate, "", `{"id":2147483648}`, `{"id":1}`), "before.id"},
		{change(cdc.OpDelete, `{"id":"1"}`, "", ""), "key.id"},
		{change(cdc.OpCreate, "", "", `{"id":1`), "after"},
	} {
		_, err := readAll(context.Background(), tt.c, nil)
		if !errors.Is(err, ErrRowDecode) || !strings.Contains(err.Error(), ": "+tt.want) {
			t.Errorf("error %v, want ErrRowDecode naming %s", err, tt.want)
		}
	}
}

// Images are read when the handler asks: an old row Projection never
// looks at is never decoded, so it cannot fail the change; one it does
// read fails it even if the handler carries on.
func TestTypedDecodesOnlyWhatTheHandlerReads(t *testing.T) {
	badBefore := change(cdc.OpUpdate, "", `{"id":"not a number"}`, `{"id":3,"name":"new"}`)
	out, err := Typed(Projection(inventoryKey))(context.Background(), badBefore, nil)
	if err != nil || len(out) != 1 || out[0].Key != "3" {
		t.Fatalf("update with an unread bad old row: %v %+v", err, out)
	}
	var after *inventoryRow
	ignoring := Typed(func(_ context.Context, c Change[inventoryRow]) ([]Record[inventoryRow], error) {
		after = c.After()
		return []Record[inventoryRow]{{Key: "made up"}}, nil
	})
	out, err = ignoring(context.Background(), change(cdc.OpCreate, "", "", `{"id":"x"}`), nil)
	if !errors.Is(err, ErrRowDecode) || len(out) != 0 || after != nil {
		t.Fatalf("a row that does not fit: err %v, outputs %+v, After %v", err, out, after)
	}
	// A second read returns the same row, decoded once.
	var first, second *inventoryRow
	twice := Typed(func(_ context.Context, c Change[inventoryRow]) ([]Record[inventoryRow], error) {
		first, second = c.After(), c.After()
		return nil, nil
	})
	if _, err := twice(context.Background(), inventoryUpdate, nil); err != nil || first == nil || first != second {
		t.Fatalf("After twice: %p %p (%v)", first, second, err)
	}
	// NewChange, for a handler's own tests, reads the images the same way.
	nc := NewChange[inventoryRow](inventoryUpdate)
	if nc.After() == nil || nc.After().ID != 1042 || nc.Before() == nil || *nc.Before().Description != "16oz carpenter's hammer" || nc.Key().ID != 1042 {
		t.Fatalf("NewChange: %+v %+v %+v", nc.Before(), nc.After(), nc.Key())
	}
	// A Change made without Typed or NewChange has no rows, and says so.
	if (Change[inventoryRow]{Change: inventoryUpdate}).After() != nil {
		t.Fatal("a bare Change decoded a row")
	}
	var zero Change[inventoryRow]
	if zero.Before() != nil || zero.After() != nil || zero.Key() != nil {
		t.Fatal("the zero Change has rows")
	}
}

// A product reading another product's output gets its entity key as a JSON
// string: the typed adapter must pass it through, not refuse the event.
func TestTypedPlainKey(t *testing.T) {
	var got Change[row]
	f := Typed(func(_ context.Context, c Change[row]) ([]Record[row], error) {
		got = c
		return nil, nil
	})
	c := &cdc.Change{Op: cdc.OpUpdate, Key: json.RawMessage(`"42"`), After: json.RawMessage(`{"id":42}`)}
	if _, err := f(context.Background(), c, nil); err != nil {
		t.Fatalf("a plain key was refused: %v", err)
	}
	if got.Key() != nil || string(got.Change.Key) != `"42"` || got.After() == nil || got.After().ID != 42 {
		t.Fatalf("got Key %v, raw key %s, After %v", got.Key(), got.Change.Key, got.After())
	}
	c.Key = json.RawMessage(` {"id":7}`)
	if _, err := f(context.Background(), c, nil); err != nil || got.Key() == nil || got.Key().ID != 7 {
		t.Fatalf("an object key: err %v, Key %v", err, got.Key())
	}
}

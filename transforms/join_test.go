package transforms

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshlet/meshlet/state"
)

// The operators are checked against a naive reference: the final input
// folded into plain maps (key -> valid time -> row or delete), the
// expected result at each valid time computed from those maps alone, and
// compared with the fold of everything the operator emitted (a later
// record for the same key and valid time replacing an earlier one).

type order struct {
	Customer string
	Amount   int64
}

type customer struct {
	Name string
	Tier int
}

type enriched struct {
	Order    string
	Customer string
	Name     string
	Amount   int64
}

// vmap is a reference table: key -> valid time -> row (nil: deleted).
type vmap[T any] map[string]map[int64]*T

func (m vmap[T]) set(key string, at int64, v *T) {
	if m[key] == nil {
		m[key] = map[int64]*T{}
	}
	m[key][at] = v
}

// asOf is the row holding at t: the one of the greatest valid time <= t.
func (m vmap[T]) asOf(key string, t int64) *T {
	best, found := int64(0), false
	for at := range m[key] {
		if at <= t && (!found || at > best) {
			best, found = at, true
		}
	}
	if !found {
		return nil
	}
	return m[key][best]
}

// emitted folds output records by key and valid time.
type emitted[T any] struct{ m vmap[T] }

func (e *emitted[T]) add(recs []Record[T]) {
	if e.m == nil {
		e.m = vmap[T]{}
	}
	for _, r := range recs {
		if r.Deleted {
			e.m.set(r.Key, r.ValidFrom.UnixMicro(), nil)
		} else {
			v := r.Value
			e.m.set(r.Key, r.ValidFrom.UnixMicro(), &v)
		}
	}
}

// harness runs ops in batches on one store: commits every few ops,
// rolls some ops back as a dead-lettered event would be, and discards
// some batches, as an aborted transaction does.
type harness struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	s     *state.Store
	tx    *state.Txn
	batch []func() // the batch's accepted ops, for the reference once committed
	// pending is what an op adds to the batch besides its records and its
	// reference change, taken with them or dropped with them.
	pending []func()
}

func newHarness(t *testing.T, seed uint64) *harness {
	s, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &harness{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 7)), s: s, tx: s.Begin()}
}

// do runs op (which returns its records and what it does to the
// reference); the harness decides whether it is kept.
func do[T any](h *harness, out *emitted[T], op func(tx *state.Txn) ([]Record[T], error), ref func()) {
	h.t.Helper()
	sp := h.tx.Savepoint()
	h.pending = h.pending[:0]
	recs, err := op(h.tx)
	if err != nil {
		h.t.Fatalf("seed %d: %v", h.seed, err)
	}
	if h.rng.IntN(10) == 0 {
		h.tx.Rollback(sp) // a dead letter: neither state nor records
		return
	}
	h.batch = append(h.batch, func() { out.add(recs) }, ref)
	h.batch = append(h.batch, h.pending...)
	switch r := h.rng.IntN(10); {
	case r < 2:
		if err := h.tx.Commit(state.Mark{}); err != nil {
			h.t.Fatal(err)
		}
		for _, f := range h.batch {
			f()
		}
		h.batch = h.batch[:0]
		h.tx = h.s.Begin()
	case r < 3:
		h.tx.Discard() // aborted: consumed again, so the ops are lost here
		h.batch = h.batch[:0]
		h.tx = h.s.Begin()
	}
}

func (h *harness) finish() {
	if err := h.tx.Commit(state.Mark{}); err != nil {
		h.t.Fatal(err)
	}
	for _, f := range h.batch {
		f()
	}
}

// compare checks the emitted fold against want at every probe time.
func compare[T comparable](t *testing.T, seed uint64, what string, keys []string, probes []int64, got vmap[T], want func(key string, at int64) *T) {
	t.Helper()
	checked := 0
	for _, k := range keys {
		for _, at := range probes {
			g, w := got.asOf(k, at), want(k, at)
			if (g == nil) != (w == nil) || g != nil && *g != *w {
				t.Fatalf("seed %d: %s: key %s at %d: emitted %v, reference %v", seed, what, k, at, deref(g), deref(w))
			}
			if w != nil {
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatalf("seed %d: %s: the reference has no result at all; the test checks nothing", seed, what)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "none"
	}
	return *p
}

func probesOf(times map[int64]bool) []int64 {
	ps := []int64{0, 1 << 40}
	for at := range times {
		ps = append(ps, at, at-1, at+1)
	}
	slices.Sort(ps)
	return ps
}

func seeds(t *testing.T, n int, run func(t *testing.T, seed uint64)) {
	base := uint64(time.Now().UnixNano())
	for i := range n {
		seed := base + uint64(i)
		t.Run(strconv.Itoa(i), func(t *testing.T) { run(t, seed) })
	}
}

var orderJoin = func(o *order, c *customer) (enriched, bool) {
	if c == nil {
		return enriched{}, false // inner join
	}
	return enriched{Customer: o.Customer, Name: c.Name, Amount: o.Amount}, true
}

// TestLookupMatchesReference: orders (updated, deleted, back-dated) joined
// by customer id with customers (updated, deleted, back-dated).
func TestLookupMatchesReference(t *testing.T) {
	seeds(t, 20, func(t *testing.T, seed uint64) {
		h := newHarness(t, seed)
		j := &Lookup[order, customer, enriched]{Name: "enrich", Right: "customers", Key: func(o *order) string { return o.Customer }, Join: orderJoin}
		orders, customers := vmap[order]{}, vmap[customer]{}
		var out emitted[enriched]
		times := map[int64]bool{}
		ok, ck := 8, 4
		for range 300 {
			at := int64(h.rng.IntN(100) * 10)
			times[at] = true
			if h.rng.IntN(2) == 0 {
				key := "o" + strconv.Itoa(h.rng.IntN(ok))
				var o *order
				if h.rng.IntN(5) != 0 {
					o = &order{Customer: "c" + strconv.Itoa(h.rng.IntN(ck)), Amount: int64(h.rng.IntN(100))}
				}
				do(h, &out, func(tx *state.Txn) ([]Record[enriched], error) { return j.OnLeft(tx, key, time.UnixMicro(at), o) },
					func() { orders.set(key, at, o) })
			} else {
				key := "c" + strconv.Itoa(h.rng.IntN(ck))
				var c *customer
				if h.rng.IntN(5) != 0 {
					c = &customer{Name: fmt.Sprintf("n%d", h.rng.IntN(1000)), Tier: h.rng.IntN(3)}
				}
				do(h, &out, func(tx *state.Txn) ([]Record[enriched], error) { return j.OnRight(tx, key, time.UnixMicro(at), c) },
					func() { customers.set(key, at, c) })
			}
		}
		h.finish()
		var keys []string
		for k := range orders {
			keys = append(keys, k)
		}
		compare(t, seed, "lookup", keys, probesOf(times), out.m, func(key string, at int64) *enriched {
			// The result holding at t is the one of the left version holding at t,
			// joined with the customer as of that version's own valid time.
			best, found := int64(0), false
			for lt := range orders[key] {
				if lt <= at && (!found || lt > best) {
					best, found = lt, true
				}
			}
			if !found || orders[key][best] == nil {
				return nil
			}
			o := orders[key][best]
			r, ok := orderJoin(o, customers.asOf(o.Customer, best))
			if !ok {
				return nil
			}
			return &r
		})
	})
}

type profile struct{ City string }

type customerView struct {
	Name string
	City string
}

var viewJoin = func(c *customer, p *profile) (customerView, bool) {
	v := customerView{}
	if c != nil {
		v.Name = c.Name
	}
	if p != nil {
		v.City = p.City
	}
	return v, c != nil // a left join: a customer without a profile still shows
}

func TestTableJoinMatchesReference(t *testing.T) {
	seeds(t, 20, func(t *testing.T, seed uint64) {
		h := newHarness(t, seed)
		j := &TableJoin[customer, profile, customerView]{Name: "view", Left: "customers", Right: "profiles", Join: viewJoin}
		left, right := vmap[customer]{}, vmap[profile]{}
		var out emitted[customerView]
		times := map[int64]bool{}
		for range 300 {
			at := int64(h.rng.IntN(60) * 10)
			times[at] = true
			key := "c" + strconv.Itoa(h.rng.IntN(5))
			if h.rng.IntN(2) == 0 {
				var c *customer
				if h.rng.IntN(5) != 0 {
					c = &customer{Name: fmt.Sprintf("n%d", h.rng.IntN(4))}
				}
				do(h, &out, func(tx *state.Txn) ([]Record[customerView], error) { return j.OnLeft(tx, key, time.UnixMicro(at), c) },
					func() { left.set(key, at, c) })
			} else {
				var p *profile
				if h.rng.IntN(5) != 0 {
					p = &profile{City: fmt.Sprintf("city%d", h.rng.IntN(4))}
				}
				do(h, &out, func(tx *state.Txn) ([]Record[customerView], error) { return j.OnRight(tx, key, time.UnixMicro(at), p) },
					func() { right.set(key, at, p) })
			}
		}
		h.finish()
		keys := []string{"c0", "c1", "c2", "c3", "c4"}
		compare(t, seed, "table join", keys, probesOf(times), out.m, func(key string, at int64) *customerView {
			c, p := left.asOf(key, at), right.asOf(key, at)
			if c == nil && p == nil {
				return nil
			}
			v, ok := viewJoin(c, p)
			if !ok {
				return nil
			}
			return &v
		})
	})
}

// TestLookupLateTableUpdate is the late-arrival case of KIP-889, the
// versioned-store proposal of Kafka Streams: a stream record at t=10
// joins the table record of t=5; then a table update with t=8 arrives.
// Kafka Streams keeps the result joined with t=5; a Lookup re-emits it,
// joined with t=8, as a correction for the same valid time.
func TestLookupLateTableUpdate(t *testing.T) {
	s, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx := s.Begin()
	defer tx.Discard()
	j := &Lookup[order, customer, enriched]{Name: "enrich", Right: "customers", Key: func(o *order) string { return o.Customer }, Join: orderJoin}
	at := func(us int64) time.Time { return time.UnixMicro(us) }
	step := func(what string, recs []Record[enriched], err error, want ...Record[enriched]) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(recs, want) {
			t.Fatalf("%s: emitted %+v, want %+v", what, recs, want)
		}
	}
	recs, err := j.OnRight(tx, "c1", at(5), &customer{Name: "A"})
	step("table record t=5", recs, err)
	recs, err = j.OnLeft(tx, "o1", at(10), &order{Customer: "c1", Amount: 7})
	step("stream record t=10", recs, err, Record[enriched]{Key: "o1", ValidFrom: at(10), Value: enriched{Customer: "c1", Name: "A", Amount: 7}})
	recs, err = j.OnRight(tx, "c1", at(8), &customer{Name: "B"})
	step("late table update t=8", recs, err, Record[enriched]{Key: "o1", ValidFrom: at(10), Value: enriched{Customer: "c1", Name: "B", Amount: 7}})
	recs, err = j.OnRight(tx, "c1", at(12), &customer{Name: "C"})
	step("table update t=12, after the stream record", recs, err)
	recs, err = j.OnRight(tx, "c1", at(3), &customer{Name: "Z"})
	step("table update t=3, before t=5: the period [3,5) has no stream record", recs, err)
}

func BenchmarkLookup(b *testing.B) {
	s, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	j := &Lookup[order, customer, enriched]{Name: "enrich", Right: "customers", Key: func(o *order) string { return o.Customer }, Join: orderJoin}
	tx := s.Begin()
	for c := range 1000 {
		if _, err := j.OnRight(tx, "c"+strconv.Itoa(c), time.UnixMicro(1), &customer{Name: "n"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		o := &order{Customer: "c" + strconv.Itoa(i%1000), Amount: 3}
		if _, err := j.OnLeft(tx, "o"+strconv.Itoa(i), time.UnixMicro(int64(10+i)), o); err != nil {
			b.Fatal(err)
		}
		i++
		if i%1000 == 0 {
			if err := tx.Commit(state.Mark{}); err != nil {
				b.Fatal(err)
			}
			tx = s.Begin()
		}
	}
	tx.Discard()
}

package transforms

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshlet/meshlet/state"
)

// userFold collects the amounts, to count the distinct ones: a fold with
// no inverse, which an Aggregate handles by folding the group again.
var userFold = Fold[order, []int64]{
	Zero: func() []int64 { return nil },
	Add: func(acc []int64, o *order) []int64 {
		if !slices.Contains(acc, o.Amount) {
			acc = append(slices.Clone(acc), o.Amount)
		}
		return acc
	},
}

// TestAggregatesMatchReference: count, sum, min, max and a user fold of
// orders per customer, under inserts, updates (amount, and moves to
// another customer), deletes and back-dated changes, against folding
// the final rows valid at each time with plain maps.
func TestAggregatesMatchReference(t *testing.T) {
	seeds(t, 20, func(t *testing.T, seed uint64) {
		h := newHarness(t, seed)
		group := func(o *order) string { return o.Customer }
		amount := func(o *order) int64 { return o.Amount }
		count := &Aggregate[order, int64]{Name: "count", Group: group, Fold: Count[order]()}
		sum := &Aggregate[order, int64]{Name: "sum", Group: group, Fold: Sum(amount)}
		mn := &Aggregate[order, Extreme[int64]]{Name: "min", Group: group, Fold: Min(amount)}
		mx := &Aggregate[order, Extreme[int64]]{Name: "max", Group: group, Fold: Max(amount)}
		distinct := &Aggregate[order, []int64]{Name: "distinct", Group: group, Fold: userFold}
		var outCount, outSum emitted[int64]
		var outMin, outMax emitted[Extreme[int64]]
		var outDistinct emitted[int]
		rows := vmap[order]{}
		times := map[int64]bool{}
		for range 250 {
			at := int64(h.rng.IntN(50) * 10)
			times[at] = true
			key := "o" + strconv.Itoa(h.rng.IntN(10))
			var o *order
			if h.rng.IntN(4) != 0 {
				o = &order{Customer: "c" + strconv.Itoa(h.rng.IntN(3)), Amount: int64(h.rng.IntN(20))}
			}
			// One event feeds all five aggregates, so one rollback covers them all.
			do(h, &outCount, func(tx *state.Txn) ([]Record[int64], error) {
				var all []Record[int64]
				recs, err := count.On(tx, key, time.UnixMicro(at), o)
				all = append(all, recs...)
				if err != nil {
					return nil, err
				}
				rs, err := sum.On(tx, key, time.UnixMicro(at), o)
				if err != nil {
					return nil, err
				}
				mins, err := mn.On(tx, key, time.UnixMicro(at), o)
				if err != nil {
					return nil, err
				}
				maxs, err := mx.On(tx, key, time.UnixMicro(at), o)
				if err != nil {
					return nil, err
				}
				ds, err := distinct.On(tx, key, time.UnixMicro(at), o)
				if err != nil {
					return nil, err
				}
				// The other folds' records ride on the same acceptance.
				h.pending = append(h.pending, func() {
					outSum.add(rs)
					outMin.add(mins)
					outMax.add(maxs)
					n := make([]Record[int], len(ds))
					for i, d := range ds {
						n[i] = Record[int]{Key: d.Key, ValidFrom: d.ValidFrom, Deleted: d.Deleted, Value: len(d.Value)}
					}
					outDistinct.add(n)
				})
				return all, nil
			}, func() { rows.set(key, at, o) })
		}
		h.finish()
		members := func(g string, at int64) []*order {
			var os []*order
			keys := make([]string, 0, len(rows))
			for k := range rows {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if o := rows.asOf(k, at); o != nil && o.Customer == g {
					os = append(os, o)
				}
			}
			return os
		}
		groups := []string{"c0", "c1", "c2"}
		probes := probesOf(times)
		compare(t, seed, "count", groups, probes, outCount.m, func(g string, at int64) *int64 {
			if n := int64(len(members(g, at))); n > 0 {
				return &n
			}
			return nil
		})
		compare(t, seed, "sum", groups, probes, outSum.m, func(g string, at int64) *int64 {
			ms := members(g, at)
			if len(ms) == 0 {
				return nil
			}
			var s int64
			for _, o := range ms {
				s += o.Amount
			}
			return &s
		})
		extreme := func(less func(a, b int64) bool) func(g string, at int64) *Extreme[int64] {
			return func(g string, at int64) *Extreme[int64] {
				ms := members(g, at)
				if len(ms) == 0 {
					return nil
				}
				e := Extreme[int64]{Value: ms[0].Amount, Set: true}
				for _, o := range ms[1:] {
					if less(o.Amount, e.Value) {
						e.Value = o.Amount
					}
				}
				return &e
			}
		}
		compare(t, seed, "min", groups, probes, outMin.m, extreme(func(a, b int64) bool { return a < b }))
		compare(t, seed, "max", groups, probes, outMax.m, extreme(func(a, b int64) bool { return a > b }))
		compare(t, seed, "distinct", groups, probes, outDistinct.m, func(g string, at int64) *int {
			ms := members(g, at)
			if len(ms) == 0 {
				return nil
			}
			seen := map[int64]bool{}
			for _, o := range ms {
				seen[o.Amount] = true
			}
			n := len(seen)
			return &n
		})
	})
}

func BenchmarkAggregateSum(b *testing.B) {
	s, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sum := &Aggregate[order, int64]{Name: "sum", Group: func(o *order) string { return o.Customer }, Fold: Sum(func(o *order) int64 { return o.Amount })}
	tx := s.Begin()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// 1,000 customers with about 10 orders each, a tenth of them updates.
		key := "o" + strconv.Itoa(i%10_000)
		o := &order{Customer: "c" + strconv.Itoa(i%1000), Amount: int64(i % 50)}
		if _, err := sum.On(tx, key, time.UnixMicro(int64(10+i)), o); err != nil {
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

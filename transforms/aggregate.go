package transforms

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/meshlet/meshlet/state"
)

// Aggregate keeps a running aggregate per group (per customer, the total
// of their orders) of the rows of a table (orders, by their own key). The
// aggregate of a group at valid time t folds the rows valid at t that
// belong to the group, so an update or a delete takes back the row's old
// contribution first (as Flink's -U/+U does), a row that moves to another
// group leaves the old one, and a back-dated change re-emits the
// aggregates of every period it affects. Each change emits one new version
// of each aggregate it changes; a group left with no rows is retracted.
type Aggregate[V, A any] struct {
	// Name prefixes the operator's state tables: <Name>.rows (the rows'
	// versions), <Name>.by-group (row keys by group) and <Name>.out (what
	// was published).
	Name string
	// Group names the group a row belongs to.
	Group func(v *V) string
	// Fold combines the rows of a group.
	Fold Fold[V, A]
}

// Fold is how an Aggregate combines rows: Zero, then Add for each row in
// key order.
type Fold[V, A any] struct {
	Zero func() A
	Add  func(acc A, v *V) A
}

// Count counts rows.
func Count[V any]() Fold[V, int64] {
	return Fold[V, int64]{Zero: func() int64 { return 0 }, Add: func(n int64, _ *V) int64 { return n + 1 }}
}

// Sum adds a number of each row.
func Sum[V any, N cmp.Ordered](f func(*V) N) Fold[V, N] {
	return Fold[V, N]{Zero: func() N { var z N; return z }, Add: func(s N, v *V) N { return s + f(v) }}
}

// Extreme is the least or greatest value of a group's rows.
type Extreme[N cmp.Ordered] struct {
	Value N
	Set   bool // false for no rows
}

// Min is the least of a number of each row.
func Min[V any, N cmp.Ordered](f func(*V) N) Fold[V, Extreme[N]] {
	return Fold[V, Extreme[N]]{Zero: func() Extreme[N] { return Extreme[N]{} }, Add: func(m Extreme[N], v *V) Extreme[N] {
		if x := f(v); !m.Set || x < m.Value {
			return Extreme[N]{x, true}
		}
		return m
	}}
}

// Max is the greatest of a number of each row.
func Max[V any, N cmp.Ordered](f func(*V) N) Fold[V, Extreme[N]] {
	return Fold[V, Extreme[N]]{Zero: func() Extreme[N] { return Extreme[N]{} }, Add: func(m Extreme[N], v *V) Extreme[N] {
		if x := f(v); !m.Set || x > m.Value {
			return Extreme[N]{x, true}
		}
		return m
	}}
}

func (a *Aggregate[V, A]) rows(tx *state.Txn) state.Table[V] { return state.Use[V](tx, a.Name+".rows") }
func (a *Aggregate[V, A]) index(tx *state.Txn) state.Table[bool] {
	return state.Use[bool](tx, a.Name+".by-group")
}

// On records a version of row key (nil: the row is deleted from validFrom
// on) and returns the aggregate versions it changes, keyed by group.
func (a *Aggregate[V, A]) On(tx *state.Txn, key string, validFrom time.Time, v *V) ([]Record[A], error) {
	at := validFrom.UnixMicro()
	rows := a.rows(tx)
	before, err := rows.Versions(key)
	if err != nil {
		return nil, err
	}
	if err := write(rows, key, at, v); err != nil {
		return nil, err
	}
	after, err := rows.Versions(key)
	if err != nil {
		return nil, err
	}
	// The row's contribution changes over [at, to): the groups it belonged
	// to there before, and the one it belongs to now.
	_, to, _ := periodAt(after, at)
	groups := map[string]bool{}
	for _, vs := range [][]state.Version[V]{before, after} {
		for i := range vs {
			from := vs[i].ValidFrom.UnixMicro()
			end := int64(0)
			if i > 0 {
				end = vs[i-1].ValidFrom.UnixMicro()
			}
			overlaps := (to == 0 || from < to) && (end == 0 || end > at)
			if overlaps && !vs[i].Deleted {
				groups[a.Group(&vs[i].Value)] = true
			}
		}
	}
	if v != nil {
		if err := a.index(tx).Put(a.Group(v)+"\x00"+key, time.UnixMicro(0), true); err != nil {
			return nil, err
		}
	}
	var out []Record[A]
	for _, g := range sortedKeys(groups) {
		if out, err = a.settle(tx, g, at, to, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// settle recomputes group g's aggregate at every point of [from, to)
// where one of its rows changes, and at to.
func (a *Aggregate[V, A]) settle(tx *state.Txn, g string, from, to int64, out []Record[A]) ([]Record[A], error) {
	var members [][]state.Version[V]
	rows := a.rows(tx)
	var keys []string
	err := a.index(tx).Scan(g+"\x00", func(v state.Version[bool]) error {
		keys = append(keys, v.Key[len(g)+1:])
		return nil
	})
	if err != nil {
		return out, err
	}
	points := []int64{from}
	if to != 0 {
		points = append(points, to)
	}
	for _, k := range keys {
		vs, err := rows.Versions(k)
		if err != nil {
			return out, err
		}
		members = append(members, vs)
		points = pointsIn(points, vs, from+1, to)
	}
	return published[A]{a.Name + ".out"}.settle(tx, g, points, func(at int64) (A, bool, error) {
		acc, n := a.Fold.Zero(), 0
		for _, vs := range members {
			if v, ok := asOf(vs, at); ok && a.Group(v) == g {
				acc = a.Fold.Add(acc, v)
				n++
			}
		}
		return acc, n > 0, nil
	}, out)
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

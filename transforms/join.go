package transforms

import (
	"time"

	"github.com/meshlet/meshlet/state"
)

// Lookup is the stream-table join, and the foreign-key join: each version
// of a left row (an order) is joined with the right table's row (its
// customer) as it was valid at the left version's valid time. Key names
// the right row a left row refers to: its own key for a stream-table join
// on the same key, a field (customer_id) for a foreign-key join.
//
// The result for a left version is fixed at its valid time: a right change
// valid later does not touch it. A right change valid earlier than results
// already published (a back-dated correction) re-emits the results of the
// left versions whose valid time falls in the period the change now holds
// for: new records for the same result key and valid time, with a new
// system time. Kafka Streams' versioned joins and Flink's temporal joins
// never revise such a result; a Lookup does, within its retention.
type Lookup[L, R, Out any] struct {
	// Name prefixes the operator's own state tables: <Name>.left (left
	// versions), <Name>.by-key (left keys by right key) and <Name>.out (what
	// was published).
	Name string
	// Right is the state table of the right side. Lookup writes it in
	// OnRight; a table that Meshlet materializes from an input port (mode:
	// table) names the same table.
	Right string
	// Key is the right key a left row refers to.
	Key func(l *L) string
	// Join makes the result; r is nil when no right version holds at the
	// left's valid time. ok false publishes no result (an inner join
	// returns false for a nil r).
	Join func(l *L, r *R) (out Out, ok bool)
}

func (j *Lookup[L, R, Out]) left(tx *state.Txn) state.Table[L] {
	return state.Use[L](tx, j.Name+".left")
}
func (j *Lookup[L, R, Out]) index(tx *state.Txn) state.Table[bool] {
	return state.Use[bool](tx, j.Name+".by-key")
}
func (j *Lookup[L, R, Out]) right(tx *state.Txn) state.Table[R] { return state.Use[R](tx, j.Right) }
func (j *Lookup[L, R, Out]) pub() published[Out]                { return published[Out]{j.Name + ".out"} }

// OnLeft records a left version (nil: the left row is deleted from
// validFrom on) and returns the result records it changes.
func (j *Lookup[L, R, Out]) OnLeft(tx *state.Txn, key string, validFrom time.Time, l *L) ([]Record[Out], error) {
	at := validFrom.UnixMicro()
	left := j.left(tx)
	if err := write(left, key, at, l); err != nil {
		return nil, err
	}
	if l != nil {
		if err := j.index(tx).Put(j.Key(l)+"\x00"+key, time.UnixMicro(0), true); err != nil {
			return nil, err
		}
	}
	return j.settle(tx, key, at, nil)
}

// OnRight records a right version (nil: deleted from validFrom on) in the
// Right table and returns the results it corrects.
func (j *Lookup[L, R, Out]) OnRight(tx *state.Txn, key string, validFrom time.Time, r *R) ([]Record[Out], error) {
	at := validFrom.UnixMicro()
	right := j.right(tx)
	if err := write(right, key, at, r); err != nil {
		return nil, err
	}
	return j.Corrections(tx, key, validFrom)
}

// Corrections returns the results a change of the right row key valid from
// validFrom corrects, for a Right table written elsewhere (materialized
// from a table input port): the left versions referring to key whose valid
// time falls in the period of the right version now holding at validFrom.
func (j *Lookup[L, R, Out]) Corrections(tx *state.Txn, key string, validFrom time.Time) ([]Record[Out], error) {
	at := validFrom.UnixMicro()
	rvs, err := j.right(tx).Versions(key)
	if err != nil {
		return nil, err
	}
	from, to, ok := periodAt(rvs, at)
	if !ok {
		from, to = at, 0
	}
	var lefts []string
	err = j.index(tx).Scan(key+"\x00", func(v state.Version[bool]) error {
		lefts = append(lefts, v.Key[len(key)+1:])
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Record[Out]
	for _, lk := range lefts {
		if out, err = j.settleRange(tx, lk, from, to, key, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// settle recomputes left key's results from valid time from on.
func (j *Lookup[L, R, Out]) settle(tx *state.Txn, key string, from int64, out []Record[Out]) ([]Record[Out], error) {
	return j.settleRange(tx, key, from, 0, "", out)
}

// settleRange recomputes the results of left key's versions valid from
// [from, to) (referring to right key rk, when set) and of the versions
// after them, whose published result may have been shared.
func (j *Lookup[L, R, Out]) settleRange(tx *state.Txn, key string, from, to int64, rk string, out []Record[Out]) ([]Record[Out], error) {
	lvs, err := j.left(tx).Versions(key)
	if err != nil {
		return out, err
	}
	var points []int64
	affected := false
	for i := len(lvs) - 1; i >= 0; i-- { // oldest first
		v := &lvs[i]
		at := v.ValidFrom.UnixMicro()
		if at >= from && (to == 0 || at < to) && (rk == "" || v.Deleted || j.Key(&v.Value) == rk) {
			affected = true
		}
		if affected && at >= from {
			points = append(points, at)
		}
	}
	if len(points) == 0 {
		return out, nil
	}
	right := j.right(tx)
	return j.pub().settle(tx, key, points, func(at int64) (Out, bool, error) {
		var zero Out
		l, ok := asOf(lvs, at)
		if !ok {
			return zero, false, nil
		}
		r, found, err := right.AsOf(j.Key(l), time.UnixMicro(at))
		if err != nil {
			return zero, false, err
		}
		if !found {
			o, ok := j.Join(l, nil)
			return o, ok, nil
		}
		o, ok := j.Join(l, &r.Value)
		return o, ok, nil
	}, out)
}

// TableJoin is the table-table join on one key: the result for key at
// valid time t joins the left and right versions both valid at t, so it
// changes whenever either side does, and is re-emitted for every period a
// change on either side affects, back-dated changes included.
type TableJoin[L, R, Out any] struct {
	// Name prefixes the operator's result table, <Name>.out.
	Name string
	// Left and Right are the two sides' state tables, written by OnLeft
	// and OnRight, or materialized from table input ports (then call
	// Changed after each change).
	Left, Right string
	// Join makes the result; either side is nil where it has no version.
	// ok false publishes none (an inner join: false unless both are set).
	Join func(l *L, r *R) (out Out, ok bool)
}

// OnLeft records a left version (nil: deleted) and returns the results it changes.
func (j *TableJoin[L, R, Out]) OnLeft(tx *state.Txn, key string, validFrom time.Time, l *L) ([]Record[Out], error) {
	if err := write(state.Use[L](tx, j.Left), key, validFrom.UnixMicro(), l); err != nil {
		return nil, err
	}
	return j.Changed(tx, key, validFrom, true)
}

// OnRight records a right version (nil: deleted) and returns the results it changes.
func (j *TableJoin[L, R, Out]) OnRight(tx *state.Txn, key string, validFrom time.Time, r *R) ([]Record[Out], error) {
	if err := write(state.Use[R](tx, j.Right), key, validFrom.UnixMicro(), r); err != nil {
		return nil, err
	}
	return j.Changed(tx, key, validFrom, false)
}

// Changed returns the results a change of one side (left true: the left)
// of key valid from validFrom changes: those of the period the changed
// side's version now holds for, split wherever the other side changes.
func (j *TableJoin[L, R, Out]) Changed(tx *state.Txn, key string, validFrom time.Time, left bool) ([]Record[Out], error) {
	at := validFrom.UnixMicro()
	lvs, err := state.Use[L](tx, j.Left).Versions(key)
	if err != nil {
		return nil, err
	}
	rvs, err := state.Use[R](tx, j.Right).Versions(key)
	if err != nil {
		return nil, err
	}
	var to int64
	var points []int64
	if left {
		_, to, _ = periodAt(lvs, at)
		points = pointsIn(points, rvs, at, to)
	} else {
		_, to, _ = periodAt(rvs, at)
		points = pointsIn(points, lvs, at, to)
	}
	points = append(points, at)
	if to != 0 {
		points = append(points, to)
	}
	return published[Out]{j.Name + ".out"}.settle(tx, key, points, func(t int64) (Out, bool, error) {
		l, _ := asOf(lvs, t)
		r, _ := asOf(rvs, t)
		var zero Out
		if l == nil && r == nil {
			return zero, false, nil
		}
		o, ok := j.Join(l, r)
		return o, ok, nil
	}, nil)
}

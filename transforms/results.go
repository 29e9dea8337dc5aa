package transforms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/meshlet/meshlet/state"
)

// published is an operator's record of what it has emitted, per result key
// and valid time, kept in a state table of its own. An operator computes
// the result at each valid time a change may have affected and emits only
// where it differs from what is published there, so a back-dated change
// yields exactly the corrections it causes, and nothing is emitted twice.
type published[Out any] struct{ table string }

// settle makes the published result of key at each point equal want(p),
// in ascending order of points, appending what it emits to out. want
// returns ok false for "no result" (a retraction where one was published).
func (p published[Out]) settle(tx *state.Txn, key string, points []int64, want func(at int64) (Out, bool, error), out []Record[Out]) ([]Record[Out], error) {
	slices.Sort(points)
	points = slices.Compact(points)
	tb := state.Use[json.RawMessage](tx, p.table)
	for _, at := range points {
		v, ok, err := want(at)
		if err != nil {
			return out, err
		}
		cur, had, err := tb.AsOf(key, time.UnixMicro(at))
		if err != nil {
			return out, err
		}
		if !ok {
			if !had {
				continue
			}
			if err := tb.Delete(key, time.UnixMicro(at)); err != nil {
				return out, err
			}
			var zero Out
			out = append(out, Record[Out]{Key: key, ValidFrom: time.UnixMicro(at), Deleted: true, Value: zero})
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return out, fmt.Errorf("result %q: %w", key, err)
		}
		if had && bytes.Equal(cur.Value, b) {
			continue
		}
		if err := tb.Put(key, time.UnixMicro(at), json.RawMessage(b)); err != nil {
			return out, err
		}
		out = append(out, Record[Out]{Key: key, ValidFrom: time.UnixMicro(at), Value: v})
	}
	return out, nil
}

// pointsIn appends the valid times of vs in [from, to) (to 0: no end).
func pointsIn[T any](dst []int64, vs []state.Version[T], from, to int64) []int64 {
	for _, v := range vs {
		at := v.ValidFrom.UnixMicro()
		if at >= from && (to == 0 || at < to) {
			dst = append(dst, at)
		}
	}
	return dst
}

// periodAt is the period [from, to) of the version of vs holding at t
// (to 0: open); ok is false when none holds (before the first version).
func periodAt[T any](vs []state.Version[T], t int64) (from, to int64, ok bool) {
	for i, v := range vs { // newest first
		if at := v.ValidFrom.UnixMicro(); at <= t {
			if i > 0 {
				to = vs[i-1].ValidFrom.UnixMicro()
			}
			return at, to, true
		}
	}
	return 0, 0, false
}

func asOf[T any](vs []state.Version[T], t int64) (*T, bool) {
	for i := range vs {
		if vs[i].ValidFrom.UnixMicro() <= t {
			if vs[i].Deleted {
				return nil, false
			}
			return &vs[i].Value, true
		}
	}
	return nil, false
}

// write puts v (nil: deletes) into tb at validFrom.
func write[T any](tb state.Table[T], key string, validFrom int64, v *T) error {
	if v == nil {
		return tb.Delete(key, time.UnixMicro(validFrom))
	}
	return tb.Put(key, time.UnixMicro(validFrom), *v)
}

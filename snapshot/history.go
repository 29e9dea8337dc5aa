package snapshot

import (
	"cmp"
	"slices"

	"github.com/meshlet/meshlet/auditlog"
)

// version is one rectangle of a key's history: fact believed valid over
// [vf, vt) from system time sf until st (0 = open), or, when deleted,
// believed absent there because fact (a retraction) said so.
type version struct {
	vf, vt, sf, st int64
	fact           int // index into the key's facts
	deleted        bool
}

// piece is part of the belief timeline since sf; vt is Latest when open.
type piece struct {
	vf, vt, sf int64
	fact       int
}

// history is auditlog's History (auditlog.Store.History) with the
// retractions kept: facts in merged order become rectangles by the same
// rule (an entry closes, at its system time, every rectangle whose valid
// period it overlaps, re-emits the parts outside its own period, then adds
// its own), except that a retraction adds a deleted rectangle where an
// assertion adds a version. The rectangles that are not deleted are
// exactly Store.History's versions, in the same order; the deleted ones
// tell an analyst when and for which valid period a row was deleted.
func history(facts []auditlog.Fact, out []version) []version {
	var pieces, next []piece
	emit := func(p piece, st int64) {
		if st != 0 && st <= p.sf {
			return // never believed at any system time (a tie across logs)
		}
		vt := p.vt
		if vt == auditlog.Latest {
			vt = 0
		}
		out = append(out, version{vf: p.vf, vt: vt, sf: p.sf, st: st, fact: p.fact, deleted: facts[p.fact].Op != auditlog.OpAssert})
	}
	for i := range facts {
		f := &facts[i]
		a, b, s := f.ValidFrom, f.ValidTo, f.SystemTime
		if b == 0 {
			b = auditlog.Latest
		}
		if b <= a {
			continue // an empty valid period asserts nothing and hides nothing
		}
		next = next[:0]
		for _, p := range pieces {
			if p.vt <= a || p.vf >= b {
				next = append(next, p)
				continue
			}
			emit(p, s)
			if p.vf < a {
				next = append(next, piece{p.vf, a, s, p.fact})
			}
			if p.vt > b {
				next = append(next, piece{b, p.vt, s, p.fact})
			}
		}
		next = append(next, piece{a, b, s, i})
		slices.SortFunc(next, func(x, y piece) int { return cmp.Compare(x.vf, y.vf) })
		pieces, next = next, pieces
	}
	for _, p := range pieces {
		emit(p, 0)
	}
	slices.SortFunc(out, func(x, y version) int {
		if c := cmp.Compare(x.sf, y.sf); c != 0 {
			return c
		}
		if c := cmp.Compare(x.vf, y.vf); c != 0 {
			return c
		}
		return cmp.Compare(x.fact, y.fact) // facts are in merged order
	})
	return out
}

// believed is what Store.AsOf(system).ValidAt(valid).Get answers from a
// key's facts in merged order: the latest recorded by system whose valid
// period holds valid, if it is an assertion.
func believed(facts []auditlog.Fact, system, valid int64) (int, bool) {
	for i := len(facts) - 1; i >= 0; i-- {
		f := &facts[i]
		if f.SystemTime <= system && f.Covers(valid) {
			return i, f.Op == auditlog.OpAssert
		}
	}
	return -1, false
}

// holding is the version of vs believed at system time T about valid time
// V, if one is and it is not a deletion: what Store.AsOf(T).ValidAt(V).Get
// answers, with its periods.
func holding(vs []version, system, valid int64) (*version, bool) {
	for i := range vs {
		v := &vs[i]
		if v.sf <= system && (v.st == 0 || system < v.st) && v.vf <= valid && (v.vt == 0 || valid < v.vt) {
			return v, !v.deleted
		}
	}
	return nil, false
}

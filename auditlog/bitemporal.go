package auditlog

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"sort"
)

// Latest is the time to pass as system or valid time for "now and for as
// long as the log goes": every recorded entry is at or before it.
const Latest int64 = math.MaxInt64

// Fact is one change-log entry together with the log it was read from.
// Across logs, facts are ordered by system time, then log name, then seq
// (see Before): a product's partitions share one system clock, and the
// tie-break only matters when two partitions stamped the same microsecond.
type Fact struct {
	Log string // log name: its directory relative to the store root, e.g. "orders-0"
	Entry
}

// Before reports whether f was recorded before g in the merged order of
// every log: by system time, then log name, then seq.
func (f *Fact) Before(g *Fact) bool {
	return cmpOrder(f.SystemTime, f.Log, f.Seq, g.SystemTime, g.Log, g.Seq) < 0
}

func cmpOrder(sysA int64, logA string, seqA uint64, sysB int64, logB string, seqB uint64) int {
	if c := cmp.Compare(sysA, sysB); c != 0 {
		return c
	}
	if c := cmp.Compare(logA, logB); c != 0 {
		return c
	}
	return cmp.Compare(seqA, seqB)
}

// Covers reports whether the entry's valid period [ValidFrom, ValidTo)
// contains valid time v. ValidTo 0 means open.
func (e *Entry) Covers(v int64) bool {
	return e.ValidFrom <= v && (e.ValidTo == 0 || v < e.ValidTo)
}

// validEnd is the entry's valid-time end with open as Latest.
func validEnd(validTo int64) int64 {
	if validTo == 0 {
		return Latest
	}
	return validTo
}

// Clone copies the fact with its own Key and Payload: those Scan and Replay
// pass alias a read buffer.
func (f *Fact) Clone() Fact {
	c := *f
	c.Key = bytes.Clone(f.Key)
	c.Payload = bytes.Clone(f.Payload)
	return c
}

// Version is one rectangle of an entity's bitemporal history, in XTDB's
// terms: the product believed Fact's payload valid over [ValidFrom,
// ValidTo) from SystemFrom until SystemTo. ValidTo and SystemTo are 0 when
// open (until further notice / still believed). See "Bitemporal queries"
// in the package doc for how the periods are derived.
type Version struct {
	ValidFrom, ValidTo   int64
	SystemFrom, SystemTo int64
	Fact                 Fact
}

// Correction is an entry that rewrote part of the past the product had
// already published: see Store.Corrections.
type Correction struct {
	Fact
	// PriorValidFrom is the latest valid-from recorded for the key before
	// this entry; the entry's ValidFrom is earlier.
	PriorValidFrom int64
	// SystemTo is when the belief the entry recorded (its whole valid
	// period, from its SystemTime on) was first revised: the system time
	// of the next entry of the key whose valid period overlaps the
	// entry's; 0 while no such entry exists. For an assertion, [SystemTime,
	// SystemTo) is the system period of the version it asserted.
	SystemTo int64
}

// span is what the belief timeline needs of an entry.
type span struct {
	sys, vf, vt int64 // vt 0 = open
	op          byte
}

// empty reports whether the span's valid period is empty: such an entry
// asserts nothing and hides nothing.
func (s span) empty() bool { return s.vt != 0 && s.vt <= s.vf }

// rect is one rectangle of a key's belief, for assertions and retractions
// alike: entry i owned valid time [vf, vt) over system time [sysFrom,
// sysTo). vt is Latest when open, sysTo 0 while still believed. first marks
// the rectangle the entry opened when it was recorded (its whole valid
// period); the others are what was left of it after later entries cut in.
type rect struct {
	vf, vt         int64
	sysFrom, sysTo int64
	i              int
	first          bool
}

// never reports whether the rectangle has an empty system period: an entry
// of another log stamped the same microsecond overrode it at once, so it
// was never believed at any system time.
func (r *rect) never() bool { return r.sysTo != 0 && r.sysTo <= r.sysFrom }

// holds reports whether the rectangle contains system time t and valid
// time v. An open valid period holds Latest too.
func (r *rect) holds(t, v int64) bool {
	return r.sysFrom <= t && (r.sysTo == 0 || t < r.sysTo) && r.vf <= v && (v < r.vt || r.vt == Latest)
}

func (r *rect) version(f Fact) Version {
	vt := r.vt
	if vt == Latest {
		vt = 0
	}
	return Version{ValidFrom: r.vf, ValidTo: vt, SystemFrom: r.sysFrom, SystemTo: r.sysTo, Fact: f}
}

// sweep is the one implementation of the bitemporal rules (see the package
// doc): it applies a key's entries, given in merged order, to the key's
// belief timeline and calls yield with every rectangle, each one when it
// closes and the ones still believed at the end, until yield returns
// false. The timeline is a list of disjoint pieces sorted by valid time;
// an entry [a, b) recorded at s closes every piece it overlaps at s,
// re-opens what lies outside [a, b) of those as pieces from s, and opens
// its own piece. Retractions own pieces too (absences), so the answer at
// any (T, V) is exactly one rectangle or none. pieces is scratch space,
// returned for reuse.
func sweep(spans []span, pieces []rect, yield func(rect) bool) []rect {
	pieces = pieces[:0]
	for i, sp := range spans {
		if sp.empty() {
			continue
		}
		a, b, s := sp.vf, validEnd(sp.vt), sp.sys
		lo := sort.Search(len(pieces), func(j int) bool { return pieces[j].vt > a })
		hi := lo
		for hi < len(pieces) && pieces[hi].vf < b {
			hi++
		}
		var buf [3]rect
		repl := buf[:0]
		if lo < hi && pieces[lo].vf < a {
			p := pieces[lo]
			repl = append(repl, rect{vf: p.vf, vt: a, sysFrom: s, i: p.i})
		}
		repl = append(repl, rect{vf: a, vt: b, sysFrom: s, i: i, first: true})
		if lo < hi && pieces[hi-1].vt > b {
			p := pieces[hi-1]
			repl = append(repl, rect{vf: b, vt: p.vt, sysFrom: s, i: p.i})
		}
		for j := lo; j < hi; j++ {
			p := pieces[j]
			p.sysTo = s
			if !yield(p) {
				return pieces
			}
		}
		pieces = slices.Replace(pieces, lo, hi, repl...)
	}
	for _, p := range pieces {
		if !yield(p) {
			break
		}
	}
	return pieces
}

// believed returns the rectangle holding (t, v): the version or absence
// believed at system time t about valid time v. (A never-believed
// rectangle holds no t.)
func believed(spans []span, t, v int64, pieces []rect) (got rect, found bool, scratch []rect) {
	scratch = sweep(spans, pieces, func(r rect) bool {
		if r.holds(t, v) {
			got, found = r, true
		}
		return !found
	})
	return got, found, scratch
}

// versionRects returns the rectangles of assertions, never-believed ones
// left out: the key's versions, unsorted.
func versionRects(spans []span) []rect {
	var out []rect
	sweep(spans, nil, func(r rect) bool {
		if spans[r.i].op == OpAssert && !r.never() {
			out = append(out, r)
		}
		return true
	})
	return out
}

// sortVersions orders versions as people read a history: by when the belief
// began, then by valid time.
func sortVersions(vs []Version) {
	slices.SortFunc(vs, func(x, y Version) int {
		if c := cmp.Compare(x.SystemFrom, y.SystemFrom); c != 0 {
			return c
		}
		if c := cmp.Compare(x.ValidFrom, y.ValidFrom); c != 0 {
			return c
		}
		return cmpOrder(x.Fact.SystemTime, x.Fact.Log, x.Fact.Seq, y.Fact.SystemTime, y.Fact.Log, y.Fact.Seq)
	})
}

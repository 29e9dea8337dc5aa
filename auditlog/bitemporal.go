package auditlog

import (
	"bytes"
	"cmp"
	"math"
	"slices"
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
// open (until further notice / still believed).
//
// A version's valid period is the part of Fact's period still believed,
// and SystemFrom is when that belief began: Fact.SystemTime for the version
// an entry asserted, or the system time of a later entry that overrode
// part of it, for the remainder re-emitted then.
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
}

// piece is part of a key's belief timeline: the fact facts[fact] is
// believed over [vf, vt) since system time sysFrom.
type piece struct {
	vf, vt  int64 // vt is Latest when open
	sysFrom int64
	fact    int
}

// buildHistory turns a key's facts, sorted in merged order, into versions.
// Each entry overrides the part of the timeline its valid period covers:
// the versions it overlaps are closed at its system time, what is left of
// them outside its period is re-emitted from that system time, and an
// assertion then adds its own version (a retraction adds none). A version
// whose system period would be empty (two logs stamped the same
// microsecond) is left out: it was never believed at any system time.
func buildHistory(facts []Fact) []Version {
	var (
		out    []Version
		pieces []piece
		next   []piece
	)
	emit := func(p piece, sysTo int64) {
		if sysTo != 0 && sysTo <= p.sysFrom {
			return
		}
		vt := p.vt
		if vt == Latest {
			vt = 0
		}
		out = append(out, Version{ValidFrom: p.vf, ValidTo: vt, SystemFrom: p.sysFrom, SystemTo: sysTo, Fact: facts[p.fact]})
	}
	for i := range facts {
		f := &facts[i]
		a, b, s := f.ValidFrom, validEnd(f.ValidTo), f.SystemTime
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
		if f.Op == OpAssert {
			next = append(next, piece{a, b, s, i})
		}
		slices.SortFunc(next, func(x, y piece) int { return cmp.Compare(x.vf, y.vf) })
		pieces, next = next, pieces
	}
	for _, p := range pieces {
		emit(p, 0)
	}
	sortVersions(out)
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

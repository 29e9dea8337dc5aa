package auditlog

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// model is the naive reference: every fact in a slice, every question
// answered by looking at all of them.
type model struct{ facts []Fact }

func (m *model) sorted() []Fact {
	fs := slices.Clone(m.facts)
	slices.SortFunc(fs, func(a, b Fact) int { return cmpOrder(a.SystemTime, a.Log, a.Seq, b.SystemTime, b.Log, b.Seq) })
	return fs
}

func (m *model) get(asOf, valid int64, key string) (Fact, bool) {
	var best *Fact
	for i := range m.facts {
		f := &m.facts[i]
		if string(f.Key) != key || f.SystemTime > asOf || !f.Covers(valid) {
			continue
		}
		if best == nil || best.Before(f) {
			best = f
		}
	}
	if best == nil {
		return Fact{}, false
	}
	return *best, best.Op == OpAssert
}

func (m *model) keys() []string {
	var ks []string
	for _, f := range m.facts {
		ks = append(ks, string(f.Key))
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

func (m *model) replay(from, to int64) []Fact {
	var out []Fact
	for _, f := range m.sorted() {
		if f.SystemTime >= from && f.SystemTime < to {
			out = append(out, f)
		}
	}
	return out
}

// drop removes the facts a Rewind took back.
func (m *model) drop(log string, afterSeq uint64) {
	m.facts = slices.DeleteFunc(m.facts, func(f Fact) bool { return f.Log == log && f.Seq > afterSeq })
}

// stream appends random entries to several logs under one root.
type stream struct {
	t     *testing.T
	rng   *rand.Rand
	root  string
	logs  []*Log
	names []string
	clock int64
	m     model
}

func newStream(t *testing.T, seed uint64, nlogs int) *stream {
	s := &stream{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), root: t.TempDir(), clock: 1_000_000}
	for i := range nlogs {
		name := fmt.Sprintf("orders-%d", i)
		s.names = append(s.names, name)
		s.logs = append(s.logs, mustOpen(t, filepath.Join(s.root, "changelog", name), SegmentSize(2048), SyncEachAppend(false)))
	}
	t.Cleanup(func() {
		for _, l := range s.logs {
			l.Close()
		}
	})
	return s
}

// entry makes one random entry: valid times out of order, explicit valid
// ranges, back-dated corrections, deletes (open or ranged), re-inserts,
// the odd empty period.
func (s *stream) entry(li int) Entry {
	r := s.rng
	seq, last, _ := s.logs[li].Tail()
	// System times rise per log; across logs they may tie.
	s.clock += int64(r.IntN(3))
	sys := max(s.clock, last+1)
	if seq == 0 {
		sys = max(s.clock, 1)
	}
	s.clock = max(s.clock, sys)
	key := fmt.Sprintf("k%d", r.IntN(6))
	vf := int64(r.IntN(40)) * 10
	var vt int64
	switch r.IntN(6) {
	case 0, 1:
		vt = vf + int64(1+r.IntN(8))*10
	case 2:
		if r.IntN(4) == 0 {
			vt = vf - 10 // empty period
		}
	}
	op := OpAssert
	if r.IntN(4) == 0 {
		op = OpRetract
	}
	payload := []byte(fmt.Sprintf("\x00\x00\x00\x00\x01%s@%d/%d", key, li, seq+1))
	return Entry{Seq: seq + 1, SystemTime: sys, ValidFrom: vf, ValidTo: vt, Op: op, Key: []byte(key), Payload: payload,
		Prov: Provenance{Topic: "orders", Partition: int32(li), Offset: int64(seq), SourcePosition: fmt.Sprintf("lsn=%d", seq), SchemaID: 1}}
}

func (s *stream) appendRandom(n int) {
	for range n {
		li := s.rng.IntN(len(s.logs))
		batch := []Entry{s.entry(li)}
		if err := s.logs[li].Append(batch); err != nil {
			s.t.Fatal(err)
		}
		f := Fact{Log: s.names[li], Entry: batch[0]}
		f.Key, f.Payload = bytes.Clone(f.Key), bytes.Clone(f.Payload)
		s.m.facts = append(s.m.facts, f)
	}
}

func (s *stream) rewind(li int, keep uint64) {
	if _, err := s.logs[li].Rewind(func(e *Entry) bool { return e.Seq > keep }); err != nil {
		s.t.Fatal(err)
	}
	s.m.drop(s.names[li], keep)
}

func sameFact(a, b *Fact) bool {
	return a.Log == b.Log && sameEntry(&a.Entry, &b.Entry) && a.Hash == b.Hash
}

func factID(f *Fact) string { return fmt.Sprintf("%s#%d", f.Log, f.Seq) }

// check asks the store every kind of question at every interesting point
// and compares with the model.
func (s *stream) check(st *Store) {
	t := s.t
	t.Helper()
	facts := s.m.sorted()
	// Beliefs change only at recorded system times and at valid-period
	// boundaries, so those points (plus one before everything) cover every
	// answer, inclusive and exclusive ends included.
	systems := []int64{0, Latest}
	valids := []int64{-1}
	for _, f := range facts {
		systems = append(systems, f.SystemTime)
		valids = append(valids, f.ValidFrom, f.ValidTo)
	}
	slices.Sort(systems)
	systems = slices.Compact(systems)
	slices.Sort(valids)
	valids = slices.Compact(valids)
	keys := append(s.m.keys(), "never-seen")

	ref := newRef(s.m.facts)
	for _, T := range systems {
		for _, V := range valids {
			for _, k := range keys {
				ref.checkGet(t, st, k, T, V)
			}
			ref.checkScan(t, st, T, V)
		}
	}

	for _, k := range keys {
		vs, err := st.History([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		checkHistory(t, &s.m, k, vs, systems, valids)
		ref.checkFullHistory(t, st, k)
		for _, T := range systems {
			ref.checkHistory(t, st, k, T)
		}
	}

	bounds := []int64{0, Latest}
	for range 6 {
		if len(systems) > 2 {
			bounds = append(bounds, systems[s.rng.IntN(len(systems))])
		}
	}
	for _, from := range bounds {
		for _, to := range bounds {
			var got []Fact
			if err := st.Replay(from, to, func(f *Fact) error { got = append(got, f.Clone()); return nil }); err != nil {
				t.Fatal(err)
			}
			want := s.m.replay(from, to)
			if len(got) != len(want) {
				t.Fatalf("Replay(%d, %d): %d entries, want %d", from, to, len(got), len(want))
			}
			for i := range got {
				if !sameFact(&got[i], &want[i]) {
					t.Fatalf("Replay(%d, %d)[%d] = %s, want %s", from, to, i, factID(&got[i]), factID(&want[i]))
				}
			}
			ref.checkCorrections(t, st, from, to)
		}
	}
}

// checkHistory holds the versions to the model's belief function: at every
// (system, valid) point exactly the version Get implies contains it, no
// two versions overlap, none is empty, and each ends (in system time) only
// when an entry of the key overlapping its valid period was recorded.
func checkHistory(t *testing.T, m *model, key string, vs []Version, systems, valids []int64) {
	t.Helper()
	contains := func(v *Version, T, V int64) bool {
		return v.SystemFrom <= T && (v.SystemTo == 0 || T < v.SystemTo) && v.ValidFrom <= V && (v.ValidTo == 0 || V < v.ValidTo)
	}
	for _, T := range systems {
		for _, V := range valids {
			wf, wok := m.get(T, V, key)
			var hit []*Version
			for i := range vs {
				if contains(&vs[i], T, V) {
					hit = append(hit, &vs[i])
				}
			}
			switch {
			case len(hit) > 1:
				t.Fatalf("History(%s): %d versions contain system %d valid %d", key, len(hit), T, V)
			case wok != (len(hit) == 1):
				t.Fatalf("History(%s) at system %d valid %d: %d versions, model says present=%v", key, T, V, len(hit), wok)
			case wok && !sameFact(&hit[0].Fact, &wf):
				t.Fatalf("History(%s) at system %d valid %d: version of %s, want %s", key, T, V, factID(&hit[0].Fact), factID(&wf))
			}
		}
	}
	for i := range vs {
		v := &vs[i]
		if string(v.Fact.Key) != key || v.Fact.Op != OpAssert {
			t.Fatalf("History(%s): version of %s (key %s op %c)", key, factID(&v.Fact), v.Fact.Key, v.Fact.Op)
		}
		if (v.SystemTo != 0 && v.SystemTo <= v.SystemFrom) || (v.ValidTo != 0 && v.ValidTo <= v.ValidFrom) {
			t.Fatalf("History(%s): empty version %+v", key, v)
		}
		if v.SystemFrom < v.Fact.SystemTime || v.ValidFrom < v.Fact.ValidFrom || validEnd(v.ValidTo) > validEnd(v.Fact.ValidTo) {
			t.Fatalf("History(%s): version %+v reaches outside its entry", key, v)
		}
		var closer bool
		for _, f := range m.facts {
			if string(f.Key) != key || validEnd(f.ValidTo) <= f.ValidFrom {
				continue
			}
			overlaps := f.ValidFrom < validEnd(v.ValidTo) && v.ValidFrom < validEnd(f.ValidTo)
			if overlaps && f.SystemTime > v.SystemFrom && (v.SystemTo == 0 || f.SystemTime < v.SystemTo) {
				t.Fatalf("History(%s): version %+v outlives %s, which overrode it", key, v, factID(&f))
			}
			if overlaps && f.SystemTime == v.SystemTo {
				closer = true
			}
		}
		if v.SystemTo != 0 && !closer {
			t.Fatalf("History(%s): version %+v closed with no entry overriding it", key, v)
		}
	}
}

func openStore(t *testing.T, root string) *Store {
	t.Helper()
	st, err := OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestStoreMatchesModel is the property test: random streams through real
// logs, every query through the index against the naive model, across
// index build, extension, rewinds and re-appends, and a reopened store.
func TestStoreMatchesModel(t *testing.T) {
	defer func(n int, sync bool) { chunkEntries, syncIndex = n, sync }(chunkEntries, syncIndex)
	chunkEntries = 7 // several runs per refresh, and merges
	syncIndex = false
	seeds := 12
	if testing.Short() || raceEnabled {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newStream(t, seed, 1+int(seed%3))
			s.appendRandom(40)
			st := openStore(t, s.root)
			s.check(st)

			s.appendRandom(25) // the log only grew: catch up
			if err := st.Refresh(); err != nil {
				t.Fatal(err)
			}
			s.check(st)

			// Rewind a tail the index already covers, then write a different one.
			li := int(seed) % len(s.logs)
			seq, _, _ := s.logs[li].Tail()
			s.rewind(li, seq-min(seq, uint64(1+seed%9)))
			if err := st.Refresh(); err != nil {
				t.Fatal(err)
			}
			s.check(st)
			s.appendRandom(15)
			if err := st.Refresh(); err != nil {
				t.Fatal(err)
			}
			s.check(st)

			// Rewind without a refresh in between, then grow past the old tail.
			seq, _, _ = s.logs[li].Tail()
			s.rewind(li, seq/2)
			s.appendRandom(30)
			if err := st.Refresh(); err != nil {
				t.Fatal(err)
			}
			s.check(st)

			// A second store on the same directories reuses the index on disk.
			s.check(openStore(t, s.root))
		})
	}
}

func TestBuildHistorySplitsOverriddenVersions(t *testing.T) {
	f := func(seq uint64, sys, vf, vt int64, op byte) Fact {
		return Fact{Log: "l", Entry: Entry{Seq: seq, SystemTime: sys, ValidFrom: vf, ValidTo: vt, Op: op, Key: []byte("k")}}
	}
	facts := []Fact{
		f(1, 100, 10, 0, OpAssert),  // valid from 10 on
		f(2, 200, 20, 30, OpAssert), // a correction of [20, 30)
		f(3, 300, 25, 0, OpRetract), // deleted from 25 on
		f(4, 400, 40, 0, OpAssert),  // re-inserted from 40
	}
	var got []Version
	for _, r := range versionRects(spansOf(facts)) {
		got = append(got, r.version(facts[r.i]))
	}
	sortVersions(got)
	type rect struct {
		vf, vt, sf, st int64
		seq            uint64
	}
	var rs []rect
	for _, v := range got {
		rs = append(rs, rect{v.ValidFrom, v.ValidTo, v.SystemFrom, v.SystemTo, v.Fact.Seq})
	}
	want := []rect{
		{10, 0, 100, 200, 1},
		{10, 20, 200, 0, 1}, // the remainder of 1 left of the correction, re-emitted at 200
		{20, 30, 200, 300, 2},
		{30, 0, 200, 300, 1}, // the remainder of 1 right of the correction
		{20, 25, 300, 0, 2},  // what the delete left of the correction
		{40, 0, 400, 0, 4},
	}
	slices.SortFunc(want, func(a, b rect) int {
		if c := cmp.Compare(a.sf, b.sf); c != 0 {
			return c
		}
		return cmp.Compare(a.vf, b.vf)
	})
	if fmt.Sprint(rs) != fmt.Sprint(want) {
		t.Fatalf("history\n got %v\nwant %v", rs, want)
	}
}

func spansOf(facts []Fact) []span {
	sp := make([]span, len(facts))
	for i := range facts {
		f := &facts[i]
		sp[i] = span{f.SystemTime, f.ValidFrom, f.ValidTo, f.Op}
	}
	return sp
}

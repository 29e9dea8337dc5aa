package auditlog

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var (
	ttOps  = flag.Int("timetravel.ops", 10_000, "random operations TestTimeTravelMatchesReference runs")
	ttSeed = flag.Uint64("timetravel.seed", 0, "seed of TestTimeTravelMatchesReference (0: a new one each run)")
)

// The reference model below answers XTDB's four questions from a plain
// list of versions, built without any of the package's code: it paints
// each key's valid time entry by entry in recording order, and a version
// is a maximal run of valid time owned by one entry, kept for as long as
// that exact run stays in the picture.

// refRow is one rectangle of the reference: the entry facts[fact] owned
// valid time [vf, vt) over system time [sf, st). 0 is open for vt and st.
type refRow struct {
	vf, vt, sf, st int64
	fact           int
}

type refModel struct {
	facts []Fact              // every entry, in recording order
	rows  map[string][]refRow // per key: versions and absences
	// Per entry: the greatest valid-from of a non-empty earlier entry of
	// its key (priorOK false when there is none), and the system time of
	// the first later entry of its key whose valid period overlaps its own.
	prior   []int64
	priorOK []bool
	revised []int64
	rowSet  map[refRow]bool
}

// refBefore is the recording order: system time, then log name, then seq.
func refBefore(a, b *Fact) bool {
	if a.SystemTime != b.SystemTime {
		return a.SystemTime < b.SystemTime
	}
	if a.Log != b.Log {
		return a.Log < b.Log
	}
	return a.Seq < b.Seq
}

func refEmpty(f *Fact) bool { return f.ValidTo != 0 && f.ValidTo <= f.ValidFrom }

// refOverlap reports whether two non-empty valid periods share a moment.
func refOverlap(a, b *Fact) bool {
	return (a.ValidTo == 0 || b.ValidFrom < a.ValidTo) && (b.ValidTo == 0 || a.ValidFrom < b.ValidTo)
}

func newRef(facts []Fact) *refModel {
	m := &refModel{facts: slices.Clone(facts), rows: map[string][]refRow{}}
	sort.Slice(m.facts, func(i, j int) bool { return refBefore(&m.facts[i], &m.facts[j]) })
	byKey := map[string][]int{}
	for i := range m.facts {
		byKey[string(m.facts[i].Key)] = append(byKey[string(m.facts[i].Key)], i)
	}
	m.prior = make([]int64, len(m.facts))
	m.priorOK = make([]bool, len(m.facts))
	m.revised = make([]int64, len(m.facts))
	for key, idx := range byKey {
		m.rows[key] = m.paint(idx)
		for n, i := range idx {
			for _, j := range idx[:n] {
				if g := &m.facts[j]; !refEmpty(g) && (!m.priorOK[i] || g.ValidFrom > m.prior[i]) {
					m.prior[i], m.priorOK[i] = g.ValidFrom, true
				}
			}
			if refEmpty(&m.facts[i]) {
				continue
			}
			for _, j := range idx[n+1:] {
				if g := &m.facts[j]; !refEmpty(g) && refOverlap(&m.facts[i], g) {
					m.revised[i] = g.SystemTime
					break
				}
			}
		}
	}
	return m
}

// paint builds one key's rows from its entries idx (in recording order).
func (m *refModel) paint(idx []int) []refRow {
	var bounds []int64
	for _, i := range idx {
		f := &m.facts[i]
		bounds = append(bounds, f.ValidFrom)
		if f.ValidTo != 0 {
			bounds = append(bounds, f.ValidTo)
		}
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	// Elementary interval j is [bounds[j], bounds[j+1]), the last one open.
	last := len(bounds) - 1
	owner := make([]int, len(bounds))
	for j := range owner {
		owner[j] = -1
	}
	var rows, open []refRow // open: the pieces of the last picture, by valid time
	for g := 0; g < len(idx); {
		T := m.facts[idx[g]].SystemTime
		for ; g < len(idx) && m.facts[idx[g]].SystemTime == T; g++ {
			f := &m.facts[idx[g]]
			j, _ := slices.BinarySearch(bounds, f.ValidFrom)
			for ; j <= last && (f.ValidTo == 0 || j < last && bounds[j+1] <= f.ValidTo); j++ {
				owner[j] = idx[g]
			}
		}
		// The picture now, as maximal runs of one owner; a run that was
		// in the last picture goes on, the others of that one end at T.
		var next []refRow
		o := 0
		for j := 0; j <= last; {
			if owner[j] < 0 {
				j++
				continue
			}
			k := j
			for k < last && owner[k+1] == owner[j] {
				k++
			}
			r := refRow{vf: bounds[j], sf: T, fact: owner[j]}
			if k < last {
				r.vt = bounds[k+1]
			}
			j = k + 1
			for o < len(open) && open[o].vf < r.vf {
				open[o].st = T
				rows = append(rows, open[o])
				o++
			}
			if o < len(open) && open[o].vf == r.vf {
				if open[o].vt == r.vt && open[o].fact == r.fact {
					r = open[o]
				} else {
					open[o].st = T
					rows = append(rows, open[o])
				}
				o++
			}
			next = append(next, r)
		}
		for ; o < len(open); o++ {
			open[o].st = T
			rows = append(rows, open[o])
		}
		open = next
	}
	return append(rows, open...)
}

func (r *refRow) holds(T, V int64) bool {
	return r.sf <= T && (r.st == 0 || T < r.st) && r.vf <= V && (r.vt == 0 || V < r.vt)
}

// asOf is question 1: the row holding (T, V), a version or an absence.
func (m *refModel) asOf(key string, T, V int64) (refRow, bool) {
	var hit []refRow
	for _, r := range m.rows[key] {
		if r.holds(T, V) {
			hit = append(hit, r)
		}
	}
	if len(hit) > 1 {
		var d []string
		for _, h := range hit {
			d = append(d, m.showRow(h))
		}
		panic(fmt.Sprintf("reference: %d rows of %s hold (%d, %d): %s", len(hit), key, T, V, strings.Join(d, "; ")))
	}
	if len(hit) == 0 {
		return refRow{}, false
	}
	return hit[0], true
}

// history is questions 2 and 3 (and the whole history): the versions of
// key whose system period contains T, every version when all is set.
func (m *refModel) history(key string, T int64, all bool) []refRow {
	var out []refRow
	for _, r := range m.rows[key] {
		if m.facts[r.fact].Op == OpAssert && (all || r.sf <= T && (r.st == 0 || T < r.st)) {
			out = append(out, r)
		}
	}
	return out
}

// corrections is question 4.
func (m *refModel) corrections(T1, T2 int64) []int {
	var out []int
	for i := range m.facts {
		f := &m.facts[i]
		if f.SystemTime >= T1 && f.SystemTime < T2 && !refEmpty(f) && m.priorOK[i] && f.ValidFrom < m.prior[i] {
			out = append(out, i)
		}
	}
	return out
}

func (m *refModel) isRow(r refRow) bool {
	if m.rowSet == nil {
		m.rowSet = map[refRow]bool{}
		for _, rows := range m.rows {
			for _, r := range rows {
				m.rowSet[r] = true
			}
		}
	}
	return m.rowSet[r]
}

func (m *refModel) keys() []string {
	var ks []string
	for k := range m.rows {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (m *refModel) showRow(r refRow) string {
	f := &m.facts[r.fact]
	return fmt.Sprintf("valid [%d, %s) system [%d, %s) %s#%d %c", r.vf, showOpen(r.vt), r.sf, showOpen(r.st), f.Log, f.Seq, f.Op)
}

func showVersion(v *Version) string {
	return fmt.Sprintf("valid [%d, %s) system [%d, %s) %s#%d %c", v.ValidFrom, showOpen(v.ValidTo), v.SystemFrom, showOpen(v.SystemTo), v.Fact.Log, v.Fact.Seq, v.Fact.Op)
}

func showOpen(t int64) string {
	if t == 0 {
		return "-"
	}
	return fmt.Sprint(t)
}

// sameAsRow compares a store answer with a reference row in full: both
// periods and the entry, payload and chain hash included.
func (m *refModel) sameAsRow(v *Version, r refRow) bool {
	f := &m.facts[r.fact]
	return v.ValidFrom == r.vf && v.ValidTo == r.vt && v.SystemFrom == r.sf && v.SystemTo == r.st &&
		v.Fact.Log == f.Log && sameEntry(&v.Fact.Entry, &f.Entry) && v.Fact.Hash == f.Hash
}

// checkRows compares a list of versions with reference rows, as sets.
func (m *refModel) checkRows(t *testing.T, what string, got []Version, want []refRow) {
	t.Helper()
	type named struct {
		name string
		i    int
	}
	g, w := make([]named, len(got)), make([]named, len(want))
	for i := range got {
		g[i] = named{showVersion(&got[i]), i}
	}
	for i, r := range want {
		w[i] = named{m.showRow(r), i}
	}
	byName := func(a, b named) int { return strings.Compare(a.name, b.name) }
	slices.SortFunc(g, byName)
	slices.SortFunc(w, byName)
	if !slices.EqualFunc(g, w, func(a, b named) bool { return a.name == b.name }) {
		var gs, ws []string
		for _, x := range g {
			gs = append(gs, x.name)
		}
		for _, x := range w {
			ws = append(ws, x.name)
		}
		t.Fatalf("%s:\n got %s\nwant %s", what, strings.Join(gs, "\n     "), strings.Join(ws, "\n     "))
	}
	// The names say which entry; check its bytes too.
	for n := range g {
		if !m.sameAsRow(&got[g[n].i], want[w[n].i]) {
			t.Fatalf("%s: %s differs from the recorded entry", what, g[n].name)
		}
	}
}

// checkGet holds View.Get at (T, V) to the reference.
func (m *refModel) checkGet(t *testing.T, st *Store, key string, T, V int64) {
	t.Helper()
	got, ok, err := st.AsOf(T).ValidAt(V).Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%s) as of %d valid at %d: %v", key, T, V, err)
	}
	r, held := m.asOf(key, T, V)
	switch {
	case !held:
		if ok || got.ValidFrom != 0 || got.ValidTo != 0 || got.SystemFrom != 0 || got.SystemTo != 0 || got.Fact.Seq != 0 {
			t.Fatalf("Get(%s) as of %d valid at %d = %s ok=%v, want nothing", key, T, V, showVersion(&got), ok)
		}
	case ok != (m.facts[r.fact].Op == OpAssert) || !m.sameAsRow(&got, r):
		t.Fatalf("Get(%s) as of %d valid at %d = %s ok=%v, want %s", key, T, V, showVersion(&got), ok, m.showRow(r))
	}
}

// checkScan holds View.Scan at (T, V) to the reference, every key.
func (m *refModel) checkScan(t *testing.T, st *Store, T, V int64) {
	t.Helper()
	var got []Version
	err := st.AsOf(T).ValidAt(V).Scan(func(v *Version) error {
		c := *v
		c.Fact = v.Fact.Clone()
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan as of %d valid at %d: %v", T, V, err)
	}
	var want []refRow
	for _, k := range m.keys() {
		if r, ok := m.asOf(k, T, V); ok && m.facts[r.fact].Op == OpAssert {
			want = append(want, r)
		}
	}
	m.checkRows(t, fmt.Sprintf("Scan as of %d valid at %d", T, V), got, want)
}

func (m *refModel) checkHistory(t *testing.T, st *Store, key string, T int64) {
	t.Helper()
	got, err := st.AsOf(T).History([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	m.checkRows(t, fmt.Sprintf("AsOf(%d).History(%s)", T, key), got, m.history(key, T, false))
}

func (m *refModel) checkFullHistory(t *testing.T, st *Store, key string) {
	t.Helper()
	got, err := st.History([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	m.checkRows(t, fmt.Sprintf("History(%s)", key), got, m.history(key, 0, true))
	for i := 1; i < len(got); i++ {
		if a, b := &got[i-1], &got[i]; a.SystemFrom > b.SystemFrom || a.SystemFrom == b.SystemFrom && a.ValidFrom > b.ValidFrom {
			t.Fatalf("History(%s) out of order: %s before %s", key, showVersion(a), showVersion(b))
		}
	}
}

func (m *refModel) checkCorrections(t *testing.T, st *Store, T1, T2 int64) {
	t.Helper()
	got, err := st.Corrections(T1, T2)
	if err != nil {
		t.Fatal(err)
	}
	want := m.corrections(T1, T2)
	show := func(c *Correction) string {
		return fmt.Sprintf("%s#%d prior %d revised %s", c.Log, c.Seq, c.PriorValidFrom, showOpen(c.SystemTo))
	}
	var g, w []string
	for i := range got {
		g = append(g, show(&got[i]))
	}
	for _, i := range want {
		f := &m.facts[i]
		w = append(w, fmt.Sprintf("%s#%d prior %d revised %s", f.Log, f.Seq, m.prior[i], showOpen(m.revised[i])))
	}
	if !slices.Equal(g, w) {
		t.Fatalf("Corrections(%d, %d):\n got %s\nwant %s", T1, T2, strings.Join(g, "\n     "), strings.Join(w, "\n     "))
	}
	for n, i := range want {
		c, f := &got[n], &m.facts[i]
		if !sameEntry(&c.Entry, &f.Entry) || c.Hash != f.Hash {
			t.Fatalf("Corrections(%d, %d): %s differs from the recorded entry", T1, T2, show(c))
		}
		// What an asserting correction recorded is a row of the history,
		// unless an entry stamped the same microsecond overrode it at once.
		if f.Op == OpAssert && c.SystemTo != c.SystemTime {
			r := refRow{vf: f.ValidFrom, vt: f.ValidTo, sf: f.SystemTime, st: c.SystemTo, fact: i}
			if !m.isRow(r) {
				t.Fatalf("Corrections(%d, %d): %s is no version of the history", T1, T2, m.showRow(r))
			}
		}
	}
}

// ttWorld is the store under test: real logs under one root, the model's
// facts beside them.
type ttWorld struct {
	t     *testing.T
	rng   *rand.Rand
	root  string
	logs  []*Log
	names []string
	keys  int
	clock int64
	facts []Fact
	last  map[string]int64 // per key, the valid-from of its latest entry
}

// op appends one random operation, in a batch of a few to one log: a key's
// insert or update (asserted from about now), a delete, a back-dated
// correction or delete of a stretch of the past, an entry dated in the
// future, a second change of one source transaction, the odd empty period.
// Valid times are multiples of 10 so that boundaries often meet.
func (w *ttWorld) ops(n int) {
	r := w.rng
	for n > 0 {
		li := r.IntN(len(w.logs))
		var batch []Entry
		for b := 1 + r.IntN(4); b > 0 && n > 0; b-- {
			n--
			seq, lastSys, _ := w.logs[li].Tail()
			seq += uint64(len(batch))
			if len(batch) > 0 {
				lastSys = batch[len(batch)-1].SystemTime
			}
			// System times rise per log; across logs they may tie.
			w.clock += int64(r.IntN(3))
			sys := max(w.clock, lastSys+1)
			w.clock = sys
			key := fmt.Sprintf("k%d", r.IntN(w.keys))
			// Valid times stay well above 0, which ends no period (0 is open).
			now := 100_000 + sys/2*10 - int64(r.IntN(3))*10
			e := Entry{Seq: seq + 1, SystemTime: sys, ValidFrom: now, Op: OpAssert, Key: []byte(key)}
			switch p := r.IntN(100); {
			case p < 40: // insert or update
			case p < 50: // delete
				e.Op = OpRetract
			case p < 70: // back-dated correction
				e.ValidFrom = now - int64(1+r.IntN(150))*10
				if r.IntN(5) > 0 {
					e.ValidTo = e.ValidFrom + int64(1+r.IntN(40))*10
				}
			case p < 77: // back-dated delete of a stretch
				e.Op = OpRetract
				e.ValidFrom = now - int64(1+r.IntN(150))*10
				e.ValidTo = e.ValidFrom + int64(1+r.IntN(40))*10
			case p < 84: // dated in the future, maybe bounded
				e.ValidFrom = now + int64(1+r.IntN(30))*10
				if r.IntN(2) == 0 {
					e.ValidTo = e.ValidFrom + int64(1+r.IntN(20))*10
				}
			case p < 94: // another change of the same source transaction
				if vf, ok := w.last[key]; ok {
					e.ValidFrom = vf
				}
			default: // an empty period
				e.ValidTo = e.ValidFrom - int64(r.IntN(2))*10
			}
			w.last[key] = e.ValidFrom
			e.Payload = fmt.Appendf(nil, "\x00\x00\x00\x00\x01%s@%s/%d", key, w.names[li], e.Seq)
			e.Prov = Provenance{Topic: "orders", Partition: int32(li), Offset: int64(e.Seq), SourcePosition: fmt.Sprintf("lsn=%d", sys), SchemaID: 1}
			batch = append(batch, e)
		}
		if err := w.logs[li].Append(batch); err != nil {
			w.t.Fatal(err)
		}
		for _, e := range batch {
			f := Fact{Log: w.names[li], Entry: e}
			f.Key, f.Payload = bytes.Clone(e.Key), bytes.Clone(e.Payload)
			w.facts = append(w.facts, f)
		}
	}
}

// query runs a round of random questions and holds every answer to the
// reference.
func (w *ttWorld) query(st *Store, gets int) {
	t, r := w.t, w.rng
	m := newRef(w.facts)
	keys := append(m.keys(), "never-seen")
	randT := func() int64 {
		switch p := r.IntN(10); {
		case p == 0:
			return 0
		case p == 1:
			return Latest
		case p < 8: // at, just before or just after a recording
			return w.facts[r.IntN(len(w.facts))].SystemTime + int64(r.IntN(3)) - 1
		default:
			return r.Int64N(w.clock + 2)
		}
	}
	randV := func(key string) int64 {
		rows := m.rows[key]
		if r.IntN(40) == 0 {
			return Latest // "for as long as the log goes"
		}
		if len(rows) == 0 || r.IntN(8) == 0 {
			return 100_000 + r.Int64N(w.clock*5+100) - 2000
		}
		row := rows[r.IntN(len(rows))]
		v := row.vf
		if row.vt != 0 && r.IntN(2) == 0 {
			v = row.vt
		}
		return v - int64(r.IntN(2)) // on a boundary or just before it
	}
	for range gets {
		k := keys[r.IntN(len(keys))]
		m.checkGet(t, st, k, randT(), randV(k))
	}
	for range 4 {
		m.checkScan(t, st, randT(), randV(keys[r.IntN(len(keys))]))
	}
	// Entries of one key that two logs stamped with the same microsecond
	// are where the order across logs decides: ask there too.
	type stamp struct {
		key string
		sys int64
	}
	logsAt := map[stamp]map[string]bool{}
	for i := range m.facts {
		f := &m.facts[i]
		s := stamp{string(f.Key), f.SystemTime}
		if logsAt[s] == nil {
			logsAt[s] = map[string]bool{}
		}
		logsAt[s][f.Log] = true
	}
	var ties []*Fact
	for i := range m.facts {
		if f := &m.facts[i]; len(logsAt[stamp{string(f.Key), f.SystemTime}]) > 1 {
			ties = append(ties, f)
		}
	}
	for n := 0; n < 20 && len(ties) > 0; n++ {
		f := ties[r.IntN(len(ties))]
		m.checkGet(t, st, string(f.Key), f.SystemTime, f.ValidFrom)
		if n < 4 {
			m.checkScan(t, st, f.SystemTime, f.ValidFrom)
		}
	}
	for _, k := range keys {
		m.checkFullHistory(t, st, k)
		m.checkHistory(t, st, k, Latest) // question 3: as believed now
		for range 4 {
			m.checkHistory(t, st, k, randT())
		}
	}
	m.checkCorrections(t, st, 0, Latest)
	for range 6 {
		a, b := randT(), randT()
		m.checkCorrections(t, st, min(a, b), max(a, b))
	}
}

// TestTimeTravelMatchesReference is the property test of the four
// questions: thousands of random operations over several keys and
// several logs, through real log files and an index that is extended,
// then thrown away and rebuilt, with every answer - value, valid period,
// system period - compared in full with the reference model's.
// -timetravel.ops and -timetravel.seed run it longer or again.
func TestTimeTravelMatchesReference(t *testing.T) {
	defer func(n int, sync bool) { chunkEntries, syncIndex = n, sync }(chunkEntries, syncIndex)
	chunkEntries = 500 // several runs and merges
	syncIndex = false
	seed := *ttSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: go test ./auditlog -run TestTimeTravelMatchesReference -timetravel.seed %d -timetravel.ops %d", seed, seed, *ttOps)
		}
	})
	w := &ttWorld{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)), root: t.TempDir(), keys: 8, clock: 1, last: map[string]int64{}}
	for i := range 3 {
		name := fmt.Sprintf("orders-%d", i)
		w.names = append(w.names, name)
		w.logs = append(w.logs, mustOpen(t, filepath.Join(w.root, "changelog", name), SegmentSize(64<<10), SyncEachAppend(false)))
	}
	defer func() {
		for _, l := range w.logs {
			l.Close()
		}
	}()
	total := *ttOps
	w.ops(total / 10)
	st := openStore(t, w.root)
	w.query(st, 150)
	for _, upTo := range []int{total * 3 / 10, total * 6 / 10, total} {
		w.ops(upTo - len(w.facts))
		if upTo == total {
			// The index is derived data: throw it away and rebuild it.
			st.Close()
			for _, n := range w.names {
				if err := os.RemoveAll(filepath.Join(w.root, "changelog", n, indexDirName)); err != nil {
					t.Fatal(err)
				}
			}
			st = openStore(t, w.root)
		} else if err := st.Refresh(); err != nil {
			t.Fatal(err)
		}
		w.query(st, 150)
	}
	if len(w.facts) != total {
		t.Fatalf("ran %d operations, want %d", len(w.facts), total)
	}
}

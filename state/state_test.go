package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/meshlet/meshlet/auditlog"
)

// model is the naive reference: per table and key, a map of valid time to
// version, sorted only when read.
type model struct {
	retain map[string]int64
	t      map[string]map[string]map[int64]modelVersion
}

type modelVersion struct {
	deleted bool
	value   string
}

func newModel(retain map[string]int64) *model {
	return &model{retain: retain, t: map[string]map[string]map[int64]modelVersion{}}
}

func (m *model) clone() *model {
	c := newModel(m.retain)
	for tn, keys := range m.t {
		c.t[tn] = map[string]map[int64]modelVersion{}
		for k, vs := range keys {
			c.t[tn][k] = map[int64]modelVersion{}
			for vf, v := range vs {
				c.t[tn][k][vf] = v
			}
		}
	}
	return c
}

// times is a key's valid times, newest first.
func (m *model) times(table, key string) []int64 {
	var ts []int64
	for vf := range m.t[table][key] {
		ts = append(ts, vf)
	}
	slices.Sort(ts)
	slices.Reverse(ts)
	return ts
}

// at is the version holding at t: the one with the greatest valid time <= t.
func (m *model) at(table, key string, t int64) (modelVersion, int64, bool) {
	best, found := int64(0), false
	for vf := range m.t[table][key] {
		if vf <= t && (!found || vf > best) {
			best, found = vf, true
		}
	}
	if !found {
		return modelVersion{}, 0, false
	}
	return m.t[table][key][best], best, true
}

func (m *model) write(table, key string, vf int64, v modelVersion) error {
	if m.t[table] == nil {
		m.t[table] = map[string]map[int64]modelVersion{}
	}
	if m.t[table][key] == nil {
		m.t[table][key] = map[int64]modelVersion{}
	}
	vs := m.t[table][key]
	prev, had := vs[vf]
	vs[vf] = v
	r := m.retain[table]
	if r == 0 {
		return nil
	}
	ts := m.times(table, key)
	horizon := ts[0] - r
	for i := 1; i < len(ts); i++ {
		// version i ends where version i-1 begins
		if ts[i-1] <= horizon {
			if ts[i] == vf {
				if had {
					vs[vf] = prev
				} else {
					delete(vs, vf)
				}
				return ErrRetention
			}
		}
	}
	for i := 1; i < len(ts); i++ {
		if ts[i-1] <= horizon {
			delete(vs, ts[i])
		}
	}
	return nil
}

// check compares every key of every table in tx with the model.
func check(t *testing.T, seed uint64, step int, tx *Txn, m *model, tables []string, keys int) {
	t.Helper()
	for _, tn := range tables {
		tb := Use[string](tx, tn)
		for k := range keys {
			key := keyName(k)
			got, err := tb.Versions(key)
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			ts := m.times(tn, key)
			if len(got) != len(ts) {
				t.Fatalf("seed %d step %d: %s/%s: %d versions, model has %d (%v)", seed, step, tn, key, len(got), len(ts), ts)
			}
			for i, vf := range ts {
				mv := m.t[tn][key][vf]
				g := got[i]
				if g.ValidFrom.UnixMicro() != vf || g.Deleted != mv.deleted || (!mv.deleted && g.Value != mv.value) {
					t.Fatalf("seed %d step %d: %s/%s version %d: got (%d, deleted %v, %q), model (%d, %v, %q)",
						seed, step, tn, key, i, g.ValidFrom.UnixMicro(), g.Deleted, g.Value, vf, mv.deleted, mv.value)
				}
				var to int64
				if i > 0 {
					to = ts[i-1]
				}
				if gt := g.ValidTo; (to == 0) != gt.IsZero() || (to != 0 && gt.UnixMicro() != to) {
					t.Fatalf("seed %d step %d: %s/%s version %d: valid to %v, want %d", seed, step, tn, key, i, gt, to)
				}
			}
			// Point reads at a few instants, including the versions' edges.
			probes := []int64{0, 5, 999}
			for _, vf := range ts {
				probes = append(probes, vf, vf-1)
			}
			for _, at := range probes {
				v, ok, err := tb.AsOf(key, time.UnixMicro(at))
				if err != nil {
					t.Fatal(err)
				}
				mv, _, mok := m.at(tn, key, at)
				mok = mok && !mv.deleted
				if ok != mok || ok && v.Value != mv.value {
					t.Fatalf("seed %d step %d: %s/%s AsOf(%d) = (%q, %v), model (%q, %v)", seed, step, tn, key, at, v.Value, ok, mv.value, mok)
				}
			}
			v, ok, err := tb.Get(key)
			if err != nil {
				t.Fatal(err)
			}
			wantOK := len(ts) > 0 && !m.t[tn][key][ts[0]].deleted
			if ok != wantOK || ok && v.Value != m.t[tn][key][ts[0]].value {
				t.Fatalf("seed %d step %d: %s/%s Get = (%q, %v), want ok %v", seed, step, tn, key, v.Value, ok, wantOK)
			}
		}
	}
}

func keyName(k int) string {
	if k%5 == 0 {
		return "k\x00" + strconv.Itoa(k) // keys with a zero byte exercise the escaping
	}
	return "k" + strconv.Itoa(k)
}

// TestTxnMatchesModel runs random writes, savepoint rollbacks, commits,
// discards and reopenings, and compares every key with the naive model
// after each step.
func TestTxnMatchesModel(t *testing.T) {
	for run := range 8 {
		seed := uint64(time.Now().UnixNano()) + uint64(run)
		t.Run(fmt.Sprint(run), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	tables := []string{"customers", "orders"}
	retain := map[string]int64{"orders": 300}
	dir := t.TempDir()
	open := func() *Store {
		s, err := Open(dir, Retain("orders", 300*time.Microsecond))
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return s
	}
	s := open()
	defer func() { s.Close() }()
	committed := newModel(retain)
	cur := committed.clone()
	tx := s.Begin()
	type sp struct {
		sp Savepoint
		m  *model
	}
	var saves []sp
	const keys = 12
	var seq uint64
	for step := range 400 {
		switch r := rng.IntN(100); {
		case r < 60:
			tn := tables[rng.IntN(len(tables))]
			key := keyName(rng.IntN(keys))
			vf := int64(rng.IntN(1000))
			v := modelVersion{deleted: rng.IntN(4) == 0, value: fmt.Sprintf("v%d", step)}
			tb := Use[string](tx, tn)
			var err error
			if v.deleted {
				err = tb.Delete(key, time.UnixMicro(vf))
			} else {
				err = tb.Put(key, time.UnixMicro(vf), v.value)
			}
			merr := cur.write(tn, key, vf, v)
			if errors.Is(err, ErrRetention) != (merr != nil) || err != nil && !errors.Is(err, ErrRetention) {
				t.Fatalf("seed %d step %d: write %s/%s@%d: store %v, model %v", seed, step, tn, key, vf, err, merr)
			}
		case r < 70:
			saves = append(saves, sp{tx.Savepoint(), cur.clone()})
		case r < 78 && len(saves) > 0:
			i := rng.IntN(len(saves))
			tx.Rollback(saves[i].sp)
			cur = saves[i].m
			saves = saves[:i]
		case r < 90:
			seq++
			if err := tx.Commit(Mark{Seq: seq}); err != nil {
				t.Fatal(err)
			}
			committed, saves = cur.clone(), nil
			tx = s.Begin()
		case r < 95:
			tx.Discard()
			cur, saves = committed.clone(), nil
			tx = s.Begin()
		default:
			tx.Discard()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open()
			if s.Mark().Seq != seq {
				t.Fatalf("seed %d step %d: reopened store at mark %d, committed %d", seed, step, s.Mark().Seq, seq)
			}
			cur, saves = committed.clone(), nil
			tx = s.Begin()
		}
		check(t, seed, step, tx, cur, tables, keys)
	}
	tx.Discard()
}

func TestScanMergesBatchAndStore(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx := s.Begin()
	idx := Use[int](tx, "orders_by_customer")
	for _, k := range []string{"c1/o1", "c1/o3", "c2/o2", "c10/o9"} {
		if err := idx.Put(k, time.UnixMicro(1), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(Mark{Seq: 1}); err != nil {
		t.Fatal(err)
	}
	tx = s.Begin()
	defer tx.Discard()
	idx = Use[int](tx, "orders_by_customer")
	must(t, idx.Put("c1/o2", time.UnixMicro(2), 2))
	must(t, idx.Delete("c1/o3", time.UnixMicro(2)))
	must(t, idx.Put("c1/o1", time.UnixMicro(2), 3))
	var got []string
	must(t, idx.Scan("c1/", func(v Version[int]) error { got = append(got, fmt.Sprintf("%s=%d", v.Key, v.Value)); return nil }))
	if want := []string{"c1/o1=3", "c1/o2=2"}; !slices.Equal(got, want) {
		t.Fatalf("scan c1/ = %v, want %v", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dump is every version in s, for comparing stores.
func dump(t *testing.T, s *Store) []string {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		if it.Key()[0] != prefixVersion {
			continue
		}
		tn, key, vf, err := splitVersionKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseStoredValue(it.Value(), vf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s/%q@%d sys=%d del=%v %s", tn, key, vf, v.systemTime, v.deleted, v.value))
	}
	return out
}

// TestRestoreFromLog writes random batches to a store and, as the runtime
// does, their mutations to a change log; a fresh store restored from the
// log, a store behind it, and one ahead of a rewound log all end equal to
// the store that wrote the batches.
func TestRestoreFromLog(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	l, err := auditlog.Open(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	live, err := Open(filepath.Join(dir, "live"), Retain("t", 200*time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	behind, err := Open(filepath.Join(dir, "behind"))
	if err != nil {
		t.Fatal(err)
	}
	defer behind.Close()
	var sys int64 = 1
	var halfway []string
	commitBatch := func() {
		tx := live.Begin()
		tb := Use[string](tx, "t")
		for range rng.IntN(300) + 1 {
			key := "k" + strconv.Itoa(rng.IntN(50))
			vf := time.UnixMicro(int64(rng.IntN(2000)))
			var err error
			if rng.IntN(5) == 0 {
				err = tb.Delete(key, vf)
			} else {
				err = tb.Put(key, vf, strconv.Itoa(rng.IntN(1e6)))
			}
			if err != nil && !errors.Is(err, ErrRetention) {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		entries := AppendEntries(nil, tx.Mutations())
		if len(entries) == 0 {
			tx.Discard()
			return
		}
		seq, _, _ := l.Tail()
		for i := range entries {
			seq++
			sys++
			entries[i].Seq, entries[i].SystemTime = seq, sys
		}
		if err := l.Append(entries); err != nil {
			t.Fatal(err)
		}
		last := entries[len(entries)-1]
		if err := tx.Commit(Mark{Seq: last.Seq, Hash: last.Hash}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		commitBatch()
		if i == 19 {
			if _, err := Restore(behind, l); err != nil {
				t.Fatal(err)
			}
			halfway = dump(t, live)
		}
	}
	want := dump(t, live)
	if len(want) == 0 {
		t.Fatalf("seed %d: nothing written", seed)
	}

	fresh, err := Open(filepath.Join(dir, "fresh"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	done, err := Restore(fresh, l)
	if err != nil {
		t.Fatal(err)
	}
	tail, _, _ := l.Tail()
	if done.Entries != tail || done.Rebuilt {
		t.Fatalf("seed %d: fresh restore applied %d entries (rebuilt %v), log has %d", seed, done.Entries, done.Rebuilt, tail)
	}
	eq(t, seed, "fresh", dump(t, fresh), want)
	if done, err = Restore(behind, l); err != nil || done.Rebuilt || done.Entries == 0 {
		t.Fatalf("seed %d: catching up: %+v %v", seed, done, err)
	}
	eq(t, seed, "behind", dump(t, behind), want)

	// The log loses its last batches (they never committed): a store that
	// had applied them is ahead, so it is rebuilt to the shorter log.
	mark := live.Mark()
	if _, err := l.Rewind(func(e *auditlog.Entry) bool { return e.Seq > mark.Seq/2 }); err != nil {
		t.Fatal(err)
	}
	if done, err = Restore(fresh, l); err != nil || !done.Rebuilt {
		t.Fatalf("seed %d: store ahead of the log: %+v %v", seed, done, err)
	}
	ref, err := Open(filepath.Join(dir, "ref"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if _, err := Restore(ref, l); err != nil {
		t.Fatal(err)
	}
	eq(t, seed, "rewound", dump(t, fresh), dump(t, ref))
	if slices.Equal(dump(t, ref), want) && len(halfway) > 0 {
		t.Fatalf("seed %d: the rewound log restores everything; the test took nothing back", seed)
	}
}

func eq(t *testing.T, seed uint64, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("seed %d: %s: %d versions, want %d; first difference at %d: %s, want %s", seed, what, len(got), len(want), i, got[i], want[i])
			}
		}
		t.Fatalf("seed %d: %s: %d versions, want %d", seed, what, len(got), len(want))
	}
}

func TestParseEntryRefusesOthers(t *testing.T) {
	_, err := ParseEntry(nil, &auditlog.Entry{Seq: 3, Key: []byte("k"), Payload: []byte("\x00abc")})
	if !errors.Is(err, ErrNotState) {
		t.Fatalf("got %v, want ErrNotState", err)
	}
	_, err = ParseEntry(nil, &auditlog.Entry{Seq: 3, Key: []byte(EntryKey), Payload: []byte("mst1s\x05ab")})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

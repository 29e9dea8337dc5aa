package snapshot

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshlet/meshlet/auditlog"
)

// TestHistoryMatchesStore is the property test of the history file's
// rectangles: random entries (out-of-order valid times, ranged and open
// periods, deletes, re-inserts, empty periods, system times tied across
// logs) through real logs. For every key, the rectangles that are not
// deleted are exactly Store.History's versions; and at every system and
// valid time where beliefs change, at most one rectangle holds the point,
// and it shows the entry Store.AsOf.ValidAt.Get answers (deleted exactly
// when that entry is a retraction), or none holds it when Get finds none.
func TestHistoryMatchesStore(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			root := t.TempDir()
			nlogs := 1 + int(seed%3)
			logs := make([]*auditlog.Log, nlogs)
			for i := range logs {
				l, err := auditlog.Open(filepath.Join(root, fmt.Sprintf("l-%d", i)), auditlog.SyncEachAppend(false))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				logs[i] = l
			}
			clock := int64(1000)
			for range 80 {
				li := r.IntN(nlogs)
				seq, last, _ := logs[li].Tail()
				clock += int64(r.IntN(2)) // ties across logs
				sys := max(clock, last+1)
				clock = sys
				vf := int64(r.IntN(30)) * 10
				var vt int64
				switch r.IntN(5) {
				case 0, 1:
					vt = vf + int64(1+r.IntN(6))*10
				case 2:
					if r.IntN(3) == 0 {
						vt = vf - 10 // empty
					}
				}
				op := auditlog.OpAssert
				if r.IntN(4) == 0 {
					op = auditlog.OpRetract
				}
				e := auditlog.Entry{Seq: seq + 1, SystemTime: sys, ValidFrom: vf, ValidTo: vt, Op: op,
					Key: []byte(fmt.Sprintf("k%d", r.IntN(5))), Payload: []byte{0, 0, 0, 0, 1}}
				if err := logs[li].Append([]auditlog.Entry{e}); err != nil {
					t.Fatal(err)
				}
			}
			st, err := auditlog.OpenStore(root)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			cut := auditlog.Cut{}
			for _, l := range st.Logs() {
				cut[l.Name] = l.Entries
			}
			keys := 0
			err = st.ScanKeys(cut, func(key []byte, facts []auditlog.Fact) error {
				keys++
				vs := history(facts, nil)
				want, err := st.History(key)
				if err != nil {
					return err
				}
				var got []auditlog.Version
				for _, v := range vs {
					if !v.deleted {
						got = append(got, auditlog.Version{ValidFrom: v.vf, ValidTo: v.vt, SystemFrom: v.sf, SystemTo: v.st, Fact: facts[v.fact]})
					}
				}
				if id := func(vs []auditlog.Version) string {
					s := ""
					for _, v := range vs {
						s += fmt.Sprintf("[%d,%d)x[%d,%d) %s#%d; ", v.ValidFrom, v.ValidTo, v.SystemFrom, v.SystemTo, v.Fact.Log, v.Fact.Seq)
					}
					return s
				}; id(got) != id(want) {
					t.Fatalf("key %s: history without deletes\n got %s\nwant %s", key, id(got), id(want))
				}

				systems, valids := []int64{0, auditlog.Latest}, []int64{-1}
				for _, f := range facts {
					systems = append(systems, f.SystemTime, f.SystemTime-1)
					valids = append(valids, f.ValidFrom, f.ValidFrom-1, f.ValidTo)
				}
				slices.Sort(systems)
				slices.Sort(valids)
				for _, T := range slices.Compact(systems) {
					for _, V := range slices.Compact(valids) {
						gv, _, err := st.AsOf(T).ValidAt(V).Get(key)
						gf := gv.Fact
						if err != nil {
							return err
						}
						var hits []version
						for _, v := range vs {
							if v.sf <= T && (v.st == 0 || T < v.st) && v.vf <= V && (v.vt == 0 || V < v.vt) {
								hits = append(hits, v)
							}
						}
						switch {
						case len(hits) > 1:
							t.Fatalf("key %s at %d/%d: %d rectangles", key, T, V, len(hits))
						case gf.Seq == 0 && len(hits) == 1:
							t.Fatalf("key %s at %d/%d: a rectangle where the store knows nothing", key, T, V)
						case gf.Seq != 0 && len(hits) == 0:
							t.Fatalf("key %s at %d/%d: no rectangle, the store answers %s#%d", key, T, V, gf.Log, gf.Seq)
						case gf.Seq != 0:
							h := facts[hits[0].fact]
							if h.Log != gf.Log || h.Seq != gf.Seq || hits[0].deleted != (gf.Op == auditlog.OpRetract) {
								t.Fatalf("key %s at %d/%d: rectangle of %s#%d deleted=%v, the store answers %s#%d op %c",
									key, T, V, h.Log, h.Seq, hits[0].deleted, gf.Log, gf.Seq, gf.Op)
							}
						}
						if i, ok := believed(facts, T, V); ok != (gf.Seq != 0 && gf.Op == auditlog.OpAssert) || ok && (facts[i].Seq != gf.Seq || facts[i].Log != gf.Log) {
							t.Fatalf("key %s at %d/%d: believed %d %v, the store %s#%d", key, T, V, i, ok, gf.Log, gf.Seq)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if keys == 0 {
				t.Fatal("no keys")
			}
		})
	}
}

package auditlog

import (
	"fmt"
	"slices"
	"testing"
)

// TestScanKeysMatchesModel checks ScanKeys, Position and Fact against the
// naive model at every cut the property streams pass through: each key
// once, with exactly its entries inside the cut, in merged order.
func TestScanKeysMatchesModel(t *testing.T) {
	defer func(n int, sync bool) { chunkEntries, syncIndex = n, sync }(chunkEntries, syncIndex)
	chunkEntries = 7 // several runs per log
	syncIndex = false
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newStream(t, seed, 1+int(seed%3))
			s.appendRandom(60)
			st := openStore(t, s.root)
			facts := s.m.sorted()

			// Cuts by system time (as a snapshot takes them) and ragged ones.
			var cuts []Cut
			for _, T := range []int64{0, facts[len(facts)/3].SystemTime, facts[len(facts)*2/3].SystemTime, Latest} {
				c := Cut{}
				for _, name := range s.names {
					n, err := st.Position(name, T)
					if err != nil {
						t.Fatal(err)
					}
					want := uint64(0)
					for _, f := range facts {
						if f.Log == name && f.SystemTime <= T {
							want = max(want, f.Seq)
						}
					}
					if n != want {
						t.Fatalf("Position(%s, %d) = %d, want %d", name, T, n, want)
					}
					c[name] = n
				}
				cuts = append(cuts, c)
			}
			ragged := Cut{}
			for i, name := range s.names {
				seq, _, _ := s.logs[i].Tail()
				ragged[name] = seq / uint64(i+2)
			}
			cuts = append(cuts, ragged, Cut{s.names[0]: 5})

			for _, cut := range cuts {
				want := map[string][]string{}
				for _, f := range facts {
					if f.Seq <= cut[f.Log] {
						want[string(f.Key)] = append(want[string(f.Key)], factID(&f))
					}
				}
				got := map[string][]string{}
				err := st.ScanKeys(cut, func(key []byte, fs []Fact) error {
					if _, dup := got[string(key)]; dup {
						return fmt.Errorf("key %s scanned twice", key)
					}
					ids := []string{}
					for i := range fs {
						if string(fs[i].Key) != string(key) {
							return fmt.Errorf("key %s given a fact of key %s", key, fs[i].Key)
						}
						if i > 0 && !fs[i-1].Before(&fs[i]) {
							return fmt.Errorf("key %s: facts out of merged order", key)
						}
						ids = append(ids, factID(&fs[i]))
					}
					got[string(key)] = ids
					return nil
				})
				if err != nil {
					t.Fatalf("ScanKeys(%v): %v", cut, err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("ScanKeys(%v)\n got %v\nwant %v", cut, got, want)
				}
			}

			for _, f := range facts[:10] {
				g, err := st.Fact(f.Log, f.Seq)
				if err != nil || !sameFact(&g, &f) {
					t.Fatalf("Fact(%s, %d) = %+v, %v; want %+v", f.Log, f.Seq, g, err, f)
				}
			}
			if _, err := st.Fact(s.names[0], 1<<40); err == nil {
				t.Fatal("Fact past the end of the log: no error")
			}
			if err := st.ScanKeys(Cut{"no-such-log": 1}, func([]byte, []Fact) error { return nil }); err == nil {
				t.Fatal("ScanKeys of a log that does not exist: no error")
			}
			if seq, _, _ := s.logs[0].Tail(); st.ScanKeys(Cut{s.names[0]: seq + 1}, func([]byte, []Fact) error { return nil }) == nil {
				t.Fatal("ScanKeys past the indexed end: no error")
			}
		})
	}
}

func TestEachKeySplitsSharedHashGroups(t *testing.T) {
	mk := func(key string, seq uint64) Fact { return Fact{Log: "l", Entry: Entry{Seq: seq, Key: []byte(key)}} }
	facts := []Fact{mk("b", 1), mk("a", 2), mk("b", 3), mk("a", 4)}
	var got []string
	err := eachKey(facts, func(key []byte, fs []Fact) error {
		var seqs []uint64
		for _, f := range fs {
			seqs = append(seqs, f.Seq)
		}
		got = append(got, fmt.Sprint(string(key), " ", seqs))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a [2 4]", "b [1 3]"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

package query

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

// randomLogs writes random entries (out-of-order valid times, ranges,
// back-dated corrections, deletes, ties across logs) to nlogs logs under a
// root and returns the root and every fact.
func randomLogs(t testing.TB, seed uint64, nlogs, n int) (string, []auditlog.Fact) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	root := t.TempDir()
	var (
		logs  []*auditlog.Log
		facts []auditlog.Fact
		clock = int64(1_000_000)
	)
	for i := range nlogs {
		l, err := auditlog.Open(filepath.Join(root, "changelog", fmt.Sprintf("orders-%d", i)), auditlog.SyncEachAppend(false))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		logs = append(logs, l)
	}
	for range n {
		li := rng.IntN(nlogs)
		seq, last, _ := logs[li].Tail()
		clock += int64(rng.IntN(3))
		sys := max(clock, last+1)
		clock = sys
		vf := int64(rng.IntN(30)) * 10
		var vt int64
		if rng.IntN(3) == 0 {
			vt = vf + int64(1+rng.IntN(6))*10
		}
		op := auditlog.OpAssert
		if rng.IntN(4) == 0 {
			op = auditlog.OpRetract
		}
		key := fmt.Sprintf("k%d", rng.IntN(5))
		e := auditlog.Entry{Seq: seq + 1, SystemTime: sys, ValidFrom: vf, ValidTo: vt, Op: op, Key: []byte(key),
			Payload: []byte(fmt.Sprintf("%s/%d/%d", key, li, seq+1))}
		if err := logs[li].Append([]auditlog.Entry{e}); err != nil {
			t.Fatal(err)
		}
		facts = append(facts, auditlog.Fact{Log: fmt.Sprintf("orders-%d", li), Entry: e})
	}
	return root, facts
}

// TestRedisCurrentMatchesIndex applies the same entries to Redis twice
// over: in merged order, in batches, with entries already applied sent
// again, as the runtime does; and shuffled, with duplicates and late
// arrivals from other logs. Every key at every valid time must read as the
// index answers "as of now": in order the whole version (entry, valid
// period, believed since), shuffled the entry and its valid period, and a
// believed-since no earlier than the index's.
func TestRedisCurrentMatchesIndex(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	for seed := range uint64(6) {
		root, facts := randomLogs(t, seed, 1+int(seed%3), 120)
		st, err := auditlog.OpenStore(root)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rng := rand.New(rand.NewPCG(seed, 99))

		inOrder := NewRedisStore(rdb, fmt.Sprintf("p%d-in-order", seed), PruneMargin(-1))
		sorted := append([]auditlog.Fact(nil), facts...)
		slices.SortFunc(sorted, func(a, b auditlog.Fact) int {
			return cmp.Or(cmp.Compare(a.SystemTime, b.SystemTime), strings.Compare(a.Log, b.Log), cmp.Compare(a.Seq, b.Seq))
		})
		for done := 0; done < len(sorted); {
			n := min(len(sorted)-done, 1+rng.IntN(20))
			batch := slices.Clone(sorted[done : done+n])
			for range rng.IntN(3) { // the runtime retries a batch Redis may have taken
				batch = append(batch, sorted[rng.IntN(done+n)])
			}
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			if err := inOrder.Apply(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			done += n
		}

		shuffled := NewRedisStore(rdb, fmt.Sprintf("p%d-shuffled", seed), PruneMargin(-1))
		order := append([]auditlog.Fact(nil), facts...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		order = append(order, order[:len(order)/3]...) // applied twice
		for len(order) > 0 {
			n := min(len(order), 1+rng.IntN(20))
			if err := shuffled.Apply(ctx, order[:n]...); err != nil {
				t.Fatal(err)
			}
			order = order[n:]
		}

		for k := range 6 {
			key := []byte(fmt.Sprintf("k%d", k))
			for v := int64(-5); v < 400; v += 5 {
				want, wok, err := st.AsOf(auditlog.Latest).ValidAt(v).Get(key)
				if err != nil {
					t.Fatal(err)
				}
				for _, rs := range []*RedisStore{inOrder, shuffled} {
					got, gok, err := rs.Get(ctx, key, v)
					if err != nil {
						t.Fatal(err)
					}
					exact := rs == inOrder
					same := gok == wok && (!wok || got.Log == want.Fact.Log && got.Seq == want.Fact.Seq &&
						bytes.Equal(got.Payload, want.Fact.Payload) && got.SystemTime == want.Fact.SystemTime &&
						got.ValidFrom == want.ValidFrom && got.ValidTo == want.ValidTo &&
						(got.SystemFrom == want.SystemFrom || !exact && got.SystemFrom > want.SystemFrom))
					if !same {
						t.Fatalf("seed %d key %s valid %d (%s): redis %s#%d valid [%d, %d) since %d ok=%v, index %s#%d valid [%d, %d) since %d ok=%v",
							seed, key, v, rs.prefix, got.Log, got.Seq, got.ValidFrom, got.ValidTo, got.SystemFrom, gok,
							want.Fact.Log, want.Fact.Seq, want.ValidFrom, want.ValidTo, want.SystemFrom, wok)
					}
				}
			}
		}
	}
}

func TestRedisApplyIsIdempotentAndPrunes(t *testing.T) {
	rdb := redistest.Client(t)
	ctx := context.Background()
	now := time.UnixMicro(10_000)
	rs := NewRedisStore(rdb, "orders", PruneMargin(time.Duration(2000)*time.Microsecond), Clock(func() time.Time { return now }))
	e := func(log string, seq uint64, sys, vf, vt int64, op byte, p string) auditlog.Fact {
		return auditlog.Fact{Log: log, Entry: auditlog.Entry{Seq: seq, SystemTime: sys, ValidFrom: vf, ValidTo: vt, Op: op, Key: []byte("k"), Payload: []byte(p)}}
	}
	v1 := e("a", 1, 100, 0, 0, auditlog.OpAssert, "v1")
	v2 := e("a", 2, 200, 9000, 0, auditlog.OpAssert, "v2")
	fix := e("b", 1, 300, 5000, 9000, auditlog.OpAssert, "fix") // a back-dated correction from another log
	if err := rs.Apply(ctx, v2, fix, v1, v2, v1); err != nil {
		t.Fatal(err)
	}
	raw := func() string { return rdb.Get(ctx, "meshlet:orders:entity:k").Val() }
	want := "5000 9000 300 b 1 a Zml4 300\n9000 - 200 a 2 a djI= 200"
	if got := raw(); got != want {
		t.Fatalf("value\n got %q\nwant %q (v1's [0, 5000) pruned: it ended before now-2ms)", got, want)
	}
	// A tie in system time across logs: the greater log name wins.
	tie := e("0", 9, 300, 0, 0, auditlog.OpAssert, "tie")
	if err := rs.Apply(ctx, tie); err != nil {
		t.Fatal(err)
	}
	// It takes what v2 held and the pruned past, but not what fix (log "b") holds.
	if got, want := raw(), "5000 9000 300 b 1 a Zml4 300\n9000 - 300 0 9 a dGll 300"; got != want {
		t.Fatalf("after a tie from log \"0\"\n got %q\nwant %q", got, want)
	}
	c, ok, err := rs.Get(ctx, []byte("k"), 9500)
	if err != nil || !ok || string(c.Payload) != "tie" {
		t.Fatalf("Get at 9500 = %+v %v %v, want the later (sys 300) tie entry", c, ok, err)
	}
	c, ok, _ = rs.Get(ctx, []byte("k"), 6000)
	if !ok || string(c.Payload) != "fix" {
		t.Fatalf("Get at 6000 = %+v, want fix (log b > log 0 at the same system time)", c)
	}
	// A delete, then the script flushed away: Apply reloads it.
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	del := e("a", 3, 400, 9500, 0, auditlog.OpRetract, "")
	if err := rs.Apply(ctx, del); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := rs.Get(ctx, []byte("k"), 9600); ok {
		t.Fatal("deleted key still current")
	}
	// What the delete left of tie's piece is believed since the delete.
	if c, ok, _ := rs.Get(ctx, []byte("k"), 9400); !ok || string(c.Payload) != "tie" || c.ValidFrom != 9000 || c.ValidTo != 9500 || c.SystemFrom != 400 || c.SystemTime != 300 {
		t.Fatalf("before the delete's valid time: %+v %v, want tie valid [9000, 9500) since 400", c, ok)
	}
}

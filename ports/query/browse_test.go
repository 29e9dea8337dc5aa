package query

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
)

// browseFixture is a log of n keys with several versions each: some
// deleted, some corrected back in time, at random.
func browseFixture(t *testing.T, n int) (root string, st *auditlog.Store) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	base := us("2026-01-01T00:00:00Z")
	var (
		entries []auditlog.Entry
		rows    []map[string]any
	)
	sys := base
	for i := range n {
		key := fmt.Sprintf("item-%04d", i)
		vf := base
		for v := range 1 + rng.IntN(4) {
			sys += 1000 + rng.Int64N(1000)
			e := auditlog.Entry{SystemTime: sys, ValidFrom: vf, Op: auditlog.OpAssert, Key: []byte(key)}
			if v > 0 && rng.IntN(3) == 0 {
				e.ValidFrom = vf - 90_000_000 // back-dated by 90s: a correction
				e.ValidTo = vf
			} else {
				vf += 60_000_000
				e.ValidFrom = vf
			}
			entries = append(entries, e)
			rows = append(rows, map[string]any{"id": i, "name": fmt.Sprintf("%s v%d", key, v)})
		}
		if rng.IntN(5) == 0 {
			sys += 1000
			entries = append(entries, auditlog.Entry{SystemTime: sys, ValidFrom: vf + 1, Op: auditlog.OpRetract, Key: []byte(key)})
			rows = append(rows, map[string]any{"id": i, "name": "gone"})
		}
	}
	root = productLog(t, entries, rows)
	st, err := auditlog.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return root, st
}

func getJSON(t *testing.T, u string, code int, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != code {
		t.Fatalf("GET %s: %d, want %d", u, resp.StatusCode, code)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func TestEntityListPagesThroughTheKeysBelievedNow(t *testing.T) {
	root, st := browseFixture(t, 300)
	dec, err := NewDecoder(SchemaDir(root), "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(&Handler{Store: st, Decoder: dec, Now: func() time.Time { return now }})
	defer srv.Close()

	// The reference: every key of the log asked one by one with Get.
	var present []string
	for i := range 300 {
		key := fmt.Sprintf("item-%04d", i)
		if _, ok, err := st.AsOf(auditlog.Latest).ValidAt(now.UnixMicro()).Get([]byte(key)); err != nil {
			t.Fatal(err)
		} else if ok {
			present = append(present, key)
		}
	}
	if len(present) == 300 || len(present) < 150 {
		t.Fatalf("fixture: %d of 300 keys present; want some deleted", len(present))
	}

	page := func(q, after string, limit int) listAnswer {
		var a listAnswer
		getJSON(t, srv.URL+"/v1/entities?"+url.Values{"q": {q}, "after": {after}, "limit": {fmt.Sprint(limit)}}.Encode(), 200, &a)
		return a
	}
	walk := func(q string, limit int) (keys []string, pages int) {
		after := ""
		for {
			a := page(q, after, limit)
			pages++
			if len(a.Entities) > limit {
				t.Fatalf("page of %d with limit %d", len(a.Entities), limit)
			}
			for _, e := range a.Entities {
				keys = append(keys, e.Key)
				if e.ValidFrom == "" || e.SystemFrom == "" {
					t.Fatalf("entity %+v without its times", e)
				}
			}
			if a.Next == "" {
				return keys, pages
			}
			after = a.Next
			if pages > 1000 {
				t.Fatal("paging does not end")
			}
		}
	}
	keys, pages := walk("", 17)
	if !slices.Equal(keys, present) {
		t.Fatalf("paged list has %d keys, the log %d present:\n%v\n%v", len(keys), len(present), keys, present)
	}
	if want := (len(present) + 16) / 17; pages != want {
		t.Fatalf("%d pages of 17 for %d keys, want %d", pages, len(present), want)
	}
	var filtered []string
	for _, k := range present {
		if strings.Contains(k, "-01") {
			filtered = append(filtered, k)
		}
	}
	keys, _ = walk("-01", 5)
	if !slices.Equal(keys, filtered) || len(filtered) == 0 {
		t.Fatalf("q=-01: %v, want %v", keys, filtered)
	}
	if a := page("ITEM-01", "", 1000); a.Matching != len(filtered) {
		t.Fatalf("q is not case-blind: %d matching, want %d", a.Matching, len(filtered))
	}
	var bad errorAnswer
	getJSON(t, srv.URL+"/v1/entities?limit=0", 400, &bad)
	getJSON(t, srv.URL+"/v1/entities?limit=1001", 400, &bad)
	if !strings.Contains(bad.Error, "limit") {
		t.Fatalf("bad limit: %q", bad.Error)
	}
}

func TestHistoryPagesAndMarksCorrectionsAndDeletes(t *testing.T) {
	root, st := browseFixture(t, 40)
	dec, err := NewDecoder(SchemaDir(root), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&Handler{Store: st, Decoder: dec})
	defer srv.Close()
	all, err := st.Corrections(0, auditlog.Latest)
	if err != nil {
		t.Fatal(err)
	}
	corrected := map[string]bool{} // log/seq of every correction, by the store's own scan
	for _, c := range all {
		corrected[fmt.Sprintf("%s/%d", c.Log, c.Seq)] = true
	}
	if len(corrected) == 0 {
		t.Fatal("fixture has no corrections")
	}
	marked, deletes := 0, 0
	for i := range 40 {
		key := fmt.Sprintf("item-%04d", i)
		var full historyAnswer
		getJSON(t, srv.URL+"/v1/entities/"+key+"/history?entries=true", 200, &full)
		if full.Total != len(full.Versions) || full.Offset != 0 {
			t.Fatalf("%s: total %d, %d versions, offset %d", key, full.Total, len(full.Versions), full.Offset)
		}
		facts, err := st.Entries([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		if len(full.Entries) != len(facts) {
			t.Fatalf("%s: %d entries, want %d", key, len(full.Entries), len(facts))
		}
		for j, m := range full.Entries {
			if want := corrected[fmt.Sprintf("%s/%d", m.Log, m.Seq)]; m.Correction != want {
				t.Fatalf("%s entry %d (%s/%d): correction %v, Store.Corrections says %v", key, j, m.Log, m.Seq, m.Correction, want)
			}
			if m.Correction {
				marked++
			}
			if (m.Op == "retract") != (facts[j].Op == auditlog.OpRetract) {
				t.Fatalf("%s entry %d: op %s", key, j, m.Op)
			}
			if m.Op == "retract" {
				deletes++
			}
		}
		for off := 0; off <= full.Total; off++ {
			var p historyAnswer
			getJSON(t, fmt.Sprintf("%s/v1/entities/%s/history?offset=%d&limit=2", srv.URL, key, off), 200, &p)
			want := full.Versions[off:min(off+2, full.Total)]
			if p.Total != full.Total || len(p.Versions) != len(want) || p.Entries != nil {
				t.Fatalf("%s offset %d: %d of %d, want %d", key, off, len(p.Versions), p.Total, len(want))
			}
			for k := range want {
				if p.Versions[k].Seq != want[k].Seq || p.Versions[k].SystemFrom != want[k].SystemFrom || p.Versions[k].ValidFrom != want[k].ValidFrom {
					t.Fatalf("%s offset %d: version %d is %+v, want %+v", key, off, k, p.Versions[k], want[k])
				}
			}
		}
	}
	if marked != len(corrected) || deletes == 0 {
		t.Fatalf("marked %d corrections of %d, %d deletes", marked, len(corrected), deletes)
	}
	var bad errorAnswer
	getJSON(t, srv.URL+"/v1/entities/item-0001/history?offset=-1", 400, &bad)
	getJSON(t, srv.URL+"/v1/entities/item-0001/history?entries=maybe", 400, &bad)
}

func TestCorrectionsOverHTTP(t *testing.T) {
	root, st := browseFixture(t, 60)
	dec, err := NewDecoder(SchemaDir(root), "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&Handler{Store: st, Decoder: dec})
	defer srv.Close()
	t1, t2 := us("2026-01-01T00:00:00Z")+20_000, us("2026-01-01T00:00:00Z")+150_000
	want, err := st.Corrections(t1, t2)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := st.Corrections(0, auditlog.Latest)
	if len(want) == 0 || len(want) == len(all) {
		t.Fatalf("fixture: %d corrections in the range, %d in all; want some and not all", len(want), len(all))
	}
	q := url.Values{"from": {FormatTime(t1)}, "to": {FormatTime(t2)}, "limit": {"1000"}}
	var a correctionsAnswer
	getJSON(t, srv.URL+"/v1/corrections?"+q.Encode(), 200, &a)
	if a.Total != len(want) || len(a.Corrections) != len(want) || a.Truncated {
		t.Fatalf("%d corrections (total %d), want %d", len(a.Corrections), a.Total, len(want))
	}
	for i, c := range a.Corrections {
		w := want[i]
		if c.Key != string(w.Key) || c.Seq != w.Seq || c.PriorValidFrom != FormatTime(w.PriorValidFrom) || c.Fields["name"] == nil {
			t.Fatalf("correction %d: %+v, want key %s seq %d prior %s", i, c, w.Key, w.Seq, FormatTime(w.PriorValidFrom))
		}
	}
	q.Set("limit", "2")
	getJSON(t, srv.URL+"/v1/corrections?"+q.Encode(), 200, &a)
	if len(a.Corrections) != 2 || !a.Truncated || a.Total != len(want) {
		t.Fatalf("limit 2: %d, truncated %v, total %d", len(a.Corrections), a.Truncated, a.Total)
	}
	key := string(want[0].Key)
	q.Set("key", key)
	q.Set("limit", "1000")
	getJSON(t, srv.URL+"/v1/corrections?"+q.Encode(), 200, &a)
	n := 0
	for _, w := range want {
		if string(w.Key) == key {
			n++
		}
	}
	if a.Total != n || len(a.Corrections) != n {
		t.Fatalf("key %s: %d corrections, want %d", key, len(a.Corrections), n)
	}
	for _, c := range a.Corrections {
		if c.Key != key {
			t.Fatalf("key filter let %s through", c.Key)
		}
	}
	var bad errorAnswer
	getJSON(t, srv.URL+"/v1/corrections?to=now", 400, &bad)
	if !strings.Contains(bad.Error, "from") {
		t.Fatalf("no from: %q", bad.Error)
	}
	getJSON(t, srv.URL+"/v1/corrections?from=yesterday", 400, &bad)
}

func TestChangelogChecksTheLatestCheckpoint(t *testing.T) {
	root, st := browseFixture(t, 30)
	dir := filepath.Join(root, "changelog", "products-0")
	signer, verifier, err := auditlog.LoadOrCreateKey(root, "urn:dataproduct:test:products")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	l, err := auditlog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(signer); err != nil {
		t.Fatal(err)
	}
	size, _, _ := l.Tail()
	l.Close()
	st, err = auditlog.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := &Handler{Store: st, Verifier: verifier}
	srv := httptest.NewServer(h)
	defer srv.Close()

	var a changelogAnswer
	getJSON(t, srv.URL+"/v1/changelog", 200, &a)
	if len(a.Logs) != 1 || a.Entries != size || a.Bytes <= 0 || a.Verifier != verifier.Name() {
		t.Fatalf("changelog: %+v (want 1 log of %d entries)", a, size)
	}
	cp := a.Logs[0].Checkpoint
	if cp == nil || cp.Size != size || !cp.Verified || cp.Signature != "verified" || cp.Tree != "matches" || cp.Behind != 0 || !strings.Contains(cp.Note, "\n— ") {
		t.Fatalf("checkpoint: %+v", cp)
	}
	var full verifyAnswer
	getJSON(t, srv.URL+"/v1/changelog/verify", 200, &full)
	if !full.Verified || len(full.Logs) != 1 || full.Logs[0].Checkpoint != size || full.Logs[0].Entries != size {
		t.Fatalf("verify: %+v", full)
	}

	// Another key did not sign it.
	_, other, err := auditlog.LoadOrCreateKey(t.TempDir(), "urn:dataproduct:test:products")
	if err != nil {
		t.Fatal(err)
	}
	h.Verifier = other
	getJSON(t, srv.URL+"/v1/changelog", 200, &a)
	if cp := a.Logs[0].Checkpoint; cp.Verified || cp.Signature != "failed" || cp.Error == "" {
		t.Fatalf("foreign key: %+v", cp)
	}
	h.Verifier = verifier

	// A correctly signed note whose root the tree beside the log does not give.
	body := auditlog.Checkpoint{Origin: verifier.Name() + "/products-0", Size: size, Root: [32]byte{1, 2, 3}}
	msg, err := note.Sign(&note.Note{Text: body.Text()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(auditlog.NotePath(dir, size))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auditlog.NotePath(dir, size), msg, 0o644); err != nil {
		t.Fatal(err)
	}
	getJSON(t, srv.URL+"/v1/changelog", 200, &a)
	if cp := a.Logs[0].Checkpoint; cp.Verified || cp.Signature != "verified" || cp.Tree != "differs" || !strings.Contains(cp.Error, "verify-since") {
		t.Fatalf("wrong root: %+v", cp)
	}
	getJSON(t, srv.URL+"/v1/changelog/verify", 200, &full)
	if full.Verified || full.Logs[0].Verified || full.Logs[0].Error == "" {
		t.Fatalf("verify against a wrong root: %+v", full)
	}
	os.WriteFile(auditlog.NotePath(dir, size), good, 0o644)

	// An entry changed behind the checkpoint: the full check names it.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	getJSON(t, srv.URL+"/v1/changelog/verify", 200, &full)
	if full.Verified || full.Logs[0].Error == "" {
		t.Fatalf("verify of a corrupted log: %+v", full)
	}

	h.Verifier = nil
	var bad errorAnswer
	getJSON(t, srv.URL+"/v1/changelog/verify", 503, &bad)
	getJSON(t, srv.URL+"/v1/changelog", 200, &a)
	if cp := a.Logs[0].Checkpoint; cp.Verified || cp.Signature != "unchecked" {
		t.Fatalf("no verifier: %+v", cp)
	}
}

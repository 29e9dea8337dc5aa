package auditlog

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The time-travel benchmarks. The small ones run with every
// `go test -bench`; the 10-million-entry ones only with
//
//	MESHLET_BENCH_10M=1 go test -run '^$' -bench Store10M -benchtime 1x -timeout 3h ./auditlog
//
// which generates the log once into $HOME/.cache/meshlet-bench/auditlog-10m
// (about 2.4 GB; MESHLET_BENCH_DIR overrides the place) and reuses it.

const benchBase = int64(1_700_000_000_000_000)

// benchStream writes n entries shaped like a product's over keys distinct
// keys: payloads of 60-140 bytes, valid time a little behind system time,
// 5% back-dated corrections with a closed valid period, 3% deletes.
func benchStream(tb testing.TB, dir string, n, keys int) {
	tb.Helper()
	l, err := Open(dir, SyncEachAppend(false))
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewPCG(uint64(n), uint64(keys)))
	const batch = 10_000
	b := make([]Entry, 0, batch)
	payload := make([]byte, 0, 256)
	for seq := 1; seq <= n; seq++ {
		sys := benchBase + int64(seq)*1000
		e := Entry{Seq: uint64(seq), SystemTime: sys, ValidFrom: sys - int64(rng.IntN(5_000_000)), Op: OpAssert,
			Key: fmt.Appendf(nil, "customer-%08d", rng.IntN(keys))}
		switch r := rng.IntN(100); {
		case r < 5:
			e.ValidFrom = sys - int64(1+rng.IntN(30*86400))*1_000_000
			e.ValidTo = e.ValidFrom + int64(1+rng.IntN(86400))*1_000_000
		case r < 8:
			e.Op = OpRetract
		}
		payload = append(payload[:0], 0, 0, 0, 0, 1)
		for range 55 + rng.IntN(80) {
			payload = append(payload, byte('a'+rng.IntN(26)))
		}
		e.Payload = bytes.Clone(payload)
		e.Prov = Provenance{Topic: "shop.orders", Partition: 0, Offset: int64(seq), SourcePosition: "lsn=" + strconv.Itoa(seq*64), SchemaID: 1}
		b = append(b, e)
		if len(b) == batch || seq == n {
			if err := l.Append(b); err != nil {
				tb.Fatal(err)
			}
			b = b[:0]
		}
	}
}

// smallStore is a 200,000-entry log over 20,000 keys, indexed.
func smallStore(b *testing.B) (*Store, string) {
	b.Helper()
	root := b.TempDir()
	benchStream(b, filepath.Join(root, "orders-0"), 200_000, 20_000)
	st, err := OpenStore(root)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, root
}

func benchGets(b *testing.B, st *Store, n, keys int, perIter int) {
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, 1<<16)
	last := benchBase + int64(n)*1000
	found := 0
	b.ResetTimer()
	for b.Loop() {
		for range perIter {
			key := fmt.Appendf(nil, "customer-%08d", rng.IntN(keys))
			asOf := benchBase + rng.Int64N(last-benchBase+1)
			valid := asOf - rng.Int64N(max(1, (asOf-benchBase)/2)) // where the key's entries lie
			t0 := time.Now()
			_, ok, err := st.AsOf(asOf).ValidAt(valid).Get(key)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				found++
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(found)/float64(len(lat)), "hit-ratio")
}

func BenchmarkStoreGet(b *testing.B) {
	st, _ := smallStore(b)
	benchGets(b, st, 200_000, 20_000, 1)
}

func BenchmarkStoreHistory(b *testing.B) {
	st, _ := smallStore(b)
	rng := rand.New(rand.NewPCG(3, 4))
	for b.Loop() {
		if _, err := st.History(fmt.Appendf(nil, "customer-%08d", rng.IntN(20_000))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreReplay(b *testing.B) {
	st, _ := smallStore(b)
	n := 0
	for b.Loop() {
		if err := st.Replay(0, Latest, func(*Fact) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkIndexBuild(b *testing.B) {
	root := b.TempDir()
	dir := filepath.Join(root, "orders-0")
	benchStream(b, dir, 200_000, 20_000)
	for b.Loop() {
		b.StopTimer()
		os.RemoveAll(filepath.Join(dir, indexDirName))
		b.StartTimer()
		st, err := OpenStore(root)
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
	b.ReportMetric(float64(b.N)*200_000/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkIndexCatchUp is the refresh after each committed batch: 500
// new entries into an index of 200,000.
func BenchmarkIndexCatchUp(b *testing.B) {
	st, root := smallStore(b)
	l, err := Open(filepath.Join(root, "orders-0"), SyncEachAppend(false))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchEntries()
	for b.Loop() {
		b.StopTimer()
		seq, sys, _ := l.Tail()
		for i := range batch {
			batch[i].Seq, batch[i].SystemTime = seq+uint64(i)+1, sys+int64(i)+1
		}
		if err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := st.Refresh(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpoint signs a checkpoint after each 500-entry batch.
func BenchmarkCheckpoint(b *testing.B) {
	root := b.TempDir()
	s, _ := testKey(b, root)
	l := mustOpen(b, filepath.Join(root, "orders-0"), SyncEachAppend(false))
	defer l.Close()
	batch := benchEntries()
	for b.Loop() {
		b.StopTimer()
		seq, sys, _ := l.Tail()
		for i := range batch {
			batch[i].Seq, batch[i].SystemTime = seq+uint64(i)+1, sys+int64(i)+1
		}
		if err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := l.Checkpoint(s); err != nil {
			b.Fatal(err)
		}
	}
}

const (
	tenM     = 10_000_000
	tenMKeys = 1_000_000
)

// tenMRoot returns the cached 10-million-entry log, generating it first
// if it is missing or incomplete.
func tenMRoot(b *testing.B) string {
	b.Helper()
	if os.Getenv("MESHLET_BENCH_10M") == "" {
		b.Skip("set MESHLET_BENCH_10M=1 to run the 10-million-entry benchmarks (see bench_store_test.go)")
	}
	root := os.Getenv("MESHLET_BENCH_DIR")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			b.Fatal(err)
		}
		root = filepath.Join(home, ".cache", "meshlet-bench", "auditlog-10m")
	}
	done := filepath.Join(root, "COMPLETE")
	if _, err := os.Stat(done); err == nil {
		return root
	}
	os.RemoveAll(root)
	t0 := time.Now()
	benchStream(b, filepath.Join(root, "orders-0"), tenM, tenMKeys)
	if err := os.WriteFile(done, []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d entries in %s under %s", tenM, time.Since(t0).Round(time.Second), root)
	return root
}

func dirBytes(b *testing.B, dir string, match func(string) bool) int64 {
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && match(p) {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// rssMB reads the process's resident set (kB lines of /proc/self/status).
func rssMB(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux).
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func BenchmarkStore10MRebuild(b *testing.B) {
	root := tenMRoot(b)
	dir := filepath.Join(root, "orders-0")
	for b.Loop() {
		b.StopTimer()
		os.RemoveAll(filepath.Join(dir, indexDirName))
		resetPeakRSS()
		b.StartTimer()
		st, err := OpenStore(root)
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "rebuild-s")
	b.ReportMetric(float64(tenM)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(rssMB("VmHWM"), "peak-rss-MB")
	logB := dirBytes(b, dir, func(p string) bool { return strings.HasSuffix(p, segSuffix) })
	idxB := dirBytes(b, filepath.Join(dir, indexDirName), func(string) bool { return true })
	b.ReportMetric(float64(logB)/tenM, "log-B/entry")
	b.ReportMetric(float64(idxB)/tenM, "index-B/entry")
}

func BenchmarkStore10MGet(b *testing.B) {
	root := tenMRoot(b)
	st, err := OpenStore(root)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	resetPeakRSS()
	benchGets(b, st, tenM, tenMKeys, 10_000)
	b.ReportMetric(rssMB("VmHWM"), "peak-rss-MB")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
}

func BenchmarkStore10MReplay(b *testing.B) {
	root := tenMRoot(b)
	st, err := OpenStore(root)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	resetPeakRSS()
	n := 0
	for b.Loop() {
		if err := st.Replay(0, Latest, func(*Fact) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	if n != tenM*b.N {
		b.Fatalf("replayed %d entries, want %d", n, tenM*b.N)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(rssMB("VmHWM"), "peak-rss-MB")
}

// BenchmarkStore10MCheckpoint builds the Merkle state of the whole log
// once (the first checkpoint), then times one checkpoint per 500 more.
func BenchmarkStore10MCheckpoint(b *testing.B) {
	root := tenMRoot(b)
	dir := filepath.Join(root, "orders-0")
	s, _ := testKey(b, root)
	l, err := Open(dir, SyncEachAppend(false))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	t0 := time.Now()
	if _, err := l.Checkpoint(s); err != nil {
		b.Fatal(err)
	}
	first := time.Since(t0)
	treeBytes := dirBytes(b, filepath.Join(dir, checkpointDirName), func(string) bool { return true })
	// Later checkpoints cost only what was appended: time one on top.
	batch := benchEntries()
	for b.Loop() {
		b.StopTimer()
		seq, sys, _ := l.Tail()
		for i := range batch {
			batch[i].Seq, batch[i].SystemTime = seq+uint64(i)+1, sys+int64(i)+1
		}
		if err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := l.Checkpoint(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(first.Seconds(), "first-checkpoint-s")
	b.ReportMetric(float64(treeBytes)/tenM, "tree-B/entry")
	// Leave the cached log as generated: take back what this appended.
	if _, err := l.Rewind(func(e *Entry) bool { return e.Seq > tenM }); err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, checkpointDirName))
}

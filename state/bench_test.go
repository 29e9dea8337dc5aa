package state

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type benchRow struct {
	Name    string
	Email   string
	Balance int64
}

// BenchmarkMillionKeys loads 1,000,000 keys (batches of 1,000, as a
// product's batches commit them) and then measures AsOf reads of random
// keys. It reports the process's peak RSS and the store's size on disk:
// memory stays near pebble's cache and memtables while the data lives on
// disk.
func BenchmarkMillionKeys(b *testing.B) {
	const n, batch = 1_000_000, 1_000
	dir := b.TempDir()
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	perm := rand.Perm(n)
	began := time.Now()
	for i := 0; i < n; i += batch {
		tx := s.Begin()
		tb := Use[benchRow](tx, "customers")
		for _, k := range perm[i : i+batch] {
			if err := tb.Put("c"+strconv.Itoa(k), time.UnixMicro(int64(k)), benchRow{Name: "name " + strconv.Itoa(k), Email: "x@example.com", Balance: int64(k)}); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(Mark{Seq: uint64(i/batch + 1)}); err != nil {
			b.Fatal(err)
		}
	}
	load := time.Since(began)
	b.ResetTimer()
	tx := s.Begin()
	defer tx.Discard()
	tb := Use[benchRow](tx, "customers")
	for i := 0; b.Loop(); i++ {
		k := rand.IntN(n)
		v, ok, err := tb.AsOf("c"+strconv.Itoa(k), time.UnixMicro(int64(k)+10))
		if err != nil || !ok || v.Value.Balance != int64(k) {
			b.Fatalf("AsOf c%d = %+v %v %v", k, v, ok, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/load.Seconds(), "puts/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(du(dir))/(1<<20), "disk-MiB")
}

// BenchmarkTxnPutGet is one event's state work in a batch: an AsOf read of
// one table and a Put to another.
func BenchmarkTxnPutGet(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tx := s.Begin()
	c := Use[benchRow](tx, "customers")
	for k := range 10_000 {
		_ = c.Put("c"+strconv.Itoa(k), time.UnixMicro(1), benchRow{Name: "n", Balance: int64(k)})
	}
	_ = tx.Commit(Mark{Seq: 1})
	b.ReportAllocs()
	tx = s.Begin()
	c, o := Use[benchRow](tx, "customers"), Use[benchRow](tx, "totals")
	i := 0
	for b.Loop() {
		key := "c" + strconv.Itoa(i%10_000)
		v, _, err := c.AsOf(key, time.UnixMicro(5))
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Put(key, time.UnixMicro(int64(i)), v.Value); err != nil {
			b.Fatal(err)
		}
		i++
		if i%1000 == 0 {
			if err := tx.Commit(Mark{Seq: uint64(i)}); err != nil {
				b.Fatal(err)
			}
			tx = s.Begin()
			c, o = Use[benchRow](tx, "customers"), Use[benchRow](tx, "totals")
		}
	}
	tx.Discard()
}

func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func du(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

package snapshot_test

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshlet/meshlet/snapshot"
	"github.com/meshlet/meshlet/snapshot/snapshottest"
)

// BenchmarkTakeHistory writes the history snapshot of a log of
// MESHLET_SNAPSHOT_BENCH_ENTRIES entries (default 1,000,000; 100,000
// keys, 4 logs) and reports rows/s, entries/s, and the peak RSS
// (VmHWM, reset after the log is built) and peak Go heap while Take runs,
// and the CPU time it took.
func BenchmarkTakeHistory(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("MESHLET_SNAPSHOT_BENCH_ENTRIES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	o := snapshottest.NewOrders(b, snapshottest.OrdersSpec{Seed: 9, Keys: max(n/10, 1), Entries: n, Logs: 4, Batch: 1024})
	o.Checkpoint(b)
	st := o.Store(b) // builds the index: not part of a snapshot's cost
	src := snapshot.Source{Store: st, SchemaDir: o.SchemaDir()}
	p := snapshot.Product{URN: snapshottest.OrdersURN, Port: snapshottest.OrdersPort, Topic: snapshottest.OrdersTopic}

	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS(b)
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var rows int64
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range b.N {
		m, err := snapshot.Take(ctx, src, p, filepath.Join(b.TempDir(), strconv.Itoa(i)), snapshot.Kinds(snapshot.History))
		if err != nil {
			b.Fatal(err)
		}
		rows += m.Files[0].Rows
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	close(stop)
	wg.Wait()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(rows)/secs, "rows/s")
	b.ReportMetric(float64(n)*float64(b.N)/secs, "entries/s")
	b.ReportMetric(float64(peakRSS(b))/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MB")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
}

// cpuTime is the process's user and system CPU time so far: on a shared
// machine rows per CPU second says more than rows per second.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets the kernel's high-water mark of this process's RSS.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset peak RSS (%v): it includes building the log", err)
	}
}

// peakRSS is VmHWM from /proc/self/status, in bytes.
func peakRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

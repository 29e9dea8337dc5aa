package cli

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The scale-out tests run several replicas of the product as processes in
// one consumer group and change the group under them while input arrives.

func TestScaleOut(t *testing.T) {
	events := envInt(t, "MESHLET_SCALE_EVENTS", 6000)
	w := newCrashWorld(t)
	fed := w.feed(w.load(events), 2000)
	// One data directory for all: a killed replica's partitions move to
	// the others, which find the logs on the disk they share.
	start := func(i string) *child { return w.startSpec(childSpec{instance: i, txnTimeout: "8s"}) }
	replicas := []*child{start("0"), start("1"), start("2")}
	w.waitAll(w.total/3, time.Minute, replicas...)
	t.Logf("killing replica 1 at %d of %d committed", w.committed(), w.total)
	replicas[1].kill()
	replicas = append(replicas, start("3"))
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	w.waitCommitted(3*time.Minute, replicas[0], replicas[2], replicas[3])
	for _, i := range []int{0, 2, 3} {
		w.stopGracefully(replicas[i])
		t.Logf("replica %d: %s", i, strings.TrimSpace(lastLine(replicas[i].out.String())))
	}
	w.check()
}

// waitAll waits until the group committed target input records, failing
// the test if a replica exits meanwhile.
func (w *crashWorld) waitAll(target int64, timeout time.Duration, alive ...*child) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for w.committed() < target {
		for i, c := range alive {
			if c.exited() {
				w.t.Fatalf("replica %d exited: %v\n%s", i, c.waitEr, tail(c.out.String(), 60))
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("committed %d of the %d input records awaited after %s", w.committed(), target, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restored reads meshlet_changelog_restored_entries_total from a running
// replica's management port.
func restored(t *testing.T, c *child) float64 {
	t.Helper()
	resp, err := http.Get(c.managementURL(t) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && strings.HasPrefix(f[0], "meshlet_changelog_restored_entries_total") {
			n, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	t.Fatalf("replica's /metrics has no meshlet_changelog_restored_entries_total")
	return 0
}

// TestScaleOutSeparateDisks runs three replicas, each with a data
// directory of its own, as on machines that share nothing but Kafka. One
// is killed and its directory deleted; it comes back empty and restores its
// partitions' logs from the changelog topic. Then a fourth joins and one
// leaves. Every check of the crash test holds, and every replica's cache
// of a log is the topic's log, or a prefix of it, byte for byte.
func TestScaleOutSeparateDisks(t *testing.T) {
	events := envInt(t, "MESHLET_SCALE_EVENTS", 6000)
	w := newCrashWorld(t)
	w.failProduces(53)
	fed := w.feed(w.load(events), 1000)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	start := func(i int) *child { return w.startSpec(childSpec{instance: strconv.Itoa(i), dir: dirs[i]}) }
	replicas := []*child{start(0), start(1), start(2)}
	w.waitAll(w.total/4, 2*time.Minute, replicas...)

	t.Logf("killing replica 1 and deleting its data directory at %d of %d committed", w.committed(), w.total)
	replicas[1].kill()
	if err := os.RemoveAll(dirs[1]); err != nil {
		t.Fatal(err)
	}
	replicas[1] = start(1)
	replicas[1].waitReady(t)
	w.waitAll(w.total/2, 2*time.Minute, replicas...)
	// Its partitions' logs existed only in the deleted directory and the
	// topic: it holds them again only by restoring.
	deadline := time.Now().Add(time.Minute)
	for restored(t, replicas[1]) == 0 {
		if time.Now().After(deadline) || replicas[1].exited() {
			t.Fatalf("replica 1 came back empty but restored nothing from the changelog topic\n%s", tail(replicas[1].out.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Logf("replica 3 joins at %d of %d committed", w.committed(), w.total)
	replicas = append(replicas, start(3))
	w.waitAll(w.total*3/4, 2*time.Minute, replicas...)
	t.Logf("replica 0 leaves at %d of %d committed", w.committed(), w.total)
	w.stopGracefully(replicas[0])
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	w.waitCommitted(3*time.Minute, replicas[1], replicas[2], replicas[3])
	for _, i := range []int{1, 2, 3} {
		w.stopGracefully(replicas[i])
	}
	for i, c := range replicas {
		t.Logf("replica %d: %s", i, strings.TrimSpace(lastLine(c.out.String())))
	}
	for i, dir := range dirs {
		logs, _ := filepath.Glob(filepath.Join(dir, "changelog", "*"))
		var held []string
		for _, ld := range logs {
			if recs, err := cacheRecords(ld); err == nil {
				held = append(held, filepath.Base(ld)+": "+strconv.Itoa(len(recs)))
			}
		}
		t.Logf("replica %d's cache: %v", i, held)
	}
	t.Logf("%d produce requests failed by the broker", w.faultHits())
	w.check(dirs...)
	if out, errOut, code := meshlet(t, "audit", "verify", "--kafka", w.brokers, "--product", w.group); code != 0 {
		t.Errorf("audit verify --kafka: exit %d\n%s%s", code, out, errOut)
	}
}

// removeRunning is rm -rf of a directory a process is writing in: it
// tries again when a file appears in a directory being removed.
func removeRunning(t *testing.T, dir string) {
	t.Helper()
	var err error
	for range 100 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
	}
	t.Fatalf("rm -rf %s: %v", dir, err)
}

// TestWipeRunningDataDirectory deletes the data directory of a running
// replica, as a wiped or remounted disk would. The product notices at its
// next append (auditlog.ErrRemoved) and stops with an error naming the
// directory instead of writing on into unlinked files; restarted, as a
// supervisor would, it restores its logs from the changelog topic and goes
// on, with nothing lost.
func TestWipeRunningDataDirectory(t *testing.T) {
	events := envInt(t, "MESHLET_SCALE_EVENTS", 6000)
	w := newCrashWorld(t)
	fed := w.feed(w.load(events), 1000)
	c := w.start("0", "")
	w.waitAll(w.total/3, 2*time.Minute, c)
	t.Logf("deleting the running replica's data directory at %d of %d committed", w.committed(), w.total)
	removeRunning(t, w.dataDir)
	select {
	case <-c.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the replica kept running for 2 minutes on a deleted data directory\n%s", tail(c.out.String(), 40))
	}
	if c.waitEr == nil || !strings.Contains(c.out.String(), "change log directory removed while open: "+filepath.Join(w.dataDir, "changelog")) {
		t.Fatalf("replica ended with %v; want a non-zero exit naming the removed directory\n%s", c.waitEr, tail(c.out.String(), 20))
	}
	t.Logf("the replica stopped: %s", strings.TrimSpace(lastLine(c.out.String())))
	c = w.start("0", "")
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	w.waitCommitted(3*time.Minute, c)
	if restored(t, c) == 0 {
		t.Error("the restarted replica restored nothing from the changelog topic")
	}
	w.stopGracefully(c)
	w.check()
}

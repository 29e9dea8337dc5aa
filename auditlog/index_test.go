package auditlog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func indexRuns(t *testing.T, logDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(logDir, indexDirName, "*"+runSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The index is derived data: a missing or damaged one is rebuilt, and a
// damaged block that slipped past that is an error, never a wrong answer.
func TestIndexRebuiltWhenDamaged(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "orders-0")
	buildLog(t, dir, 300, 50)
	get := func(st *Store) string {
		f, ok, err := st.AsOf(Latest).ValidAt(Latest - 1).Get([]byte("customer-00000005"))
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("seq %d ok %v", f.Fact.Seq, ok)
	}
	st := openStore(t, root)
	want := get(st)
	st.Close()

	os.RemoveAll(filepath.Join(dir, indexDirName))
	if got := get(openStore(t, root)); got != want {
		t.Fatalf("after deleting the index: %s, want %s", got, want)
	}

	runs := indexRuns(t, dir)
	patchFile(t, runs[0], func(b []byte) []byte { return b[:len(b)-10] }) // cut short
	if got := get(openStore(t, root)); got != want {
		t.Fatalf("after truncating a run: %s, want %s", got, want)
	}

	runs = indexRuns(t, dir)
	patchFile(t, runs[0], func(b []byte) []byte { b[runHeaderSize+5] ^= 0xff; return b }) // a key block
	st = openStore(t, root)
	var errs []string
	for k := range 97 {
		_, _, err := st.AsOf(Latest).ValidAt(Latest - 1).Get(fmt.Appendf(nil, "customer-%08d", k))
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) == 0 || !strings.Contains(errs[0], "key block 0 checksum mismatch") || !strings.Contains(errs[0], filepath.Base(runs[0])) {
		t.Fatalf("a damaged key block was not reported: %q", errs)
	}
}

// Refresh and queries run beside a writer appending, as the query port
// does beside the runtime.
func TestStoreBesideWriter(t *testing.T) {
	root := t.TempDir()
	l := mustOpen(t, filepath.Join(root, "orders-0"), SegmentSize(8192), SyncEachAppend(false))
	defer l.Close()
	appendN(t, l, 10)
	st := openStore(t, root)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 60 {
			appendN(t, l, 7)
		}
	}()
	for i := 0; ; i++ {
		if err := st.Refresh(); err != nil {
			t.Fatal(err)
		}
		n := st.Logs()[0].Entries
		count := uint64(0)
		if err := st.Replay(0, Latest, func(f *Fact) error {
			count++
			if !sameEntry(&f.Entry, ptr(entryFor(f.Seq))) {
				t.Fatalf("replayed seq %d differs from what was appended", f.Seq)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if count != n {
			t.Fatalf("replayed %d entries of %d indexed", count, n)
		}
		if n == 430 {
			break
		}
		if i > 10_000 {
			t.Fatalf("index stuck at %d entries", n)
		}
	}
	wg.Wait()
}

func ptr[T any](v T) *T { return &v }

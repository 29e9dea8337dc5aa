package runtime

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/schemas"
)

func TestStandbyFor(t *testing.T) {
	counts := map[string]int32{"t": 4, "u": 1}
	k := func(p int32) partitionKey { return partitionKey{"t", p} }
	got := standbyFor([]partitionKey{k(0), k(3)}, counts, 2)
	want := []partitionKey{k(1), k(2)} // 0 -> 1, 2; 3 -> 0 (owned), 1 (already)
	if !slices.Equal(got, want) {
		t.Fatalf("standbyFor = %v, want %v", got, want)
	}
	if got := standbyFor([]partitionKey{{"u", 0}}, counts, 3); len(got) != 0 {
		t.Fatalf("a one-partition topic has nothing to stand by for: %v", got)
	}
	if got := standbyFor([]partitionKey{k(1)}, counts, 9); !slices.Equal(got, []partitionKey{k(2), k(3), k(0)}) {
		t.Fatalf("n beyond the partitions: %v", got)
	}
}

// A long restore says how fast it goes and when it should end.
func TestRestoreProgressSaysRateAndETA(t *testing.T) {
	var out strings.Builder
	c := &changelog{log: slog.New(slog.NewTextHandler(&out, nil))}
	// 10,000 entries in 2s, offsets 0..4,000 of 12,000: 2,000 offsets/s, 4s left.
	c.logProgress("in-0", 10000, 0, 4000, 12000, 2*time.Second)
	for _, want := range []string{"log=in-0", "entries=10000", "entries_per_second=5000", "end_offset=12000", "eta=4s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress %q lacks %s", out.String(), want)
		}
	}
}

// Replicas that share a data directory save the same schema at the same
// moment; neither may fail for the other's temporary file.
func TestSaveSchemaConcurrently(t *testing.T) {
	s, err := schemas.Parse("t", `{"type":"record","name":"R","fields":[{"name":"id","type":"long"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			r := &Runner{cfg: config{dataDir: dir}}
			errs <- r.saveSchema(1, s)
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "schemas", "1.avsc"))
	if err != nil || string(got) != s.Published() {
		t.Fatalf("saved schema %q, %v", got, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "schemas", "*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

package runtime

import (
	"slices"
	"testing"
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

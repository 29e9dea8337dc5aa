package runtime

import (
	"hash/fnv"
	"testing"
)

// TestIdentityIsFNV1a checks the hand-inlined hash against the standard
// library's FNV-1a over the same bytes, so persisted windows (refilled from
// the change log) and live ones agree.
func TestIdentityIsFNV1a(t *testing.T) {
	for _, c := range [][2]string{{"", ""}, {"lsn=34078720,txId=601", "101"}, {"file=mysql-bin.000003,pos=154,row=0", "k\x00y"}} {
		h := fnv.New64a()
		h.Write([]byte(c[0]))
		h.Write([]byte{0})
		h.Write([]byte(c[1]))
		if got, want := identity(c[0], c[1]), h.Sum64(); got != want {
			t.Errorf("identity(%q, %q) = %x, want %x", c[0], c[1], got, want)
		}
	}
	if identity("a", "bc") == identity("ab", "c") {
		t.Error("the separator does not keep position and key apart")
	}
	if n := testing.AllocsPerRun(100, func() { identity("lsn=1,txId=2", "101") }); n != 0 {
		t.Errorf("identity allocates %v times", n)
	}
}

func TestWindowForgetsOldest(t *testing.T) {
	w := newWindow(3)
	for i := uint64(1); i <= 4; i++ {
		w.add(i)
	}
	if w.has(1) || !w.has(2) || !w.has(4) {
		t.Fatal("a full window must forget exactly its oldest identity")
	}
}

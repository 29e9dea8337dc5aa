package cdc

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// The int64 fast path of decimals writes what the big.Int path writes.
func TestSmallDecimalsMatchBig(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []int64{0, 1, -1, 9, 10, -10, 12345, -12345, math.MaxInt64, math.MinInt64, 1 << 40}
	for range 2000 {
		values = append(values, r.Int64()>>r.IntN(63))
	}
	for _, v := range values {
		for _, size := range []int{1, 2, 4, 8} {
			b := binary.BigEndian.AppendUint64(nil, uint64(v))[8-size:]
			for _, scale := range []int{0, 1, 2, 5, 18, 19, 20, 21, 33, 40, 52, 53, 60} {
				typ := &avroType{kind: avroBytes, logical: "decimal", scale: scale}
				fast, err := appendAvroDecimal(nil, typ, b)
				if err != nil {
					t.Fatal(err)
				}
				unscaled, _ := twosComplement(b)
				if want := appendDecimal(nil, unscaled, scale); string(fast) != string(want) {
					t.Fatalf("%x scale %d: %s, big.Int path %s", b, scale, fast, want)
				}
			}
		}
	}
}

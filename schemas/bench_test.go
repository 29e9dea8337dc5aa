package schemas

import (
	"context"
	"testing"
)

func benchOrder() (*Order, Meta) {
	note := "leave at the door"
	return &Order{"o-000123", "c-42", 129900, "EUR", 3, &note},
		Meta{ValidFrom: 1_709_285_400_123_456, SystemFrom: 1_709_285_401_623_456}
}

func BenchmarkEncode(b *testing.B) {
	s := loadOrder(b)
	enc, err := NewEncoder(s, 1)
	if err != nil {
		b.Fatal(err)
	}
	row, meta := benchOrder()
	dst, err := enc.Append(nil, row, meta)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for b.Loop() {
		dst, err = enc.Append(dst[:0], row, meta)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMap(b *testing.B) {
	ctx := context.Background()
	r := startRegistry(b)
	s := loadOrder(b)
	id, err := r.Register(ctx, "orders-value", s, CompatBackward)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := NewEncoder(s, id)
	if err != nil {
		b.Fatal(err)
	}
	row, meta := benchOrder()
	wire, err := enc.Append(nil, row, meta)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := r.DecodeMap(ctx, wire); err != nil { // warm the schema cache
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.DecodeMap(ctx, wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	ctx := context.Background()
	r := startRegistry(b)
	s := loadOrder(b)
	id, err := r.Register(ctx, "orders-value", s, CompatBackward)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := NewEncoder(s, id)
	if err != nil {
		b.Fatal(err)
	}
	in, meta := benchOrder()
	wire, err := enc.Append(nil, in, meta)
	if err != nil {
		b.Fatal(err)
	}
	var row Order
	if _, _, err := r.Decode(ctx, wire, &row); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Decode(ctx, wire, &row); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWalk is the cost the hardening adds to every decode.
func BenchmarkWalk(b *testing.B) {
	s := loadOrder(b)
	enc, err := NewEncoder(s, 1)
	if err != nil {
		b.Fatal(err)
	}
	row, meta := benchOrder()
	wire, err := enc.Append(nil, row, meta)
	if err != nil {
		b.Fatal(err)
	}
	body := wire[headerSize:]
	sh, err := compile(s.pub)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := walkBody(sh, body, 6); err != nil {
			b.Fatal(err)
		}
	}
}

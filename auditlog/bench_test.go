package auditlog

import (
	"bytes"
	"fmt"
	"testing"
)

const benchBatch = 500

// benchEntries is a batch shaped like the runtime's: 40-byte keys, ~200-byte
// Confluent-framed payloads.
func benchEntries() []Entry {
	b := make([]Entry, benchBatch)
	for i := range b {
		payload := append([]byte{0, 0, 0, 0, 7}, bytes.Repeat([]byte{byte(i)}, 195)...)
		b[i] = Entry{
			ValidFrom: 1_690_000_000_000_000 + int64(i),
			Op:        OpAssert,
			Key:       []byte(fmt.Sprintf("customer-%031d", i)),
			Payload:   payload,
			Prov: Provenance{Topic: "orders.cdc", Partition: 0, Offset: int64(i),
				SourcePosition: fmt.Sprintf("lsn=%d,txId=%d", 34078720+i, 601), SchemaID: 7},
		}
	}
	return b
}

func batchBytes(b []Entry) int64 {
	var n int64
	for i := range b {
		n += frameHeaderSize + int64(frameLen(&b[i]))
	}
	return n
}

func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%s", map[bool]string{false: "off", true: "on"}[sync]), func(b *testing.B) {
			l := mustOpen(b, b.TempDir(), SyncEachAppend(sync))
			defer l.Close()
			batch := benchEntries()
			b.SetBytes(batchBytes(batch))
			b.ReportAllocs()
			seq := uint64(0)
			for b.Loop() {
				for i := range batch {
					seq++
					batch[i].Seq = seq
					batch[i].SystemTime = int64(seq)
				}
				if err := l.Append(batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// benchLog writes 200 batches (100,000 entries) for the read benchmarks.
func benchLog(b *testing.B) (string, int64) {
	dir := b.TempDir()
	l := mustOpen(b, dir, SyncEachAppend(false))
	batch := benchEntries()
	seq := uint64(0)
	for range 200 {
		for i := range batch {
			seq++
			batch[i].Seq = seq
			batch[i].SystemTime = int64(seq)
		}
		if err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return dir, 200 * batchBytes(batch)
}

func BenchmarkScan(b *testing.B) {
	dir, size := benchLog(b)
	l := mustOpen(b, dir)
	defer l.Close()
	b.SetBytes(size)
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		if err := l.Scan(1, func(e *Entry) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkVerify(b *testing.B) {
	dir, size := benchLog(b)
	b.SetBytes(size)
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		rep, err := Verify(dir)
		if err != nil {
			b.Fatal(err)
		}
		n += rep.Entries
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}

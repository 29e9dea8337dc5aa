package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math"

	"github.com/parquet-go/parquet-go"
)

// digester hashes a file's logical content: a header naming the layout,
// then every row in a canonical encoding that depends only on the values
// (see the package doc), so the file read back and the rows re-derived
// from the log hash alike whatever encoder wrote the bytes.
type digester struct {
	h   hash.Hash
	buf []byte
}

const digestHeader = "meshlet snapshot rows v1\n"

func newDigester(l *layout) *digester {
	d := &digester{h: sha256.New()}
	d.h.Write([]byte(digestHeader))
	d.h.Write([]byte(l.schema.String()))
	d.h.Write([]byte{'\n'})
	return d
}

// row appends row's canonical encoding to the hash.
func (d *digester) row(row parquet.Row) {
	d.buf = appendCanonical(d.buf[:0], row)
	d.h.Write(d.buf)
}

func (d *digester) sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// appendCanonical encodes a flat row: per value, in column order, 0 for
// null, or 1 and the value: booleans one byte, numbers big-endian (floats
// by their IEEE 754 bits), byte arrays a uvarint length and the bytes.
func appendCanonical(b []byte, row parquet.Row) []byte {
	for _, v := range row {
		if v.IsNull() {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		switch v.Kind() {
		case parquet.Boolean:
			if v.Boolean() {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case parquet.Int32:
			b = binary.BigEndian.AppendUint32(b, uint32(v.Int32()))
		case parquet.Int64:
			b = binary.BigEndian.AppendUint64(b, uint64(v.Int64()))
		case parquet.Float:
			b = binary.BigEndian.AppendUint32(b, math.Float32bits(v.Float()))
		case parquet.Double:
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v.Double()))
		default: // ByteArray, FixedLenByteArray
			ba := v.ByteArray()
			b = binary.AppendUvarint(b, uint64(len(ba)))
			b = append(b, ba...)
		}
	}
	return b
}

// contentDigest combines the files' digests, in manifest order.
func contentDigest(files []File) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(string(f.Kind) + " " + f.Digest + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

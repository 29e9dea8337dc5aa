package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"io"
)

// ocfWriter writes an Avro object container file (Avro 1.11 spec,
// "Object Container Files"): the magic "Obj\x01", a metadata map holding
// avro.schema and avro.codec, a random 16-byte sync marker, then blocks of
// (count, byte size, records, sync). Records are Avro binary bodies copied
// as the change log holds them, so nothing is re-encoded; blocks are
// deflate-compressed (raw RFC 1951, as the spec's "deflate" codec says).
type ocfWriter struct {
	w     *bufio.Writer
	sync  [16]byte
	block bytes.Buffer
	count int
	zbuf  bytes.Buffer
	z     *flate.Writer
	err   error
}

const ocfBlockBytes = 256 << 10

func newOCFWriter(w io.Writer, schemaJSON string) (*ocfWriter, error) {
	o := &ocfWriter{w: bufio.NewWriterSize(w, 1<<20)}
	if _, err := rand.Read(o.sync[:]); err != nil {
		return nil, err
	}
	z, err := flate.NewWriter(&o.zbuf, flate.DefaultCompression)
	if err != nil {
		return nil, err
	}
	o.z = z
	h := []byte("Obj\x01")
	h = binary.AppendVarint(h, 2) // one map block of two entries
	for _, kv := range [][2]string{{"avro.schema", schemaJSON}, {"avro.codec", "deflate"}} {
		h = appendAvroBytes(h, kv[0])
		h = appendAvroBytes(h, kv[1])
	}
	h = binary.AppendVarint(h, 0) // end of map
	h = append(h, o.sync[:]...)
	_, o.err = o.w.Write(h)
	return o, o.err
}

// appendAvroBytes appends an Avro string/bytes: a zigzag length, then the bytes.
func appendAvroBytes(b []byte, s string) []byte {
	b = binary.AppendVarint(b, int64(len(s)))
	return append(b, s...)
}

// append adds one record (an Avro body of the file's schema).
func (o *ocfWriter) append(body []byte) error {
	if o.err != nil {
		return o.err
	}
	o.block.Write(body)
	o.count++
	if o.block.Len() >= ocfBlockBytes {
		o.flushBlock()
	}
	return o.err
}

func (o *ocfWriter) flushBlock() {
	if o.count == 0 || o.err != nil {
		return
	}
	o.zbuf.Reset()
	o.z.Reset(&o.zbuf)
	if _, o.err = o.z.Write(o.block.Bytes()); o.err != nil {
		return
	}
	if o.err = o.z.Close(); o.err != nil {
		return
	}
	var hdr []byte
	hdr = binary.AppendVarint(hdr, int64(o.count))
	hdr = binary.AppendVarint(hdr, int64(o.zbuf.Len()))
	o.w.Write(hdr)
	o.w.Write(o.zbuf.Bytes())
	_, o.err = o.w.Write(o.sync[:])
	o.block.Reset()
	o.count = 0
}

// close writes the last block and flushes; it does not close the writer.
func (o *ocfWriter) close() error {
	o.flushBlock()
	if o.err != nil {
		return o.err
	}
	return o.w.Flush()
}

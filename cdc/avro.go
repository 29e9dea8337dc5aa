package cdc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// AvroSource is what the debezium-avro decoder reads Confluent wire-format
// Avro through. cdc holds no Avro codec of its own: the caller provides
// one (the runtime wraps schemas.Registry, whose decoder is hardened
// against hostile input). See the package doc for the exact contract.
type AvroSource interface {
	// DecodeMap decodes one wire-format message (magic byte 0, 4-byte
	// big-endian schema id, Avro body) with the writer schema it names,
	// into a map keyed by field name. Values are nil, bool, the Go integer
	// and float types, string, []byte, [N]byte (fixed), map[string]any
	// (records and Avro maps), []any, *big.Rat (decimal), time.Time and
	// time.Duration (Avro's date, time and timestamp logical types). A
	// union's value may be the branch's value itself, or a one-entry map
	// from the branch's name to it, as hamba/avro writes for unions with a
	// named branch.
	DecodeMap(ctx context.Context, wire []byte) (id int, fields map[string]any, err error)
	// SchemaText returns the writer schema registered under id, as the
	// registry stores it: Kafka Connect's parameters ("connect.name",
	// "connect.parameters"), which name Debezium's logical types, are read
	// from it.
	SchemaText(ctx context.Context, id int) (string, error)
}

// Errors from an AvroSource that match ErrMalformed mean the input can
// never decode (bad body, unknown schema id): the record goes to the
// dead-letter topic. Any other error is returned as it is, wrapped but
// not as ErrMalformed, so that a registry outage is retried and not
// mistaken for bad data.

// debeziumAvro decodes Debezium envelopes written by Confluent's
// AvroConverter: it turns key and value into JSON, reading the Avro bytes
// itself with the writer schema (SchemaText), and reads the result with
// the same rules as debezium-json.
type debeziumAvro struct {
	src AvroSource

	mu      sync.RWMutex
	schemas map[int]*avroType // parsed writer schemas; registered ids never change
}

func newDebeziumAvro(o options) (MultiDecoder, error) {
	if o.avro == nil {
		return nil, errors.New("cdc: format debezium-avro needs a schema registry: pass cdc.WithAvro")
	}
	return &debeziumAvro{src: o.avro, schemas: make(map[int]*avroType)}, nil
}

func (d *debeziumAvro) Decode(key, value []byte, c *Change) error {
	return d.decode(context.Background(), key, value, c)
}

func (d *debeziumAvro) DecodeAll(ctx context.Context, key, value []byte, dst []Change) ([]Change, error) {
	n := len(dst)
	dst = grow(dst)
	if err := d.decode(ctx, key, value, &dst[n]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

func (d *debeziumAvro) decode(ctx context.Context, key, value []byte, c *Change) error {
	*c = Change{}
	// Key and value are rendered into one pooled buffer; decodeDebezium
	// copies out what it keeps.
	bp := renderPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledRender {
			renderPool.Put(bp)
		}
	}()
	buf := (*bp)[:0]
	var keyJSON []byte
	if len(key) > 0 {
		var err error
		if buf, _, err = d.toJSON(ctx, key, buf); err != nil {
			return within(err, "key")
		}
		keyJSON = buf
	}
	var valueJSON, name []byte
	if len(value) > 0 {
		var err error
		start := len(buf)
		if buf, name, err = d.toJSON(ctx, value, buf); err != nil {
			return err
		}
		valueJSON = buf[start:]
	}
	*bp = buf
	return decodeDebezium(keyJSON, true, valueJSON, name, c)
}

var renderPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledRender keeps one huge message's buffer out of the pool.
const maxPooledRender = 1 << 20

// toJSON decodes one wire-format message and renders it as JSON appended
// to buf, with the full name of its top-level record.
func (d *debeziumAvro) toJSON(ctx context.Context, wire, buf []byte) (out, name []byte, err error) {
	if len(wire) < 5 {
		return buf, nil, &DecodeError{Reason: fmt.Sprintf("%d bytes, shorter than the 5-byte Confluent header", len(wire))}
	}
	if wire[0] != 0 {
		return buf, nil, &DecodeError{Reason: fmt.Sprintf("magic byte %#x, want 0 (Confluent wire format)", wire[0])}
	}
	id := int(binary.BigEndian.Uint32(wire[1:5]))
	t, err := d.schema(ctx, id)
	if err != nil {
		return buf, nil, err
	}
	// The body is read straight into JSON: no map of Go values in between.
	out, err = appendAvroBinary(buf, t, wire[5:])
	if err != nil {
		return buf, nil, &DecodeError{Reason: fmt.Sprintf("schema id %d: decode", id), Err: err}
	}
	return out, t.nameBytes, nil
}

// schema returns the parsed writer schema of id, fetching it once.
func (d *debeziumAvro) schema(ctx context.Context, id int) (*avroType, error) {
	d.mu.RLock()
	t := d.schemas[id]
	d.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	text, err := d.src.SchemaText(ctx, id)
	if err != nil {
		return nil, sourceError(id, "fetch", err)
	}
	if t, err = parseAvroSchema(text); err != nil {
		// Every record written with this schema fails the same way.
		return nil, &DecodeError{Reason: fmt.Sprintf("schema id %d cannot be read", id), Err: err}
	}
	if t.kind != avroRecord {
		return nil, &DecodeError{Reason: fmt.Sprintf("schema id %d is %s, want a record", id, t.kind)}
	}
	d.mu.Lock()
	if prev := d.schemas[id]; prev != nil {
		t = prev
	} else {
		d.schemas[id] = t
	}
	d.mu.Unlock()
	return t, nil
}

// sourceError keeps an AvroSource's own classification: malformed input
// becomes a DecodeError, anything else stays retryable.
func sourceError(id int, what string, err error) error {
	if errors.Is(err, ErrMalformed) {
		return &DecodeError{Reason: fmt.Sprintf("schema id %d: %s", id, what), Err: err}
	}
	return fmt.Errorf("cdc: debezium-avro: schema id %d: %s: %w", id, what, err)
}

package cdc

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Decoder turns one Kafka record (key and value bytes) into a Change. It fills the
// caller's *Change, resetting it fully first, so a batch can reuse a slice of Changes.
// Decoders are safe for concurrent use; the only state one keeps between
// calls is an Avro decoder's cache of parsed writer schemas.
//
// Some formats carry several changes in one record (a Canal message holds
// every row of a statement); Decode refuses those with ErrMultiRow. Every
// Decoder that NewDecoder returns is also a MultiDecoder, and the runtime
// decodes with DecodeAll.
type Decoder interface {
	Decode(key, value []byte, c *Change) error
}

// MultiDecoder decodes a record into every change it holds.
//
// DecodeAll appends the record's changes to dst and returns the extended
// slice; on error it returns dst unchanged (elements past its length may
// have been written). Appended Changes are reset fully first, so a batch
// can reuse one slice across records. ctx bounds the schema-registry
// lookups of the Avro decoders; the JSON decoders ignore it.
type MultiDecoder interface {
	Decoder
	DecodeAll(ctx context.Context, key, value []byte, dst []Change) ([]Change, error)
}

// ErrMultiRow is returned by Decode for a record that holds more than one
// change. It is not ErrMalformed: the record is fine, DecodeAll reads it.
var ErrMultiRow = errors.New("cdc: record holds several changes; decode it with DecodeAll")

// Manifest names of the formats.
const (
	formatDebeziumJSON = "debezium-json"
	formatDebeziumAvro = "debezium-avro"
	formatCanalJSON    = "canal-json"
	formatMaxwellJSON  = "maxwell-json"
	formatOggJSON      = "ogg-json"
	formatMeshletAvro  = "meshlet-avro"
)

// Option configures NewDecoder. Options a format has no use for are ignored,
// so a runtime can pass the same options for every input port.
type Option func(*options)

type options struct {
	avro AvroSource
}

// WithAvro gives the debezium-avro and meshlet-avro decoders the
// registry-backed source they decode through; see AvroSource.
func WithAvro(src AvroSource) Option {
	return func(o *options) { o.avro = src }
}

var decoders = map[string]func(options) (MultiDecoder, error){
	formatDebeziumJSON: func(options) (MultiDecoder, error) { return debeziumJSON{}, nil },
	formatCanalJSON:    func(options) (MultiDecoder, error) { return canalJSON{}, nil },
	formatMaxwellJSON:  func(options) (MultiDecoder, error) { return maxwellJSON{}, nil },
	formatOggJSON:      func(options) (MultiDecoder, error) { return oggJSON{}, nil },
	formatDebeziumAvro: newDebeziumAvro,
	formatMeshletAvro:  newMeshletAvro,
}

// NewDecoder returns the decoder for a manifest format name. The result
// also implements MultiDecoder.
func NewDecoder(format string, opts ...Option) (Decoder, error) {
	newDec, ok := decoders[format]
	if !ok {
		return nil, fmt.Errorf("cdc: unknown format %q (known: %s)", format, strings.Join(Formats(), ", "))
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return newDec(o)
}

// DecodeAll decodes one record with d, through its DecodeAll when it is a
// MultiDecoder and through Decode otherwise.
func DecodeAll(ctx context.Context, d Decoder, key, value []byte, dst []Change) ([]Change, error) {
	if md, ok := d.(MultiDecoder); ok {
		return md.DecodeAll(ctx, key, value, dst)
	}
	n := len(dst)
	dst = grow(dst)
	if err := d.Decode(key, value, &dst[n]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

// grow appends one element to dst, reusing spare capacity; the caller
// resets it.
func grow(dst []Change) []Change {
	if len(dst) < cap(dst) {
		return dst[:len(dst)+1]
	}
	return append(dst, Change{})
}

// decodeOne adapts a single-change decode function to DecodeAll.
func decodeOne(key, value []byte, dst []Change, decode func(key, value []byte, c *Change) error) ([]Change, error) {
	n := len(dst)
	dst = grow(dst)
	if err := decode(key, value, &dst[n]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

// Formats returns the known format names, sorted.
func Formats() []string {
	names := make([]string, 0, len(decoders))
	for name := range decoders {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ErrMalformed classifies input that no retry can fix: the runtime sends such
// a record to the dead-letter topic instead of stopping or retrying.
var ErrMalformed = errors.New("malformed change event")

// DecodeError says which part of a record was wrong and why. It names no
// Kafka coordinates: the caller knows them and adds them.
type DecodeError struct {
	// Field is the JSON path of the offending value inside the record value,
	// e.g. "payload.source.ts_ms" or "op"; "key" means the record key, and ""
	// the value as a whole.
	Field  string
	Reason string
	Err    error // underlying cause, if any
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	} else {
		b.WriteString("change event: ")
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap makes every DecodeError match ErrMalformed, and its cause if it has one.
func (e *DecodeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrMalformed, e.Err}
	}
	return []error{ErrMalformed}
}

// at names the field of an error raised below the level that knows the path.
// Paths are only built on this failure path, never while decoding.
func at(err error, field string) error {
	if de, ok := err.(*DecodeError); ok && de.Field == "" {
		de.Field = field
	}
	return err
}

// within prefixes the Field of an error raised below the level that knows
// the enclosing path, e.g. "weight" inside "data[2]" becomes "data[2].weight".
func within(err error, prefix string) error {
	if de, ok := err.(*DecodeError); ok {
		switch {
		case de.Field == "":
			de.Field = prefix
		case de.Field[0] == '[':
			de.Field = prefix + de.Field
		default:
			de.Field = prefix + "." + de.Field
		}
	}
	return err
}

package cdc

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Decoder turns one Kafka record (key and value bytes) into a Change. It fills the
// caller's *Change, resetting it fully first, so a batch can reuse a slice of Changes.
// Decoders keep no state between calls and are safe for concurrent use.
type Decoder interface {
	Decode(key, value []byte, c *Change) error
}

// formatDebeziumJSON is the manifest name of Debezium's JSON converter output,
// with or without the schemas.enable wrapper.
const formatDebeziumJSON = "debezium-json"

var decoders = map[string]Decoder{
	formatDebeziumJSON: debeziumJSON{},
}

// NewDecoder returns the decoder for a manifest format name.
func NewDecoder(format string) (Decoder, error) {
	if d, ok := decoders[format]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("cdc: unknown format %q (known: %s)", format, strings.Join(Formats(), ", "))
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

package cdc

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/meshlet/meshlet/internal/jsontext"
)

// AvroRenderings renders one wire-format message both ways: through the
// source's DecodeMap and appendAvro, the path debezium-avro took before it
// read the bytes itself, and with appendAvroBinary. The Avro fuzz target
// holds the two to the same JSON. only, when given, picks one way: false
// the map, true the bytes.
func AvroRenderings(ctx context.Context, src AvroSource, wire []byte, only ...bool) (viaMap []byte, mapErr error, direct []byte, directErr error) {
	if len(wire) < 5 || wire[0] != 0 {
		err := errors.New("not wire format")
		return nil, err, nil, err
	}
	text, err := src.SchemaText(ctx, int(binary.BigEndian.Uint32(wire[1:5])))
	if err != nil {
		return nil, err, nil, err
	}
	t, err := parseAvroSchema(text)
	if err != nil {
		return nil, err, nil, err
	}
	if len(only) == 0 || !only[0] {
		if _, fields, err := src.DecodeMap(ctx, wire); err != nil {
			mapErr = err
		} else {
			viaMap, mapErr = appendAvro(nil, t, fields, 0)
		}
	}
	if len(only) == 0 || only[0] {
		direct, directErr = appendAvroBinary(nil, t, wire[5:])
	}
	return viaMap, mapErr, direct, directErr
}

// MeshletViaMap decodes a meshlet-avro event the way the decoder did
// before it read the bytes itself: through the source's DecodeMap and
// appendAvro. FuzzMeshletAvro holds the two to the same Change.
func MeshletViaMap(ctx context.Context, dec Decoder, key, value []byte) (Change, error) {
	d := dec.(*meshletAvro)
	var c Change
	if len(key) == 0 || len(value) < 5 || value[0] != 0 {
		return c, errors.New("not an event the fuzz target compares")
	}
	id := int(binary.BigEndian.Uint32(value[1:5]))
	s, err := d.schema(ctx, id)
	if err != nil {
		return c, err
	}
	_, fields, err := d.src.DecodeMap(ctx, value)
	if err != nil {
		return c, err
	}
	deleted, ok := fields[metaDeleted].(bool)
	if !ok {
		return c, errors.New("_deleted is not a boolean")
	}
	validFrom, err := microsTime(fields[metaValidFrom])
	if err != nil {
		return c, err
	}
	c.Key = jsontext.AppendString(nil, string(key))
	c.Kind, c.CommitTime, c.Op = KindChange, validFrom, OpDelete
	if !deleted {
		c.Op = OpUpdate
		if c.After, err = appendAvro(nil, s.row, fields, 0); err != nil {
			return c, err
		}
	}
	c.Source = Source{Connector: "meshlet", Name: s.name}
	return c, nil
}

// AvroRenderer parses the writer schema of wire once and returns a
// function that renders messages of that schema through the map (direct
// false) or from the bytes, for benchmarks.
func AvroRenderer(ctx context.Context, src AvroSource, wire []byte) (func(wire []byte, direct bool) ([]byte, error), error) {
	text, err := src.SchemaText(ctx, int(binary.BigEndian.Uint32(wire[1:5])))
	if err != nil {
		return nil, err
	}
	t, err := parseAvroSchema(text)
	if err != nil {
		return nil, err
	}
	var buf []byte
	return func(wire []byte, direct bool) ([]byte, error) {
		if direct {
			buf, err = appendAvroBinary(buf[:0], t, wire[5:])
			return buf, err
		}
		_, fields, err := src.DecodeMap(ctx, wire)
		if err != nil {
			return nil, err
		}
		buf, err = appendAvro(buf[:0], t, fields, 0)
		return buf, err
	}, nil
}

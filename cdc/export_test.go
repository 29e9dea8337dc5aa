package cdc

import (
	"context"
	"encoding/binary"
	"errors"
)

// AvroRenderings renders one wire-format message both ways: through the
// source's DecodeMap and appendAvro, the path debezium-avro took before it
// read the bytes itself, and with appendAvroBinary. The Avro fuzz target
// holds the two to the same JSON.
func AvroRenderings(ctx context.Context, src AvroSource, wire []byte) (viaMap []byte, mapErr error, direct []byte, directErr error) {
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
	if _, fields, err := src.DecodeMap(ctx, wire); err != nil {
		mapErr = err
	} else {
		viaMap, mapErr = appendAvro(nil, t, fields, 0)
	}
	direct, directErr = appendAvroBinary(nil, t, wire[5:])
	return viaMap, mapErr, direct, directErr
}

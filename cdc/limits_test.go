package cdc

import (
	"testing"

	"github.com/meshlet/meshlet/schemas"
)

// The input's Avro reader takes what the output's decoder takes: one size
// limit for the whole path (schemas.MaxEventBytes).
func TestAvroLimitIsTheEventLimit(t *testing.T) {
	if maxAvroBytes != schemas.MaxEventBytes {
		t.Fatalf("cdc reads Avro strings and bytes up to %d bytes, schemas up to %d: they must agree", maxAvroBytes, schemas.MaxEventBytes)
	}
}

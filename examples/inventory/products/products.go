// Package inventory is the example data product: it publishes the inventory
// products table, captured by Debezium, as a bitemporal Avro stream.
//
// It is written the way a domain team would write its own product: a row type
// for the table, a handler, and a manifest with the output schema beside it.
package products

import (
	"context"
	"embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/cdc/samples"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/transforms"
)

//go:embed product.yaml schemas/*.avsc
var files embed.FS

// Row is the products table as Debezium captures it.
type Row struct {
	ID          int32    `json:"id"`
	Name        string   `json:"name"`
	Description *string  `json:"description"`
	Weight      *float64 `json:"weight"`
}

// Product is the published record (schemas/product.avsc).
type Product struct {
	ID          int32    `avro:"id"`
	Name        string   `avro:"name"`
	Description *string  `avro:"description"`
	WeightKg    *float64 `avro:"weight_kg"`
}

// Handle publishes each row as a Product, with the name trimmed. A delete
// retracts the product; when the source sent no old row, the key columns
// from the record key still say which product it was.
func Handle(_ context.Context, c transforms.Change[Row]) ([]transforms.Record[Product], error) {
	if c.Op == cdc.OpTruncate {
		return nil, fmt.Errorf("%w: truncate of %s.%s", transforms.ErrUnsupportedOp, c.Source.Schema, c.Source.Table)
	}
	row, deleted := c.After(), false
	if row == nil {
		row, deleted = c.Before(), true
		if row == nil {
			row = c.Key()
		}
	}
	if row == nil {
		return nil, fmt.Errorf("%w: %s without a row or a key", transforms.ErrUnsupportedOp, c.Op)
	}
	p := Product{ID: row.ID, Name: strings.TrimSpace(row.Name), Description: row.Description, WeightKg: row.Weight}
	return []transforms.Record[Product]{{Key: strconv.Itoa(int(row.ID)), Deleted: deleted, Value: p}}, nil
}

// New returns the example product, ready to run.
func New() (*runtime.Product, error) {
	return runtime.NewProduct(files, "product.yaml", transforms.Typed(Handle))
}

// RecordedCDC is a real Debezium capture of the products table, fed to the
// input topic by `meshlet dev`. Its messages have no keys; KeyFields says
// which row columns make the record key.
func RecordedCDC() []byte { return samples.MustRead(samples.DebeziumPostgres) }

// KeyFields are the key columns of the products table.
var KeyFields = []string{"id"}

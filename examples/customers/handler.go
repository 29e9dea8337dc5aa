package main

import (
	"context"
	"embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/transforms"
)

//go:embed product.yaml schemas/*.avsc
var files embed.FS

// Row is the customers table as Debezium captures it.
type Row struct {
	ID      int64   `json:"id"`
	Name    string  `json:"name"`
	Email   *string `json:"email"`
	Country string  `json:"country"`
}

// Customer is the published record (schemas/customer.avsc).
type Customer struct {
	ID      int64   `avro:"id"`
	Name    string  `avro:"name"`
	Email   *string `avro:"email"`
	Country string  `avro:"country"`
}

// KeyFields are the customers table's key columns.
var KeyFields = []string{"id"}

// Handle publishes each customer, the country code upper-cased. A delete
// retracts the customer.
func Handle(_ context.Context, c transforms.Change[Row]) ([]transforms.Record[Customer], error) {
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
	cu := Customer{ID: row.ID, Name: row.Name, Email: row.Email, Country: strings.ToUpper(row.Country)}
	return []transforms.Record[Customer]{{Key: strconv.FormatInt(row.ID, 10), Deleted: deleted, Value: cu}}, nil
}

// New returns the product.
func New() (*runtime.Product, error) {
	return runtime.NewProduct(files, "product.yaml", transforms.Typed(Handle))
}

// Command inventory is the example data product, built the way a domain
// team builds its own: the product is package products, and this binary is
// Meshlet's whole command line around it (see package cli).
//
//	go run ./examples/inventory dev --once   # on the embedded stack, with the recorded capture
//	go run ./examples/inventory run          # against a cluster
package main

import (
	"github.com/meshlet/meshlet/cdc/samples"
	"github.com/meshlet/meshlet/cli"
	"github.com/meshlet/meshlet/examples/inventory/products"
)

func main() {
	cli.Main(products.New, cli.Recorded("products-cdc", "cdc/samples/"+samples.DebeziumPostgres, products.RecordedCDC(), products.KeyFields...))
}

// Command orders is the example data product that joins, aggregates and
// fans out (package orders): the Debezium tutorial's orders enriched with
// their customers, and every customer's totals, on two output ports. This
// binary is Meshlet's whole command line around it (see package cli).
//
//	go run ./examples/orders dev --once   # on the embedded stack, with the recorded capture
//	go run ./examples/orders run          # against a cluster
package main

import (
	"github.com/meshlet/meshlet/cli"
	"github.com/meshlet/meshlet/examples/orders/orders"
)

func main() {
	var opts []cli.Option
	for _, r := range orders.Recorded() {
		opts = append(opts, cli.Recorded(r.Port, r.Name, r.Data, r.KeyFields...))
	}
	for port, column := range orders.Routes {
		opts = append(opts, cli.Route(port, column))
	}
	cli.Main(orders.New, opts...)
}

// Command customers is the example product with personal data: names and
// emails are sealed per customer in the change log and masked on the
// output topic, and `meshlet forget` erases a customer. It is one main
// package, as `meshlet init` scaffolds a product:
//
//	go run ./examples/customers dev --once
package main

import (
	_ "embed"

	"github.com/meshlet/meshlet/cli"
)

//go:embed testdata/customers.jsonl
var recorded []byte

func main() {
	cli.Main(New, cli.Recorded("customers-cdc", "examples/customers/testdata/customers.jsonl", recorded, KeyFields...))
}

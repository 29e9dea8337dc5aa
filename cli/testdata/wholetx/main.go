// Command wholetx is the example inventory product with a manifest the
// test writes (its input port asking for whole source transactions): the
// crash test kills it as a real process. MESHLET_TEST_PRODUCT names the
// directory holding product.yaml and its schema.
package main

import (
	"os"

	"github.com/meshlet/meshlet/cli"
	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/transforms"
)

func main() {
	cli.Main(func() (*runtime.Product, error) {
		return runtime.NewProduct(os.DirFS(os.Getenv("MESHLET_TEST_PRODUCT")), "product.yaml", transforms.Typed(products.Handle))
	})
}

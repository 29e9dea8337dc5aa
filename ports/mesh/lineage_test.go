package mesh

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// TestMeshLineage joins the inventory product's output to the orders
// product's input, and shows the raw CDC topics no product produces as
// nodes of their own.
func TestMeshLineage(t *testing.T) {
	_, rdb := redistest.Start(t)
	reg := New(rdb)
	ctx := context.Background()
	for _, p := range []Product{orders(), inventory()} {
		if err := reg.Register(ctx, p, "0"); err != nil {
			t.Fatal(err)
		}
	}
	g, err := reg.Lineage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Graph{
		Nodes: []Node{
			{ID: inventoryURN, Kind: KindProduct, Name: "Inventory products", Domain: "inventory"},
			{ID: ordersURN, Kind: KindProduct, Name: "Shop orders", Domain: "shop"},
			{ID: "topic:dbserver1.inventory.products", Kind: KindTopic, Name: "dbserver1.inventory.products"},
			{ID: "topic:dbserver1.shop.orders", Kind: KindTopic, Name: "dbserver1.shop.orders"},
		},
		Edges: []Edge{
			{From: "topic:dbserver1.inventory.products", To: inventoryURN, Topic: "dbserver1.inventory.products", InputPort: "products-cdc"},
			{From: "topic:dbserver1.shop.orders", To: ordersURN, Topic: "dbserver1.shop.orders", InputPort: "orders-cdc"},
			{From: inventoryURN, To: ordersURN, Topic: "inventory.products.v1", OutputPort: "products", InputPort: "catalog"},
		},
	}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("Lineage:\n got %+v\nwant %+v", g, want)
	}
	if up := g.Upstream(ordersURN); len(up) != 2 || up[0].From != "topic:dbserver1.shop.orders" || up[1].From != inventoryURN {
		t.Errorf("Upstream(orders) = %+v", up)
	}
	if down := g.Downstream(inventoryURN); len(down) != 1 || down[0].To != ordersURN {
		t.Errorf("Downstream(inventory) = %+v", down)
	}
	if down := g.Downstream(ordersURN); len(down) != 0 {
		t.Errorf("Downstream(orders) = %+v, want none", down)
	}

	golden := filepath.Join("testdata", "lineage.dot")
	if *update {
		if err := os.WriteFile(golden, []byte(g.DOT()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if g.DOT() != string(b) {
		t.Fatalf("DOT differs from %s (go test -update to accept):\n%s", golden, g.DOT())
	}
}

// TestMeshLineageJoins covers the joins two products cannot show: two
// producers of one topic, fan-out to several readers, a product reading
// its own output, and names that need escaping in DOT.
func TestMeshLineageJoins(t *testing.T) {
	ps := []Product{
		{URN: "urn:p:a", Name: `A "quoted" \ name`, Outputs: []OutputPort{{Name: "out", Topic: "t"}}},
		{URN: "urn:p:b", Name: "B", Outputs: []OutputPort{{Name: "out-b", Topic: "t"}}},
		{URN: "urn:p:c", Name: "C", Inputs: []InputPort{{Name: "in", Topic: "t"}},
			Outputs: []OutputPort{{Name: "loop", Topic: "self"}}},
		{URN: "urn:p:d", Name: "D", Inputs: []InputPort{{Name: "in-d", Topic: "t"}, {Name: "again", Topic: "self"}}},
		{URN: "urn:p:e", Name: "E", Inputs: []InputPort{{Name: "me", Topic: "self"}}},
	}
	ps[2].Inputs = append(ps[2].Inputs, InputPort{Name: "back", Topic: "self"})
	g := lineage(ps)
	want := []Edge{
		{From: "urn:p:a", To: "urn:p:c", Topic: "t", OutputPort: "out", InputPort: "in"},
		{From: "urn:p:a", To: "urn:p:d", Topic: "t", OutputPort: "out", InputPort: "in-d"},
		{From: "urn:p:b", To: "urn:p:c", Topic: "t", OutputPort: "out-b", InputPort: "in"},
		{From: "urn:p:b", To: "urn:p:d", Topic: "t", OutputPort: "out-b", InputPort: "in-d"},
		{From: "urn:p:c", To: "urn:p:c", Topic: "self", OutputPort: "loop", InputPort: "back"},
		{From: "urn:p:c", To: "urn:p:d", Topic: "self", OutputPort: "loop", InputPort: "again"},
		{From: "urn:p:c", To: "urn:p:e", Topic: "self", OutputPort: "loop", InputPort: "me"},
	}
	if !reflect.DeepEqual(g.Edges, want) {
		t.Fatalf("edges:\n got %+v\nwant %+v", g.Edges, want)
	}
	if len(g.Nodes) != 5 {
		t.Fatalf("nodes: %+v, want the five products and no topic", g.Nodes)
	}
	wantLine := `  "urn:p:a" [shape=box, label="A \"quoted\" \\ name\nurn:p:a"];` + "\n"
	if dot := g.DOT(); !strings.Contains(dot, wantLine) {
		t.Fatalf("DOT lacks the escaped node %q:\n%s", wantLine, dot)
	}
	if dot := lineage(nil).DOT(); strings.Contains(dot, "->") || !strings.HasSuffix(dot, "}\n") {
		t.Fatalf("empty graph: %q", dot)
	}
}

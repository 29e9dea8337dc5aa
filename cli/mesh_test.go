package cli

import (
	"context"
	"encoding/json"
	"net"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis"
	"github.com/meshlet/meshlet/ports/mesh"
)

// TestMeshCommands registers two products in a real Redis through the
// ports/mesh API, as running products do, and reads them back with the
// meshlet binary.
func TestMeshCommands(t *testing.T) {
	srv, err := localredis.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	reg := mesh.New(rdb)
	ctx := context.Background()

	inventory := mesh.Product{
		URN: "urn:dataproduct:inventory:products", Name: "Inventory products", Domain: "inventory", Version: "1.0.0",
		Owner: mesh.Owner{Name: "Inventory", Email: "inventory-team@example.com"}, Tags: []string{"warehouse"},
		Inputs: []mesh.InputPort{{Name: "products-cdc", Topic: "dbserver1.inventory.products", Format: "debezium-json"}},
		Outputs: []mesh.OutputPort{{Name: "products", Topic: "inventory.products.v1", Contract: "apiVersion: v3.1.0\n",
			Classifications: map[string]string{"name": "public"}}},
	}
	orders := mesh.Product{
		URN: "urn:dataproduct:shop:orders", Name: "Shop orders", Domain: "shop", Version: "2.0.0",
		Owner:  mesh.Owner{Name: "Checkout"},
		Inputs: []mesh.InputPort{{Name: "catalog", Topic: "inventory.products.v1"}},
		Outputs: []mesh.OutputPort{
			{Name: "orders", Topic: "shop.orders.v1", Classifications: map[string]string{"customer_email": "pii"}},
			{Name: "refunds", Topic: "shop.refunds.v1"},
		},
	}
	for _, r := range []struct {
		p        mesh.Product
		instance string
	}{{inventory, "inventory-0"}, {inventory, "inventory-1"}, {orders, "orders-0"}} {
		if err := reg.Register(ctx, r.p, r.instance); err != nil {
			t.Fatal(err)
		}
	}

	out, errOut, code := meshlet(t, "mesh", "list", "--redis", srv.Addr)
	if code != 0 {
		t.Fatalf("mesh list: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 ||
		!regexp.MustCompile(`^URN\s+NAME\s+DOMAIN\s+OWNER\s+INSTANCES\s+OUTPUTS$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^urn:dataproduct:inventory:products\s+Inventory products\s+inventory\s+Inventory\s+2\s+inventory\.products\.v1$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^urn:dataproduct:shop:orders\s+Shop orders\s+shop\s+Checkout\s+1\s+shop\.orders\.v1,shop\.refunds\.v1$`).MatchString(lines[2]) {
		t.Fatalf("mesh list:\n%s", out)
	}
	// Aligned: every column starts where its heading does.
	for _, col := range []struct{ head, row1, row2 string }{{"NAME", "Inventory products", "Shop orders"}, {"INSTANCES", "2", "1"}} {
		at := strings.Index(lines[0], col.head)
		if strings.Index(lines[1], col.row1) != at || strings.Index(lines[2], col.row2) != at {
			t.Errorf("column %s is not aligned:\n%s", col.head, out)
		}
	}

	out, _, code = meshlet(t, "mesh", "search", "--redis", srv.Addr, "PII")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "urn:dataproduct:shop:orders") {
		t.Fatalf("mesh search PII: exit %d\n%s", code, out)
	}
	out, _, code = meshlet(t, "mesh", "search", "--redis", srv.Addr, "nosuchthing")
	if code != 0 || out != "no live data product matches \"nosuchthing\"\n" {
		t.Fatalf("mesh search without hits: exit %d\n%s", code, out)
	}

	// The address from the environment; flags after the query; JSON.
	out, errOut, code = runIn(t, "", []string{"MESHLET_REDIS=" + srv.Addr}, "mesh", "search", "warehouse", "--json")
	var found []mesh.Product
	if err := json.Unmarshal([]byte(out), &found); code != 0 || err != nil || len(found) != 1 ||
		found[0].URN != inventory.URN || len(found[0].Instances) != 2 || found[0].Outputs[0].Contract != "" {
		t.Fatalf("mesh search --json via $MESHLET_REDIS: exit %d, %v\n%s%s", code, err, out, errOut)
	}

	out, _, code = meshlet(t, "mesh", "lineage", "--redis", srv.Addr)
	want := "topic:dbserver1.inventory.products --[dbserver1.inventory.products (-> products-cdc)]--> urn:dataproduct:inventory:products\n" +
		"urn:dataproduct:inventory:products --[inventory.products.v1 (products -> catalog)]--> urn:dataproduct:shop:orders\n"
	if code != 0 || out != want {
		t.Fatalf("mesh lineage: exit %d\n got:\n%s\nwant:\n%s", code, out, want)
	}
	g, err := reg.Lineage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, _, code = meshlet(t, "mesh", "lineage", "--dot", "--redis", srv.Addr)
	if code != 0 || out != g.DOT() {
		t.Fatalf("mesh lineage --dot: exit %d\n%s", code, out)
	}
	out, _, code = meshlet(t, "mesh", "lineage", "--json", "--redis", srv.Addr)
	var got mesh.Graph
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("mesh lineage --json: exit %d, %v\n%s", code, err, out)
	}

	out, _, code = meshlet(t, "mesh", "list", "--redis", srv.Addr, "--prefix", "elsewhere")
	if code != 0 || out != "no live data products in the mesh registry at redis "+srv.Addr+"\n" {
		t.Fatalf("mesh list of an empty registry: exit %d\n%s", code, out)
	}
}

// TestMeshErrors: a Redis that is not there is named; a bad command line
// is a usage error.
func TestMeshErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, args := range [][]string{{"list"}, {"search", "pii"}, {"lineage"}, {"lineage", "--dot"}} {
		out, errOut, code := meshlet(t, append(append([]string{"mesh"}, args...), "--redis", closed)...)
		if code != 1 || out != "" || !strings.Contains(errOut, "mesh registry unreachable: redis "+closed+": ") {
			t.Errorf("mesh %v against %s: exit %d\nstdout:\n%s\nstderr:\n%s", args, closed, code, out, errOut)
		}
	}
	_, errOut, code := runIn(t, "", []string{"MESHLET_REDIS=" + closed}, "mesh", "list")
	if code != 1 || !strings.Contains(errOut, "redis "+closed) {
		t.Errorf("mesh list via $MESHLET_REDIS=%s: exit %d\n%s", closed, code, errOut)
	}
	for _, args := range [][]string{{"search"}, {"lineage", "--dot", "--json"}, {"list", "extra"}} {
		_, errOut, code := meshlet(t, append([]string{"mesh"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "Usage: meshlet mesh "+args[0]) {
			t.Errorf("mesh %v: exit %d, want 2 with usage\n%s", args, code, errOut)
		}
	}
}

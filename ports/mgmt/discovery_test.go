package mgmt

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

type fakeSchemas struct {
	infos []SchemaInfo
	err   error
}

func (f fakeSchemas) Schemas(context.Context) ([]SchemaInfo, error) { return f.infos, f.err }

func TestProductAndContracts(t *testing.T) {
	f := newFixture(t)
	got := decode[map[string]any](t, f.do(t, "GET", "/v1/product", "", ""))
	if !reflect.DeepEqual(got, map[string]any{"id": "shop.orders", "kind": "DataProduct"}) {
		t.Errorf("/v1/product = %v", got)
	}

	list := decode[struct{ Contracts []contractRef }](t, f.do(t, "GET", "/v1/contracts", "", ""))
	want := []contractRef{{Port: "orders", Topic: "shop.orders.v2", ID: "urn:dataproduct:shop:orders:orders", Version: "2.1.0",
		Status: "active", Link: "/v1/contracts/orders"}}
	if !reflect.DeepEqual(list.Contracts, want) {
		t.Errorf("/v1/contracts = %+v\nwant %+v", list.Contracts, want)
	}

	w := f.do(t, "GET", "/v1/contracts/orders", "", "")
	file, err := os.ReadFile("../../contracts/testdata/orders.odcs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if w.Header().Get("Content-Type") != "application/yaml" || w.Body.String() != string(file) {
		t.Errorf("/v1/contracts/orders: %q, body differs from the contract file", w.Header().Get("Content-Type"))
	}
	w = f.do(t, "GET", "/v1/contracts/payments", "", "")
	if w.Code != 404 || !strings.Contains(w.Body.String(), "the ports are orders") {
		t.Errorf("unknown port: %d %s", w.Code, w.Body)
	}
}

func TestSchemas(t *testing.T) {
	f := newFixture(t)
	// Without a registry: the manifest's subjects, and the .avsc it holds.
	got := decode[struct{ Schemas []schemaRef }](t, f.do(t, "GET", "/v1/schemas", "", ""))
	if len(got.Schemas) != 1 || got.Schemas[0].Subject != "shop.orders.v2-value" || got.Schemas[0].Link != "/v1/schemas/orders" {
		t.Errorf("no registry: %+v", got)
	}
	w := f.do(t, "GET", "/v1/schemas/orders", "", "")
	if w.Body.String() != ordersAvsc || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("/v1/schemas/orders: %s", w.Body)
	}

	// With one: ids, versions and the registry's current text.
	f = newFixture(t)
	f.s.Schemas = fakeSchemas{infos: []SchemaInfo{{Port: "orders", Subject: "shop.orders.v2-value", ID: 12, Versions: []int{1, 2}, Schema: `"string"`}}}
	got = decode[struct{ Schemas []schemaRef }](t, f.do(t, "GET", "/v1/schemas", "", ""))
	if len(got.Schemas) != 1 || got.Schemas[0].ID != 12 || !reflect.DeepEqual(got.Schemas[0].Versions, []int{1, 2}) {
		t.Errorf("registry: %+v", got)
	}
	if w := f.do(t, "GET", "/v1/schemas/orders", "", ""); w.Body.String() != `"string"` {
		t.Errorf("registry schema text: %s", w.Body)
	}

	// A registry that fails still leaves the manifest's answer, and says why.
	f.s.Schemas = fakeSchemas{err: errors.New("registry unreachable")}
	ans := decode[map[string]any](t, f.do(t, "GET", "/v1/schemas", "", ""))
	if ans["registry_error"] != "registry unreachable" || len(ans["schemas"].([]any)) != 1 {
		t.Errorf("failing registry: %v", ans)
	}
}

func TestOwnersAndLineage(t *testing.T) {
	f := newFixture(t)
	o := decode[ownersAnswer](t, f.do(t, "GET", "/v1/owners", "", ""))
	if o.Name != "Checkout" || o.Email != "checkout@example.com" {
		t.Errorf("/v1/owners = %+v", o)
	}

	l := decode[lineageAnswer](t, f.do(t, "GET", "/v1/lineage", "", ""))
	if l.Product != "shop.orders" || len(l.Inputs) != 1 || l.Inputs[0].Topic != "pg.public.orders" ||
		len(l.Outputs) != 1 || l.Outputs[0].Topic != "shop.orders.v2" || len(l.Upstream) != 0 || l.MeshError != "" {
		t.Errorf("without the mesh: %+v", l)
	}
	f.s.Lineage = func(context.Context) (Neighbors, error) {
		return Neighbors{
			Upstream:   []ProductRef{{ID: "shop.customers", Topics: []string{"shop.customers.v1"}}},
			Downstream: []ProductRef{{ID: "finance.revenue", Topics: []string{"shop.orders.v2"}, URL: "http://revenue:8080"}},
		}, nil
	}
	l = decode[lineageAnswer](t, f.do(t, "GET", "/v1/lineage", "", ""))
	if len(l.Upstream) != 1 || l.Upstream[0].ID != "shop.customers" || len(l.Downstream) != 1 || l.Downstream[0].URL != "http://revenue:8080" {
		t.Errorf("with the mesh: %+v", l)
	}
	f.s.Lineage = func(context.Context) (Neighbors, error) { return Neighbors{}, errors.New("redis down") }
	l = decode[lineageAnswer](t, f.do(t, "GET", "/v1/lineage", "", ""))
	if l.MeshError != "redis down" || len(l.Inputs) != 1 {
		t.Errorf("mesh failing: %+v", l)
	}
}

func TestDocs(t *testing.T) {
	f := newFixture(t)
	w := f.do(t, "GET", "/v1/docs", "", "")
	if w.Header().Get("Content-Type") != "text/markdown; charset=utf-8" {
		t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
	}
	page := w.Body.String()
	for _, want := range []string{
		"# Shop orders",
		"Every order placed in the web shop",
		"Checkout <checkout@example.com>",
		"- Topic: `shop.orders.v2`",
		"`urn:dataproduct:shop:orders:orders` version 2.1.0",
		"- latency: 5 min (source commit to published event",
		"- retention: 7 y",
		"| customer_email | string |  | confidential |",
		"`orders`: rowCount (not checked on the stream)",
		"`currency`: invalidValues (known-currency)",
		"pg.public.orders",
		"kcat -b $BROKER",
		"read_committed",
		"http://example.com/v1/entities/KEY/history", // httptest's Host
		"auditor, owner or governance",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("docs lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}

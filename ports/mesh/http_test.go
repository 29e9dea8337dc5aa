package mesh

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

// get fetches url and returns the status, content type and body.
func get(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

// TestMeshHandler serves the routes over real HTTP from a real Redis.
func TestMeshHandler(t *testing.T) {
	srv, _ := redistest.Start(t)
	// One attempt per command, so the Redis-down checks below fail fast.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	reg := New(rdb)
	ctx := context.Background()
	for _, p := range []Product{inventory(), orders()} {
		if err := reg.Register(ctx, p, "0"); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(&Handler{Registry: reg})
	defer hs.Close()

	status, ctype, body := get(t, hs.URL+"/v1/mesh/products")
	list := decode[productsJSON](t, body)
	if status != 200 || ctype != "application/json" || !slices.Equal(urns(list.Products), []string{inventoryURN, ordersURN}) {
		t.Fatalf("products: %d %s\n%s", status, ctype, body)
	}
	if list.Query != nil || list.Products[0].Outputs[0].Contract != "" || len(list.Products[0].Instances) != 1 {
		t.Fatalf("a listing has no query, no contract text, and the instances:\n%s", body)
	}

	// A URN's colons work as typed and percent-encoded alike.
	want, err := reg.Get(ctx, inventoryURN)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{inventoryURN, "urn%3Adataproduct%3Ainventory%3Aproducts"} {
		status, _, body = get(t, hs.URL+"/v1/mesh/products/"+path)
		if got := decode[Product](t, body); status != 200 || !reflect.DeepEqual(got, want) {
			t.Fatalf("product %s: %d\n%s", path, status, body)
		}
	}
	if !strings.Contains(string(body), `"contract": "apiVersion: v3.1.0\n`) {
		t.Fatalf("the product route leaves out the contract:\n%s", body)
	}

	status, ctype, body = get(t, hs.URL+"/v1/mesh/products/urn:dataproduct:inventory:nope")
	if e := decode[map[string]string](t, body); status != 404 || ctype != "application/json" ||
		!strings.Contains(e["error"], "urn:dataproduct:inventory:nope") {
		t.Fatalf("unknown URN: %d %s\n%s", status, ctype, body)
	}

	status, _, body = get(t, hs.URL+"/v1/mesh/search?q=pii")
	found := decode[productsJSON](t, body)
	if status != 200 || found.Query == nil || *found.Query != "pii" || !slices.Equal(urns(found.Products), []string{ordersURN}) {
		t.Fatalf("search pii: %d\n%s", status, body)
	}
	status, _, body = get(t, hs.URL+"/v1/mesh/search?q=nosuchthing")
	if status != 200 || !strings.Contains(string(body), `"products": []`) {
		t.Fatalf("search without hits: %d\n%s", status, body)
	}

	wantGraph, err := reg.Lineage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	status, _, body = get(t, hs.URL+"/v1/mesh/lineage")
	if g := decode[Graph](t, body); status != 200 || !reflect.DeepEqual(g, wantGraph) || len(g.Edges) != 3 {
		t.Fatalf("lineage: %d\n%s", status, body)
	}
	status, ctype, body = get(t, hs.URL+"/v1/mesh/lineage?format=dot")
	if status != 200 || !strings.HasPrefix(ctype, "text/vnd.graphviz") || string(body) != wantGraph.DOT() {
		t.Fatalf("lineage dot: %d %s\n%s", status, ctype, body)
	}
	if status, _, body = get(t, hs.URL+"/v1/mesh/lineage?format=svg"); status != 400 {
		t.Fatalf("lineage svg: %d, want 400\n%s", status, body)
	}

	resp, err := http.Post(hs.URL+"/v1/mesh/products", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d, want 405", resp.StatusCode)
	}

	// Redis gone: the routes say so, as JSON, with a 503.
	srv.Stop()
	for _, path := range []string{"/v1/mesh/products", "/v1/mesh/products/" + inventoryURN, "/v1/mesh/search?q=x", "/v1/mesh/lineage"} {
		status, _, body = get(t, hs.URL+path)
		if e := decode[map[string]string](t, body); status != 503 || !strings.HasPrefix(e["error"], "mesh: ") {
			t.Errorf("%s with Redis down: %d\n%s", path, status, body)
		}
	}
}

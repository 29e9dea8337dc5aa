package mesh

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

const (
	inventoryURN = "urn:dataproduct:inventory:products"
	ordersURN    = "urn:dataproduct:shop:orders"
)

// inventory publishes the products table captured by Debezium.
func inventory() Product {
	return Product{
		URN: inventoryURN, Name: "Inventory products", Domain: "inventory", Version: "1.0.0", Status: "active",
		Description:   "Every product the warehouse stocks, with its full change history.",
		Owner:         Owner{Name: "Inventory", Email: "inventory-team@example.com"},
		Tags:          []string{"warehouse", "golden-source"},
		ManagementURL: "http://inventory-0:8080",
		Inputs:        []InputPort{{Name: "products-cdc", Topic: "dbserver1.inventory.products", Format: "debezium-json"}},
		Outputs: []OutputPort{{
			Name: "products", Topic: "inventory.products.v1", Subject: "inventory.products.v1-value", SchemaID: 1,
			Version: "1.0.0", ContractID: "urn:dataproduct:inventory:products:products",
			Contract:        "apiVersion: v3.1.0\nkind: DataContract\nid: urn:dataproduct:inventory:products:products\n",
			Classifications: map[string]string{"name": "public", "weight_kg": "internal"},
		}},
	}
}

// orders reads the inventory product's output and its own CDC topic, and
// publishes a customer's email: a pii field.
func orders() Product {
	return Product{
		URN: ordersURN, Name: "Shop orders", Domain: "shop", Version: "2.1.0", Status: "active",
		Description: "Orders priced against the current inventory.",
		Owner:       Owner{Name: "Checkout", Email: "checkout@example.com"},
		Tags:        []string{"orders", "gdpr"},
		Inputs: []InputPort{
			{Name: "orders-cdc", Topic: "dbserver1.shop.orders", Format: "debezium-json"},
			{Name: "catalog", Topic: "inventory.products.v1", Format: "avro"},
		},
		Outputs: []OutputPort{{
			Name: "orders", Topic: "shop.orders.v1", Subject: "shop.orders.v1-value", SchemaID: 2, Version: "2.1.0",
			ContractID: "urn:dataproduct:shop:orders:orders", Contract: "apiVersion: v3.1.0\nkind: DataContract\n",
			Classifications: map[string]string{"customer_email": "pii", "total": "internal"},
		}},
	}
}

// fixedClock is a settable clock for last-seen times.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fixedClock) set(t time.Time)  { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func newClock(t time.Time) *fixedClock { return &fixedClock{t: t} }
func urns(ps []Product) []string       { return mapSlice(ps, func(p Product) string { return p.URN }) }
func ids(is []Instance) []string       { return mapSlice(is, func(i Instance) string { return i.ID }) }
func mapSlice[T, U any](ts []T, f func(T) U) []U {
	us := []U{}
	for _, t := range ts {
		us = append(us, f(t))
	}
	return us
}

// eventually waits until cond holds; the deadline only bounds a failing
// test, nothing is asserted about how long it took.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// commandLog records the names of the commands a client sends, scripts'
// inner commands aside.
type commandLog struct {
	mu    sync.Mutex
	names []string
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }
func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}
func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.add(c)
		}
		return next(ctx, cmds)
	}
}
func (l *commandLog) add(c redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names = append(l.names, strings.ToLower(c.Name()))
}

// TestMeshRegisterListGet registers two products and reads them back whole,
// with their instances and last-seen times from the injected clock.
func TestMeshRegisterListGet(t *testing.T) {
	_, rdb := redistest.Start(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := newClock(t0)
	reg := New(rdb, Clock(clock.now))
	ctx := context.Background()
	if err := reg.Register(ctx, orders(), "orders-0"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, inventory(), "inventory-0"); err != nil {
		t.Fatal(err)
	}

	cmds := &commandLog{}
	rdb.AddHook(cmds)
	got, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInv, wantOrd := inventory(), orders()
	wantInv.Instances = []Instance{{ID: "inventory-0", Addr: "http://inventory-0:8080", LastSeen: t0}}
	wantOrd.Instances = []Instance{{ID: "orders-0", LastSeen: t0}}
	if want := []Product{wantInv, wantOrd}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List:\n got %+v\nwant %+v", got, want)
	}
	if slices.ContainsFunc(cmds.names, func(n string) bool { return n == "keys" || n == "scan" }) {
		t.Fatalf("List walked the keyspace: %v", cmds.names)
	}

	p, err := reg.Get(ctx, inventoryURN)
	if err != nil || !reflect.DeepEqual(p, wantInv) {
		t.Fatalf("Get: %+v, %v", p, err)
	}
	if _, err := reg.Get(ctx, "urn:dataproduct:inventory:nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of an unknown URN: %v, want ErrNotFound", err)
	}

	// Registering again replaces the document and keeps one instance.
	v2 := inventory()
	v2.Version = "1.1.0"
	if err := reg.Register(ctx, v2, "inventory-0"); err != nil {
		t.Fatal(err)
	}
	// A heartbeat moves the last-seen time.
	t1 := t0.Add(5 * time.Second)
	clock.set(t1)
	if err := reg.Heartbeat(ctx, inventoryURN, "inventory-0"); err != nil {
		t.Fatal(err)
	}
	p, err = reg.Get(ctx, inventoryURN)
	if err != nil || p.Version != "1.1.0" || len(p.Instances) != 1 || !p.Instances[0].LastSeen.Equal(t1) {
		t.Fatalf("after re-register and heartbeat: %+v, %v", p, err)
	}

	if err := reg.Heartbeat(ctx, inventoryURN, "inventory-9"); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("heartbeat of an unregistered instance: %v, want ErrNotRegistered", err)
	}
	if err := reg.Heartbeat(ctx, "urn:dataproduct:x:y", "a"); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("heartbeat of an unregistered product: %v, want ErrNotRegistered", err)
	}
	for _, bad := range []struct{ urn, instance string }{{"", "a"}, {"urn:x:y#z", "a"}, {"urn:x:y z", "a"}, {inventoryURN, ""}} {
		p := inventory()
		p.URN = bad.urn
		if err := reg.Register(ctx, p, bad.instance); !errors.Is(err, ErrInvalid) {
			t.Errorf("Register(%q, %q): %v, want ErrInvalid", bad.urn, bad.instance, err)
		}
	}
}

// TestMeshPrefixSeparatesRegistries: two prefixes on one Redis do not see
// each other's products.
func TestMeshPrefixSeparatesRegistries(t *testing.T) {
	_, rdb := redistest.Start(t)
	ctx := context.Background()
	a, b := New(rdb), New(rdb, Prefix("other:mesh"))
	if err := a.Register(ctx, inventory(), "i0"); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, orders(), "o0"); err != nil {
		t.Fatal(err)
	}
	la, _ := a.List(ctx)
	lb, _ := b.List(ctx)
	if !slices.Equal(urns(la), []string{inventoryURN}) || !slices.Equal(urns(lb), []string{ordersURN}) {
		t.Fatalf("default prefix lists %v, other prefix %v", urns(la), urns(lb))
	}
	if n, _ := rdb.Exists(ctx, "{other:mesh}:product:"+ordersURN).Result(); n != 1 {
		t.Fatal("the other prefix's document is not where the layout says")
	}
}

func TestMeshSearch(t *testing.T) {
	_, rdb := redistest.Start(t)
	reg := New(rdb)
	ctx := context.Background()
	for _, p := range []Product{inventory(), orders()} {
		if err := reg.Register(ctx, p, "0"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"shop", []string{ordersURN}},                                // domain
		{"warehouse", []string{inventoryURN}},                        // tag (and description)
		{"GDPR", []string{ordersURN}},                                // tag, any case
		{"pii", []string{ordersURN}},                                 // a field classified pii
		{"customer_email", []string{ordersURN}},                      // a classified field's name
		{"internal", []string{inventoryURN, ordersURN}},              // both have internal fields
		{"inventory.products.v1", []string{inventoryURN, ordersURN}}, // written by one, read by the other
		{"products-cdc", []string{inventoryURN}},                     // input port name
		{"checkout@example.com", []string{ordersURN}},                // owner
		{"inventory:products", []string{inventoryURN}},               // part of a URN
		{"gdpr pii", []string{ordersURN}},                            // every word must match
		{"gdpr warehouse", []string{}},
		{"nosuchthing", []string{}},
		{"", []string{inventoryURN, ordersURN}},
	} {
		got, err := reg.Search(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(urns(got), tc.want) {
			t.Errorf("Search(%q) = %v, want %v", tc.q, urns(got), tc.want)
		}
	}
}

// TestMeshExpiry lets Redis expire instances: a product whose only live key
// expired leaves List, Get and the index, while one kept alive stays.
func TestMeshExpiry(t *testing.T) {
	_, rdb := redistest.Start(t)
	ctx := context.Background()
	long := New(rdb, TTL(time.Hour))
	short := New(rdb, TTL(50*time.Millisecond))
	for _, p := range []Product{inventory(), orders()} {
		if err := long.Register(ctx, p, "0"); err != nil {
			t.Fatal(err)
		}
	}
	if ps, _ := long.List(ctx); len(ps) != 2 {
		t.Fatalf("before expiry: %v", urns(ps))
	}
	// The orders instance's next heartbeat carries a short TTL; its document
	// keeps the hour (TTLs only grow), so only its live key can make it go.
	if err := short.Heartbeat(ctx, ordersURN, "0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the orders product leaves List", func() bool {
		ps, err := long.List(ctx)
		return err == nil && slices.Equal(urns(ps), []string{inventoryURN})
	})
	if _, err := long.Get(ctx, ordersURN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after expiry: %v, want ErrNotFound", err)
	}
	// The read pruned what it found dead: index entry, document, instances.
	if members, _ := rdb.SMembers(ctx, "{meshlet:mesh}:products").Result(); !slices.Equal(members, []string{inventoryURN}) {
		t.Fatalf("index after prune: %v", members)
	}
	if n, _ := rdb.Exists(ctx, "{meshlet:mesh}:product:"+ordersURN, "{meshlet:mesh}:instances:"+ordersURN).Result(); n != 0 {
		t.Fatalf("%d key(s) of the expired product left", n)
	}
	if err := long.Heartbeat(ctx, ordersURN, "0"); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("heartbeat after expiry: %v, want ErrNotRegistered", err)
	}

	// Registered with a short TTL throughout: every key of it expires.
	if err := short.Register(ctx, orders(), "1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the short-lived registration expires in Redis", func() bool {
		n, err := rdb.Exists(ctx, "{meshlet:mesh}:product:"+ordersURN, "{meshlet:mesh}:instances:"+ordersURN,
			"{meshlet:mesh}:live:"+ordersURN+"#1").Result()
		return err == nil && n == 0
	})
	if ps, err := long.List(ctx); err != nil || !slices.Equal(urns(ps), []string{inventoryURN}) {
		t.Fatalf("List after the document expired: %v, %v", urns(ps), err)
	}
	if members, _ := rdb.SMembers(ctx, "{meshlet:mesh}:products").Result(); !slices.Equal(members, []string{inventoryURN}) {
		t.Fatalf("index after the document expired: %v", members)
	}
}

// TestMeshInstances: replicas share a URN; the product lives while any does.
func TestMeshInstances(t *testing.T) {
	_, rdb := redistest.Start(t)
	ctx := context.Background()
	reg := New(rdb)
	a, b := inventory(), inventory()
	a.ManagementURL, b.ManagementURL = "http://inventory-a:8080", "http://inventory-b:8080"
	if err := reg.Register(ctx, a, "a"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, b, "b"); err != nil {
		t.Fatal(err)
	}
	ps, err := reg.List(ctx)
	if err != nil || len(ps) != 1 || !slices.Equal(ids(ps[0].Instances), []string{"a", "b"}) {
		t.Fatalf("two instances: %+v, %v", ps, err)
	}
	if ps[0].Instances[0].Addr != a.ManagementURL || ps[0].Instances[1].Addr != b.ManagementURL {
		t.Fatalf("instance addresses: %+v", ps[0].Instances)
	}

	if err := reg.Deregister(ctx, inventoryURN, "a"); err != nil {
		t.Fatal(err)
	}
	p, err := reg.Get(ctx, inventoryURN)
	if err != nil || !slices.Equal(ids(p.Instances), []string{"b"}) {
		t.Fatalf("after a left: %+v, %v", p, err)
	}
	if err := reg.Heartbeat(ctx, inventoryURN, "a"); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("heartbeat of the deregistered instance: %v", err)
	}

	// c comes up with a short TTL and lapses; b keeps the product listed.
	short := New(rdb, TTL(50*time.Millisecond))
	if err := short.Register(ctx, inventory(), "c"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "instance c lapses", func() bool {
		p, err := reg.Get(ctx, inventoryURN)
		return err == nil && slices.Equal(ids(p.Instances), []string{"b"})
	})

	if err := reg.Deregister(ctx, inventoryURN, "b"); err != nil {
		t.Fatal(err)
	}
	if ps, err := reg.List(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("after the last instance left: %v, %v", urns(ps), err)
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		keys, _ := rdb.Keys(ctx, "*").Result()
		t.Fatalf("keys left after the last instance left: %v", keys)
	}
}

package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshlet/meshlet/ports/kafka"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports/lineage"
	"github.com/meshlet/meshlet/ports/mesh"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// The customers product (A): its rows as CRM's Debezium capture sends them,
// and as it publishes them.
type customerRow struct {
	ID      int64   `json:"id"`
	Name    string  `json:"name"`
	Email   *string `json:"email"`
	Country string  `json:"country"`
}

type customer struct {
	ID      int64   `avro:"id"`
	Name    string  `avro:"name"`
	Email   *string `avro:"email"`
	Country string  `avro:"country"`
}

func handleCustomer(_ context.Context, c transforms.Change[customerRow]) ([]transforms.Record[customer], error) {
	row, deleted := c.After(), false
	if row == nil {
		row, deleted = c.Before(), true
	}
	if row == nil {
		return nil, fmt.Errorf("no row image")
	}
	return []transforms.Record[customer]{{
		Key: strconv.FormatInt(row.ID, 10), Deleted: deleted,
		Value: customer{ID: row.ID, Name: row.Name, Email: row.Email, Country: row.Country},
	}}, nil
}

// The customer-countries product (B) reads A's output port.
type countryMember struct {
	CustomerID int64  `avro:"customer_id"`
	Country    string `avro:"country"`
}

func handleMember(_ context.Context, c transforms.Change[customerRow]) ([]transforms.Record[countryMember], error) {
	var key string
	if err := json.Unmarshal(c.Change.Key, &key); err != nil {
		return nil, err
	}
	after := c.After()
	if after == nil {
		return []transforms.Record[countryMember]{{Key: key, Deleted: true}}, nil
	}
	return []transforms.Record[countryMember]{{Key: key, Value: countryMember{CustomerID: after.ID, Country: after.Country}}}, nil
}

// Tokens of the mesh test, one per role.
const (
	consumerToken   = "tok-consumer"
	ownerToken      = "tok-owner"
	governanceToken = "tok-governance"
)

type meshProduct struct {
	runner  *runtime.Runner
	dataDir string
	lineage string // the OpenLineage events file
	stop    func() error
	base    string // management port URL
}

func startMeshProduct(t *testing.T, dir string, h transforms.Func, brokers []string, registry, redisAddr string, tokens *mgmt.Tokens) *meshProduct {
	t.Helper()
	p, err := runtime.NewProduct(os.DirFS(dir), "product.yaml", h)
	if err != nil {
		t.Fatal(err)
	}
	mp := &meshProduct{dataDir: t.TempDir()}
	mp.lineage = filepath.Join(mp.dataDir, "openlineage.jsonl")
	mp.runner, err = runtime.Start(context.Background(), p,
		runtime.SeedBrokers(brokers...), runtime.SchemaRegistry(registry), runtime.DataDir(mp.dataDir),
		runtime.Redis(redisAddr), runtime.ManagementAddr("127.0.0.1:0"), runtime.Tokens(tokens),
		runtime.Lineage(&lineage.FileTransport{Path: mp.lineage}, 100*time.Millisecond, ""),
		runtime.Logger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mp.runner.Run(ctx) }()
	mp.stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { mp.stop() })
	mp.base = "http://" + mp.runner.HTTPAddr().String()
	return mp
}

// call makes an HTTP request with an optional bearer token and decodes a
// JSON answer into v (when v is not nil).
func call(t *testing.T, method, url, token, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil && len(data) > 0 {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, data)
		}
	}
	return resp.StatusCode
}

// scrape reads one series of a product's /metrics: the sum of the samples
// whose name is name and whose labels include every label given.
func scrape(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		t.Fatalf("%s/metrics has no %s%v", base, name, labels)
	}
	return sum
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMeshEndToEnd runs two products against a real redis-server, B
// consuming A's output port, and checks what the mesh, governance and
// auditors see: discovery, lineage, metrics, OpenLineage, forgetting a data
// subject, and access control.
func TestMeshEndToEnd(t *testing.T) {
	broker, reg := brokerAndRegistry(t)
	var err error
	redisAddr := startRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	brokers := broker.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	const inA, outA, outB = "crm.public.customers", "crm.customers.v1", "marketing.customer-countries.v1"
	if err := kafka.EnsureTopics(context.Background(), cl, map[string]int32{
		inA: 2, outA: 2, outA + ".dlq": 1, outB: 1, outB + ".dlq": 1,
	}); err != nil {
		t.Fatal(err)
	}
	tokens, err := mgmt.ParseTokenList("carol:consumer:" + consumerToken + ",audrey:auditor:" + auditorToken +
		",olga:owner:" + ownerToken + ",gus:governance:" + governanceToken)
	if err != nil {
		t.Fatal(err)
	}

	// Six customers; the emails and names are personal data.
	people := []customerRow{
		{1, "Alice", ptr("alice@example.com"), "NL"}, {2, "Bob", ptr("bob@example.com"), "DE"},
		{3, "Chloe", ptr("chloe@example.com"), "FR"}, {4, "Dan", nil, "NL"},
		{5, "Eve", ptr("eve@example.com"), "ES"}, {6, "Femi", ptr("femi@example.com"), "NG"},
	}
	var recs []*kgo.Record
	for i, p := range people {
		after, _ := json.Marshal(p)
		recs = append(recs, &kgo.Record{Topic: inA, Key: fmt.Appendf(nil, `{"id":%d}`, p.ID),
			Value: fmt.Appendf(nil, `{"before":null,"after":%s,"source":{"connector":"postgresql","ts_ms":%d,"lsn":%d,"txId":%d},"op":"c"}`,
				after, 1700000000000+int64(i)*1000, 1000+i, 500+i)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	a := startMeshProduct(t, "testdata/mesh/customers", transforms.Typed(handleCustomer), brokers, reg.URL(), redisAddr, tokens)
	b := startMeshProduct(t, "testdata/mesh/segments", transforms.Typed(handleMember), brokers, reg.URL(), redisAddr, tokens)
	const urnA, urnB = "urn:dataproduct:crm:customers", "urn:dataproduct:marketing:customer-countries"
	n := int64(len(people))
	waitUntil(t, "both products to publish every customer", func() bool {
		return a.runner.Stats().Records.Load() == n && b.runner.Stats().Records.Load() == n
	})

	t.Run("registry finds both products", func(t *testing.T) {
		reg := mesh.New(rdb)
		var list []mesh.Product
		waitUntil(t, "both registrations", func() bool {
			list, err = reg.List(context.Background())
			return err == nil && len(list) == 2
		})
		if list[0].URN != urnA || list[1].URN != urnB {
			t.Fatalf("registry lists %v", []string{list[0].URN, list[1].URN})
		}
		for q, want := range map[string][]string{"customer": {urnA, urnB}, "shop": {urnA}, "pii": {urnA}, "marketing": {urnB}} {
			found, err := reg.Search(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range found {
				got = append(got, p.URN)
			}
			if !slices.Equal(got, want) {
				t.Errorf("search %q found %v, want %v", q, got, want)
			}
		}
		if list[0].ManagementURL != a.base {
			t.Errorf("A registered management URL %q, want %q", list[0].ManagementURL, a.base)
		}
	})

	t.Run("lineage graph shows A -> B", func(t *testing.T) {
		g, err := mesh.New(rdb).Lineage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		edges := g.Downstream(urnA)
		if len(edges) != 1 || edges[0].To != urnB || edges[0].Topic != outA || edges[0].OutputPort != "customers" || edges[0].InputPort != "customers" {
			t.Fatalf("downstream of A: %+v", edges)
		}
		// B's own discovery port shows its upstream product from the mesh.
		var lin struct {
			Upstream []mgmt.ProductRef `json:"upstream"`
		}
		if code := call(t, "GET", b.base+"/v1/lineage", "", "", &lin); code != 200 || len(lin.Upstream) != 1 || lin.Upstream[0].ID != urnA {
			t.Fatalf("B's /v1/lineage: %d %+v", code, lin)
		}
	})

	t.Run("metrics count the events", func(t *testing.T) {
		for _, c := range []struct {
			base, name string
			labels     []string
		}{
			{a.base, "meshlet_input_records_total", []string{`topic="` + inA + `"`}},
			{a.base, "meshlet_output_records_total", []string{`topic="` + outA + `"`}},
			{a.base, "meshlet_publish_latency_seconds_count", nil},
			{b.base, "meshlet_input_records_total", []string{`topic="` + outA + `"`}},
			{b.base, "meshlet_output_records_total", []string{`topic="` + outB + `"`}},
		} {
			if got := scrape(t, c.base, c.name, c.labels...); got != float64(n) {
				t.Errorf("%s %s%v = %v, want %d", c.base, c.name, c.labels, got, n)
			}
		}
		if got := scrape(t, a.base, "kafka_consumergroup_lag", `consumergroup="`+urnA+`"`); got != 0 {
			t.Errorf("A's lag = %v after everything committed", got)
		}
		if got := scrape(t, a.base, "meshlet_changelog_entries"); got != float64(n) {
			t.Errorf("A's change log entries = %v, want %d", got, n)
		}
		if got := scrape(t, a.base, "meshlet_output_freshness_seconds"); got < 0 || math.IsNaN(got) {
			t.Errorf("A's freshness = %v after publishing", got)
		}
	})

	t.Run("OpenLineage RUNNING names both datasets", func(t *testing.T) {
		for _, c := range []struct {
			p       *meshProduct
			in, out string
		}{{a, inA, outA}, {b, outA, outB}} {
			waitUntil(t, "a RUNNING event with statistics", func() bool {
				return runningNames(t, c.p.lineage, c.in, c.out, n)
			})
		}
	})

	t.Run("output port masks pii", func(t *testing.T) {
		var out customerRow
		var got []string
		for _, rec := range consumeN(t, brokers, outA, int(n)) {
			var row customer
			if _, _, err := schemaRegistry(t, reg.URL()).Decode(context.Background(), rec.Value, &row); err != nil {
				t.Fatal(err)
			}
			got = append(got, row.Name)
			out.Country = row.Country
		}
		for _, name := range got {
			if name != governance.MaskedString {
				t.Fatalf("the output topic carries name %q, want the mask", name)
			}
		}
	})

	// Access control: refusals are answered and logged.
	t.Run("tokens and roles", func(t *testing.T) {
		if code := call(t, "GET", a.base+"/v1/entities/2", "", "", nil); code != 401 {
			t.Errorf("no token: %d, want 401", code)
		}
		if code := call(t, "GET", a.base+"/v1/entities/2/history", consumerToken, "", nil); code != 403 {
			t.Errorf("consumer reading history: %d, want 403", code)
		}
		if code := call(t, "POST", a.base+"/v1/control/forget", ownerToken, `{"subject":"2"}`, nil); code != 403 {
			t.Errorf("owner forgetting a subject: %d, want 403 (governance only)", code)
		}
		if code := call(t, "GET", a.base+"/v1/entities/2", consumerToken, "", nil); code != 200 {
			t.Errorf("consumer reading current state: %d, want 200", code)
		}
		var acc struct {
			Accesses []struct {
				Principal string `json:"principal"`
				Target    string `json:"target"`
				Decision  string `json:"decision"`
				Status    int    `json:"status"`
			} `json:"accesses"`
		}
		if code := call(t, "GET", a.base+"/v1/accesses?limit=50", auditorToken, "", &acc); code != 200 {
			t.Fatalf("accesses: %d", code)
		}
		want := map[string]bool{"no token /v1/entities/2 401": false, "wrong role /v1/entities/2/history 403": false,
			"wrong role /v1/control/forget 403": false, "allowed /v1/entities/2 200": false}
		for _, x := range acc.Accesses {
			want[x.Decision+" "+x.Target+" "+strconv.Itoa(x.Status)] = true
		}
		for k, seen := range want {
			if !seen {
				t.Errorf("access log lacks %q: %+v", k, acc.Accesses)
			}
		}
	})

	// Forget customer 3: governance asks A's control port; the command
	// travels over the Redis Streams control bus.
	var issued struct {
		ID string `json:"command_id"`
	}
	if code := call(t, "POST", a.base+"/v1/control/forget", governanceToken, `{"subject":"3"}`, &issued); code != 202 {
		t.Fatalf("forget: %d", code)
	}
	waitUntil(t, "the forget to be applied", func() bool {
		var outcome struct {
			Outcomes []mgmt.Outcome `json:"outcomes"`
		}
		call(t, "GET", a.base+"/v1/control/commands/"+issued.ID, auditorToken, "", &outcome)
		return len(outcome.Outcomes) == 1 && outcome.Outcomes[0].State == "applied"
	})

	type entity struct {
		Entry struct {
			Fields map[string]any `json:"fields"`
		} `json:"entry"`
	}
	var three, two entity
	if code := call(t, "GET", a.base+"/v1/entities/3", auditorToken, "", &three); code != 200 ||
		three.Entry.Fields["name"] != nil || three.Entry.Fields["email"] != nil || three.Entry.Fields["country"] != "FR" {
		t.Fatalf("current state of the forgotten customer: %d %+v", code, three.Entry.Fields)
	}
	if erased := fmt.Sprint(three.Entry.Fields["_erased"]); erased != "[email name]" {
		t.Errorf("_erased = %s, want [email name]", erased)
	}
	if code := call(t, "GET", a.base+"/v1/entities/2", auditorToken, "", &two); code != 200 ||
		two.Entry.Fields["name"] != "Bob" || two.Entry.Fields["email"] != "bob@example.com" {
		t.Fatalf("another customer after the forget: %d %+v", code, two.Entry.Fields)
	}
	var hist struct {
		Versions []struct {
			Fields map[string]any `json:"fields"`
		} `json:"versions"`
	}
	if code := call(t, "GET", a.base+"/v1/entities/3/history", auditorToken, "", &hist); code != 200 || len(hist.Versions) == 0 {
		t.Fatalf("history of 3: %d", code)
	}
	for _, v := range hist.Versions {
		if v.Fields["name"] != nil || v.Fields["email"] != nil {
			t.Errorf("history of the forgotten customer shows %v", v.Fields)
		}
	}

	// The auditor's view after the products stop: the chain verifies and a
	// replay shows customer 3 erased and everyone else intact.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(a.dataDir, "changelog", inA+"-*"))
	if len(logs) != 2 {
		t.Fatalf("change logs of A: %v", logs)
	}
	for _, dir := range logs {
		if _, err := auditlog.Verify(dir); err != nil {
			t.Fatalf("verify %s after the forget: %v", dir, err)
		}
	}
	store, err := auditlog.OpenStore(filepath.Join(a.dataDir, "changelog"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dec, err := query.NewDecoder(query.SchemaDir(a.dataDir), "")
	if err != nil {
		t.Fatal(err)
	}
	dec.Keys = governance.RedisKeys(rdb, urnA)
	replayed := map[string]map[string]any{}
	if err := store.Replay(0, math.MaxInt64, func(f *auditlog.Fact) error {
		m, err := dec.Fields(context.Background(), f.Payload)
		replayed[string(f.Key)] = m
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range people {
		m := replayed[strconv.FormatInt(p.ID, 10)]
		switch {
		case p.ID == 3:
			if m["name"] != nil || m["email"] != nil || fmt.Sprint(m["_erased"]) != "[email name]" {
				t.Errorf("replay of the forgotten customer: %v", m)
			}
		case m["name"] != p.Name || m["country"] != p.Country:
			t.Errorf("replay of customer %d: %v, want %+v", p.ID, m, p)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// runningNames reports whether an OpenLineage file holds a RUNNING event
// naming input in and output out, with n output rows.
func runningNames(t *testing.T, file, in, out string, n int64) bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		var ev struct {
			EventType string `json:"eventType"`
			Inputs    []struct {
				Name string `json:"name"`
			} `json:"inputs"`
			Outputs []struct {
				Name        string `json:"name"`
				OutputFacet struct {
					Stats struct {
						RowCount int64 `json:"rowCount"`
					} `json:"outputStatistics"`
				} `json:"outputFacets"`
			} `json:"outputs"`
		}
		if json.Unmarshal(line, &ev) != nil || ev.EventType != "RUNNING" {
			continue
		}
		if len(ev.Inputs) == 1 && ev.Inputs[0].Name == in && len(ev.Outputs) == 1 && ev.Outputs[0].Name == out &&
			ev.Outputs[0].OutputFacet.Stats.RowCount == n {
			return true
		}
	}
	return false
}

func consumeN(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	s := &stack{t: t, brokers: brokers}
	return s.consume(topic, n)
}

func schemaRegistry(t *testing.T, url string) *schemas.Registry {
	t.Helper()
	r, err := schemas.NewRegistry([]string{url})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

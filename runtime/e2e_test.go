package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

	"github.com/meshlet/meshlet/cdc/samples"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/internal/interop"
	"github.com/meshlet/meshlet/internal/localredis"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// stack is a product running on a real kfake broker (TCP) and the embedded
// registry (HTTP), as `meshlet dev` runs it.
type stack struct {
	t        *testing.T
	cluster  *kfake.Cluster
	brokers  []string
	registry string
	dataDir  string
	product  *runtime.Product
	runner   *runtime.Runner
	client   *kgo.Client
	stop     func() error
	exited   <-chan struct{} // closed when the runner's Run returned (runHooked)
}

// panicID makes the test product's handler panic, to exercise the panic path.
const panicID = 9999

func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, stackConfig{})
}

// stackConfig changes what startStackWith sets up.
type stackConfig struct {
	broker []kfake.Opt // more options for the kfake cluster
	// Configs of the input, output and dead-letter topics
	// (max.message.bytes, say); nil: the broker's defaults.
	input, output, deadLetter map[string]string
	// inputMax is the largest input record the test writes (0: the
	// client's default).
	inputMax int32
}

// brokerAndRegistry starts a one-broker kfake cluster and the embedded
// registry, both closed when the test ends.
func brokerAndRegistry(t testing.TB, opts ...kfake.Opt) (*kfake.Cluster, *schemas.Embedded) {
	t.Helper()
	broker, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return broker, reg
}

func startStackWith(t *testing.T, c stackConfig) *stack {
	t.Helper()
	broker, reg := brokerAndRegistry(t, c.broker...)
	var err error

	handler := func(ctx context.Context, c transforms.Change[products.Row]) ([]transforms.Record[products.Product], error) {
		if after := c.After(); after != nil && after.ID == panicID {
			var m map[string]int
			m["boom"]++ // a real bug: write to a nil map
		}
		return products.Handle(ctx, c)
	}
	p, err := runtime.NewProduct(os.DirFS("../examples/inventory/products"), "product.yaml", transforms.Typed(handler))
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, cluster: broker, brokers: broker.ListenAddrs(), registry: reg.URL(), dataDir: t.TempDir(), product: p}
	opts := []kgo.Opt{kgo.SeedBrokers(s.brokers...)}
	if c.inputMax > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(c.inputMax))
	}
	s.client, err = kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.client.Close)
	m := p.Manifest
	topics := map[string]int32{m.InputPorts[0].Topic: 3, m.OutputPorts[0].Topic: 3, m.DeadLetter.Topic: 1}
	configs := map[string]map[string]string{m.InputPorts[0].Topic: c.input, m.OutputPorts[0].Topic: c.output, m.DeadLetter.Topic: c.deadLetter}
	adm := kadm.NewClient(s.client)
	for topic, n := range topics {
		if cfg := configs[topic]; len(cfg) > 0 {
			configs := map[string]*string{}
			for k, v := range cfg {
				configs[k] = &v
			}
			resp, err := adm.CreateTopic(context.Background(), n, -1, configs, topic)
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				t.Fatal(err)
			}
			delete(topics, topic)
		}
	}
	if err := kafka.EnsureTopics(context.Background(), s.client, topics); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) run() {
	s.t.Helper()
	var err error
	s.runner, err = runtime.Start(context.Background(), s.product,
		runtime.SeedBrokers(s.brokers...), runtime.SchemaRegistry(s.registry), runtime.DataDir(s.dataDir),
		runtime.Logger(slog.New(slog.NewTextHandler(s.t.Output(), nil))),
	)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.runner.Run(ctx) }()
	s.stop = sync.OnceValue(func() error { cancel(); return <-done })
	s.t.Cleanup(func() { s.stop() })
}

// produce writes records to the input topic and returns them with their
// partitions and offsets filled in.
func (s *stack) produce(recs []*kgo.Record) []*kgo.Record {
	s.t.Helper()
	if err := s.client.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
	return recs
}

func (s *stack) waitEvents(n int64) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for s.runner.Stats().EventsIn.Load() < n {
		select {
		case <-ctx.Done():
			s.t.Fatalf("processed %d of %d events", s.runner.Stats().EventsIn.Load(), n)
		case <-s.exited:
			s.t.Fatalf("the product stopped after processing %d of %d events", s.runner.Stats().EventsIn.Load(), n)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// consume reads n committed records of topic.
func (s *stack) consume(topic string, n int) []*kgo.Record {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			s.t.Fatalf("read %d of %d records from %s", len(recs), n, topic)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func recorded(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	recs, err := kafka.RecordedCDC(bytes.NewReader(products.RecordedCDC()), "recorded", topic, products.KeyFields)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// product is one decoded output event.
type product struct {
	ID      int32
	Name    string
	Weight  float64
	Deleted bool
}

// The recorded Postgres capture: ids 101-109 snapshotted, 106 and 107
// updated, 110 and 111 inserted and updated, 111 deleted. Read off the
// sample file by hand.
var wantFinal = map[string]product{
	"101": {101, "scooter", 3.14, false},
	"102": {102, "car battery", 8.1, false},
	"103": {103, "12-pack drill bits", 0.8, false},
	"104": {104, "hammer", 0.75, false},
	"105": {105, "hammer", 0.875, false},
	"106": {106, "hammer", 1.0, false},
	"107": {107, "rocks", 5.1, false},
	"108": {108, "jacket", 0.1, false},
	"109": {109, "spare tire", 22.2, false},
	"110": {110, "jacket", 0.5, false},
}

func deref(f *float64) float64 {
	if f == nil {
		return -1 // no weight; no expected row has -1
	}
	return *f
}

func TestEndToEnd(t *testing.T) {
	s := startStack(t)
	m := s.product.Manifest
	inTopic, outTopic := m.InputPorts[0].Topic, m.OutputPorts[0].Topic
	good := s.produce(recorded(t, inTopic))

	// Bad input of every class, each with a key so it lands on a known partition.
	bad := s.produce([]*kgo.Record{
		{Topic: inTopic, Key: []byte(`{"id":1}`), Value: []byte(`{"before":null,"after":{"id":1`)},
		{Topic: inTopic, Key: []byte(`{"id":2}`), Value: []byte(`{"before":null,"after":{"id":2,"name":"x","weight":1},"source":{"ts_ms":1},"op":"x"}`)},
		{Topic: inTopic, Key: []byte(`{"id":3}`), Value: []byte(`{"before":null,"after":{"id":"three","name":"x","weight":1},"source":{"ts_ms":1},"op":"c"}`)},
		{Topic: inTopic, Key: []byte(`{"id":4}`), Value: []byte(`{"before":null,"after":null,"source":{"ts_ms":1,"schema":"inventory","table":"products"},"op":"t"}`)},
		{Topic: inTopic, Key: []byte(`{"id":9999}`), Value: []byte(`{"before":null,"after":{"id":9999,"name":"x","weight":1},"source":{"ts_ms":1},"op":"c"}`)},
		{Topic: inTopic, Key: []byte(`{"id":5}`), Value: []byte(`{"before":null,"after":{"id":5,"name":"   ","weight":1},"source":{"ts_ms":1},"op":"c"}`)},
	})
	wantClass := []string{"malformed", "malformed", "handler", "handler", "panic", "contract"}
	// A tombstone follows a delete on a compacted topic: recognised, skipped.
	tomb := s.produce([]*kgo.Record{{Topic: inTopic, Key: []byte(`{"id":111}`), Value: nil}})

	s.run()
	total := int64(len(good) + len(bad) + len(tomb))
	s.waitEvents(total)
	st := s.runner.Stats()
	if st.Records.Load() != int64(len(good)) || st.DeadLetters.Load() != int64(len(bad)) || st.Skipped.Load() != 1 {
		t.Fatalf("stats: records %d, dead letters %d, skipped %d; want %d, %d, 1",
			st.Records.Load(), st.DeadLetters.Load(), st.Skipped.Load(), len(good), len(bad))
	}

	t.Run("output folds to the source table", func(t *testing.T) {
		out := s.consume(outTopic, len(good))
		reg, err := schemas.NewRegistry([]string{s.registry})
		if err != nil {
			t.Fatal(err)
		}
		final := map[string]product{}
		versions := map[string][]product{}
		for _, rec := range out {
			var row products.Product
			id, meta, err := reg.Decode(context.Background(), rec.Value, &row)
			if err != nil {
				t.Fatalf("decode %d@%d: %v", rec.Partition, rec.Offset, err)
			}
			if id != s.runner.SchemaID() {
				t.Errorf("event %d@%d carries schema id %d, want the registered %d", rec.Partition, rec.Offset, id, s.runner.SchemaID())
			}
			p := product{row.ID, row.Name, deref(row.WeightKg), meta.Deleted}
			versions[string(rec.Key)] = append(versions[string(rec.Key)], p)
			if meta.Deleted {
				delete(final, string(rec.Key))
			} else {
				final[string(rec.Key)] = p
			}
		}
		if len(final) != len(wantFinal) {
			t.Errorf("final table has %d rows, want %d", len(final), len(wantFinal))
		}
		for key, want := range wantFinal {
			if got := final[key]; got != want {
				t.Errorf("row %s = %+v, want %+v", key, got, want)
			}
		}
		// Per-key order: the versions of 111 in the order the source wrote them.
		want111 := []product{{111, "scooter", 5.18, false}, {111, "scooter", 5.17, false}, {111, "scooter", 5.17, true}}
		if !slices.Equal(versions["111"], want111) {
			t.Errorf("versions of 111 = %+v, want %+v", versions["111"], want111)
		}
	})

	t.Run("dead letters name class and origin", func(t *testing.T) {
		dlq := s.consume(m.DeadLetter.Topic, len(bad))
		byOffset := map[string]*kgo.Record{}
		for _, r := range dlq {
			byOffset[kafka.Header(r, ports.HeaderOriginPartition)+"@"+kafka.Header(r, ports.HeaderOriginOffset)] = r
		}
		for i, in := range bad {
			at := fmt.Sprintf("%d@%d", in.Partition, in.Offset)
			d, ok := byOffset[at]
			if !ok {
				t.Errorf("bad event %d (%s) is not in the dead-letter topic", i, at)
				continue
			}
			if got := kafka.Header(d, ports.HeaderErrorClass); got != wantClass[i] {
				t.Errorf("bad event %d: class %q, want %q (message %q)", i, got, wantClass[i], kafka.Header(d, ports.HeaderErrorMessage))
			}
			if kafka.Header(d, ports.HeaderOriginTopic) != inTopic || kafka.Header(d, ports.HeaderErrorMessage) == "" ||
				kafka.Header(d, ports.HeaderProduct) != m.ID {
				t.Errorf("bad event %d: headers %v", i, d.Headers)
			}
			if !bytes.Equal(d.Value, in.Value) || !bytes.Equal(d.Key, in.Key) {
				t.Errorf("bad event %d: dead letter does not keep the original key and value", i)
			}
		}
		// Each malformed event was counted by its decoder (at least once: a
		// batch consumed again is decoded again).
		malformed := 0
		for _, c := range wantClass {
			if c == "malformed" {
				malformed++
			}
		}
		got := metricValue(t, s.runner.Metrics(), "meshlet_cdc_decode_errors_total", map[string]string{"format": "debezium-json", "reason": "malformed", "topic": inTopic})
		if malformed == 0 || got < float64(malformed) {
			t.Errorf("meshlet_cdc_decode_errors_total{reason=malformed} = %v, want at least the %d malformed events", got, malformed)
		}
	})

	t.Run("change log matches the output record for record", func(t *testing.T) {
		out := s.consume(outTopic, len(good))
		published := map[string]int{}
		for _, r := range out {
			published[string(r.Key)+"\x00"+string(r.Value)]++
		}
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
		reports, err := auditlog.VerifyTree(filepath.Join(s.dataDir, "changelog"))
		if err != nil {
			t.Fatal(err)
		}
		var entries int
		for _, rep := range reports {
			l, err := auditlog.Open(rep.Dir)
			if err != nil {
				t.Fatal(err)
			}
			part := filepath.Base(rep.Dir)
			var lastSys int64
			err = l.Scan(1, func(e *auditlog.Entry) error {
				entries++
				k := string(e.Key) + "\x00" + string(e.Payload)
				if published[k] == 0 {
					return fmt.Errorf("%s seq %d: entry for key %s is not on the output topic", part, e.Seq, e.Key)
				}
				published[k]--
				if e.SystemTime <= lastSys {
					return fmt.Errorf("%s seq %d: system time %d not after %d", part, e.Seq, e.SystemTime, lastSys)
				}
				lastSys = e.SystemTime
				if want := inTopic + "-" + strconv.Itoa(int(e.Prov.Partition)); want != part || e.Prov.SchemaID != uint32(s.runner.SchemaID()) || e.Prov.SourcePosition == "" {
					return fmt.Errorf("%s seq %d: provenance %+v", part, e.Seq, e.Prov)
				}
				return nil
			})
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if entries != len(good) {
			t.Fatalf("change logs hold %d entries, want %d", entries, len(good))
		}
	})

	t.Run("a third-party consumer decodes every event", func(t *testing.T) {
		if err := interop.NodeAvailable(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		events, err := interop.ConsumeKafkaJS(ctx, s.brokers[0], outTopic, s.registry, len(good))
		if err != nil {
			t.Fatal(err)
		}
		final := map[string]product{}
		for _, e := range events {
			if e.SchemaID != s.runner.SchemaID() {
				t.Errorf("kafkajs saw schema id %d, want %d", e.SchemaID, s.runner.SchemaID())
			}
			js, _ := json.Marshal(e.Value)
			var v struct {
				ID      int32    `json:"id"`
				Name    string   `json:"name"`
				Weight  *float64 `json:"weight_kg"`
				Deleted bool     `json:"_deleted"`
				Valid   int64    `json:"_valid_from"`
				System  int64    `json:"_system_from"`
			}
			if err := json.Unmarshal(js, &v); err != nil {
				t.Fatalf("event %s: %v", js, err)
			}
			if v.Valid < time.Date(2020, 7, 29, 0, 0, 0, 0, time.UTC).UnixMicro() || v.System <= v.Valid {
				t.Errorf("event %s: implausible times", js)
			}
			if v.Deleted {
				delete(final, e.Key)
			} else {
				final[e.Key] = product{v.ID, v.Name, deref(v.Weight), false}
			}
		}
		for key, want := range wantFinal {
			if got := final[key]; got != want {
				t.Errorf("kafkajs: row %s = %+v, want %+v", key, got, want)
			}
		}
	})
}

// TestRefusesToEraseCommittedHistory: a change log whose entries reach far
// past what the group committed (here: a group with no offsets at all, as
// after offsets expired) is not rewound; the product stops with ErrFatal.
func TestRefusesToEraseCommittedHistory(t *testing.T) {
	s := startStack(t)
	m := s.product.Manifest
	dir := filepath.Join(s.dataDir, "changelog", m.InputPorts[0].Topic+"-0")
	l, err := auditlog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var entries []auditlog.Entry
	for i := range 50 {
		entries = append(entries, auditlog.Entry{
			Seq: uint64(i + 1), SystemTime: int64(1_000 + i), ValidFrom: 1, Op: auditlog.OpAssert,
			Key: []byte("k"), Payload: []byte{0, 0, 0, 0, 1},
			Prov: auditlog.Provenance{Topic: m.InputPorts[0].Topic, Offset: int64(i) * 1000},
		})
	}
	if err := l.Append(entries); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// One record so partition 0 is fetched, though the check runs on assignment anyway.
	s.produce([]*kgo.Record{{Topic: m.InputPorts[0].Topic, Partition: 0, Key: []byte(`{"id":1}`), Value: []byte(`{}`)}})

	r, err := runtime.Start(context.Background(), s.product,
		runtime.SeedBrokers(s.brokers...), runtime.SchemaRegistry(s.registry), runtime.DataDir(s.dataDir), runtime.MaxBatch(100),
		runtime.Logger(slog.New(slog.NewTextHandler(t.Output(), nil))),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = r.Run(ctx)
	if !errors.Is(err, runtime.ErrFatal) || !strings.Contains(err.Error(), "refusing to erase committed history") {
		t.Fatalf("Run = %v, want ErrFatal refusing to erase committed history", err)
	}
	rep, verr := auditlog.Verify(dir)
	if verr != nil || rep.Entries != 50 {
		t.Fatalf("the log was changed: %+v, %v", rep, verr)
	}
}

// startRedis runs a real redis-server for the test.
func startRedis(t *testing.T) string {
	t.Helper()
	srv, err := localredis.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv.Addr
}

// auditorToken is the bearer token getJSON presents; tests give it the
// auditor role, which may read current state, as-of and history.
const auditorToken = "test-auditor-token"

func testTokens(t *testing.T) *mgmt.Tokens {
	t.Helper()
	tokens, err := mgmt.ParseTokenList("auditor:auditor:" + auditorToken)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+auditorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// TestQueryPortAndCheckpoints runs the product with Redis and the query
// port, then asks what a consumer and an auditor would.
func TestQueryPortAndCheckpoints(t *testing.T) {
	s := startStack(t)
	s.produce(recorded(t, s.product.Manifest.InputPorts[0].Topic))
	r, err := runtime.Start(context.Background(), s.product,
		runtime.SeedBrokers(s.brokers...), runtime.SchemaRegistry(s.registry), runtime.DataDir(s.dataDir),
		runtime.Redis(startRedis(t)), runtime.ManagementAddr("127.0.0.1:0"), runtime.Tokens(testTokens(t)),
		runtime.Logger(slog.New(slog.NewTextHandler(t.Output(), nil))),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	s.runner = r
	s.waitEvents(16)
	base := "http://" + r.HTTPAddr().String() + "/v1/entities/"

	type entity struct {
		Found  bool   `json:"found"`
		Source string `json:"source"`
		Entry  struct {
			Fields map[string]any `json:"fields"`
		} `json:"entry"`
	}
	// The batch's counters move when it commits; Redis takes its entries
	// just after, so the current state is asked for until it holds the
	// update (a loaded machine can take seconds), within a bound.
	var cur entity
	var code int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		cur = entity{}
		code = getJSON(t, base+"106", &cur)
		if code == 200 && cur.Found && cur.Source == "redis" && cur.Entry.Fields["description"] == "18oz carpenter hammer" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("current 106 after 30s: %d %+v", code, cur)
		}
	}
	var before entity
	if code := getJSON(t, base+"106?asOf=now&validAt=2020-07-29T07:00:00Z", &before); code != 200 ||
		before.Entry.Fields["description"] != "16oz carpenter's hammer" {
		t.Fatalf("106 valid before its update: %d %+v", code, before)
	}
	var gone entity
	if code := getJSON(t, base+"111", &gone); code != 404 || gone.Found {
		t.Fatalf("deleted 111: %d %+v, want 404", code, gone)
	}
	var hist struct {
		Versions []map[string]any `json:"versions"`
	}
	if code := getJSON(t, base+"110/history", &hist); code != 200 || len(hist.Versions) < 2 {
		t.Fatalf("history of 110: %d %+v", code, hist)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Closing signed a checkpoint of every log; each verifies against the log.
	notes, _ := filepath.Glob(filepath.Join(s.dataDir, "changelog", "*", "checkpoints", "*.note"))
	if len(notes) < 3 {
		t.Fatalf("%d checkpoints after close, want one per log at least: %v", len(notes), notes)
	}
	verifier, err := auditlog.ReadVerifier(filepath.Join(s.dataDir, auditlog.VerifierFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		text, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auditlog.VerifySince(filepath.Dir(filepath.Dir(n)), text, verifier); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
}

// TestCanalMultiRowInput runs the example handler on Flink's recorded canal
// capture: canal sends several rows in one message and every value as a
// string; each row must come out as its own typed record.
func TestCanalMultiRowInput(t *testing.T) {
	dir := t.TempDir()
	manifest, err := os.ReadFile("../examples/inventory/products/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifest = bytes.Replace(manifest, []byte("format: debezium-json"), []byte("format: canal-json"), 1)
	avsc, err := os.ReadFile("../examples/inventory/products/schemas/product.avsc")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "schemas"), 0o755)
	os.WriteFile(filepath.Join(dir, "product.yaml"), manifest, 0o644)
	os.WriteFile(filepath.Join(dir, "schemas", "product.avsc"), avsc, 0o644)
	s := startStack(t)
	if s.product, err = runtime.NewProduct(os.DirFS(dir), "product.yaml", transforms.Typed(products.Handle)); err != nil {
		t.Fatal(err)
	}
	canal, err := samples.Read(samples.Canal)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, line := range bytes.Split(bytes.TrimSpace(canal), []byte("\n")) {
		recs = append(recs, &kgo.Record{Topic: s.product.Manifest.InputPorts[0].Topic, Partition: 0, Value: line})
	}
	s.produce(recs)
	s.run()
	s.waitEvents(int64(len(recs)))
	st := s.runner.Stats()
	// 11 messages carry 20 row changes and one DDL statement (skipped).
	if st.Records.Load() != 20 || st.DeadLetters.Load() != 0 || st.Skipped.Load() != 1 {
		t.Fatalf("records %d, dead letters %d, skipped %d; want 20, 0, 1", st.Records.Load(), st.DeadLetters.Load(), st.Skipped.Load())
	}
	out := s.consume(s.product.Manifest.OutputPorts[0].Topic, 20)
	reg, err := schemas.NewRegistry([]string{s.registry})
	if err != nil {
		t.Fatal(err)
	}
	// The first message inserts 101..109; weights arrive as strings.
	var first *kgo.Record
	for _, r := range out {
		if string(r.Key) == "101" {
			first = r
			break
		}
	}
	if first == nil {
		t.Fatal("no record for 101")
	}
	var row products.Product
	if _, _, err := reg.Decode(context.Background(), first.Value, &row); err != nil {
		t.Fatal(err)
	}
	if row.Name != "scooter" || deref(row.WeightKg) != 3.14 {
		t.Fatalf("101 = %+v, want scooter weighing 3.14", row)
	}
}

package cli

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The whole-transaction crash test: the same kills as TestCrashExactlyOnce,
// of the example product with its input port set to `transactions: whole`,
// fed Debezium source transactions of one to four changes with their BEGIN
// and END on the transaction topic, arriving in chunks that often split a
// transaction, so batches hold back incomplete ones when the kills land.

const txTopic = "dbserver1.transaction"

var (
	wholeTxOnce sync.Once
	wholeTxBin  string
	wholeTxErr  error
)

// wholeTxProduct builds the test product's binary (testdata/wholetx) once
// and writes the manifest it runs with: the example's, with whole
// transactions on its input port. It returns the binary and the
// environment that points it at the manifest.
func wholeTxProduct(t *testing.T) (string, []string) {
	t.Helper()
	wholeTxOnce.Do(func() {
		wholeTxBin = filepath.Join(filepath.Dir(inventoryBin), "wholetx")
		out, err := exec.Command("go", "build", "-o", wholeTxBin, "./testdata/wholetx").CombinedOutput()
		if err != nil {
			wholeTxErr = fmt.Errorf("build testdata/wholetx: %v\n%s", err, out)
		}
	})
	if wholeTxErr != nil {
		t.Fatal(wholeTxErr)
	}
	manifest, err := os.ReadFile("../examples/inventory/products/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	avsc, err := os.ReadFile("../examples/inventory/products/schemas/product.avsc")
	if err != nil {
		t.Fatal(err)
	}
	port := "    format: debezium-json\n"
	if !strings.Contains(string(manifest), port) {
		t.Fatalf("the example manifest no longer has %q for the test to extend", port)
	}
	m := strings.Replace(string(manifest), port, port+"    transactions: whole\n    transactionTopic: "+txTopic+"\n", 1)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "schemas"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "product.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schemas", "product.avsc"), avsc, 0o644); err != nil {
		t.Fatal(err)
	}
	return wholeTxBin, []string{"MESHLET_TEST_PRODUCT=" + dir}
}

// loadTx prepares about n changes on 200 keys, most in source transactions
// of one to four changes (BEGIN, the changes, END), one slot in 23 a change
// outside any transaction and one in 31 a malformed record.
func (w *crashWorld) loadTx(n int) []*kgo.Record {
	rng := rand.New(rand.NewPCG(uint64(n), 43))
	version := map[int]int{}
	var recs []*kgo.Record
	change := func(i int, tx string) {
		id := 1000 + rng.IntN(200)
		version[id]++
		v := version[id]
		descr := description(i, rng)
		rec := &kgo.Record{Topic: w.in, Key: fmt.Appendf(nil, `{"id":%d}`, id), Value: []byte(debeziumUpdate(i, id, v, descr, tx))}
		recs = w.add(recs, rec, inEvent{kind: eventValid, key: strconv.Itoa(id), name: "v" + strconv.Itoa(v), size: len(descr)})
	}
	boundary := func(value string, id string) {
		recs = w.add(recs, &kgo.Record{Topic: txTopic, Key: fmt.Appendf(nil, `{"id":%q}`, id), Value: []byte(value)}, inEvent{kind: eventBoundary})
	}
	for i, slot := 0, 0; i < n; slot++ {
		switch {
		case slot%31 == 30:
			recs = w.addMalformed(recs, i)
			i++
		case slot%23 == 22:
			change(i, "")
			i++
		default:
			id := "tx-" + strconv.Itoa(slot)
			size := min(1+rng.IntN(4), n-i)
			boundary(fmt.Sprintf(`{"status":"BEGIN","id":%q,"event_count":null,"data_collections":null,"ts_ms":%d}`, id, 1700000000000+int64(i)), id)
			for j := 1; j <= size; j++ {
				change(i, fmt.Sprintf(`{"id":%q,"total_order":%d,"data_collection_order":%d}`, id, j, j))
				i++
			}
			boundary(fmt.Sprintf(`{"status":"END","id":%q,"event_count":%d,"data_collections":[{"data_collection":"inventory.products","event_count":%d}],"ts_ms":%d}`,
				id, size, size, 1700000000000+int64(i)), id)
		}
	}
	return recs
}

func TestCrashWholeTransactions(t *testing.T) {
	events := envInt(t, "MESHLET_CRASH_TX_EVENTS", 2500)
	kills := envInt(t, "MESHLET_CRASH_TX_KILLS", 4)
	bin, env := wholeTxProduct(t)
	w := newCrashWorldWith(t, map[string]int32{txTopic: 1})
	w.failProduces(29)
	fed := w.feed(w.loadTx(events), feedLead(w.total, kills))
	k := &killRun{w: w, bin: bin, env: env, kills: kills}
	k.run(t)
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d input records (%d changes, %d of them near 900 KB; %d malformed), %d kills %v, %d produce requests failed by the broker",
		w.total, w.valid, w.large, w.malformed, kills, k.died, w.faultHits())
	t.Logf("kill positions (fraction of the input committed at each kill):%s", histogram(k.positions))
	checkSpread(t, k.positions)
	w.check()
}

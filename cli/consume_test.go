package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/snapshot"
)

// bootEvents are Debezium changes of the products table: inserts, updates
// and deletes of 40 products, events first to first+n-1, each with its
// own source position and commit time.
func bootEvents(topic string, first, n int) []*kgo.Record {
	var recs []*kgo.Record
	for i := first; i < first+n; i++ {
		id := 1000 + (i*7)%40
		row := fmt.Sprintf(`{"id":%d,"name":"product %d v%d","description":"event %d","weight":%d.5}`, id, id, i, i, i%30)
		op, before, after := "u", row, row
		switch {
		case i < 40:
			op, before = "c", "null"
		case i%9 == 0:
			op, after = "d", "null"
		}
		value := fmt.Sprintf(`{"before":%s,"after":%s,"source":{"version":"2.7.3.Final","connector":"postgresql","name":"dbserver1",`+
			`"ts_ms":%d,"snapshot":"false","db":"postgres","schema":"inventory","table":"products","txId":%d,"lsn":%d},"op":"%s","ts_ms":%d,"transaction":null}`,
			before, after, 1700000000000+int64(i)*1000, 9000+i, 50000000+int64(i)*64, op, 1700000000100+int64(i)*1000)
		recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, `{"id":%d}`, id), Value: []byte(value)})
	}
	return recs
}

// outputRecord is a data record of the output topic.
type outputRecord struct {
	partition int32
	offset    int64
	change    snapshot.Change
}

// readOutput reads the output topic from offset 0 up to its last stable
// offsets, decoding every record through the registry.
func readOutputRecords(t *testing.T, w *crashWorld) []outputRecord {
	t.Helper()
	ctx := context.Background()
	ends, err := snapshot.CommittedOffsets(ctx, kadm.NewClient(w.client), w.out)
	if err != nil {
		t.Fatal(err)
	}
	end, next, from := map[int32]int64{}, map[int32]int64{}, map[int32]kgo.Offset{}
	for _, o := range ends {
		end[o.Partition], from[o.Partition] = o.Offset, kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(w.brokers, ",")...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.out: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	reg, err := schemas.NewRegistry([]string{w.registry})
	if err != nil {
		t.Fatal(err)
	}
	var out []outputRecord
	deadline := time.Now().Add(30 * time.Second)
	for p := range end {
		for next[p] < end[p] {
			if time.Now().After(deadline) {
				t.Fatalf("read the output topic up to %v, want %v", next, end)
			}
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			fs := cl.PollFetches(pctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				if r.Offset >= end[r.Partition] {
					return
				}
				next[r.Partition] = r.Offset + 1
				if r.Attrs.IsControl() {
					return
				}
				c, err := snapshot.DecodeRecord(ctx, reg, r.Key, r.Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, outputRecord{r.Partition, r.Offset, c})
			})
		}
	}
	return out
}

// committedOutput counts the output topic's committed data records
// (offsets up to the last stable offset, less the transaction markers).
func committedOutput(t *testing.T, w *crashWorld) int {
	t.Helper()
	return len(readOutputRecords(t, w))
}

// TestBootstrapFromSnapshot runs the example product as a process against
// kfake (TCP) and the embedded registry (HTTP), takes a snapshot with
// `meshlet snapshot --brokers` while input keeps arriving, feeds more, and
// then starts a consumer with `meshlet consume --from-snapshot`: its state
// equals a full replay of the output topic, every record after the
// snapshot applied once and every one before it skipped.
func TestBootstrapFromSnapshot(t *testing.T) {
	w := newCrashWorld(t)
	ctx := context.Background()
	cmd := exec.Command(inventoryBin, "run", "--brokers", w.brokers, "--registry", w.registry, "--data", w.dataDir, "--max-batch", "50")
	c := &child{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.waitEr = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		<-c.done
	})
	c.waitReady(t)

	produce := func(recs []*kgo.Record) {
		t.Helper()
		if err := w.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	fed := 0
	waitOutput := func() {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for committedOutput(t, w) < fed {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d records on the output topic\n%s", committedOutput(t, w), fed, tail(c.out.String(), 40))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	produce(bootEvents(w.in, 0, 150))
	fed = 150
	waitOutput()

	// Input keeps arriving while the snapshot is taken.
	stop := make(chan struct{})
	var trickled sync.WaitGroup
	trickled.Add(1)
	var trickle int
	go func() {
		defer trickled.Done()
		for i := 150; ; i += 3 {
			select {
			case <-stop:
				trickle = i - 150
				return
			case <-time.After(50 * time.Millisecond):
			}
			if err := w.client.ProduceSync(ctx, bootEvents(w.in, i, 3)...).FirstErr(); err != nil {
				t.Error(err)
				trickle = i - 150
				return
			}
		}
	}()
	snapDir := filepath.Join(t.TempDir(), "snap")
	out, errOut, code := meshlet(t, "snapshot", w.dataDir, "--out", snapDir, "--brokers", w.brokers, "--topic", w.out, "--port", "products")
	close(stop)
	trickled.Wait()
	if code != 0 {
		t.Fatalf("snapshot: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{`snapshot .* of urn:dataproduct:inventory:products \(port products\)`, `table\.parquet\s+\d+ rows`,
		`history\.parquet\s+\d+ rows`, `consumers continue on inventory\.products\.v1 from partition@offset 0@\d+ 1@\d+ 2@\d+`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("snapshot output lacks %q:\n%s", want, out)
		}
	}
	fed += trickle
	produce(bootEvents(w.in, 150+trickle, 120))
	fed += 120
	waitOutput()

	cout, cerr, code := meshlet(t, "consume", "--from-snapshot", snapDir, "--brokers", w.brokers, "--registry", w.registry, "--until-caught-up", "--json")
	if code != 0 {
		t.Fatalf("consume: exit %d\n%s", code, cerr)
	}
	m, err := snapshot.ReadManifest(snapDir)
	if err != nil {
		t.Fatal(err)
	}

	// A full replay, and which records the snapshot holds.
	all := readOutputRecords(t, w)
	if len(all) != fed {
		t.Fatalf("%d records on the output topic, %d events fed", len(all), fed)
	}
	from := map[int32]int64{}
	for _, o := range m.Offsets {
		from[o.Partition] = o.Offset
	}
	full := snapshot.NewState()
	var wantApplied, wantSkipped, held int
	for _, r := range all {
		full.Apply(r.change)
		switch {
		case r.offset < from[r.partition]:
			if r.change.SystemFrom > m.System {
				t.Fatalf("record p%d@%d, recorded after T, is before the manifest's offsets: a consumer would miss it", r.partition, r.offset)
			}
			held++
		case r.change.SystemFrom <= m.System:
			wantSkipped++
		default:
			wantApplied++
		}
	}
	if held == 0 || wantApplied < 120 {
		t.Fatalf("the snapshot holds %d records before its offsets and %d come after it: not a snapshot mid-stream", held, wantApplied)
	}
	sum := regexp.MustCompile(`applied (\d+) records, skipped (\d+) the snapshot holds`).FindStringSubmatch(cerr)
	if sum == nil {
		t.Fatalf("consume printed no summary:\n%s", cerr)
	}
	if a, _ := strconv.Atoi(sum[1]); a != wantApplied {
		t.Errorf("consume applied %d records, want the %d recorded after T", a, wantApplied)
	}
	if s, _ := strconv.Atoi(sum[2]); s != wantSkipped {
		t.Errorf("consume skipped %d records, want the %d between the offsets and T", s, wantSkipped)
	}

	var got []string
	for _, l := range strings.Split(strings.TrimSpace(cout), "\n") {
		got = append(got, string(canonicalJSON(t, []byte(l))))
	}
	want := stateLines(t, full)
	if len(want) < 20 {
		t.Fatalf("the replay holds %d pieces: the comparison proves little", len(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("consume --from-snapshot state differs from a full replay:\n got %d lines\n%s\nwant %d lines\n%s",
			len(got), strings.Join(got, "\n"), len(want), strings.Join(want, "\n"))
	}
}

// stateLines prints a state as consume --json does, from the Avro side:
// the comparison's other half reads the snapshot's Parquet files.
func stateLines(t *testing.T, s *snapshot.State) []string {
	t.Helper()
	var out []string
	for _, k := range s.Keys() {
		for _, p := range s.Timeline(k) {
			fields := map[string]any{}
			for f, v := range p.Fields {
				switch x := v.(type) {
				case time.Time:
					v = x.UTC().Format(time.RFC3339Nano)
				case *big.Rat:
					v = x.RatString()
				}
				fields[f] = v
			}
			line := map[string]any{"key": k, "validFrom": time.UnixMicro(p.ValidFrom).UTC().Format(time.RFC3339Nano), "validTo": nil, "fields": fields}
			if p.ValidTo != 0 {
				line["validTo"] = time.UnixMicro(p.ValidTo).UTC().Format(time.RFC3339Nano)
			}
			b, err := json.Marshal(line)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(canonicalJSON(t, b)))
		}
	}
	return out
}

// canonicalJSON re-encodes a JSON object with sorted keys.
func canonicalJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

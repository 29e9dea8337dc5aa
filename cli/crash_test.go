package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/internal/failpoint"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
)

// The crash and scale-out tests run the product's binary as child
// processes against a kfake broker and the embedded registry served by the
// test, kill them with SIGKILL, and then check the one rule that matters:
// the committed output and the change log agree, nothing is lost, nothing
// is doubled, per-key order is kept.
//
// Kills are spread over the whole run by input progress: kill k waits until
// the group has committed a target fraction of the input drawn from the
// k-th of N equal slices of [0, 1), so every tenth of the run sees about as
// many kills as the others, and each kill's position is recorded and shown
// as a histogram. Some kills come from failpoints inside the child (after
// the log append, before and after the commit, mid-write), some land while
// a reprocessing runs, and a separate run kills a product in
// whole-transaction mode. All the while the broker fails some produce
// requests (kfake faults), and a few records are near 900 KB.
//
// Sizes are small for `make test`; `make crash` sets MESHLET_CRASH_EVENTS,
// MESHLET_CRASH_KILLS and MESHLET_CRASH_TX_KILLS for the full run.

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

type eventKind int

const (
	eventValid     eventKind = iota
	eventDuplicate           // a Debezium re-send of an earlier valid event
	eventMalformed
	eventBoundary // a transaction's BEGIN or END, on the transaction topic
)

// inEvent is what the test knows of one input record.
type inEvent struct {
	kind   eventKind
	key    string // the output key: the row id
	name   string // the version the record carries: v1, v2, ...
	size   int    // length of the row's description
	marker string // a malformed record's marker
}

// reprocessRange is a reprocessing the product carried out: partition
// consumed again from offset from up to until (the committed offset when it
// began).
type reprocessRange struct {
	partition   int32
	from, until int64
}

// crashWorld is the broker, registry and input a crash test runs against.
type crashWorld struct {
	t        *testing.T
	cluster  *kfake.Cluster
	brokers  string
	registry string
	dataDir  string
	in, out  string
	dlq      string
	group    string
	clogName string // the changelog topic
	client   *kgo.Client

	events map[*kgo.Record]inEvent
	mu     sync.Mutex
	placed map[int32][]inEvent // input partition -> event at each offset, as produced
	total  int64               // records on the input topic

	valid, dups, malformed, large int
	reprocessed                   []reprocessRange
	faults                        []*kfake.FaultHandle

	bin string // the product's binary; empty: the inventory example
}

func newCrashWorld(t *testing.T) *crashWorld { return newCrashWorldWith(t, nil) }

// newCrashWorldWith also creates the extra topics (name -> partitions).
func newCrashWorldWith(t *testing.T, extra map[string]int32) *crashWorld {
	t.Helper()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	reg, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	p, err := products.New()
	if err != nil {
		t.Fatal(err)
	}
	m := p.Manifest
	w := &crashWorld{
		t: t, cluster: broker, brokers: strings.Join(broker.ListenAddrs(), ","), registry: reg.URL(), dataDir: t.TempDir(),
		in: m.InputPorts[0].Topic, out: m.OutputPorts[0].Topic, dlq: m.DeadLetter.Topic, group: m.ID, clogName: kafka.ChangelogTopic(m.ID),
		events: map[*kgo.Record]inEvent{}, placed: map[int32][]inEvent{},
	}
	w.client, err = kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.client.Close)
	topics := map[string]int32{w.in: 3, w.out: 3, w.dlq: 1}
	for name, n := range extra {
		topics[name] = n
	}
	if err := kafka.EnsureTopics(context.Background(), w.client, topics); err != nil {
		t.Fatal(err)
	}
	return w
}

// failProduces makes the broker fail one produce request in every: the
// retriable errors a real cluster gives during a leader move or under load,
// one of them (REQUEST_TIMED_OUT) after the records were appended, so the
// producer's retry must be recognised as a duplicate.
func (w *crashWorld) failProduces(every int64) {
	var n atomic.Int64
	errs := []*kerr.Error{kerr.NotLeaderForPartition, kerr.RequestTimedOut, kerr.NotEnoughReplicasAfterAppend}
	for j, e := range errs {
		// The faults are consulted in order on the cluster's goroutine, so
		// the first counts the partitions produced to and each takes its
		// turn at every every-th one.
		w.faults = append(w.faults, w.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: e, Count: -1, When: func(kmsg.Request) bool {
			c := n.Load()
			if j == 0 {
				c = n.Add(1)
			}
			return c%every == 0 && (c/every)%int64(len(errs)) == int64(j)
		}}))
	}
}

// faultHits is how many produce requests the broker failed on purpose.
func (w *crashWorld) faultHits() int {
	n := 0
	for _, h := range w.faults {
		n += h.Hits()
	}
	return n
}

// description is the row description of event i: mostly short, one in 61
// between 1 and 64 KB, one in 997 near 900 KB (under the 1 MB a record may
// take on the default topics).
func description(i int, rng *rand.Rand) string {
	n := 0
	switch {
	case i%997 == 500:
		n = 880_000 + rng.IntN(40_000)
	case i%61 == 30:
		n = 1_000 + rng.IntN(63_000)
	default:
		return "e" + strconv.Itoa(i)
	}
	prefix := "e" + strconv.Itoa(i) + "-"
	return prefix + strings.Repeat("abcdefghij", n/10+1)[:n-len(prefix)]
}

// debeziumUpdate is a Debezium change of product id carrying version v,
// at a source position that grows with i; tx, when set, is the source
// transaction block.
func debeziumUpdate(i, id, v int, descr, tx string) string {
	op := "u"
	if v == 1 {
		op = "c"
	}
	if tx == "" {
		tx = "null"
	}
	return fmt.Sprintf(`{"before":null,"after":{"id":%d,"name":"v%d","description":%q,"weight":%d.25},`+
		`"source":{"version":"2.7.3.Final","connector":"postgresql","name":"dbserver1","ts_ms":%d,"snapshot":"false",`+
		`"db":"postgres","schema":"inventory","table":"products","txId":%d,"lsn":%d},"op":"%s","ts_ms":%d,"transaction":%s}`,
		id, v, descr, v%50, 1700000000000+int64(i), 5000+i, 30000000+int64(i)*64, op, 1700000000100+int64(i), tx)
}

func (w *crashWorld) add(recs []*kgo.Record, r *kgo.Record, e inEvent) []*kgo.Record {
	w.events[r] = e
	switch e.kind {
	case eventValid:
		w.valid++
		if e.size > 800_000 {
			w.large++
		}
	case eventDuplicate:
		w.dups++
	case eventMalformed:
		w.malformed++
	}
	if e.kind != eventBoundary {
		w.total++
	}
	return append(recs, r)
}

// load prepares n events on 200 keys: each a Debezium update carrying the
// key's next version, with a strictly increasing source position. About one
// in 50 is followed by a re-send of an earlier event (a Debezium duplicate),
// and one in 97 is malformed.
func (w *crashWorld) load(n int) []*kgo.Record {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	version := map[int]int{}
	var recent []*kgo.Record
	var recs []*kgo.Record
	for i := range n {
		if i%97 == 96 {
			recs = w.addMalformed(recs, i)
			continue
		}
		id := 1000 + rng.IntN(200)
		version[id]++
		v := version[id]
		descr := description(i, rng)
		rec := &kgo.Record{Topic: w.in, Key: fmt.Appendf(nil, `{"id":%d}`, id), Value: []byte(debeziumUpdate(i, id, v, descr, ""))}
		e := inEvent{kind: eventValid, key: strconv.Itoa(id), name: "v" + strconv.Itoa(v), size: len(descr)}
		recs = w.add(recs, rec, e)
		recent = append(recent, rec)
		if len(recent) > 300 {
			recent = recent[1:]
		}
		if i%50 == 49 {
			dup := recent[rng.IntN(len(recent))]
			d := w.events[dup]
			d.kind = eventDuplicate
			recs = w.add(recs, &kgo.Record{Topic: w.in, Key: dup.Key, Value: dup.Value}, d)
		}
	}
	return recs
}

func (w *crashWorld) addMalformed(recs []*kgo.Record, i int) []*kgo.Record {
	marker := fmt.Sprintf("broken-%d", i)
	return w.add(recs, &kgo.Record{Topic: w.in, Key: []byte(`{"id":0}`), Value: []byte(`{"marker":"` + marker + `","after":{"id":`)},
		inEvent{kind: eventMalformed, marker: marker})
}

// feed produces recs in chunks of random size, as a live source would,
// staying at most lead records ahead of what the group has committed: the
// input keeps arriving until the end, so kills land while it does, and
// batches are sometimes full and sometimes not. It records where each
// record landed, and returns a channel closed when everything is produced.
func (w *crashWorld) feed(recs []*kgo.Record, lead int64) <-chan error {
	rng := rand.New(rand.NewPCG(uint64(len(recs)), 3))
	done := make(chan error, 1)
	go func() {
		defer close(done)
		var produced int64
		for len(recs) > 0 {
			for produced-w.committed() > lead {
				time.Sleep(10 * time.Millisecond)
			}
			n := min(1+rng.IntN(120), len(recs))
			results := w.client.ProduceSync(context.Background(), recs[:n]...)
			if err := results.FirstErr(); err != nil {
				done <- err
				return
			}
			w.mu.Lock()
			for _, r := range results {
				if r.Record.Topic != w.in {
					continue
				}
				evs := w.placed[r.Record.Partition]
				for int64(len(evs)) <= r.Record.Offset {
					evs = append(evs, inEvent{kind: -1})
				}
				evs[r.Record.Offset] = w.events[r.Record]
				w.placed[r.Record.Partition] = evs
				produced++
			}
			w.mu.Unlock()
			recs = recs[n:]
			time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
		}
	}()
	return done
}

// feedLead is how far the input may run ahead of the committed offsets:
// half the distance between two kills' targets, so where a kill lands
// follows its target and not the speed of the product, which would
// otherwise swallow thousands of records between two looks at the offsets.
func feedLead(total int64, kills int) int64 {
	return max(100, min(1500, total/int64(max(1, kills))/2))
}

// child is one running product process.
type child struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	done   chan struct{}
	waitEr error
	dir    string // its data directory
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitReady waits until the child says it is running: only then are its
// signal handlers in place.
func (c *child) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(c.out.String(), "running ") {
		select {
		case <-c.done:
			return
		case <-deadline:
			t.Fatalf("child not running after 30s:\n%s", c.out)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

var managementLine = regexp.MustCompile(`management port (http://\S+)`)

// managementURL is the child's management port, which it prints before
// it says it is running.
func (c *child) managementURL(t *testing.T) string {
	t.Helper()
	m := managementLine.FindStringSubmatch(c.out.String())
	if m == nil {
		t.Fatalf("child printed no management port:\n%s", c.out)
	}
	return m[1]
}

// controlToken is the owner's token the children accept on their
// management ports.
const controlToken = "crash-test-owner"

// childSpec is how to start one product process.
type childSpec struct {
	bin        string // the product's binary; inventoryBin when empty
	dir        string // data directory; the world's when empty
	instance   string
	failpoints string
	env        []string
	txnTimeout string // 30s when empty
}

func (w *crashWorld) start(instance string, failpoints string) *child {
	w.t.Helper()
	return w.startSpec(childSpec{instance: instance, failpoints: failpoints})
}

func (w *crashWorld) startSpec(s childSpec) *child {
	w.t.Helper()
	if s.bin == "" {
		s.bin = cmp.Or(w.bin, inventoryBin)
	}
	if s.dir == "" {
		s.dir = w.dataDir
	}
	if s.txnTimeout == "" {
		s.txnTimeout = "30s"
	}
	// The default transaction timeout is long enough for a batch that waits
	// out a produce fault (a NOT_LEADER makes the client refresh metadata,
	// at most every 5 s); a killed child's open transaction is aborted at
	// once all the same, by the next process with its instance id. Only a
	// replica that never comes back leaves its transaction to time out.
	cmd := exec.Command(s.bin, "run", "--brokers", w.brokers, "--registry", w.registry, "--data", s.dir,
		"--instance", s.instance, "--max-batch", "300", "--session-timeout", "6s", "--txn-timeout", s.txnTimeout,
		"--http", "127.0.0.1:0", "-v")
	c := &child{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{}), dir: s.dir}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if dir := os.Getenv("MESHLET_CRASH_LOGDIR"); dir != "" {
		// Keep every child's output for a post-mortem of a long run.
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("child-%s-%d.log", s.instance, time.Now().UnixNano())))
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(func() { f.Close() })
		cmd.Stdout = io.MultiWriter(c.out, f)
		cmd.Stderr = cmd.Stdout
	}
	cmd.Env = append(os.Environ(), "MESHLET_FAILPOINTS="+s.failpoints, "MESHLET_TOKENS=crash:owner:"+controlToken)
	cmd.Env = append(cmd.Env, s.env...)
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() { c.waitEr = cmd.Wait(); close(c.done) }()
	w.t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.kill()
		}
	})
	return c
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// killedOrFine fails the test when the child stopped on its own with an
// error: a fatal error is a bug here, since nothing is corrupt.
func (w *crashWorld) killedOrFine(c *child) {
	w.t.Helper()
	if c.waitEr == nil {
		return
	}
	if ee, ok := c.waitEr.(*exec.ExitError); ok && ee.String() == "signal: killed" {
		return
	}
	w.t.Fatalf("child failed: %v\n%s", c.waitEr, c.out)
}

// committedBy reports the group's committed offset of each input partition.
func (w *crashWorld) committedBy() map[int32]int64 {
	adm := kadm.NewClient(w.client)
	offs, err := adm.FetchOffsets(context.Background(), w.group)
	got := map[int32]int64{}
	if err != nil {
		return got
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == w.in && o.Err == nil && o.At > 0 {
			got[o.Partition] = o.At
		}
	})
	return got
}

// committed reports how many input records the group has committed.
func (w *crashWorld) committed() int64 {
	var n int64
	for _, at := range w.committedBy() {
		n += at
	}
	return n
}

func (w *crashWorld) waitCommitted(timeout time.Duration, alive ...*child) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for w.committed() < w.total {
		for _, c := range alive {
			if c.exited() {
				w.t.Fatalf("child exited before finishing: %v\n%s", c.waitEr, c.out)
			}
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for i, c := range alive {
				fmt.Fprintf(&logs, "--- child %d:\n%s\n", i, tail(c.out.String(), 60))
			}
			w.t.Fatalf("committed %d of %d input records after %s\n%s", w.committed(), w.total, timeout, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitProgress waits until the group has committed at least target input
// records, or c has exited. It reports false if neither happened in time.
func (w *crashWorld) waitProgress(c *child, target int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for w.committed() < target && !c.exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func (w *crashWorld) stopGracefully(c *child) {
	w.t.Helper()
	c.waitReady(w.t)
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.kill()
		w.t.Fatalf("child ignored SIGTERM for 30s\n%s", c.out)
	}
	if c.waitEr != nil {
		w.t.Fatalf("SIGTERM: child exited with %v, want 0\n%s", c.waitEr, c.out)
	}
}

func (w *crashWorld) readAll(topic string) []*kgo.Record {
	w.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(w.brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	// The end offsets bound what is there; read_committed stops at the last
	// stable offset, and markers take offsets of their own, so read until a
	// poll comes back empty after the end was reached.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(w.client).ListEndOffsets(ctx, topic)
	if err != nil {
		w.t.Fatal(err)
	}
	var recs []*kgo.Record
	pos := map[int32]int64{}
	reached := func() bool {
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if pos[o.Partition] < o.Offset-1 && o.Offset > 0 {
				done = false
			}
		})
		return done
	}
	for !reached() {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			w.t.Fatalf("reading %s: timed out with %d records", topic, len(recs))
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			pos[r.Partition] = r.Offset
		})
		if fs.Empty() {
			break // only control records (transaction markers) remain
		}
	}
	return recs
}

// crashPoints are the ways a child is made to die: a kill from outside
// once the run reached its target, or a failpoint at the moments a crash is
// hardest to survive, armed when the run reached its target.
var crashPoints = []string{
	"",                      // killed by the test
	"runtime/after-append",  // log appended, nothing produced
	"runtime/before-commit", // produced in the transaction, not committed
	"runtime/after-commit",  // committed, before anything else
	"auditlog/torn-write",   // half a batch written to the log
}

// killRun is a series of kills of one product.
type killRun struct {
	w         *crashWorld
	bin       string   // the product's binary; inventoryBin when empty
	env       []string // more environment for every process
	kills     int
	reprocess int // every reprocess-th kill lands during a reprocessing; 0: none
	rng       *rand.Rand

	positions []float64 // fraction of the input committed at each kill
	died      map[string]int
}

// run kills the product kills times, at targets spread over the input,
// then lets a last process finish it and stops that one with SIGTERM.
func (k *killRun) run(t *testing.T) {
	w := k.w
	k.died = map[string]int{}
	k.rng = rand.New(rand.NewPCG(uint64(k.kills), 7))
	for i := range k.kills {
		target := int64((float64(i) + k.rng.Float64()) / float64(k.kills) * float64(w.total))
		var name string
		if k.reprocess > 0 && i%k.reprocess == k.reprocess-1 {
			name = k.killDuringReprocess(t, target)
		} else {
			name = k.killAt(t, target, crashPoints[i%len(crashPoints)])
		}
		at := w.committed()
		k.positions = append(k.positions, float64(at)/float64(w.total))
		k.died[name]++
		t.Logf("kill %d (%s): target %d, %d of %d input records committed", i+1, name, target, at, w.total)
	}
	c := w.startSpec(childSpec{bin: k.bin, instance: "0", env: k.env})
	w.waitCommitted(3*time.Minute, c)
	w.stopGracefully(c)
	t.Logf("final run: %s", strings.TrimSpace(lastLine(c.out.String())))
}

// killAt starts the product and has it die once the committed input passes
// target: by SIGKILL after a random delay of up to 50 ms, or by the
// failpoint fp, which the test arms then (failpoint.ArmEnvVar), so it fires
// at one of the next batches.
func (k *killRun) killAt(t *testing.T, target int64, fp string) string {
	w := k.w
	spec := childSpec{bin: k.bin, instance: "0", env: k.env}
	name := "timer"
	arm := filepath.Join(t.TempDir(), "arm")
	if fp != "" {
		spec.failpoints = fp + "=0.5"
		spec.env = append(slices.Clone(k.env), failpoint.ArmEnvVar+"="+arm)
		name = fp
	}
	c := w.startSpec(spec)
	c.waitReady(t)
	if !w.waitProgress(c, target, 2*time.Minute) {
		t.Fatalf("committed %d of the %d input records targeted in 2 minutes\n%s", w.committed(), target, tail(c.out.String(), 60))
	}
	switch {
	case c.exited():
	case fp != "":
		if err := os.WriteFile(arm, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// A point is hit every batch; with no input left it may never be.
		spacing := max(300, w.total/int64(k.kills))
		w.waitProgress(c, min(w.total+1, target+spacing), 30*time.Second)
		if !c.exited() {
			name += " (did not fire; killed)"
		}
	default:
		time.Sleep(time.Duration(k.rng.IntN(50)) * time.Millisecond)
	}
	if !c.exited() {
		c.kill()
	}
	w.killedOrFine(c)
	return name
}

// killDuringReprocess starts the product, lets it reach target, asks it
// (paused, so the range is known exactly) to reprocess a stretch of one
// partition, and kills it while that runs: either at once, before the
// first reprocessing batch can commit, or once the committed offset shows
// the reprocessing half way.
func (k *killRun) killDuringReprocess(t *testing.T, target int64) string {
	w := k.w
	c := w.startSpec(childSpec{bin: k.bin, instance: "0", env: k.env})
	c.waitReady(t)
	if !w.waitProgress(c, target, 2*time.Minute) || c.exited() {
		t.Fatalf("committed %d of the %d input records targeted\n%s", w.committed(), target, tail(c.out.String(), 60))
	}
	url := c.managementURL(t)
	control := func(args ...string) {
		t.Helper()
		args = append(args, "--url", url, "--token", controlToken, "--reason", "crash test")
		if out, errOut, code := meshlet(t, args...); code != 0 {
			t.Fatalf("meshlet %s: exit %d\n%s%s\nchild:\n%s", strings.Join(args, " "), code, out, errOut, tail(c.out.String(), 40))
		}
	}
	control("control", "pause")
	offs := w.committedBy()
	var p int32 = -1
	for _, q := range k.rng.Perm(3) {
		_, busy := w.reprocessState(int32(q))
		if !busy && offs[int32(q)] >= 50 {
			p = int32(q)
			break
		}
	}
	if p < 0 {
		control("control", "resume")
		c.kill()
		return "timer (no partition free to reprocess)"
	}
	from := max(0, offs[p]-int64(400+k.rng.IntN(1200)))
	control("control", "reprocess", w.in, strconv.Itoa(int(p)), strconv.FormatInt(from, 10))
	s, ok := w.reprocessState(p)
	if !ok || s.From != from || s.Until < offs[p] {
		t.Fatalf("after reprocess %s/%d from %d (committed %d): state %+v (found %v)", w.in, p, from, offs[p], s, ok)
	}
	w.reprocessed = append(w.reprocessed, reprocessRange{partition: p, from: s.From, until: s.Until})
	control("control", "resume")
	halfway := k.rng.IntN(2) == 0
	if halfway {
		deadline := time.Now().Add(time.Minute)
		for !c.exited() && time.Now().Before(deadline) {
			if _, busy := w.reprocessState(p); !busy || w.committedBy()[p] < s.Until {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(k.rng.IntN(20)) * time.Millisecond)
	} else {
		time.Sleep(time.Duration(k.rng.IntN(30)) * time.Millisecond)
	}
	c.kill()
	w.killedOrFine(c)
	_, busy := w.reprocessState(p)
	switch at := w.committedBy()[p]; {
	case !busy:
		return "reprocess (had finished)"
	case at >= s.Until:
		return "reprocess (before its first commit)"
	default:
		return "reprocess (part way)"
	}
}

// reprocessFile is the part of the product's reprocessing state file
// (runtime.reprocessState) the test reads.
type reprocessFile struct {
	From  int64 `json:"from"`
	Until int64 `json:"until"`
}

// reprocessState reads the state file the product keeps while it
// reprocesses partition p.
func (w *crashWorld) reprocessState(p int32) (reprocessFile, bool) {
	var s reprocessFile
	b, err := os.ReadFile(filepath.Join(w.dataDir, "reprocess", w.in+"-"+strconv.Itoa(int(p))+".json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return reprocessFile{}, false
	}
	return s, true
}

// histogram shows kill positions in ten buckets of input progress.
func histogram(positions []float64) string {
	var buckets [10]int
	for _, f := range positions {
		buckets[min(9, max(0, int(f*10)))]++
	}
	var b strings.Builder
	for i, n := range buckets {
		fmt.Fprintf(&b, "\n  %3d-%3d%%  %3d %s", i*10, i*10+10, n, strings.Repeat("#", n))
	}
	return b.String()
}

// checkSpread fails the test when the kills bunch up in the first half of
// the run (the targets are spread evenly, so half of them lie past 50%).
func checkSpread(t *testing.T, positions []float64) {
	t.Helper()
	late := 0
	for _, f := range positions {
		if f >= 0.5 {
			late++
		}
	}
	if len(positions) >= 10 && late*10 < len(positions)*3 {
		t.Errorf("only %d of %d kills landed in the second half of the input", late, len(positions))
	}
}

func TestCrashExactlyOnce(t *testing.T) {
	events := envInt(t, "MESHLET_CRASH_EVENTS", 5000)
	kills := envInt(t, "MESHLET_CRASH_KILLS", 6)
	w := newCrashWorld(t)
	w.failProduces(29)
	recs := w.load(events)
	fed := w.feed(recs, feedLead(w.total, kills))
	k := &killRun{w: w, kills: kills, reprocess: 6}
	k.run(t)
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d input records (%d valid events, %d of them near 900 KB; %d duplicates, %d malformed), %d kills %v, %d reprocessings, %d produce requests failed by the broker",
		w.total, w.valid, w.large, w.dups, w.malformed, kills, k.died, len(w.reprocessed), w.faultHits())
	t.Logf("kill positions (fraction of the input committed at each kill):%s", histogram(k.positions))
	checkSpread(t, k.positions)
	w.check()
}

// tail keeps the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

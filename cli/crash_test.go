package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshlet/meshlet/ports/kafka"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/schemas"
)

// The crash and scale-out tests run the meshlet binary as child processes
// against a kfake broker and the embedded registry served by the test, kill
// them at random moments, and then check the one rule that matters: the
// committed output and the change log agree, nothing is lost, nothing is
// doubled, per-key order is kept.
//
// Sizes are small for `make test`; `make crash` runs the full test:
// MESHLET_CRASH_EVENTS=100000 MESHLET_CRASH_KILLS=25.

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

// crashWorld is the broker, registry and input a crash test runs against.
type crashWorld struct {
	t        *testing.T
	brokers  string
	registry string
	dataDir  string
	in, out  string
	dlq      string
	group    string
	client   *kgo.Client
	want     map[string][]string // key -> versions in order ("v1", "v2", ...)
	bad      map[string]bool     // markers of the malformed events
	valid    int                 // valid events, duplicates excluded
	dups     int
	total    int64 // input records, duplicates and malformed included

	bin string // the product's binary; empty: the inventory example
}

func newCrashWorld(t *testing.T) *crashWorld {
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
		t: t, brokers: strings.Join(broker.ListenAddrs(), ","), registry: reg.URL(), dataDir: t.TempDir(),
		in: m.InputPorts[0].Topic, out: m.OutputPorts[0].Topic, dlq: m.DeadLetter.Topic, group: m.ID,
		want: map[string][]string{}, bad: map[string]bool{},
	}
	w.client, err = kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.client.Close)
	if err := kafka.EnsureTopics(context.Background(), w.client, map[string]int32{w.in: 3, w.out: 3, w.dlq: 1}); err != nil {
		t.Fatal(err)
	}
	return w
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
			marker := fmt.Sprintf("broken-%d", i)
			w.bad[marker] = true
			recs = append(recs, &kgo.Record{Topic: w.in, Key: []byte(`{"id":0}`), Value: []byte(`{"marker":"` + marker + `","after":{"id":`)})
			continue
		}
		id := 1000 + rng.IntN(200)
		version[id]++
		v := version[id]
		op := "u"
		if v == 1 {
			op = "c"
		}
		key := fmt.Sprintf(`{"id":%d}`, id)
		value := fmt.Sprintf(`{"before":null,"after":{"id":%d,"name":"v%d","description":"e%d","weight":%d.25},`+
			`"source":{"version":"2.7.3.Final","connector":"postgresql","name":"dbserver1","ts_ms":%d,"snapshot":"false",`+
			`"db":"postgres","schema":"inventory","table":"products","txId":%d,"lsn":%d},"op":"%s","ts_ms":%d,"transaction":null}`,
			id, v, i, v%50, 1700000000000+int64(i), 5000+i, 30000000+int64(i)*64, op, 1700000000100+int64(i))
		rec := &kgo.Record{Topic: w.in, Key: []byte(key), Value: []byte(value)}
		recs = append(recs, rec)
		w.want[strconv.Itoa(id)] = append(w.want[strconv.Itoa(id)], "v"+strconv.Itoa(v))
		w.valid++
		recent = append(recent, rec)
		if len(recent) > 300 {
			recent = recent[1:]
		}
		if i%50 == 49 {
			dup := recent[rng.IntN(len(recent))]
			recs = append(recs, &kgo.Record{Topic: w.in, Key: dup.Key, Value: dup.Value})
			w.dups++
		}
	}
	w.total = int64(len(recs))
	return recs
}

// feed produces recs over about d, in small chunks, as a live source
// would, so that kills land while input is still arriving. It returns a
// channel closed when everything is produced.
func (w *crashWorld) feed(recs []*kgo.Record, d time.Duration) <-chan error {
	const tick = 20 * time.Millisecond
	chunk := max(1, len(recs)/max(1, int(d/tick)))
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for len(recs) > 0 {
			n := min(chunk, len(recs))
			if err := w.client.ProduceSync(context.Background(), recs[:n]...).FirstErr(); err != nil {
				done <- err
				return
			}
			recs = recs[n:]
			time.Sleep(tick)
		}
	}()
	return done
}

// child is one running meshlet process.
type child struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	done   chan struct{}
	waitEr error
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

func (w *crashWorld) start(instance string, failpoints string) *child {
	w.t.Helper()
	cmd := exec.Command(cmp.Or(w.bin, inventoryBin), "run", "--brokers", w.brokers, "--registry", w.registry, "--data", w.dataDir,
		"--instance", instance, "--max-batch", "300", "--session-timeout", "6s", "--txn-timeout", "8s", "-v")
	c := &child{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if dir := os.Getenv("MESHLET_CRASH_LOGDIR"); dir != "" {
		// Keep every child's output for a post-mortem of a long run.
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("child-%s-%d.log", instance, time.Now().UnixNano())))
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(func() { f.Close() })
		cmd.Stdout = io.MultiWriter(c.out, f)
		cmd.Stderr = cmd.Stdout
	}
	cmd.Env = append(os.Environ(), "MESHLET_FAILPOINTS="+failpoints)
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() { c.waitEr = cmd.Wait(); close(c.done) }()
	return c
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
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

// committed reports how many input records the group has committed.
func (w *crashWorld) committed() int64 {
	adm := kadm.NewClient(w.client)
	offs, err := adm.FetchOffsets(context.Background(), w.group)
	if err != nil {
		return 0
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == w.in && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n
}

func (w *crashWorld) waitCommitted(timeout time.Duration, alive ...*child) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for w.committed() < w.total {
		for _, c := range alive {
			select {
			case <-c.done:
				w.t.Fatalf("child exited before finishing: %v\n%s", c.waitEr, c.out)
			default:
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

// check verifies the crash rule on everything the children left behind.
func (w *crashWorld) check() {
	t := w.t
	t.Helper()
	reg, err := schemas.NewRegistry([]string{w.registry})
	if err != nil {
		t.Fatal(err)
	}
	out := w.readAll(w.out)
	got := map[string][]string{}
	published := map[string]int{}
	for _, r := range out {
		var row products.Product
		if _, _, err := reg.Decode(context.Background(), r.Value, &row); err != nil {
			t.Fatalf("output %d@%d: %v", r.Partition, r.Offset, err)
		}
		got[string(r.Key)] = append(got[string(r.Key)], row.Name)
		published[string(r.Key)+"\x00"+string(r.Value)]++
	}
	if len(out) != w.valid {
		t.Errorf("output holds %d records; want exactly the %d valid events (%d duplicates were injected)", len(out), w.valid, w.dups)
	}
	for key, want := range w.want {
		if strings.Join(got[key], ",") != strings.Join(want, ",") {
			t.Errorf("key %s: output versions %v, want %v (each once, in order)", key, got[key], want)
			break
		}
	}

	dead := w.readAll(w.dlq)
	seen := map[string]int{}
	for _, r := range dead {
		m := regexp.MustCompile(`broken-\d+`).Find(r.Value)
		if m == nil || kafka.Header(r, ports.HeaderErrorClass) != "malformed" || kafka.Header(r, ports.HeaderOriginOffset) == "" {
			t.Errorf("unexpected dead letter %q headers %v", r.Value, r.Headers)
			continue
		}
		seen[string(m)]++
	}
	for marker := range w.bad {
		if seen[marker] != 1 {
			t.Errorf("malformed event %s is in the dead-letter topic %d times, want once", marker, seen[marker])
		}
	}
	if len(dead) != len(w.bad) {
		t.Errorf("dead-letter topic holds %d records, want %d", len(dead), len(w.bad))
	}

	reports, err := auditlog.VerifyTree(filepath.Join(w.dataDir, "changelog"))
	if err != nil {
		t.Fatalf("change log: %v", err)
	}
	entries := 0
	for _, rep := range reports {
		l, err := auditlog.Open(rep.Dir)
		if err != nil {
			t.Fatal(err)
		}
		lastOffset := int64(-1)
		err = l.Scan(1, func(e *auditlog.Entry) error {
			entries++
			k := string(e.Key) + "\x00" + string(e.Payload)
			if published[k] == 0 {
				return fmt.Errorf("%s seq %d (input offset %d) is not in the committed output", rep.Dir, e.Seq, e.Prov.Offset)
			}
			published[k]--
			if e.Prov.Offset < lastOffset {
				return fmt.Errorf("%s seq %d: input offset %d after %d", rep.Dir, e.Seq, e.Prov.Offset, lastOffset)
			}
			lastOffset = e.Prov.Offset
			return nil
		})
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if entries != len(out) {
		t.Errorf("change logs hold %d entries, output %d records: they must match record for record", entries, len(out))
	}
}

// crashPoints are the ways a child is made to die: a timer kill from
// outside, or a failpoint at the moments a crash is hardest to survive.
var crashPoints = []string{
	"",                           // killed by the test at a random moment
	"runtime/after-append=0.08",  // log appended, nothing produced
	"runtime/before-commit=0.08", // produced in the transaction, not committed
	"runtime/after-commit=0.08",  // committed, before anything else
	"auditlog/torn-write=0.08",   // half a batch written to the log
}

func TestCrashExactlyOnce(t *testing.T) {
	events := envInt(t, "MESHLET_CRASH_EVENTS", 5000)
	kills := envInt(t, "MESHLET_CRASH_KILLS", len(crashPoints))
	w := newCrashWorld(t)
	fed := w.feed(w.load(events), time.Duration(kills)*3*time.Second)
	rng := rand.New(rand.NewPCG(uint64(kills), 7))
	died := map[string]int{}
	for k := range kills {
		fp := crashPoints[k%len(crashPoints)]
		c := w.start("0", fp)
		c.waitReady(t)
		name := fp
		if fp == "" {
			name = "timer"
			select {
			case <-c.done:
			case <-time.After(time.Duration(100+rng.IntN(900)) * time.Millisecond):
				c.kill()
			}
		} else {
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				name += " (did not fire; killed by timer)"
				c.kill()
			}
		}
		w.killedOrFine(c)
		died[name]++
		t.Logf("kill %d (%s): %d of %d input records committed", k+1, name, w.committed(), w.total)
	}
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	c := w.start("0", "")
	w.waitCommitted(2*time.Minute, c)
	w.stopGracefully(c)
	t.Logf("%d input records (%d valid events, %d duplicates, %d malformed), %d kills %v; final run: %s",
		w.total, w.valid, w.dups, len(w.bad), kills, died, strings.TrimSpace(lastLine(c.out.String())))
	w.check()
}

func TestScaleOut(t *testing.T) {
	events := envInt(t, "MESHLET_SCALE_EVENTS", 6000)
	w := newCrashWorld(t)
	fed := w.feed(w.load(events), 4*time.Second)
	replicas := []*child{w.start("0", ""), w.start("1", ""), w.start("2", "")}
	deadline := time.Now().Add(time.Minute)
	for w.committed() < w.total/3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("killing replica 1 at %d of %d committed", w.committed(), w.total)
	replicas[1].kill()
	replicas = append(replicas, w.start("3", ""))
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	w.waitCommitted(3*time.Minute, replicas[0], replicas[2], replicas[3])
	for _, i := range []int{0, 2, 3} {
		w.stopGracefully(replicas[i])
		t.Logf("replica %d: %s", i, strings.TrimSpace(lastLine(replicas[i].out.String())))
	}
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

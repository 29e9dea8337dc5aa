package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/meshlet/meshlet/internal/localredis"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/runtime"
)

// The fault matrix: the faults a real cluster produces, each injected a
// bounded number of times into a running product on kfake, while events
// flow. For each: no event lost, none doubled, the change log equal to
// the output, the counters equal to what committed, and the product goes
// on by itself (the same Run, no restart) once the fault is gone.
//
// A run feeds three rounds of events (valid ones and a few malformed, so
// the dead-letter path commits too): one before the fault, one while it
// is in force, one after it is healed.

// faultRun is one case's running world.
type faultRun struct {
	t *testing.T
	s *stack

	handles []*kfake.FaultHandle
	struck  atomic.Int64 // strikes of faults no handle counts

	// The broker's persistence, for a restart.
	brokerDir  string
	brokerPort int

	// The registry as the product reaches it: a proxy that can answer 503.
	registryDown atomic.Bool
	registry503  atomic.Int64
	registryURL  string

	redis     *localredis.Server
	redisPort int
}

func (f *faultRun) hits() int {
	n := int(f.struck.Load())
	for _, h := range f.handles {
		n += h.Hits()
	}
	return n
}

// fault installs kfake faults, each answering count requests.
func (f *faultRun) fault(count int, err *kerr.Error, keys ...kmsg.Key) {
	f.handles = append(f.handles, f.s.cluster.Fault(kfake.Fault{Keys: keys, Err: err, Count: count}))
}

func (f *faultRun) faultTopic(count int, err *kerr.Error, topic string, keys ...kmsg.Key) {
	f.handles = append(f.handles, f.s.cluster.Fault(kfake.Fault{Keys: keys, Topic: topic, Err: err, Count: count}))
}

// waitStruck waits until the faults struck at least n times (bounded):
// healing before that would test nothing.
func (f *faultRun) waitStruck(n int) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for f.hits() < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("the fault struck %d times in 30s, want %d", f.hits(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *faultRun) removeFaults() {
	for _, h := range f.handles {
		h.Remove()
	}
}

type faultCase struct {
	name  string
	cfg   func(*faultRun) stackConfig // nil: the default stack
	redis bool
	// before runs before the product starts; inject once the first round
	// committed; heal before the last round is fed. Any may be nil.
	before, inject, heal func(*faultRun)
}

// kfakeFault is a case of count kfake faults on keys (of topic, if set).
func kfakeFault(name string, count int, err *kerr.Error, topic func(*stack) string, keys ...kmsg.Key) faultCase {
	return faultCase{name: name,
		inject: func(f *faultRun) {
			if topic != nil {
				f.faultTopic(count, err, topic(f.s), keys...)
			} else {
				f.fault(count, err, keys...)
			}
		},
		heal: func(f *faultRun) { f.waitStruck(count) },
	}
}

func outputTopic(s *stack) string { return s.product.Manifest.OutputPorts[0].Topic }
func inputTopic(s *stack) string  { return s.product.Manifest.InputPorts[0].Topic }

// kip890v1 is a Kafka 3.9 cluster: transactions add their partitions and
// offsets with AddPartitionsToTxn and AddOffsetsToTxn (since KIP-890 part 2
// produce and TxnOffsetCommit do it themselves).
func kip890v1(*faultRun) stackConfig {
	return stackConfig{broker: []kfake.Opt{kfake.MaxVersions(kversion.V3_9_0())}}
}

var faultCases = []faultCase{
	kfakeFault("produce MESSAGE_TOO_LARGE x2", 2, kerr.MessageTooLarge, outputTopic, kmsg.Produce),
	// One strike: without the new leader in the answer (KIP-951), as
	// kfake's fault gives none, franz-go waits out its metadata min age
	// (5s) before it produces again.
	kfakeFault("produce NOT_LEADER_OR_FOLLOWER x1", 1, kerr.NotLeaderForPartition, outputTopic, kmsg.Produce),
	kfakeFault("produce REQUEST_TIMED_OUT x2 (appended)", 2, kerr.RequestTimedOut, outputTopic, kmsg.Produce),
	withCfg(kfakeFault("AddPartitionsToTxn COORDINATOR_LOAD_IN_PROGRESS x3", 3, kerr.CoordinatorLoadInProgress, nil, kmsg.AddPartitionsToTxn), kip890v1),
	withCfg(kfakeFault("AddPartitionsToTxn UNKNOWN_SERVER_ERROR x1", 1, kerr.UnknownServerError, nil, kmsg.AddPartitionsToTxn), kip890v1),
	withCfg(kfakeFault("AddOffsetsToTxn NOT_COORDINATOR x3", 3, kerr.NotCoordinator, nil, kmsg.AddOffsetsToTxn), kip890v1),
	withCfg(kfakeFault("AddOffsetsToTxn UNKNOWN_SERVER_ERROR x1", 1, kerr.UnknownServerError, nil, kmsg.AddOffsetsToTxn), kip890v1),
	kfakeFault("TxnOffsetCommit COORDINATOR_LOAD_IN_PROGRESS x3", 3, kerr.CoordinatorLoadInProgress, nil, kmsg.TxnOffsetCommit),
	kfakeFault("TxnOffsetCommit REQUEST_TIMED_OUT x1 (applied)", 1, kerr.RequestTimedOut, nil, kmsg.TxnOffsetCommit),
	kfakeFault("EndTxn REQUEST_TIMED_OUT x2", 2, kerr.RequestTimedOut, nil, kmsg.EndTxn),
	kfakeFault("EndTxn CONCURRENT_TRANSACTIONS x3", 3, kerr.ConcurrentTransactions, nil, kmsg.EndTxn),
	kfakeFault("EndTxn UNKNOWN_SERVER_ERROR x1", 1, kerr.UnknownServerError, nil, kmsg.EndTxn),
	kfakeFault("fetch NOT_LEADER_OR_FOLLOWER x3", 3, kerr.NotLeaderForPartition, inputTopic, kmsg.Fetch),
	kfakeFault("fetch UNKNOWN_SERVER_ERROR x2", 2, kerr.UnknownServerError, inputTopic, kmsg.Fetch),
	{
		name: "group and transaction coordinators move x3",
		cfg:  threeBrokers,
		inject: func(f *faultRun) {
			f.afterBatches(3, func(int) { f.s.cluster.RehashCoordinators() })
		},
		heal: func(f *faultRun) { f.waitStruck(3) },
	},
	{
		name: "output partition leaders move x3",
		cfg:  threeBrokers,
		inject: func(f *faultRun) {
			f.afterBatches(3, func(i int) {
				for p := range int32(3) {
					f.s.cluster.MoveTopicPartition(outputTopic(f.s), p, (int32(i)+p)%3)
				}
			})
		},
		heal: func(f *faultRun) { f.waitStruck(3) },
	},
	{
		name: "broker stopped mid-commit and restarted",
		cfg: func(f *faultRun) stackConfig {
			f.brokerDir, f.brokerPort = f.t.TempDir(), freePort(f.t)
			return stackConfig{broker: []kfake.Opt{kfake.DataDir(f.brokerDir), kfake.Ports(f.brokerPort)}}
		},
		inject: func(f *faultRun) {
			// The next EndTxn kills the connection unanswered, and the
			// broker goes down: the product cannot know whether it
			// committed until the broker is back.
			down := make(chan struct{})
			var once sync.Once
			f.s.cluster.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
				once.Do(func() { close(down) })
				return nil, errors.New("broker going down"), true
			})
			go func() {
				<-down
				f.restartBroker()
			}()
		},
		heal: func(f *faultRun) { f.waitStruck(1) },
	},
	{
		name:   "registry down at start, then during the run",
		before: func(f *faultRun) { f.registryDown.Store(true); go f.registryBackAfter(3) },
		inject: func(f *faultRun) { f.registryDown.Store(true) },
		heal:   func(f *faultRun) { f.registryDown.Store(false) },
	},
	{
		name:   "Redis down, back empty",
		redis:  true,
		inject: func(f *faultRun) { f.redis.Stop(); f.struck.Add(1) },
		heal: func(f *faultRun) {
			// Batches commit while Redis is away.
			r := f.s.runner
			for n, deadline := r.Stats().Batches.Load(), time.Now().Add(30*time.Second); r.Stats().Batches.Load() < n+1; {
				if time.Now().After(deadline) {
					f.t.Fatal("no batch committed in 30s while Redis was down")
				}
				time.Sleep(5 * time.Millisecond)
			}
			srv, err := localredis.StartOn(f.t.TempDir(), f.redisPort)
			if err != nil {
				f.t.Fatal(err)
			}
			f.t.Cleanup(srv.Stop)
			f.redis = srv
		},
	},
}

func withCfg(c faultCase, cfg func(*faultRun) stackConfig) faultCase { c.cfg = cfg; return c }

func threeBrokers(*faultRun) stackConfig {
	return stackConfig{broker: []kfake.Opt{kfake.NumBrokers(3)}}
}

// afterBatches does move n times, each once the product committed another
// batch, so each lands while events flow.
func (f *faultRun) afterBatches(n int, move func(i int)) {
	r := f.s.runner
	go func() {
		for i := range n {
			move(i)
			f.struck.Add(1)
			for b, deadline := r.Stats().Batches.Load(), time.Now().Add(10*time.Second); r.Stats().Batches.Load() == b && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// restartBroker stops the broker, which saves its state, and starts it
// again from that state on the same port.
func (f *faultRun) restartBroker() {
	f.s.cluster.Close()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(f.brokerDir), kfake.Ports(f.brokerPort))
	if err != nil {
		f.t.Errorf("restart the broker: %v", err)
		return
	}
	f.t.Cleanup(c.Close)
	f.s.cluster = c
	f.struck.Add(1)
}

// registryBackAfter brings the registry back once it refused n requests.
func (f *faultRun) registryBackAfter(n int64) {
	deadline := time.Now().Add(30 * time.Second)
	for f.registry503.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	f.registryDown.Store(false)
}

// proxyRegistry puts an HTTP proxy that can play dead between the product
// and the stack's registry.
func (f *faultRun) proxyRegistry() {
	target, err := url.Parse(f.s.registry)
	if err != nil {
		f.t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.registryDown.Load() {
			f.registry503.Add(1)
			f.struck.Add(1)
			http.Error(w, "registry down (test)", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	f.t.Cleanup(func() { srv.Close() })
	f.registryURL = "http://" + ln.Addr().String()
}

// row is one line of the matrix; aborted counts the batches the product
// abandoned and consumed again on the way.
type row struct {
	fault string
	tally
	aborted int64
}

func (r row) String() string {
	return fmt.Sprintf("| %-52s | %5d | %5d | %4d | %4d | %7d | %7d |", r.fault, r.in, r.out, r.dlq, r.lost, r.doubled, r.aborted)
}

const matrixHeader = "| fault                                                |    in |   out |  DLQ | lost | doubled | aborted |\n" +
	"|------------------------------------------------------|-------|-------|------|------|---------|---------|"

func runFault(t *testing.T, c faultCase) row {
	f := &faultRun{t: t}
	cfg := stackConfig{}
	if c.cfg != nil {
		cfg = c.cfg(f)
	}
	f.s = startStackWith(t, cfg)
	s := f.s
	f.proxyRegistry()
	s.registry = f.registryURL
	opts := []runtime.Option{runtime.MaxBatch(25), runtime.SessionTimeout(6 * time.Second)}
	if c.redis {
		f.redisPort = freePort(t)
		srv, err := localredis.StartOn(t.TempDir(), f.redisPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		f.redis = srv
		opts = append(opts, runtime.Redis(srv.Addr), runtime.MeshTTL(-1))
	}
	var published, dead []*kgo.Record
	round := func(from, n int) {
		p, d := s.feed(from, n)
		published, dead = append(published, p...), append(dead, d...)
	}

	round(1, 40)
	if c.before != nil {
		c.before(f)
	}
	r, stop := s.runWith(s.dataDir, opts...)
	s.waitEvents(int64(len(published) + len(dead)))
	if c.inject != nil {
		c.inject(f)
	}
	round(1001, 60)
	if c.heal != nil {
		c.heal(f)
	}
	f.removeFaults()
	round(2001, 20)
	s.waitEvents(int64(len(published) + len(dead)))
	if c.redis {
		waitRedisHolds(t, f.redis.Addr, s.product.Manifest.ID, published)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.hits() == 0 {
		t.Fatal("the fault never struck; the case tests nothing")
	}
	tl := s.ledger([]*runtime.Runner{r}, s.dataDir, published, dead)
	tl.check(t)
	checkCounted(t, []*runtime.Runner{r}, len(published)+len(dead))
	rw := row{fault: c.name, tally: tl, aborted: r.Stats().Aborted.Load()}
	t.Log(rw.String())
	return rw
}

// waitRedisHolds waits (bounded) until Redis holds every published entity:
// the current state caught up by itself after the outage.
func waitRedisHolds(t *testing.T, addr, product string, published []*kgo.Record) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	store := query.NewRedisStore(rdb, product)
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for _, in := range published {
			key := strings.TrimSuffix(strings.TrimPrefix(string(in.Key), `{"id":`), `}`)
			if _, ok, err := store.Get(context.Background(), []byte(key), time.Now().UnixMicro()); err != nil || !ok {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis lacks %d of %d entities 30s after it came back", missing, len(published))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFaultMatrix runs every fault and prints the table.
func TestFaultMatrix(t *testing.T) {
	var rows []row
	for _, c := range faultCases {
		t.Run(c.name, func(t *testing.T) { rows = append(rows, runFault(t, c)) })
	}
	var b bytes.Buffer
	b.WriteString("fault matrix (events in, records out, dead letters, lost, doubled, batches aborted and consumed again):\n" + matrixHeader + "\n")
	for _, r := range rows {
		b.WriteString(r.String() + "\n")
	}
	t.Log(b.String())
}

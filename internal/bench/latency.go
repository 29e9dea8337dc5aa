package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/examples/inventory/products"
)

// latencySkip is the start of the paced load left out as warm-up (a fifth
// of it when the load is shorter than 5s).
const latencySkip = time.Second

// latency runs c on an empty input topic while the harness produces at rate
// events/s, and measures how long each event takes to become visible on the
// output topic to a read_committed consumer.
func (h *harness) latency(ctx context.Context, c *contender, rate float64) (*LatencyResult, error) {
	s := h.newSpec(c, "latency", "")
	s.in = s.group + ".in"
	if err := h.admin.createTopics(ctx, s.in); err != nil {
		return nil, err
	}
	defer h.admin.forget(ctx, "", s.in)
	h.logf("%s: latency at %.0f events/s for %s", c.ID, rate, h.opts.LatencyTime)

	h.waitQuiet(ctx)
	p, err := h.start(s)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	pid := p.cmd.Process.Pid

	rd, err := newLatencyReader(h, s)
	if err != nil {
		return nil, err
	}
	defer rd.close()
	rctx, stopReading := context.WithCancel(ctx)
	readDone := make(chan error, 1)
	go func() { readDone <- rd.run(rctx) }()
	defer func() { stopReading(); <-readDone }()

	// The load generator: franz-go as a connector would use it, without
	// linger, so the harness adds as little delay of its own as it can.
	prod, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	var failed atomic.Pointer[error]
	sent := 0
	send := func() {
		k, v := TimedEvent(sent, time.Now().UnixMicro())
		sent++
		prod.Produce(ctx, &kgo.Record{Topic: s.in, Key: k, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}

	// Trickle events until the first comes out: the contender has joined
	// its group and the path is warm.
	ready := time.Now()
	for rd.seen.Load() == 0 {
		if err := p.exited(); err != nil {
			return nil, err
		}
		if time.Since(ready) > 60*time.Second {
			return nil, fmt.Errorf("no output 60s after start (log %s)", p.log)
		}
		send()
		time.Sleep(20 * time.Millisecond)
	}
	// Let the trickle drain before the paced load starts.
	time.Sleep(500 * time.Millisecond)

	s0, err := h.sample(pid)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	first := sent
	tick := time.NewTicker(time.Millisecond)
	for now := start; now.Sub(start) < h.opts.LatencyTime; now = <-tick.C {
		for due := first + int(rate*now.Sub(start).Seconds()); sent < due; {
			send()
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	s1, err := h.sample(pid)
	if err != nil {
		return nil, err
	}
	if err := prod.Flush(ctx); err != nil {
		return nil, err
	}
	if p := failed.Load(); p != nil {
		return nil, fmt.Errorf("load generator: %w", *p)
	}
	drain := time.Now()
	for rd.seen.Load() < int64(sent) && time.Since(drain) < 15*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	hwm, _ := peakRSS(pid)
	stopReading()
	if err := <-readDone; err != nil {
		return nil, err
	}
	readDone <- nil

	skip := min(latencySkip, h.opts.LatencyTime/5)
	from, to := start.Add(skip).UnixMicro(), start.Add(h.opts.LatencyTime).UnixMicro()
	var lat []float64
	for _, smp := range rd.samples() {
		if smp.ts >= from && smp.ts < to {
			lat = append(lat, float64(smp.lat)/1000)
		}
	}
	// The worst latency of each half second, for seeing stalls and drift.
	var timeline []float64
	for _, smp := range rd.samples() {
		if smp.ts < start.UnixMicro() || smp.ts >= to {
			continue
		}
		i := int((smp.ts - start.UnixMicro()) / 500_000)
		for len(timeline) <= i {
			timeline = append(timeline, 0)
		}
		timeline[i] = max(timeline[i], math.Round(float64(smp.lat)/100)/10)
	}
	slices.Sort(lat)
	res := &LatencyResult{
		TargetRate: rate, AchievedRate: float64(sent-first) / elapsed.Seconds(),
		Seconds: h.opts.LatencyTime.Seconds(), Sent: sent - first, Received: int(rd.seen.Load()) - first,
		Samples: len(lat), CPUCores: (s1.contender - s0.contender) / elapsed.Seconds(),
		OtherCores: others(s0, s1, elapsed.Seconds()), HarnessCores: (s1.self - s0.self) / elapsed.Seconds(),
		BrokerCores: (s1.broker - s0.broker) / elapsed.Seconds(), WorstPerHalfSecondMs: timeline, PeakRSSMB: float64(hwm) / (1 << 20),
	}
	if len(lat) > 0 {
		res.P50Ms, res.P99Ms, res.MaxMs = percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1]
	}
	h.logf("%s: latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples, %d of %d received; cores: contender %.2f, broker %.2f, harness %.2f, others %.2f)",
		c.ID, res.P50Ms, res.P99Ms, res.MaxMs, res.Samples, res.Received, res.Sent, res.CPUCores, res.BrokerCores, res.HarnessCores, res.OtherCores)
	if h.trace {
		h.logf("trace %s: worst latency per half second, ms: %v", c.ID, timeline)
	}
	return res, nil
}

type latencySample struct{ ts, lat int64 } // microseconds

// latencyReader is the read_committed consumer of a latency run.
type latencyReader struct {
	h    *harness
	avro bool
	cl   *kgo.Client
	seen atomic.Int64

	mu  sync.Mutex
	got []latencySample
}

func newLatencyReader(h *harness, s runSpec) (*latencyReader, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(s.out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	return &latencyReader{h: h, avro: s.c.Avro, cl: cl}, nil
}

func (rd *latencyReader) close() { rd.cl.Close() }

func (rd *latencyReader) run(ctx context.Context) error {
	var row products.Product
	for {
		fs := rd.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now().UnixMicro()
		var bad error
		batch := make([]latencySample, 0, fs.NumRecords())
		fs.EachRecord(func(r *kgo.Record) {
			var ts int64
			if rd.avro {
				_, meta, err := rd.h.reg.Decode(ctx, r.Value, &row)
				if err != nil {
					bad = err
					return
				}
				ts = meta.ValidFrom
			} else {
				var ok bool
				if ts, ok = rawTimestamp(r.Value); !ok {
					bad = fmt.Errorf("output %d@%d carries no ts_us", r.Partition, r.Offset)
					return
				}
			}
			batch = append(batch, latencySample{ts: ts, lat: now - ts})
		})
		if bad != nil {
			return bad
		}
		rd.mu.Lock()
		rd.got = append(rd.got, batch...)
		rd.mu.Unlock()
		rd.seen.Add(int64(len(batch)))
	}
}

func (rd *latencyReader) samples() []latencySample {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.got
}

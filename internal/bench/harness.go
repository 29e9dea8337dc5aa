package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/schemas"
)

// Options say what to run and where. The zero value of a field is its
// default, set in withDefaults.
type Options struct {
	Brokers  []string // a real cluster; empty starts bench-broker
	Registry string   // with Brokers; empty starts the embedded registry
	BinDir   string   // bench-broker, bench-pipe and bench-product
	// RPConnect is the Redpanda Connect binary; empty leaves it out.
	RPConnect string
	WorkDir   string // logs, change logs, configs and profiles of the runs

	Contenders    []string      // ids, in order; default all
	Runs          int           // measured runs per contender; default 5
	RunTime       time.Duration // what N is chosen for; default 5s
	WarmupTime    time.Duration // the warm-up run that picks N; default 2s
	Backlog       int           // events pre-loaded; default 3,000,000
	BacklogRuns   []string      // contenders that drain the whole backlog once; default the Meshlets
	LatencyTime   time.Duration // paced load per contender; default 10s
	ProfileTime   time.Duration // CPU profile of Meshlet exactly-once; default 8s, <0 none
	CommonLatency bool          // also measure latency of every faster contender at Meshlet exactly-once's half load
	QuietWait     time.Duration // all the waiting for other processes to go quiet, at most 20s before a run; default 2m, <0 none
	Retries       int           // runs repeated because of other load, in all; default 8, <0 none
	// LatencyRates, when set, replaces the whole comparison by latency
	// runs of each contender at these input rates (events/s): a curve.
	LatencyRates   []float64
	RPCBatch       int    // kafka_franz input batch size; default 1024, <0 none
	RPCBatchPeriod string // default "1ms"
	RPCMaxInFlight int    // default 64
	RPCCheckpoint  int    // kafka_franz checkpoint_limit; default RPCBatch*(RPCMaxInFlight+16)

	Log io.Writer
}

func (o Options) withDefaults() Options {
	if len(o.Contenders) == 0 {
		for _, c := range contenders {
			if c.ID != "rpconnect" || o.RPConnect != "" {
				o.Contenders = append(o.Contenders, c.ID)
			}
		}
	}
	if o.Runs == 0 {
		o.Runs = 5
	}
	if o.RunTime == 0 {
		o.RunTime = 5 * time.Second
	}
	if o.WarmupTime == 0 {
		o.WarmupTime = 2 * time.Second
	}
	if o.Backlog == 0 {
		o.Backlog = 3_000_000
	}
	if o.BacklogRuns == nil {
		o.BacklogRuns = []string{"meshlet-alo", "meshlet-eos"}
	}
	if o.LatencyTime == 0 {
		o.LatencyTime = 10 * time.Second
	}
	if o.ProfileTime == 0 {
		o.ProfileTime = 8 * time.Second
	}
	if o.RPCBatch == 0 {
		o.RPCBatch = 1024
	}
	if o.RPCBatch < 0 {
		o.RPCBatch = 0
	}
	if o.RPCBatchPeriod == "" {
		o.RPCBatchPeriod = "1ms"
	}
	if o.RPCMaxInFlight == 0 {
		o.RPCMaxInFlight = 64
	}
	if o.RPCCheckpoint == 0 {
		// Above what the pipeline can hold, or the input stalls.
		o.RPCCheckpoint = max(o.RPCBatch, 1) * (o.RPCMaxInFlight + 16)
	}
	if o.QuietWait == 0 {
		o.QuietWait = 2 * time.Minute
	}
	if o.Retries == 0 {
		o.Retries = 8
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// Fixed loopback addresses of bench-broker and of the profiled product.
const (
	brokerPort   = 39092
	registryAddr = "127.0.0.1:39081"
	pprofAddr    = "127.0.0.1:39060"
)

type harness struct {
	opts     Options
	brokers  []string
	registry string
	admin    *admin
	reg      *schemas.Registry
	schema   *schemas.Schema
	prefix   string // of every topic and group of this invocation
	input    string // the pre-loaded topic
	seq      int
	rpcYAML  string // the last Redpanda Connect configuration
	commands map[string]string
	trace    bool // log every progress poll (MESHLET_BENCH_TRACE=1)

	brokerPid int // bench-broker, 0 on a real cluster with a real registry
	waited    time.Duration
	retried   int
}

// waitQuiet waits until processes other than the broker and the harness
// keep less than maxOtherCores busy over half a second: at most 20s, and
// no longer than what is left of QuietWait.
func (h *harness) waitQuiet(ctx context.Context) {
	budget := min(h.opts.QuietWait-h.waited, 20*time.Second)
	if budget <= 0 {
		return
	}
	start := time.Now()
	self := os.Getpid()
	for time.Since(start) < budget {
		a, err := h.sample(self)
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		b, err := h.sample(self)
		if err != nil {
			return
		}
		// The harness is both contender and self here; count it once.
		b.contender = a.contender
		if others(a, b, 0.5) <= maxOtherCores {
			break
		}
	}
	w := time.Since(start)
	h.waited += w
	if w > time.Second {
		h.logf("waited %.1fs for other processes to go quiet", w.Seconds())
	}
}

// sample reads the CPU time of the machine, the contender pid, the broker
// and the harness.
func (h *harness) sample(pid int) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.machine, err = machineBusy(); err != nil {
		return s, err
	}
	if s.contender, err = cpuSeconds(pid); err != nil {
		return s, err
	}
	if h.brokerPid != 0 {
		if s.broker, err = cpuSeconds(h.brokerPid); err != nil {
			return s, err
		}
	}
	s.self, err = cpuSeconds(os.Getpid())
	return s, err
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.opts.Log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Run runs the whole comparison and returns its results.
func Run(ctx context.Context, opts Options) (*Results, error) {
	opts = opts.withDefaults()
	start := time.Now()
	h := &harness{opts: opts, brokers: opts.Brokers, registry: opts.Registry, commands: map[string]string{}}
	h.trace = os.Getenv("MESHLET_BENCH_TRACE") == "1"
	h.prefix = "meshlet-bench." + strconv.FormatInt(start.Unix(), 36)
	h.input = h.prefix + ".in"
	for _, id := range opts.Contenders {
		if _, err := contenderByID(id); err != nil {
			return nil, err
		}
	}
	unlock, err := lockWorkDir(opts.WorkDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := os.RemoveAll(filepath.Join(opts.WorkDir, "runs")); err != nil {
		return nil, err
	}

	res := &Results{Started: start.UTC(), Machine: describeMachine(), Options: describeOptions(opts)}
	if len(h.brokers) == 0 || h.registry == "" {
		stop, err := h.startBroker(ctx)
		if err != nil {
			return nil, err
		}
		defer stop()
		res.Broker = "kfake (franz-go pkg/kfake), 1 broker, in bench-broker on 127.0.0.1:" + strconv.Itoa(brokerPort)
	}
	if len(opts.Brokers) > 0 {
		res.Broker = "KAFKA_BROKERS=" + strings.Join(opts.Brokers, ",")
	}
	if h.admin, err = newAdmin(h.brokers); err != nil {
		return nil, err
	}
	defer h.admin.close()
	if h.reg, err = schemas.NewRegistry([]string{h.registry}); err != nil {
		return nil, err
	}
	p, err := products.New()
	if err != nil {
		return nil, err
	}
	if h.schema, err = p.OutputSchema(); err != nil {
		return nil, err
	}

	h.logf("pre-loading %d events on %s (%d partitions)", opts.Backlog, h.input, partitions)
	t := time.Now()
	if err := h.admin.createTopics(ctx, h.input); err != nil {
		return nil, err
	}
	if err := h.admin.preload(ctx, h.input, 0, opts.Backlog); err != nil {
		return nil, err
	}
	res.PreloadSeconds = time.Since(t).Seconds()
	t = time.Now()
	if err := h.admin.readAll(ctx, h.brokers, h.input, opts.Backlog); err != nil {
		return nil, err
	}
	h.logf("pre-loaded in %.1fs, read back once in %.1fs", res.PreloadSeconds, time.Since(t).Seconds())

	if len(opts.LatencyRates) > 0 {
		for _, id := range opts.Contenders {
			c, _ := contenderByID(id)
			cr := &ContenderResult{ID: c.ID, Name: c.Name, What: c.What}
			for _, rate := range opts.LatencyRates {
				l, err := h.latency(ctx, c, rate)
				if err != nil {
					return nil, fmt.Errorf("%s latency: %w", c.ID, err)
				}
				cr.LatencyCurve = append(cr.LatencyCurve, l)
			}
			res.Contenders = append(res.Contenders, cr)
		}
		res.TotalSeconds = time.Since(start).Seconds()
		return res, nil
	}
	for _, id := range opts.Contenders {
		c, _ := contenderByID(id)
		cr, err := h.throughput(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.ID, err)
		}
		res.Contenders = append(res.Contenders, cr)
	}
	for _, cr := range res.Contenders {
		c, _ := contenderByID(cr.ID)
		if cr.Latency, err = h.latencyRetried(ctx, c, cr.EventsPerSec/2, cr); err != nil {
			return nil, fmt.Errorf("%s latency: %w", c.ID, err)
		}
	}
	// The same load for every contender that can carry it: the rate the
	// exactly-once product is judged at. It separates what the broker and
	// the machine cost from what the contender adds.
	if eos := res.contender("meshlet-eos"); eos != nil && eos.Latency != nil && opts.CommonLatency {
		rate := eos.EventsPerSec / 2
		for _, cr := range res.Contenders {
			if cr.ID == eos.ID || cr.EventsPerSec < rate*1.2 {
				continue
			}
			c, _ := contenderByID(cr.ID)
			if cr.LatencyAtEOSLoad, err = h.latencyRetried(ctx, c, rate, cr); err != nil {
				return nil, fmt.Errorf("%s latency: %w", c.ID, err)
			}
		}
	}
	for _, id := range opts.BacklogRuns {
		cr := res.contender(id)
		if cr == nil {
			continue
		}
		c, _ := contenderByID(id)
		h.logf("%s: draining the whole backlog of %d events", id, opts.Backlog)
		r, err := h.measure(ctx, h.newSpec(c, "backlog", h.input), opts.Backlog, 0, nil)
		if err != nil {
			return nil, fmt.Errorf("%s backlog: %w", id, err)
		}
		cr.Backlog = &r
		h.logf("%s: backlog %.0f events/s, peak RSS %.1f MB", id, r.EventsPerSec, r.PeakRSSMB)
	}
	if cr := res.contender("meshlet-eos"); cr != nil && opts.ProfileTime > 0 {
		if res.Profile, err = h.profile(ctx, cr); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	res.Commands = h.commands
	res.RPConnectConfig = h.rpcYAML
	res.finish()
	res.TotalSeconds = time.Since(start).Seconds()
	res.QuietWaitSeconds = h.waited.Seconds()
	return res, nil
}

// lockWorkDir makes a second invocation on the same machine fail at once
// instead of deleting the first one's runs and fighting for its ports.
func lockWorkDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another meshlet-bench run holds %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// startBroker runs bench-broker: kfake unless a cluster was given, and the
// embedded registry unless one was given.
func (h *harness) startBroker(ctx context.Context) (stop func(), err error) {
	port := brokerPort
	if len(h.brokers) > 0 {
		port = 0
	}
	// Not tied to ctx: on interrupt the contenders stop first, then it.
	cmd := exec.Command(filepath.Join(h.opts.BinDir, "bench-broker"), "-port", strconv.Itoa(port), "-registry", registryAddr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bench-broker: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	h.brokerPid = cmd.Process.Pid
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		stop()
		return nil, fmt.Errorf("bench-broker did not start: %q %v", line, err)
	}
	if len(h.brokers) == 0 {
		h.brokers = []string{"127.0.0.1:" + strconv.Itoa(port)}
		h.commands["broker"] = strings.Join(cmd.Args, " ")
	}
	if h.registry == "" {
		h.registry = "http://" + registryAddr
	}
	return stop, nil
}

// newSpec names a fresh group and output topic for one start of c.
func (h *harness) newSpec(c *contender, label, in string) runSpec {
	h.seq++
	name := fmt.Sprintf("%s.%02d.%s.%s", h.prefix, h.seq, c.ID, label)
	return runSpec{
		c: c, label: label, in: in, out: name + ".out", group: name,
		instance: strconv.Itoa(h.seq), dir: filepath.Join(h.opts.WorkDir, "runs", fmt.Sprintf("%02d-%s-%s", h.seq, c.ID, label)),
	}
}

// throughput runs the warm-up and the measured runs of c.
func (h *harness) throughput(ctx context.Context, c *contender) (*ContenderResult, error) {
	cr := &ContenderResult{ID: c.ID, Name: c.Name, What: c.What}
	h.logf("%s: warm-up", c.ID)
	w, err := h.measure(ctx, h.newSpec(c, "warmup", h.input), h.opts.Backlog, h.opts.WarmupTime, nil)
	if err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	cr.Warmup = w
	n := int(math.Round(w.EventsPerSec * h.opts.RunTime.Seconds()))
	n = min(max(n, 20_000), h.opts.Backlog)
	h.logf("%s: warm-up %.0f events/s; %d runs of %d events", c.ID, w.EventsPerSec, h.opts.Runs, n)
	for i := range h.opts.Runs {
		var r RunResult
		for try := 0; ; try++ {
			if r, err = h.measure(ctx, h.newSpec(c, "run"+strconv.Itoa(i+1), h.input), n, 0, nil); err != nil {
				return nil, fmt.Errorf("run %d: %w", i+1, err)
			}
			h.logf("%s: run %d: %.0f events/s, %.2f us CPU/event, peak RSS %.1f MB, broker %.2f cores, others %.2f cores, %d outputs checked",
				c.ID, i+1, r.EventsPerSec, r.CPUMicrosPerEvent, r.PeakRSSMB, r.BrokerCores, r.OtherCores, r.Verified)
			if r.OtherCores <= maxOtherCores || try == maxRetries || h.retried >= h.opts.Retries {
				break
			}
			h.logf("%s: run %d: other processes kept %.2f cores busy; running it again", c.ID, i+1, r.OtherCores)
			cr.Retried++
			h.retried++
		}
		cr.Runs = append(cr.Runs, r)
	}
	cr.summarize()
	return cr, nil
}

// A run during which other processes kept more than maxOtherCores busy is
// run again, at most maxRetries times (and Options.Retries in all); the
// last try counts either way and BENCHMARKS.md reports the load.
const (
	maxOtherCores = 0.25
	maxRetries    = 2
)

// latencyRetried is latency, run again like a throughput run when other
// processes loaded the machine.
func (h *harness) latencyRetried(ctx context.Context, c *contender, rate float64, cr *ContenderResult) (*LatencyResult, error) {
	for try := 0; ; try++ {
		l, err := h.latency(ctx, c, rate)
		if err != nil || l.OtherCores <= maxOtherCores || try == maxRetries || h.retried >= h.opts.Retries {
			return l, err
		}
		h.logf("%s: latency: other processes kept %.2f cores busy; running it again", c.ID, l.OtherCores)
		cr.Retried++
		h.retried++
	}
}

// proc is a running contender.
type proc struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func (h *harness) start(s runSpec) (*proc, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	if err := h.admin.createTopics(context.Background(), s.out); err != nil {
		return nil, err
	}
	if s.c.Avro {
		// The change-log product registers its schema itself; Redpanda
		// Connect only pulls it, as a team would have registered it.
		if _, err := h.reg.Register(context.Background(), s.out+"-value", h.schema, schemas.Compat("BACKWARD")); err != nil {
			return nil, err
		}
	}
	cmd, err := h.command(s)
	if err != nil {
		return nil, err
	}
	h.commands[s.c.ID] = strings.Join(cmd.Args, " ")
	logPath := filepath.Join(s.dir, "log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p, nil
}

// stop asks the contender to stop and kills it if it has not within 10s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports the contender's end, with the tail of its log, if it has
// ended.
func (p *proc) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		b, _ := os.ReadFile(p.log)
		if len(b) > 2000 {
			b = b[len(b)-2000:]
		}
		return fmt.Errorf("contender exited (%v); log %s:\n%s", err, p.log, b)
	default:
		return nil
	}
}

// hooks let the profile run act when the window opens and before the
// contender stops.
type hooks struct {
	opened     func()
	beforeStop func()
}

// pollEvery is how often the harness reads the progress count and /proc.
const pollEvery = 25 * time.Millisecond

// measure starts a contender on spec and follows it until n events are
// visible, or for window after the first visible one when window > 0.
func (h *harness) measure(ctx context.Context, s runSpec, n int, window time.Duration, hk *hooks) (RunResult, error) {
	h.waitQuiet(ctx)
	p, err := h.start(s)
	if err != nil {
		return RunResult{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.stop()
		}
	}()
	pid := p.cmd.Process.Pid
	began := time.Now()
	var (
		opened       bool
		t0, t1       time.Time
		c0, c1       int64
		s0, s1       cpuSample
		hwm          int64
		lastProgress = began
		lastCount    int64
	)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return RunResult{}, ctx.Err()
		case <-tick.C:
		}
		if err := p.exited(); err != nil {
			return RunResult{}, err
		}
		count, err := h.count(ctx, s)
		if err != nil {
			return RunResult{}, err
		}
		now := time.Now()
		smp, err := h.sample(pid)
		if err != nil {
			return RunResult{}, err
		}
		if count != lastCount {
			lastCount, lastProgress = count, now
		}
		if h.trace {
			h.logf("trace %s %s: %.3fs %d events, %.2fs CPU", s.c.ID, s.label, now.Sub(began).Seconds(), count, smp.contender)
		}
		if now.Sub(lastProgress) > 60*time.Second {
			return RunResult{}, fmt.Errorf("no progress for 60s at %d of %d events (log %s)", count, n, p.log)
		}
		if !opened {
			if count == 0 {
				continue
			}
			opened, t0, c0, s0 = true, now, count, smp
			if hk != nil && hk.opened != nil {
				hk.opened()
			}
			continue
		}
		if count >= int64(n) || (window > 0 && now.Sub(t0) >= window) {
			t1, c1, s1 = now, count, smp
			if hwm, err = peakRSS(pid); err != nil {
				return RunResult{}, err
			}
			break
		}
	}
	if hk != nil && hk.beforeStop != nil {
		hk.beforeStop()
	}
	p.stop()
	stopped = true

	r := RunResult{
		Label: s.label, Target: n, Events: c1 - c0, Seconds: t1.Sub(t0).Seconds(),
		StartupSeconds: t0.Sub(began).Seconds(), PeakRSSMB: float64(hwm) / (1 << 20),
	}
	if r.Events <= 0 || r.Seconds <= 0 {
		return r, errors.New("no events in the measured window")
	}
	r.EventsPerSec = float64(r.Events) / r.Seconds
	r.CPUMicrosPerEvent = (s1.contender - s0.contender) * 1e6 / float64(r.Events)
	r.CPUCores = (s1.contender - s0.contender) / r.Seconds
	r.BrokerCores = (s1.broker - s0.broker) / r.Seconds
	r.OtherCores = others(s0, s1, r.Seconds)
	if r.Verified, err = h.verify(ctx, s); err != nil {
		return r, fmt.Errorf("output check: %w", err)
	}
	h.admin.forget(ctx, s.group, s.out, s.out+".dlq")
	_ = os.RemoveAll(filepath.Join(s.dir, "data"))
	return r, nil
}

// count is how many of the run's events are visible.
func (h *harness) count(ctx context.Context, s runSpec) (int64, error) {
	if s.c.Txn {
		return h.admin.groupOffsets(ctx, s.group, s.in)
	}
	return h.admin.endOffsets(ctx, s.out)
}

package bench

import (
	"bufio"
	"bytes"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Results is everything one invocation measured; it is written as
// BENCHMARKS.json and rendered as BENCHMARKS.md and the chart.
type Results struct {
	Started          time.Time          `json:"started"`
	TotalSeconds     float64            `json:"total_seconds"`
	BuildSeconds     float64            `json:"build_seconds,omitempty"` // set by the caller: builds before Run
	QuietWaitSeconds float64            `json:"quiet_wait_seconds"`      // spent waiting for other processes to go quiet
	Revision         string             `json:"revision"`                // of the measured tree, set by the caller
	Machine          Machine            `json:"machine"`
	Broker           string             `json:"broker"`
	Options          map[string]string  `json:"options"`
	PreloadSeconds   float64            `json:"preload_seconds"`
	Contenders       []*ContenderResult `json:"contenders"`
	Ratios           Ratios             `json:"ratios"`
	Profile          *ProfileResult     `json:"profile,omitempty"`
	Commands         map[string]string  `json:"commands"`
	Versions         map[string]string  `json:"versions"`

	RPConnectConfig string `json:"rpconnect_config,omitempty"`
}

// Machine is what the numbers were measured on.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryGB string `json:"memory_gb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

// ContenderResult is one contender's runs and their summary.
type ContenderResult struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	What string `json:"what"`

	EventsPerSec      float64          `json:"events_per_sec"` // median of Runs
	MinEventsPerSec   float64          `json:"min_events_per_sec"`
	MaxEventsPerSec   float64          `json:"max_events_per_sec"`
	CPUMicrosPerEvent float64          `json:"cpu_us_per_event"` // median of Runs
	PeakRSSMB         float64          `json:"peak_rss_mb"`      // max over every start
	Latency           *LatencyResult   `json:"latency,omitempty"`
	LatencyAtEOSLoad  *LatencyResult   `json:"latency_at_meshlet_eos_load,omitempty"`
	LatencyCurve      []*LatencyResult `json:"latency_curve,omitempty"` // only with Options.LatencyRates
	Backlog           *RunResult       `json:"backlog,omitempty"`
	Warmup            RunResult        `json:"warmup"`
	Runs              []RunResult      `json:"runs"`
	Retried           int              `json:"retried"` // runs repeated because of other load
}

// RunResult is one start of a contender, measured from its first visible
// event to the N-th.
type RunResult struct {
	Label             string  `json:"label"`
	Target            int     `json:"n"`
	Events            int64   `json:"events"`
	Seconds           float64 `json:"seconds"`
	EventsPerSec      float64 `json:"events_per_sec"`
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	CPUCores          float64 `json:"cpu_cores"`
	PeakRSSMB         float64 `json:"peak_rss_mb"`
	BrokerCores       float64 `json:"broker_cores"`
	OtherCores        float64 `json:"other_cores"` // busy cores of processes outside the benchmark
	StartupSeconds    float64 `json:"startup_seconds"`
	Verified          int     `json:"outputs_checked"`
}

// LatencyResult is the end-to-end latency at a fixed input rate.
type LatencyResult struct {
	TargetRate   float64 `json:"target_rate"`
	AchievedRate float64 `json:"achieved_rate"`
	Seconds      float64 `json:"seconds"`
	Sent         int     `json:"sent"`
	Received     int     `json:"received"`
	Samples      int     `json:"samples"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	CPUCores     float64 `json:"cpu_cores"`
	OtherCores   float64 `json:"other_cores"`
	HarnessCores float64 `json:"harness_cores"` // load generator and latency consumer
	BrokerCores  float64 `json:"broker_cores"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	// WorstPerHalfSecondMs is the highest latency of each half second of
	// the paced load, warm-up included: stalls and drift show here.
	WorstPerHalfSecondMs []float64 `json:"worst_per_half_second_ms"`
}

// ProfileResult is the profiled Meshlet exactly-once run.
type ProfileResult struct {
	Run       RunResult `json:"run"`
	CPUFile   string    `json:"cpu_file"`
	AllocFile string    `json:"alloc_file"`
	CPUTop    string    `json:"cpu_top"`
	CPUCum    string    `json:"cpu_cum"`
	AllocTop  string    `json:"alloc_top"`
}

// Ratios are the targets, measured.
type Ratios struct {
	EOSvsPipeTxn     float64 `json:"meshlet_eos_vs_pipe_txn"`     // target >= 0.6
	EOSvsRPConnect   float64 `json:"meshlet_eos_vs_rpconnect"`    // target >= 3
	ALOvsPipePlain   float64 `json:"meshlet_alo_vs_pipe_plain"`   // for reading the cost of the transform
	EOSP99Ms         float64 `json:"meshlet_eos_p99_ms"`          // target < 50
	MeshletMaxRSSMB  float64 `json:"meshlet_max_rss_mb"`          // target < 256
	MeshletCPUvsPipe float64 `json:"meshlet_eos_cpu_vs_pipe_txn"` // CPU per event, times
}

func (r *Results) contender(id string) *ContenderResult {
	for _, c := range r.Contenders {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (cr *ContenderResult) summarize() {
	var eps, cpu []float64
	cr.MinEventsPerSec = 0
	for _, r := range cr.Runs {
		eps = append(eps, r.EventsPerSec)
		cpu = append(cpu, r.CPUMicrosPerEvent)
		if cr.MinEventsPerSec == 0 || r.EventsPerSec < cr.MinEventsPerSec {
			cr.MinEventsPerSec = r.EventsPerSec
		}
		cr.MaxEventsPerSec = max(cr.MaxEventsPerSec, r.EventsPerSec)
		cr.PeakRSSMB = max(cr.PeakRSSMB, r.PeakRSSMB)
	}
	cr.PeakRSSMB = max(cr.PeakRSSMB, cr.Warmup.PeakRSSMB)
	cr.EventsPerSec, cr.CPUMicrosPerEvent = median(eps), median(cpu)
}

// finish folds the latency and backlog runs into the peaks and computes
// the ratios.
func (r *Results) finish() {
	for _, c := range r.Contenders {
		if c.Latency != nil {
			c.PeakRSSMB = max(c.PeakRSSMB, c.Latency.PeakRSSMB)
		}
		if c.Backlog != nil {
			c.PeakRSSMB = max(c.PeakRSSMB, c.Backlog.PeakRSSMB)
		}
	}
	eos, txn, rpc := r.contender("meshlet-eos"), r.contender("pipe-txn"), r.contender("rpconnect")
	alo, plain := r.contender("meshlet-alo"), r.contender("pipe-plain")
	if eos != nil && txn != nil {
		r.Ratios.EOSvsPipeTxn = eos.EventsPerSec / txn.EventsPerSec
		r.Ratios.MeshletCPUvsPipe = eos.CPUMicrosPerEvent / txn.CPUMicrosPerEvent
	}
	if eos != nil && rpc != nil {
		r.Ratios.EOSvsRPConnect = eos.EventsPerSec / rpc.EventsPerSec
	}
	if alo != nil && plain != nil {
		r.Ratios.ALOvsPipePlain = alo.EventsPerSec / plain.EventsPerSec
	}
	if eos != nil && eos.Latency != nil {
		r.Ratios.EOSP99Ms = eos.Latency.P99Ms
	}
	for _, c := range []*ContenderResult{eos, alo} {
		if c != nil {
			r.Ratios.MeshletMaxRSSMB = max(r.Ratios.MeshletMaxRSSMB, c.PeakRSSMB)
		}
	}
	if r.Profile != nil {
		r.Ratios.MeshletMaxRSSMB = max(r.Ratios.MeshletMaxRSSMB, r.Profile.Run.PeakRSSMB)
	}
	r.Versions = moduleVersions()
	r.Versions[ConnectModule] = ConnectVersion
	r.Versions[BenthosModule] = BenthosVersion
}

func describeMachine() Machine {
	m := Machine{Cores: goruntime.NumCPU(), Go: goruntime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if kb, err := parseStatusKB(b, "MemTotal:"); err == nil {
			m.MemoryGB = strconv.FormatFloat(float64(kb)/(1<<30), 'f', 1, 64)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

func describeOptions(o Options) map[string]string {
	return map[string]string{
		"contenders":           strings.Join(o.Contenders, ","),
		"runs":                 strconv.Itoa(o.Runs),
		"run_time":             o.RunTime.String(),
		"warmup_time":          o.WarmupTime.String(),
		"backlog":              strconv.Itoa(o.Backlog),
		"backlog_runs":         strings.Join(o.BacklogRuns, ","),
		"latency_time":         o.LatencyTime.String(),
		"profile_time":         o.ProfileTime.String(),
		"rpc_batch":            strconv.Itoa(o.RPCBatch),
		"rpc_batch_period":     o.RPCBatchPeriod,
		"rpc_max_in_flight":    strconv.Itoa(o.RPCMaxInFlight),
		"rpc_checkpoint_limit": strconv.Itoa(o.RPCCheckpoint),
		"common_latency":       strconv.FormatBool(o.CommonLatency),
		"quiet_wait":           o.QuietWait.String(),
		"retries":              strconv.Itoa(o.Retries),
	}
}

// moduleVersions are the versions of the Kafka and Avro libraries the
// harness binary was built with; the contenders share the module.
func moduleVersions() map[string]string {
	v := map[string]string{}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/twmb/franz-go", "github.com/twmb/franz-go/pkg/kfake", "github.com/twmb/franz-go/pkg/sr", "github.com/hamba/avro/v2":
			v[d.Path] = d.Version
		}
	}
	return v
}

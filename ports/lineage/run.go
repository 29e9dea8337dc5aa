package lineage

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Defaults, all in one place.
const (
	// DefaultProducer is the producer URI of events and facets.
	DefaultProducer = "https://github.com/meshlet/meshlet"
	// DefaultKeepInterval is Keep's interval when it is given none.
	DefaultKeepInterval = 30 * time.Second
	// DefaultEndpoint is the path HTTPTransport posts to when Endpoint is
	// empty: the OpenLineage endpoint of Marquez.
	DefaultEndpoint = "api/v1/lineage"

	defaultHTTPTimeout = 10 * time.Second
	maxErrorBody       = 512    // bytes of a refusal's body a StatusError keeps
	kafkaDefaultPort   = "9092" // assumed for a bootstrap server without a port

	engineName  = "meshlet"
	integration = "MESHLET"
	jobKind     = "DATA_PRODUCT"
	goLanguage  = "GO"
	modulePath  = "github.com/meshlet/meshlet"
)

var (
	// ErrStopped is returned by Running and Stop once the run has stopped.
	ErrStopped = errors.New("lineage: run already stopped")
	// ErrUnknownDataset classes statistics for a dataset the job does not name.
	ErrUnknownDataset = errors.New("lineage: dataset not in the job")
)

// Counts is what a run has read from or written to one dataset since its
// START: cumulative, never a delta.
type Counts struct {
	Rows  int64
	Bytes int64
}

// Stats are a run's cumulative counts since START, keyed by dataset Name.
// A dataset missing from the maps is reported without statistics.
type Stats struct {
	Inputs  map[string]Counts
	Outputs map[string]Counts
}

// Option configures Start.
type Option func(*config)

type config struct {
	now           func() time.Time
	producer      string
	stateDir      string
	engineVersion string
	log           *slog.Logger
}

// WithClock sets the clock for event times and the run id; time.Now by
// default.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithProducer sets the producer URI; DefaultProducer by default.
func WithProducer(uri string) Option { return func(c *config) { c.producer = uri } }

// WithStateDir keeps the open run's id in dir, so a run cut short by a crash
// is closed by the next Start (see the package doc).
func WithStateDir(dir string) Option { return func(c *config) { c.stateDir = dir } }

// WithEngineVersion sets the processing_engine version; by default the
// version of the meshlet module in the running binary, or "devel".
func WithEngineVersion(v string) Option { return func(c *config) { c.engineVersion = v } }

// WithLogger sets where Keep and Start log; slog.Default() by default.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Run is one streaming run of a job, from Start to Stop. Its methods are
// safe for concurrent use.
type Run struct {
	t         Transport
	cfg       config
	id        uuid.UUID
	job       JobInfo
	runFacets *RunFacets
	inputs    []InputDataset
	outputs   []OutputDataset
	started   time.Time
	statePath string

	// newTicker is Keep's clock; tests replace it to tick by hand.
	newTicker func(time.Duration) (<-chan time.Time, func())

	mu      sync.Mutex // serialises events, so none follows the terminal one
	stopped bool
	last    Stats
}

// Start begins a run of job: it closes a run a previous process left open
// (when WithStateDir is set), records the new run, and emits START. An error
// means no run was started; a leftover run stays recorded for the next try.
func Start(ctx context.Context, t Transport, job Job, opts ...Option) (*Run, error) {
	cfg := config{now: time.Now, producer: DefaultProducer, log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if t == nil {
		return nil, errors.New("lineage: Start needs a Transport")
	}
	if u, err := url.Parse(cfg.producer); err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("lineage: producer %q is not an absolute URI", cfg.producer)
	}
	if cfg.engineVersion == "" {
		cfg.engineVersion = moduleVersion()
	}
	inputs, outputs, err := describe(job, cfg.producer)
	if err != nil {
		return nil, err
	}
	started := cfg.now()
	r := &Run{
		t:       t,
		cfg:     cfg,
		id:      newRunID(started),
		inputs:  inputs,
		outputs: outputs,
		started: started,
		job: JobInfo{Namespace: job.Namespace, Name: job.Name, Facets: &JobFacets{JobType: &JobTypeFacet{
			BaseFacet:       BaseFacet{Producer: cfg.producer, SchemaURL: jobTypeSchemaURL},
			ProcessingType:  "STREAMING",
			Integration:     integration,
			JobType:         jobKind,
			EmissionPattern: &EmissionPattern{EventTrigger: "PERIODIC", EventCompleteness: "ACCUMULATIVE"},
		}}},
		runFacets: &RunFacets{ProcessingEngine: &ProcessingEngineFacet{
			BaseFacet: BaseFacet{Producer: cfg.producer, SchemaURL: processingEngineSchemaURL},
			Version:   cfg.engineVersion,
			Name:      engineName,
		}},
		newTicker: func(d time.Duration) (<-chan time.Time, func()) {
			tk := time.NewTicker(d)
			return tk.C, tk.Stop
		},
	}

	if cfg.stateDir != "" {
		if err := os.MkdirAll(cfg.stateDir, 0o755); err != nil {
			return nil, fmt.Errorf("lineage: state dir: %w", err)
		}
		r.statePath = filepath.Join(cfg.stateDir, StateFile)
		if err := r.closeLeftover(ctx); err != nil {
			return nil, err
		}
		// Recorded before START is sent: a crash in between leaves a run the
		// next Start fails, never one that stays open.
		st := runState{RunID: r.id.String(), Namespace: job.Namespace, Name: job.Name, StartedAt: Timestamp(started)}
		if err := writeState(r.statePath, st); err != nil {
			return nil, err
		}
	}
	ev := r.event(EventStart, true, Stats{}, "")
	if err := t.Emit(ctx, ev); err != nil {
		if r.statePath != "" {
			_ = os.Remove(r.statePath) // the run never began; nothing to close later
		}
		return nil, fmt.Errorf("lineage: emitting START of run %s: %w", r.id, err)
	}
	return r, nil
}

// ID is the run id, a UUIDv7 carrying the start time.
func (r *Run) ID() uuid.UUID { return r.id }

// Running emits RUNNING with every dataset of the job and the statistics of
// those stats names. Statistics for a dataset the job does not name are an
// error (ErrUnknownDataset), and nothing is sent.
func (r *Run) Running(ctx context.Context, stats Stats) error {
	if err := r.checkStats(stats); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrStopped
	}
	r.last = Stats{Inputs: maps.Clone(stats.Inputs), Outputs: maps.Clone(stats.Outputs)}
	if err := r.t.Emit(ctx, r.event(EventRunning, false, r.last, "")); err != nil {
		return fmt.Errorf("lineage: emitting RUNNING of run %s: %w", r.id, err)
	}
	return nil
}

// Keep emits RUNNING every interval (DefaultKeepInterval when every is not
// positive) with the stats snapshot returns, until ctx ends or the run
// stops. Delivery failures are logged, once when an outage begins and once
// when it ends, and never stop the loop.
func (r *Run) Keep(ctx context.Context, every time.Duration, snapshot func() Stats) {
	if every <= 0 {
		every = DefaultKeepInterval
	}
	ticks, stop := r.newTicker(every)
	defer stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		var stats Stats
		if snapshot != nil {
			stats = snapshot()
		}
		err := r.Running(ctx, stats)
		switch {
		case errors.Is(err, ErrStopped):
			return
		case err != nil && ctx.Err() != nil:
			return // cancelled while sending: shutdown, not an outage
		case err != nil:
			if missed == 0 {
				r.cfg.log.Warn("openlineage: RUNNING not delivered; retrying every interval, quiet until it succeeds",
					"run_id", r.id.String(), "job", r.job.Namespace+"/"+r.job.Name, "interval", every, "err", err)
			}
			missed++
		case missed > 0:
			r.cfg.log.Info("openlineage: RUNNING delivered again",
				"run_id", r.id.String(), "job", r.job.Namespace+"/"+r.job.Name, "missed", missed)
			missed = 0
		}
	}
}

// Stop ends the run: ABORT when cause is nil or context.Canceled (a stream
// is stopped, not completed), FAIL with an errorMessage facet otherwise. The
// event carries the last statistics Running was given. Pass a context that
// is still live: the one a shutdown signal cancelled cannot send anything.
// If the event cannot be delivered, the run stays recorded (WithStateDir)
// and the next Start sends it.
func (r *Run) Stop(ctx context.Context, cause error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return ErrStopped
	}
	r.stopped = true
	typ, msg := EventAbort, ""
	if cause != nil && !errors.Is(cause, context.Canceled) {
		typ, msg = EventFail, cause.Error()
	}
	if err := r.t.Emit(ctx, r.event(typ, true, r.last, msg)); err != nil {
		err = fmt.Errorf("lineage: emitting %s of run %s: %w", typ, r.id, err)
		if r.statePath != "" {
			st := runState{RunID: r.id.String(), Namespace: r.job.Namespace, Name: r.job.Name,
				StartedAt: Timestamp(r.started), Pending: &pendingEnd{EventType: typ, Message: msg}}
			err = errors.Join(err, writeState(r.statePath, st))
		}
		return err
	}
	if r.statePath != "" {
		if err := os.Remove(r.statePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lineage: run %s ended, but its state file stays: %w", r.id, err)
		}
	}
	return nil
}

// event builds one event of this run. Static dataset facets (schema,
// dataSource, columnLineage) ride on START and the terminal event; RUNNING
// names the datasets and carries only what changes.
func (r *Run) event(typ EventType, static bool, stats Stats, failure string) *RunEvent {
	runFacets := r.runFacets
	if typ == EventFail {
		withErr := *r.runFacets
		withErr.ErrorMessage = &ErrorMessageFacet{
			BaseFacet:           BaseFacet{Producer: r.cfg.producer, SchemaURL: errorMessageSchemaURL},
			Message:             failure,
			ProgrammingLanguage: goLanguage,
		}
		runFacets = &withErr
	}
	ev := &RunEvent{
		EventType: typ,
		EventTime: Timestamp(r.cfg.now()),
		Run:       RunInfo{RunID: r.id.String(), Facets: runFacets},
		Job:       r.job,
		Inputs:    make([]InputDataset, len(r.inputs)),
		Outputs:   make([]OutputDataset, len(r.outputs)),
		Producer:  r.cfg.producer,
		SchemaURL: RunEventSchemaURL,
	}
	for i, in := range r.inputs {
		d := InputDataset{Namespace: in.Namespace, Name: in.Name}
		if static {
			d.Facets = in.Facets
		}
		if c, ok := stats.Inputs[in.Name]; ok {
			d.InputFacets = &InputDatasetFacets{InputStatistics: &InputStatisticsFacet{
				BaseFacet: BaseFacet{Producer: r.cfg.producer, SchemaURL: inputStatisticsSchemaURL},
				RowCount:  c.Rows, Size: c.Bytes,
			}}
		}
		ev.Inputs[i] = d
	}
	for i, out := range r.outputs {
		d := OutputDataset{Namespace: out.Namespace, Name: out.Name}
		if static {
			d.Facets = out.Facets
		}
		if c, ok := stats.Outputs[out.Name]; ok {
			d.OutputFacets = &OutputDatasetFacets{OutputStatistics: &OutputStatisticsFacet{
				BaseFacet: BaseFacet{Producer: r.cfg.producer, SchemaURL: outputStatisticsSchemaURL},
				RowCount:  c.Rows, Size: c.Bytes,
			}}
		}
		ev.Outputs[i] = d
	}
	return ev
}

func (r *Run) checkStats(stats Stats) error {
	var unknown []string
	for name := range stats.Inputs {
		if !slices.ContainsFunc(r.inputs, func(d InputDataset) bool { return d.Name == name }) {
			unknown = append(unknown, "input "+name)
		}
	}
	for name := range stats.Outputs {
		if !slices.ContainsFunc(r.outputs, func(d OutputDataset) bool { return d.Name == name }) {
			unknown = append(unknown, "output "+name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%w: %s", ErrUnknownDataset, strings.Join(unknown, ", "))
	}
	return nil
}

// closeLeftover ends the run a previous process recorded and never stopped.
func (r *Run) closeLeftover(ctx context.Context) error {
	st, err := readState(r.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Whole-or-absent writes make this a file someone else touched. It
		// names no run we can close; keep it for a human, out of the way.
		aside := r.statePath + ".corrupt"
		if rerr := os.Rename(r.statePath, aside); rerr != nil {
			return fmt.Errorf("lineage: %w; moving it aside: %w", err, rerr)
		}
		r.cfg.log.Warn("openlineage: unreadable run state moved aside; the run it named, if any, stays open",
			"path", aside, "err", err)
		return nil
	}
	typ, msg := EventFail, fmt.Sprintf(
		"meshlet: the process running this data product ended without stopping the run (killed or crashed); the run started at %s",
		st.StartedAt.Time().UTC().Format(time.RFC3339))
	if st.Pending != nil {
		typ, msg = st.Pending.EventType, st.Pending.Message
	}
	ev := &RunEvent{
		EventType: typ,
		EventTime: Timestamp(r.cfg.now()),
		Run:       RunInfo{RunID: st.RunID},
		Job:       JobInfo{Namespace: st.Namespace, Name: st.Name},
		Producer:  r.cfg.producer,
		SchemaURL: RunEventSchemaURL,
	}
	if typ == EventFail {
		ev.Run.Facets = &RunFacets{ErrorMessage: &ErrorMessageFacet{
			BaseFacet:           BaseFacet{Producer: r.cfg.producer, SchemaURL: errorMessageSchemaURL},
			Message:             msg,
			ProgrammingLanguage: goLanguage,
		}}
	}
	if err := r.t.Emit(ctx, ev); err != nil {
		return fmt.Errorf("lineage: closing run %s left open by a previous process: %w", st.RunID, err)
	}
	if err := os.Remove(r.statePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lineage: closed run %s, but its state file stays: %w", st.RunID, err)
	}
	return nil
}

// newRunID makes a UUIDv7 (RFC 9562) from the given time, so the id sorts by
// start time and follows an injected clock.
func newRunID(now time.Time) uuid.UUID {
	var u uuid.UUID
	_, _ = rand.Read(u[6:]) // crypto/rand.Read does not fail (Go 1.24+)
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(u[:6], ms[2:])
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return u
}

// moduleVersion is the version of the meshlet module linked into this
// binary, "devel" for a build from a work tree.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if bi.Main.Path != modulePath {
		v = ""
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				v = d.Version
			}
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

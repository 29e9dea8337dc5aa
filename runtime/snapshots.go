package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// snapshot ports
	_ "gocloud.dev/blob/s3blob"   // s3:// snapshot ports, and S3-compatible stores
	"gocloud.dev/gcerrors"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/control"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/snapshot"
)

// snapshotter writes the product's snapshot ports: each on its schedule,
// and at once when a control command asks. It runs beside the batch loop,
// never in it: a snapshot reads the change logs through a Store of its own
// (Take holds that store's read lock for the whole scan) and the output
// topic's offsets through a Kafka client of its own.
//
// One snapshot is cut so that a consumer can continue from it (package
// snapshot, "Continuing from a snapshot"): first the output topic's last
// stable offsets are read; then each log's length; then the snapshotter
// waits until a signed checkpoint covers each log to that length, which
// the runtime signs after commits; a log this replica owns whose entries
// the group's commit markers prove committed, it signs itself, so an idle
// product is snapshotted too. Take then fixes T at the latest checkpointed
// moment, which is at or after every entry of a record before the offsets.
//
// The replicas of a product share its data directory; the one that owns
// partition 0 of the first input topic takes the snapshots, so each is
// taken once.
type snapshotter struct {
	r     *Runner
	log   *slog.Logger
	ports []*snapshotPort
	kcl   *kgo.Client // for offsets: not the session's, whose requests are the batch loop's

	jobs    chan *snapshotJob
	mu      sync.Mutex
	byID    map[string]*snapshotJob // recent command jobs, so a redelivered command waits for its first run
	order   []string
	store   *auditlog.Store // opened on first use: the logs may not exist at start
	writes  *prometheus.CounterVec
	lastT   *prometheus.GaugeVec
	cancel  context.CancelFunc
	stopped sync.WaitGroup
}

// snapshotPort is one snapshot output port and its bucket.
type snapshotPort struct {
	spec   OutputPort
	every  time.Duration
	bucket *blob.Bucket
	due    int64 // unix micros: when the next scheduled snapshot is due
}

// snapshotJob is one command's request.
type snapshotJob struct {
	port string // "" for every port
	done chan struct{}
	err  error
}

// snapshotPoll is how often the schedule looks at the clock: the product's
// clock (Clock) may be replaced, so the schedule reads it rather than
// trusting a timer.
var snapshotPoll = time.Second

// snapshotRetry is the wait after a failed scheduled snapshot.
const snapshotRetry = time.Minute

// newSnapshotter opens the buckets of the manifest's snapshot ports; nil
// when it has none.
func (r *Runner) newSnapshotter(ctx context.Context) (*snapshotter, error) {
	m := r.product.Manifest
	if len(m.SnapshotPorts) == 0 {
		return nil, nil
	}
	s := &snapshotter{r: r, log: r.log.With("area", "snapshot"), jobs: make(chan *snapshotJob), byID: map[string]*snapshotJob{}}
	// A snapshot is written locally first; a crash leaves its directory.
	if old, err := filepath.Glob(filepath.Join(r.cfg.dataDir, ".snapshot-*")); err == nil {
		for _, d := range old {
			os.RemoveAll(d)
		}
	}
	for _, p := range m.SnapshotPorts {
		every, err := p.SnapshotEvery()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("snapshot port %s: every: %w", p.Name, err)
		}
		b, err := blob.OpenBucket(ctx, bucketURL(p.URL))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("snapshot port %s: open %s: %w", p.Name, p.URL, err)
		}
		sp := &snapshotPort{spec: p, every: every, bucket: b}
		s.ports = append(s.ports, sp)
		if newest, err := sp.newest(ctx); err != nil {
			r.log.Warn("snapshot port: cannot list its snapshots; the first is taken at once", "port", p.Name, "err", err)
		} else if newest != nil {
			if at, err := time.Parse(time.RFC3339Nano, newest.TakenAt); err == nil {
				sp.due = at.UnixMicro() + every.Microseconds()
			}
		}
	}
	labels := prometheus.Labels{"data_product": m.ID}
	s.writes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshlet_snapshot_writes_total", ConstLabels: labels,
		Help: "Snapshots attempted by a snapshot port, by result: written, unchanged (nothing recorded since the last) or failed."}, []string{"port", "result"})
	s.lastT = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshlet_snapshot_system_time_seconds", ConstLabels: labels,
		Help: "System time T of the newest snapshot a snapshot port wrote (unix seconds)."}, []string{"port"})
	if err := errors.Join(r.metrics.reg.Register(s.writes), r.metrics.reg.Register(s.lastT)); err != nil {
		s.close()
		return nil, err
	}
	secure, err := r.cfg.kafkaSecurity.Opts()
	if err != nil {
		s.close()
		return nil, err
	}
	if s.kcl, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.cfg.brokers...), kgo.WithLogger(kafka.Logger(r.log))}, secure...)...); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// bucketURL is a snapshot port's URL as gocloud opens it: a file bucket's
// directory is created and gets no metadata sidecar files, unless the URL
// says otherwise.
func bucketURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" {
		return raw
	}
	q := u.Query()
	if !q.Has("metadata") {
		q.Set("metadata", "skip")
	}
	if !q.Has("create_dir") {
		q.Set("create_dir", "true")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *snapshotter) start() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		s.run(ctx)
	}()
}

func (s *snapshotter) stop() {
	if s == nil {
		return
	}
	if s.cancel != nil {
		s.cancel()
		s.stopped.Wait()
	}
	s.close()
}

func (s *snapshotter) close() {
	for _, p := range s.ports {
		p.bucket.Close()
	}
	if s.kcl != nil {
		s.kcl.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// run takes the scheduled snapshots and the ones commands ask for, one at
// a time.
func (s *snapshotter) run(ctx context.Context) {
	for {
		now := s.r.cfg.now()
		wait := snapshotPoll
		for _, p := range s.ports {
			if p.due <= now {
				s.scheduled(ctx, p)
				now = s.r.cfg.now()
			}
			// A port still due (another replica takes the snapshots)
			// is looked at again after a poll.
			if p.due > now {
				wait = min(wait, time.Duration(p.due-now)*time.Microsecond)
			}
		}
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			j.err = s.commanded(ctx, j.port)
			close(j.done)
		case <-time.After(wait):
		}
	}
}

// scheduled takes p's snapshot if this replica is the one to, and sets
// when the next is due.
func (s *snapshotter) scheduled(ctx context.Context, p *snapshotPort) {
	if ok, _ := s.taker(); !ok {
		return // looked at again at the next poll
	}
	now := s.r.cfg.now()
	if _, err := s.take(ctx, p); err != nil {
		if errors.Is(err, errNothingYet) {
			p.due = now + min(p.every, snapshotRetry).Microseconds()
			return
		}
		if ctx.Err() == nil {
			s.log.Warn("scheduled snapshot failed; will retry", "port", p.spec.Name, "retry_in", min(p.every, snapshotRetry).String(), "err", err)
		}
		p.due = now + min(p.every, snapshotRetry).Microseconds()
		return
	}
	p.due = now + p.every.Microseconds()
}

// taker says whether this replica takes the product's snapshots: it owns
// partition 0 of the first input topic. assigned says it owns any.
func (s *snapshotter) taker() (ok, assigned bool) {
	first := partitionKey{s.r.product.Manifest.InputPorts[0].Topic, 0}
	s.r.parts.each(func(p *partition) {
		assigned = true
		ok = ok || p.key == first
	})
	return ok, assigned
}

// errNothingYet: the change logs hold no entry to snapshot.
var errNothingYet = errors.New("nothing recorded yet")

// errNoSnapshotPort refuses a command naming a port the product lacks.
var errNoSnapshotPort = errors.New("no such snapshot port")

// command runs a snapshot control command: it returns once the snapshot is
// written, or ctx ends (the snapshot goes on; the command's redelivery
// waits for the same one).
func (s *snapshotter) command(ctx context.Context, c control.Command) error {
	if s == nil {
		return fmt.Errorf("%w: this product has no snapshot output port: add one (kind: snapshot) to outputPorts", ErrRefused)
	}
	port := ""
	if c.Snapshot != nil {
		port = c.Snapshot.Port
	}
	if port != "" && !slices.ContainsFunc(s.ports, func(p *snapshotPort) bool { return p.spec.Name == port }) {
		names := make([]string, len(s.ports))
		for i, p := range s.ports {
			names[i] = p.spec.Name
		}
		return fmt.Errorf("%w: %w %q; the snapshot ports are %s", ErrRefused, errNoSnapshotPort, port, strings.Join(names, ", "))
	}
	switch ok, assigned := s.taker(); {
	case !ok && assigned:
		s.log.Info("snapshot command left to the replica owning partition 0", "id", c.ID)
		return nil
	case !ok:
		return errors.New("no input partition is assigned to this replica yet; the command is retried")
	}
	s.mu.Lock()
	j := s.byID[c.ID]
	if j == nil {
		j = &snapshotJob{port: port, done: make(chan struct{})}
		s.byID[c.ID] = j
		s.order = append(s.order, c.ID)
		if len(s.order) > 64 {
			delete(s.byID, s.order[0])
			s.order = s.order[1:]
		}
		s.mu.Unlock()
		select {
		case s.jobs <- j:
		case <-ctx.Done():
			s.mu.Lock()
			delete(s.byID, c.ID) // never started: a redelivery starts it
			s.mu.Unlock()
			return ctx.Err()
		}
	} else {
		s.mu.Unlock()
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *snapshotter) commanded(ctx context.Context, port string) error {
	var errs []error
	for _, p := range s.ports {
		if port != "" && p.spec.Name != port {
			continue
		}
		if _, err := s.take(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("snapshot port %s: %w", p.spec.Name, err))
		}
	}
	return errors.Join(errs...)
}

// snapshotName is a snapshot's directory name: its system time, so names
// sort by time.
func snapshotName(system int64) string {
	return time.UnixMicro(system).UTC().Format("20060102T150405.000000Z")
}

var snapshotNamePattern = regexp.MustCompile(`^\d{8}T\d{6}\.\d{6}Z$`)

// take writes one snapshot of port p to its bucket and prunes the old
// ones, counted in the port's metrics.
func (s *snapshotter) take(ctx context.Context, p *snapshotPort) (*snapshot.Manifest, error) {
	m, written, err := s.write(ctx, p)
	switch {
	case errors.Is(err, errNothingYet):
	case err != nil:
		s.writes.WithLabelValues(p.spec.Name, "failed").Inc()
	case written:
		s.writes.WithLabelValues(p.spec.Name, "written").Inc()
		s.lastT.WithLabelValues(p.spec.Name).Set(float64(m.System) / 1e6)
	default:
		s.writes.WithLabelValues(p.spec.Name, "unchanged").Inc()
	}
	return m, err
}

// write takes the snapshot: the manifest, and whether it is new; when
// nothing was recorded since the newest in the bucket, that one stands.
func (s *snapshotter) write(ctx context.Context, p *snapshotPort) (*snapshot.Manifest, bool, error) {
	r := s.r
	i, _ := r.outputs.index(p.spec.Of) // validated with the manifest
	stream, out := r.product.Manifest.OutputPorts[i], r.outputs[i]
	adm := kadm.NewClient(s.kcl)
	offs, err := snapshot.CommittedOffsets(ctx, adm, stream.Topic) // before anything else: they may lag T, never lead it
	if err != nil {
		return nil, false, err
	}
	st, err := s.openStore()
	if err != nil {
		return nil, false, err
	}
	if err := st.Refresh(); err != nil {
		return nil, false, err
	}
	if err := s.allLogs(ctx, adm, st); err != nil {
		return nil, false, err
	}
	if !slices.ContainsFunc(st.Logs(), func(l auditlog.LogInfo) bool { return l.Entries > 0 }) {
		return nil, false, errNothingYet
	}
	if err := s.covered(ctx, adm, st); err != nil {
		return nil, false, err
	}
	if err := st.Refresh(); err != nil { // take in the checkpoints' entries
		return nil, false, err
	}

	tmp, err := os.MkdirTemp(r.cfg.dataDir, ".snapshot-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmp)
	local := filepath.Join(tmp, "snap")
	var kinds []snapshot.Kind
	for _, f := range p.spec.Files {
		kinds = append(kinds, snapshot.Kind(f))
	}
	m, err := snapshot.Take(ctx,
		snapshot.Source{Store: st, SchemaDir: query.SchemaDir(r.cfg.dataDir), Registry: r.cfg.registryURL},
		snapshot.Product{URN: r.product.Manifest.ID, Port: stream.Name, Topic: stream.Topic, LogPort: out.logPort()}, local,
		snapshot.Offsets(offs...), snapshot.Kinds(kinds...), snapshot.SchemaID(out.schemaID), snapshot.PII(out.gate.PII()...),
		snapshot.Clock(func() time.Time { return time.UnixMicro(r.cfg.now()) }))
	if err != nil {
		return nil, false, err
	}
	name := snapshotName(m.System)
	if ok, err := p.bucket.Exists(ctx, name+"/"+snapshot.ManifestName); err != nil {
		return nil, false, err
	} else if ok {
		s.log.Info("snapshot unchanged: nothing recorded since the last one", "port", p.spec.Name, "snapshot", name)
		return m, false, nil
	}
	if err := upload(ctx, p.bucket, local, name, m); err != nil {
		return nil, false, err
	}
	attrs := []any{"port", p.spec.Name, "snapshot", name, "url", p.spec.URL, "system_time", m.SystemText}
	for _, f := range m.Files {
		attrs = append(attrs, string(f.Kind)+"_rows", f.Rows)
	}
	s.log.Info("snapshot written", attrs...)
	if err := p.prune(ctx, s.log); err != nil {
		s.log.Warn("snapshot port: pruning old snapshots failed; will retry after the next", "port", p.spec.Name, "err", err)
	}
	return m, true, nil
}

func (s *snapshotter) openStore() (*auditlog.Store, error) {
	if s.store != nil {
		return s.store, nil
	}
	dir := filepath.Join(s.r.cfg.dataDir, "changelog")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	st, err := auditlog.OpenStore(dir)
	if err != nil {
		return nil, err
	}
	s.store = st
	return st, nil
}

// allLogs refuses a snapshot that would miss a partition's log: the
// offsets cover every partition of the output topic.
func (s *snapshotter) allLogs(ctx context.Context, adm *kadm.Client, st *auditlog.Store) error {
	var topics []string
	for _, in := range s.r.product.Manifest.InputPorts {
		topics = append(topics, in.Topic)
	}
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("input topics %v: %w", topics, err)
	}
	have := map[string]bool{}
	for _, l := range st.Logs() {
		have[l.Name] = true
	}
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil {
			return fmt.Errorf("input topic %s: not found", t)
		}
		for p := range d.Partitions {
			if name := (partitionKey{t, p}).String(); !have[name] {
				return fmt.Errorf("no change log %s under %s yet: a snapshot needs the log of every input partition (replicas share the data directory)",
					name, filepath.Join(s.r.cfg.dataDir, "changelog"))
			}
		}
	}
	return nil
}

// covered waits until a signed checkpoint covers every log as far as the
// store has it now, signing the ones this replica owns once the group's
// commit markers show their entries committed.
func (s *snapshotter) covered(ctx context.Context, adm *kadm.Client, st *auditlog.Store) error {
	need := map[string]auditlog.LogInfo{}
	for _, l := range st.Logs() {
		if l.Entries > 0 {
			need[l.Name] = l
		}
	}
	deadline := time.Now().Add(max(3*s.r.cfg.checkpointInterval, 30*time.Second))
	for {
		for name, l := range need {
			sizes, err := auditlog.Checkpoints(l.Dir)
			if err != nil {
				return err
			}
			if len(sizes) > 0 && sizes[len(sizes)-1] >= l.Entries {
				delete(need, name)
			}
		}
		if len(need) == 0 {
			return nil
		}
		if err := s.sign(ctx, adm, need); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			names := slices.Sorted(func(yield func(string) bool) {
				for n := range need {
					if !yield(n) {
						return
					}
				}
			})
			return fmt.Errorf("%w: logs %s have entries no checkpoint covers yet", snapshot.ErrNotProven, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sign checkpoints the logs in need that this replica owns and whose
// entries are committed: the group's commit marker for the partition (see
// commitMarker) names a seq at or past them. It signs only while no
// checkpoint round of the batch loop is running: a round takes its sizes
// after a commit, so one that starts later asks for at least as much.
func (s *snapshotter) sign(ctx context.Context, adm *kadm.Client, need map[string]auditlog.LogInfo) error {
	// Start sets r.serve before it joins the group, so once a partition
	// is assigned (taker) the write is seen through the partitions' lock.
	sv := s.r.serve
	if sv == nil || sv.signer == nil || sv.busy.Load() {
		return nil
	}
	type owned struct {
		key  partitionKey
		log  *auditlog.Log
		size uint64
	}
	var mine []owned
	s.r.parts.each(func(p *partition) {
		if l, ok := need[p.key.String()]; ok {
			mine = append(mine, owned{p.key, p.log, l.Entries})
		}
	})
	if len(mine) == 0 {
		return nil
	}
	committed, err := adm.FetchOffsets(ctx, s.r.cfg.group)
	if err != nil {
		return fmt.Errorf("committed offsets of group %s: %w", s.r.cfg.group, err)
	}
	if sv.busy.Load() {
		return nil
	}
	for _, o := range mine {
		c, ok := committed.Lookup(o.key.topic, o.key.partition)
		if !ok || c.Err != nil {
			continue
		}
		if m, ok := parseMarker(c.Metadata); !ok || m.seq < o.size {
			continue // a batch in flight: the loop's own round will cover it
		}
		if _, err := o.log.CheckpointAt(sv.signer, o.size); err != nil {
			if errors.Is(err, auditlog.ErrCorrupt) {
				continue // a round of the loop got there first, further: re-read next pass
			}
			return fmt.Errorf("checkpoint %s: %w", o.key, err)
		}
	}
	return nil
}

// upload writes a snapshot directory to the bucket under name/, the
// manifest last.
func upload(ctx context.Context, b *blob.Bucket, dir, name string, m *snapshot.Manifest) error {
	files := []string{snapshot.SchemaName}
	for _, f := range m.Files {
		files = append(files, f.Path)
	}
	files = append(files, snapshot.ManifestName)
	for _, f := range files {
		if err := uploadFile(ctx, b, filepath.Join(dir, f), name+"/"+f); err != nil {
			return err
		}
	}
	return nil
}

func uploadFile(ctx context.Context, b *blob.Bucket, path, key string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ct := "application/octet-stream"
	switch filepath.Ext(path) {
	case ".json":
		ct = "application/json"
	case ".avsc":
		ct = "application/vnd.apache.avro+json"
	case ".parquet":
		ct = "application/vnd.apache.parquet"
	}
	if err := b.Upload(ctx, key, f, &blob.WriterOptions{ContentType: ct}); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	return nil
}

// listed is one snapshot directory in a bucket.
type listed struct {
	name  string
	whole bool // has its manifest
}

// list reads the snapshot directories of p's bucket, oldest first.
func (p *snapshotPort) list(ctx context.Context) ([]listed, error) {
	var out []listed
	it := p.bucket.List(&blob.ListOptions{Delimiter: "/"})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(o.Key, "/")
		if !o.IsDir || !snapshotNamePattern.MatchString(name) {
			continue
		}
		whole, err := p.bucket.Exists(ctx, name+"/"+snapshot.ManifestName)
		if err != nil {
			return nil, err
		}
		out = append(out, listed{name, whole})
	}
	slices.SortFunc(out, func(a, b listed) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// newest reads the manifest of the newest whole snapshot, nil when none.
func (p *snapshotPort) newest(ctx context.Context) (*snapshot.Manifest, error) {
	ls, err := p.list(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(ls) - 1; i >= 0; i-- {
		if !ls[i].whole {
			continue
		}
		r, err := p.bucket.NewReader(ctx, ls[i].name+"/"+snapshot.ManifestName, nil)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		var m snapshot.Manifest
		if err := json.NewDecoder(io.LimitReader(r, 16<<20)).Decode(&m); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", ls[i].name, snapshot.ManifestName, err)
		}
		return &m, nil
	}
	return nil, nil
}

// prune deletes all but the newest retain whole snapshots, and the
// unfinished uploads older than the newest whole one.
func (p *snapshotPort) prune(ctx context.Context, log *slog.Logger) error {
	ls, err := p.list(ctx)
	if err != nil {
		return err
	}
	kept, newestWhole := 0, ""
	var drop []string
	for i := len(ls) - 1; i >= 0; i-- {
		switch l := ls[i]; {
		case l.whole && kept < p.spec.Retain:
			kept++
			if newestWhole == "" {
				newestWhole = l.name
			}
		case l.whole || newestWhole != "":
			drop = append(drop, l.name)
		}
	}
	for _, name := range drop {
		if err := deletePrefix(ctx, p.bucket, name+"/"); err != nil {
			return err
		}
		if u, err := url.Parse(p.spec.URL); err == nil && u.Scheme == "file" {
			os.Remove(filepath.Join(u.Path, name)) // fileblob leaves the emptied directory
		}
		log.Info("snapshot deleted", "port", p.spec.Name, "snapshot", name, "retain", p.spec.Retain)
	}
	return nil
}

// deletePrefix deletes every object under prefix, the manifest first, so a
// half-deleted snapshot is never taken for a whole one.
func deletePrefix(ctx context.Context, b *blob.Bucket, prefix string) error {
	if err := b.Delete(ctx, prefix+snapshot.ManifestName); err != nil && !isNotFound(err) {
		return err
	}
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := b.Delete(ctx, o.Key); err != nil && !isNotFound(err) {
			return err
		}
	}
}

func isNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }

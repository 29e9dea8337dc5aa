package snapshot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/schemas"
)

// Source is where a snapshot's rows come from: a product's change logs
// and the writer schemas of their payloads.
type Source struct {
	// Store is the product's change logs (auditlog.OpenStore(DATADIR)).
	// Take and Verify read what it has indexed; Refresh it first to take
	// in entries appended since it was opened. They hold its read lock
	// for the whole scan, which a Refresh waits for and the queries behind
	// that Refresh too: give them a Store of their own, not the one that
	// serves the query port.
	Store *auditlog.Store
	// SchemaDir holds the writer schemas <id>.avsc the runtime saves
	// beside the logs (DATADIR/schemas, query.SchemaDir).
	SchemaDir string
	// Registry is a schema registry URL asked for ids SchemaDir lacks ("" for none).
	Registry string
	// Keys opens sealed PII fields; without it they are null and named in
	// the _sealed column (see PII).
	Keys governance.KeyStore
}

// Product names what a snapshot is of.
type Product struct {
	URN   string // the product's id, e.g. urn:dataproduct:inventory:products
	Port  string // the output port whose schema the columns follow
	Topic string // the output port's topic, which Offsets are on
	// LogPort is the port as the change log names it (auditlog.Entry.Port):
	// empty for the product's first output port. A product with several
	// ports keeps them in one log; the snapshot holds this one's entities.
	LogPort string
}

// Option configures Take.
type Option func(*config)

type config struct {
	system, valid       int64
	systemSet, validSet bool
	kinds               []Kind
	schemaID            int
	pii                 []string
	offsets             []Offset
	rowGroup            int
	now                 func() time.Time
	log                 *slog.Logger
}

// AsOf takes the snapshot as of system time T (unix microseconds): the
// entries recorded at or before it. Every log's entries up to T must be
// covered by a signed checkpoint. Default: the latest moment the
// checkpoints cover in every log (see the package doc).
func AsOf(system int64) Option { return func(c *config) { c.system, c.systemSet = system, true } }

// ValidAt sets the valid time V the table file is about (unix
// microseconds). Default: the wall clock when Take starts.
func ValidAt(valid int64) Option { return func(c *config) { c.valid, c.validSet = valid, true } }

// Kinds chooses the files to write. Default: Table and History.
func Kinds(kinds ...Kind) Option { return func(c *config) { c.kinds = kinds } }

// SchemaID chooses the published schema the columns follow. Default: the
// schema of the newest entry in the snapshot. Entries written with another
// schema fill the columns by field name (a field their schema lacks takes
// the column's default, or null).
func SchemaID(id int) Option { return func(c *config) { c.schemaID = id } }

// PII names the fields the output port's contract classifies as personal
// data, which the change log seals (package seal): their columns may be
// null (sealed without Source.Keys, or erased after a forget), and the
// files gain the columns _sealed and _erased, listing per row the fields
// that read so.
func PII(fields ...string) Option { return func(c *config) { c.pii = fields } }

// Offsets are the output-topic positions a consumer continues from, which
// only the caller can read from Kafka. Each must be at or before the first
// record of its partition whose entry was recorded after T: read the last
// stable offsets before Take fixes T (CommittedOffsets). An offset may lag
// (a consumer skips the records the snapshot already holds, see
// Snapshot.Covers); it must never lead, or the records in between are
// lost to the consumer. An offset naming no topic is on Product.Topic.
func Offsets(offs ...Offset) Option { return func(c *config) { c.offsets = offs } }

// RowGroupRows bounds the rows per Parquet row group, and so what Take
// holds in memory per file. Default 65536.
func RowGroupRows(n int) Option { return func(c *config) { c.rowGroup = n } }

// Clock replaces the wall clock (the default V and the manifest's takenAt).
func Clock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Logger logs one line per snapshot taken.
func Logger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// ErrNotProven is returned when entries the snapshot would hold are not
// covered by any signed checkpoint of their log.
var ErrNotProven = errors.New("snapshot: not covered by a signed checkpoint")

// Take writes a snapshot of the product into dir, which must not exist:
// the Parquet files, a copy of the published schema and the manifest are
// written into a temporary directory beside it, synced, and renamed into
// place, so dir either holds a whole snapshot or does not exist. It reads
// one key at a time and writes row groups as it goes: memory is bounded by
// the row group size and the largest key's history, not by the table.
func Take(ctx context.Context, src Source, p Product, dir string, opts ...Option) (*Manifest, error) {
	c := config{kinds: []Kind{Table, History}, rowGroup: 65536, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	c.offsets = slices.Clone(c.offsets)
	start := c.now()
	if !c.validSet {
		c.valid = start.UnixMicro()
	}
	if p.URN == "" || p.Port == "" || p.Topic == "" {
		return nil, errors.New("snapshot: Product needs URN, Port and Topic")
	}
	if src.Store == nil {
		return nil, errors.New("snapshot: Source.Store is nil")
	}
	if err := checkKinds(c.kinds); err != nil {
		return nil, err
	}
	if err := checkOffsets(c.offsets, p.Topic); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("snapshot: %s exists: a snapshot is written to a new directory", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot: %w", err)
	}

	m := &Manifest{Format: manifestFormat, Product: p.URN, Port: p.Port, Topic: p.Topic, LogPort: p.LogPort,
		Valid: c.valid, ValidText: formatMicros(c.valid), TakenAt: start.UTC().Format(time.RFC3339Nano),
		Offsets: c.offsets, PII: slices.Clone(c.pii), Opened: src.Keys != nil}
	if m.Offsets == nil {
		m.Offsets = []Offset{}
	}
	if err := position(src.Store, &c, m); err != nil {
		return nil, err
	}
	dec, err := query.NewDecoder(src.SchemaDir, src.Registry)
	if err != nil {
		return nil, err
	}
	dec.Keys = src.Keys
	if c.schemaID == 0 {
		if c.schemaID, err = newestSchema(src.Store, m); err != nil {
			return nil, err
		}
	}
	text, sch, err := loadSchema(ctx, dec, c.schemaID)
	if err != nil {
		return nil, err
	}
	fp := sch.Fingerprint()
	m.Schema = Schema{ID: c.schemaID, Fingerprint: hex.EncodeToString(fp[:]), File: SchemaName}

	tmp, err := tempDir(dir)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()

	d := &deriver{st: src.Store, dec: dec, cut: m.cut(), system: m.System, valid: m.Valid, port: m.LogPort}
	writers := map[Kind]*fileWriter{}
	for _, k := range c.kinds {
		l, err := newLayout(k, sch.Fields(), c.pii)
		if err != nil {
			return nil, fmt.Errorf("snapshot: schema id %d: %w", c.schemaID, err)
		}
		w, err := newFileWriter(filepath.Join(tmp, string(k)+".parquet"), l, c.rowGroup, m)
		if err != nil {
			return nil, err
		}
		defer w.abort()
		writers[k] = w
		switch k {
		case Table:
			d.table = newRowBuilder(l)
		case History:
			d.hist = newRowBuilder(l)
		}
	}
	err = d.run(ctx, func(k Kind, row parquet.Row) error { return writers[k].add(row) })
	if err != nil {
		return nil, err
	}
	for _, k := range c.kinds {
		f, err := writers[k].finish()
		if err != nil {
			return nil, err
		}
		f.Path = string(k) + ".parquet"
		m.Files = append(m.Files, f)
	}
	m.Digest = contentDigest(m.Files)
	if err := writeSynced(filepath.Join(tmp, SchemaName), []byte(text)); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeSynced(filepath.Join(tmp, ManifestName), append(b, '\n')); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	if c.log != nil {
		attrs := []any{"data_product", p.URN, "port", p.Port, "dir", dir, "system_time", m.SystemText,
			"valid_time", m.ValidText, "schema_id", c.schemaID, "took", c.now().Sub(start).String()}
		for _, f := range m.Files {
			attrs = append(attrs, string(f.Kind)+"_rows", f.Rows)
		}
		c.log.Info("snapshot taken", attrs...)
	}
	return m, nil
}

// checkOffsets fills in the topic of offsets that name none and refuses
// offsets of another topic, negative ones and a partition named twice.
func checkOffsets(offs []Offset, topic string) error {
	seen := map[int32]bool{}
	for i := range offs {
		o := &offs[i]
		if o.Topic == "" {
			o.Topic = topic
		}
		switch {
		case o.Topic != topic:
			return fmt.Errorf("snapshot: offset of topic %q: the output port's topic is %q", o.Topic, topic)
		case o.Partition < 0 || o.Offset < 0:
			return fmt.Errorf("snapshot: offset %d of partition %d: want both >= 0", o.Offset, o.Partition)
		case seen[o.Partition]:
			return fmt.Errorf("snapshot: partition %d of %s given two offsets", o.Partition, topic)
		}
		seen[o.Partition] = true
	}
	slices.SortFunc(offs, func(a, b Offset) int { return int(a.Partition) - int(b.Partition) })
	return nil
}

func checkKinds(kinds []Kind) error {
	if len(kinds) == 0 {
		return errors.New("snapshot: no kinds of file asked for")
	}
	seen := map[Kind]bool{}
	for _, k := range kinds {
		if k != Table && k != History {
			return fmt.Errorf("snapshot: kind %q: want %q or %q", k, Table, History)
		}
		if seen[k] {
			return fmt.Errorf("snapshot: kind %q asked for twice", k)
		}
		seen[k] = true
	}
	return nil
}

// cut is the change-log prefix the manifest names.
func (m *Manifest) cut() auditlog.Cut {
	c := auditlog.Cut{}
	for _, l := range m.Logs {
		c[l.Name] = l.Entries
	}
	return c
}

// position fixes T and each log's entries, and the checkpoint proving them.
//
// Asked for a T, each log takes the entries recorded by then, and a
// checkpoint must cover them. Not asked, T is the latest moment at which
// every log's recorded entries are covered by its newest checkpoint: the
// newest checkpointed entry of any log, moved back to just before the
// first entry some log recorded after its own newest checkpoint.
func position(st *auditlog.Store, c *config, m *Manifest) error {
	logs := st.Logs()
	if len(logs) == 0 {
		return errors.New("snapshot: the store holds no change log")
	}
	sizes := make([][]uint64, len(logs))
	for i, l := range logs {
		s, err := auditlog.Checkpoints(l.Dir)
		if err != nil {
			return err
		}
		sizes[i] = s
	}
	if !c.systemSet {
		t, err := provenTime(st, logs, sizes)
		if err != nil {
			return err
		}
		c.system = t
	}
	m.System, m.SystemText = c.system, formatMicros(c.system)
	for i, l := range logs {
		n, err := st.Position(l.Name, c.system)
		if err != nil {
			return err
		}
		lp := LogPosition{Name: l.Name, Entries: n}
		if n > 0 {
			k := slices.IndexFunc(sizes[i], func(s uint64) bool { return s >= n })
			if k < 0 {
				newest := uint64(0)
				if len(sizes[i]) > 0 {
					newest = sizes[i][len(sizes[i])-1]
				}
				return fmt.Errorf("%w: log %s: the snapshot takes entries 1..%d (recorded by %s), its newest checkpoint covers %d: checkpoint the log (the runtime does after each commit) or take the snapshot as of an earlier time",
					ErrNotProven, l.Name, n, formatMicros(c.system), newest)
			}
			note, err := os.ReadFile(auditlog.NotePath(l.Dir, sizes[i][k]))
			if err != nil {
				return fmt.Errorf("snapshot: checkpoint of log %s: %w", l.Name, err)
			}
			cp, err := auditlog.ParseCheckpoint(string(note))
			if err != nil {
				return fmt.Errorf("snapshot: %s: %w", auditlog.NotePath(l.Dir, sizes[i][k]), err)
			}
			lp.Checkpoint = &CheckpointRef{Size: cp.Size, Root: rootText(cp.Root), Note: string(note)}
		}
		m.Logs = append(m.Logs, lp)
	}
	return nil
}

func provenTime(st *auditlog.Store, logs []auditlog.LogInfo, sizes [][]uint64) (int64, error) {
	var (
		t     int64
		limit int64 = auditlog.Latest
	)
	for i, l := range logs {
		if l.Entries == 0 {
			continue
		}
		k := len(sizes[i]) - 1
		for k >= 0 && sizes[i][k] > l.Entries {
			k-- // written after the store's last Refresh: not indexed yet
		}
		if k < 0 {
			return 0, fmt.Errorf("%w: log %s has %d entries and no checkpoint: checkpoint it (meshlet audit checkpoint) before taking a snapshot",
				ErrNotProven, l.Name, l.Entries)
		}
		size := sizes[i][k]
		if size > 0 {
			f, err := st.Fact(l.Name, size)
			if err != nil {
				return 0, err
			}
			t = max(t, f.SystemTime)
		}
		if size < l.Entries {
			f, err := st.Fact(l.Name, size+1)
			if err != nil {
				return 0, err
			}
			limit = min(limit, f.SystemTime-1)
		}
	}
	return min(t, limit), nil
}

// newestSchema is the schema id of the snapshot's port's newest entry
// (looking back at most newestLookBack entries per log for one of the port).
func newestSchema(st *auditlog.Store, m *Manifest) (int, error) {
	var newest *auditlog.Fact
	for _, l := range m.Logs {
		for seq := l.Entries; seq > 0 && l.Entries-seq < newestLookBack; seq-- {
			f, err := st.Fact(l.Name, seq)
			if err != nil {
				return 0, err
			}
			if f.Port != m.LogPort {
				continue
			}
			if newest == nil || newest.Before(&f) {
				newest = &f
			}
			break
		}
	}
	if newest == nil {
		return 0, errors.New("snapshot: no entries recorded by then, so no schema to lay out columns by: pass SchemaID")
	}
	if newest.Prov.SchemaID == 0 {
		return 0, fmt.Errorf("snapshot: log %s seq %d names no schema id: pass SchemaID", newest.Log, newest.Seq)
	}
	return int(newest.Prov.SchemaID), nil
}

const newestLookBack = 4096

// loadSchema reads the published schema of id as the decoder finds it.
func loadSchema(ctx context.Context, dec *query.Decoder, id int) (string, *schemas.Schema, error) {
	text, err := dec.Published(ctx, id)
	if err != nil {
		return "", nil, fmt.Errorf("snapshot: %w", err)
	}
	s, err := schemas.ParsePublished(fmt.Sprintf("schema id %d", id), text)
	if err != nil {
		return "", nil, err
	}
	return text, s, nil
}

// rootText is a root hash as a checkpoint note spells it.
func rootText(r [32]byte) string { return base64.StdEncoding.EncodeToString(r[:]) }

// fileWriter streams one Parquet file: rows go to the Parquet writer in
// small batches, a row group is flushed every rowGroup rows, and the bytes
// are hashed as they are written.
type fileWriter struct {
	path     string
	f        *os.File
	sum      hash.Hash
	n        int64 // bytes written
	pw       *parquet.Writer
	dig      *digester
	batch    []parquet.Row
	vals     []parquet.Value
	rows     int64
	inGroup  int
	rowGroup int
	kind     Kind
}

func newFileWriter(path string, l *layout, rowGroup int, m *Manifest) (*fileWriter, error) {
	if rowGroup <= 0 {
		return nil, fmt.Errorf("snapshot: row group of %d rows", rowGroup)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	w := &fileWriter{path: path, f: f, sum: sha256.New(), dig: newDigester(l), rowGroup: rowGroup, kind: l.kind}
	w.pw = parquet.NewWriter(w, l.schema,
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
		parquet.CreatedBy("meshlet", "snapshot-v1", ""),
		parquet.KeyValueMetadata("meshlet.product", m.Product),
		parquet.KeyValueMetadata("meshlet.port", m.Port),
		parquet.KeyValueMetadata("meshlet.kind", string(l.kind)),
		parquet.KeyValueMetadata("meshlet.system_time", m.SystemText),
		parquet.KeyValueMetadata("meshlet.valid_time", m.ValidText),
	)
	return w, nil
}

// Write is the Parquet writer's output: the file, hashed and counted.
func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.sum.Write(p[:n])
	w.n += int64(n)
	return n, err
}

const batchRows = 256

func (w *fileWriter) add(row parquet.Row) error {
	w.dig.row(row)
	// The builder reuses row; byte arrays in it are fresh, the values are copied.
	at := len(w.vals)
	w.vals = append(w.vals, row...)
	w.batch = append(w.batch, w.vals[at:len(w.vals):len(w.vals)])
	w.rows++
	w.inGroup++
	if len(w.batch) == batchRows {
		if err := w.flushBatch(); err != nil {
			return err
		}
	}
	if w.inGroup >= w.rowGroup {
		if err := w.flushBatch(); err != nil {
			return err
		}
		if err := w.pw.Flush(); err != nil {
			return fmt.Errorf("snapshot: %s: %w", w.path, err)
		}
		w.inGroup = 0
	}
	return nil
}

func (w *fileWriter) flushBatch() error {
	if len(w.batch) == 0 {
		return nil
	}
	if _, err := w.pw.WriteRows(w.batch); err != nil {
		return fmt.Errorf("snapshot: %s: %w", w.path, err)
	}
	clear(w.vals) // drop references to the written byte arrays
	w.batch, w.vals = w.batch[:0], w.vals[:0]
	return nil
}

func (w *fileWriter) finish() (File, error) {
	if err := w.flushBatch(); err != nil {
		return File{}, err
	}
	if err := w.pw.Close(); err != nil {
		return File{}, fmt.Errorf("snapshot: %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return File{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return File{}, fmt.Errorf("snapshot: %w", err)
	}
	w.f = nil
	return File{Kind: w.kind, Rows: w.rows, Bytes: w.n, SHA256: hex.EncodeToString(w.sum.Sum(nil)), Digest: w.dig.sum()}, nil
}

func (w *fileWriter) abort() {
	if w.f != nil {
		w.f.Close()
	}
}

// tempDir makes a new directory beside dir to write the snapshot in.
func tempDir(dir string) (string, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	var b [6]byte
	rand.Read(b[:])
	tmp := filepath.Join(parent, "."+filepath.Base(dir)+".tmp-"+hex.EncodeToString(b[:]))
	if err := os.Mkdir(tmp, 0o750); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	return tmp, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot: %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("snapshot: sync %s: %w", dir, err)
	}
	return nil
}

var _ io.Writer = (*fileWriter)(nil)

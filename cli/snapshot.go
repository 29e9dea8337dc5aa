package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/snapshot"
)

func init() {
	register(command{name: "snapshot", synopsis: "DIR --out OUT  write the table and its history as Parquet, proven against the change log", run: cmdSnapshot})
	register(command{name: "snapshot verify", synopsis: "OUT [--data DIR]  re-derive a snapshot from the change log and check it", run: plain(cmdSnapshotVerify)})
	register(command{name: "control snapshot", synopsis: "[PORT] --url URL  have a running product write its snapshot ports now (owner)", run: plain(cmdControlSnapshot)})
}

const snapshotUsage = `snapshot DIR --out OUT [--as-of T] [--valid V] [--kind table|history|both]
                [--brokers B [--topic T]] [--port P] [--product URN] [--json]

Writes a snapshot of the product whose data directory is DIR into the new
directory OUT: table.parquet, the table as believed at system time T about
valid time V (default now/now), and history.parquet, every version recorded
by T with both periods, beside schema.avsc and manifest.json (written last).
The manifest names the change-log position, the signed checkpoint of each
log it is proven against, and its content digest: snapshot verify checks it.
Rows are written as they are read, so memory stays bounded for any table.

T must be covered by signed checkpoints; "now" (the default) is the latest
moment they cover. With --brokers, the manifest also names the output
topic's offsets a consumer continues from (consume --from-snapshot): they
are read first, then the snapshot waits (--wait) until the product's
checkpoints cover what the logs held then, so no record is missed. A
running product checkpoints every 10s while it commits; for an idle one,
use control snapshot, which signs the checkpoints itself.

In a product's binary, the port, topic, product and pii fields come from
the product; meshlet needs --port, and --topic with --brokers.`

func cmdSnapshot(ctx context.Context, e *env, args []string) error {
	var (
		o                 storeFlags
		out, kind         string
		brokers, topic    string
		port, pii         string
		asOf, valid       timeFlag
		wait              time.Duration
		schemaID, rowsPer int
	)
	fs := newFlags("snapshot", snapshotUsage, e.stderr)
	fs.StringVar(&out, "out", "", "the new `DIR` to write the snapshot into (required; must not exist)")
	fs.Var(&asOf, "as-of", "system time `T` (RFC 3339, or now: the latest checkpointed moment)")
	fs.Var(&valid, "valid", "valid time `V` the table is about (RFC 3339, or now)")
	fs.StringVar(&kind, "kind", "both", "the files to write: table, history or both")
	fs.StringVar(&brokers, "brokers", "", "Kafka bootstrap brokers: read the output topic's offsets into the manifest, for consumers to continue from")
	fs.StringVar(&topic, "topic", "", "the output port's topic (default: the product's)")
	fs.StringVar(&port, "port", "", "the output port's name (default: the product's)")
	fs.StringVar(&pii, "pii", "", "comma-separated fields classified pii, which the change log seals (default: the product's contract)")
	fs.DurationVar(&wait, "wait", time.Minute, "with --brokers: how long to wait for checkpoints to cover the logs")
	fs.IntVar(&schemaID, "schema-id", 0, "the published schema id the columns follow (default: the newest entry's)")
	fs.IntVar(&rowsPer, "row-group", 0, "rows per Parquet row group (default 65536)")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || out == "" {
		fs.Usage()
		return errUsage
	}
	dir := pos[0]
	var kinds []snapshot.Kind
	switch kind {
	case "both":
		kinds = []snapshot.Kind{snapshot.Table, snapshot.History}
	case "table", "history":
		kinds = []snapshot.Kind{snapshot.Kind(kind)}
	default:
		return usageError("--kind %q: want table, history or both", kind)
	}
	if brokers != "" && asOf.set && !asOf.now {
		return usageError("--brokers with --as-of %s: the offsets read now are past T, so a consumer would miss the records between; take a snapshot as of now to bootstrap consumers", asOf.String())
	}
	v, _, err := auditlog.FindVerifier(dir)
	if err != nil {
		return fmt.Errorf("%w (the product's checkpoint key names it)", err)
	}
	p := snapshot.Product{URN: cmpOr(o.product, v.Name()), Port: port, Topic: topic}
	var piiFields []string
	if pii != "" {
		piiFields = strings.Split(pii, ",")
	}
	if e.app != nil {
		prod, err := e.app.load()
		if err != nil {
			return err
		}
		m := prod.Manifest
		i := 0
		if port != "" {
			i = slices.IndexFunc(m.OutputPorts, func(o runtime.OutputPort) bool { return o.Name == port })
			if i < 0 {
				var names []string
				for _, o := range m.OutputPorts {
					names = append(names, o.Name)
				}
				return usageError("--port %s: the product has no such output port (output ports: %s)", port, strings.Join(names, ", "))
			}
		}
		out := m.OutputPorts[i]
		p.URN, p.Port, p.Topic = cmpOr(o.product, m.ID), out.Name, cmpOr(topic, out.Topic)
		if i > 0 {
			p.LogPort = out.Name // the change log names every port but the first
		}
		if pii == "" {
			if obj, err := prod.Contracts[i].Object(out.Name); err == nil {
				for _, f := range obj.Properties {
					if strings.EqualFold(f.Classification, "pii") {
						piiFields = append(piiFields, f.Name)
					}
				}
			}
		}
	}
	if p.Port == "" || p.Topic == "" {
		return usageError("name the output port and its topic: --port NAME --topic TOPIC (a product's binary knows them)")
	}

	var offs []snapshot.Offset
	if brokers != "" {
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
		if err != nil {
			return err
		}
		offs, err = snapshot.CommittedOffsets(ctx, kadm.NewClient(cl), p.Topic)
		cl.Close()
		if err != nil {
			return err
		}
	}
	st, err := o.open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if brokers != "" {
		if err := waitCovered(ctx, st, wait, e.stderr); err != nil {
			return err
		}
	}
	dec, err := o.decoder(dir)
	if err != nil {
		return err
	}
	opts := []snapshot.Option{snapshot.Kinds(kinds...), snapshot.PII(piiFields...), snapshot.Offsets(offs...)}
	if asOf.set && !asOf.now {
		opts = append(opts, snapshot.AsOf(asOf.us))
	}
	if valid.set && !valid.now {
		opts = append(opts, snapshot.ValidAt(valid.us))
	}
	if schemaID > 0 {
		opts = append(opts, snapshot.SchemaID(schemaID))
	}
	if rowsPer > 0 {
		opts = append(opts, snapshot.RowGroupRows(rowsPer))
	}
	src := snapshot.Source{Store: st, SchemaDir: o.schemaDir(dir), Registry: o.registry, Keys: dec.Keys}
	m, err := snapshot.Take(ctx, src, p, out, opts...)
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, m)
	}
	fmt.Fprintf(e.stdout, "snapshot %s of %s (port %s)\n", out, m.Product, m.Port)
	fmt.Fprintf(e.stdout, "  as of system time %s, valid time %s, schema id %d\n", m.SystemText, m.ValidText, m.Schema.ID)
	for _, f := range m.Files {
		fmt.Fprintf(e.stdout, "  %-15s %d rows, %d bytes\n", f.Path, f.Rows, f.Bytes)
	}
	for _, l := range m.Logs {
		if l.Checkpoint == nil {
			fmt.Fprintf(e.stdout, "  log %s: no entries by then\n", l.Name)
			continue
		}
		fmt.Fprintf(e.stdout, "  log %s: entries 1..%d, proven by checkpoint %d %s\n", l.Name, l.Entries, l.Checkpoint.Size, l.Checkpoint.Root)
	}
	if len(m.Offsets) > 0 {
		var parts []string
		for _, o := range m.Offsets {
			parts = append(parts, fmt.Sprintf("%d@%d", o.Partition, o.Offset))
		}
		fmt.Fprintf(e.stdout, "  consumers continue on %s from partition@offset %s\n", m.Topic, strings.Join(parts, " "))
	}
	fmt.Fprintf(e.stdout, "  content sha256 %s\n", m.Digest)
	return nil
}

// waitCovered waits until each log's newest signed checkpoint covers the
// entries the store holds now: the product checkpoints after commits, so
// once it does, T falls at or after every entry whose record is before the
// offsets just read.
func waitCovered(ctx context.Context, st *auditlog.Store, wait time.Duration, stderr io.Writer) error {
	if err := st.Refresh(); err != nil {
		return err
	}
	need := map[string]auditlog.LogInfo{}
	for _, l := range st.Logs() {
		if l.Entries > 0 {
			need[l.Name] = l
		}
	}
	deadline, told := time.Now().Add(wait), false
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
			return st.Refresh()
		}
		names := make([]string, 0, len(need))
		for n, l := range need {
			names = append(names, fmt.Sprintf("%s (%d entries)", n, l.Entries))
		}
		slices.Sort(names)
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: after %s, no checkpoint covers logs %s as they were when the offsets were read: is the product idle? use control snapshot, or raise --wait",
				snapshot.ErrNotProven, wait, strings.Join(names, ", "))
		}
		if !told {
			fmt.Fprintf(stderr, "waiting for the product to checkpoint %s\n", strings.Join(names, ", "))
			told = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const snapshotVerifyUsage = `snapshot verify OUT [--data DIR] [--key KEY] [--json]

Proves the snapshot in OUT against the product's change log in DIR
(default ./data): every file's bytes and its SHA-256 against the manifest,
the schema, each log's signed checkpoint (signed by the product's key, for
that log, covering the snapshot's entries, and extended by the log on
disk), that no entry recorded by T is left out, and finally every row,
re-derived from the log and compared with the file's. Exits 1 naming the
file, row, key and column that differ, or the checkpoint that fails.

--key is the product's verifier key (or a file holding it), obtained from
its owners; without it, checkpoint.pub beside the logs is used, which shows
damage but not a replaced key.`

func cmdSnapshotVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		o         storeFlags
		data, key string
	)
	fs := newFlags("snapshot verify", snapshotVerifyUsage, stderr)
	fs.StringVar(&data, "data", "data", "the product's data `DIR`, with the change logs")
	fs.StringVar(&key, "key", "", "the verifier `KEY` (or a file holding it) the checkpoints must be signed with (default: checkpoint.pub beside the logs)")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	out := pos[0]
	var v note.Verifier
	keyFrom := "--key"
	if key != "" {
		v, err = auditlog.ReadVerifier(key)
	} else {
		v, keyFrom, err = auditlog.FindVerifier(data)
	}
	if err != nil {
		return err
	}
	st, err := o.open(data)
	if err != nil {
		return err
	}
	defer st.Close()
	dec, err := o.decoder(data)
	if err != nil {
		return err
	}
	rep, err := snapshot.Verify(ctx, out, snapshot.Source{Store: st, SchemaDir: o.schemaDir(data), Registry: o.registry, Keys: dec.Keys}, v)
	if o.json {
		res := map[string]any{"snapshot": out, "verified": err == nil, "key": keyFrom}
		var mm *snapshot.MismatchError
		switch {
		case errors.As(err, &mm):
			res["error"], res["mismatch"] = err.Error(), mm
		case err != nil:
			res["error"] = err.Error()
		default:
			res["rows"], res["logs"], res["contentSha256"] = rep.Rows, rep.Logs, rep.Manifest.Digest
		}
		if jerr := writeJSON(stdout, res); jerr != nil {
			return jerr
		}
		return err
	}
	if err != nil {
		return err
	}
	m := rep.Manifest
	fmt.Fprintf(stdout, "verified snapshot %s of %s as of %s against the change log in %s\n", out, m.Product, m.SystemText, data)
	for _, f := range m.Files {
		fmt.Fprintf(stdout, "  %-15s %d rows re-derived from the log, identical\n", f.Path, rep.Rows[f.Kind])
	}
	for _, l := range m.Logs {
		if l.Checkpoint != nil {
			fmt.Fprintf(stdout, "  log %s: entries 1..%d, the log extends checkpoint %d %s\n", l.Name, l.Entries, l.Checkpoint.Size, l.Checkpoint.Root)
		}
	}
	if key == "" {
		fmt.Fprintf(stdout, "checkpoints checked with the key in %s, found beside the logs: pass --key with a key you obtained independently to rule out a replaced key\n", keyFrom)
	}
	fmt.Fprintf(stdout, "content sha256 %s\n", m.Digest)
	return nil
}

func cmdControlSnapshot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("control snapshot", "control snapshot [PORT] --url URL [--token T]\n\nHas a running product write a snapshot to its snapshot output port PORT (or every one) now,\nand waits until it is written. The product signs the checkpoints it needs itself.", stderr)
	var c controlFlags
	c.register(fs)
	if f := fs.Lookup("wait"); f != nil {
		f.DefValue = "10m0s"
		c.wait = 10 * time.Minute // a snapshot of a large table takes a while
	}
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 1 || c.url == "" {
		fs.Usage()
		return errUsage
	}
	body := map[string]any{}
	if len(rest) == 1 {
		body["port"] = rest[0]
	}
	return c.issue(ctx, "snapshot", body, stdout)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// schemaDir is where the decoder of o finds DIR's writer schemas.
func (o *storeFlags) schemaDir(dir string) string {
	if o.schemas != "" {
		return o.schemas
	}
	if p, ok := findUp(dir, "schemas"); ok {
		return p
	}
	return query.SchemaDir(dir)
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/snapshot"
)

func init() {
	register(command{name: "consume", synopsis: "--from-snapshot OUT --brokers B  load a snapshot, tail the output topic from its offsets", run: plain(cmdConsume)})
}

const consumeUsage = `consume --from-snapshot OUT --brokers B --registry R [--until-caught-up] [--json]

Starts a consumer of a product's output topic from a snapshot (written with
--brokers, or by a snapshot port): loads the history the snapshot holds,
then reads the topic from the manifest's offsets (read_committed), skips the
records the snapshot already holds (their _system_from is at or before the
snapshot's T) and applies the others. The state it ends with equals that of
a consumer that read the whole topic from offset 0, no record missing or
applied twice.

With --until-caught-up it reads up to the topic's last stable offsets as they
were when it started tailing, then prints the state: per key, each valid
period as now believed, with its fields (--json: one JSON object a line).
Without it, it prints each record it applies until interrupted. A summary
goes to stderr.`

func cmdConsume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("consume", consumeUsage, stderr)
	from := fs.String("from-snapshot", "", "the snapshot `DIR` to start from (required)")
	brokers := fs.String("brokers", envOr(envBrokers, "localhost:9092"), "comma-separated Kafka bootstrap brokers ($"+envBrokers+")")
	registry := fs.String("registry", envOr(envRegistry, "http://localhost:8081"), "schema registry URL the records' schemas are read from ($"+envRegistry+")")
	caughtUp := fs.Bool("until-caught-up", false, "stop at the topic's last stable offsets and print the state")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *from == "" {
		fs.Usage()
		return errUsage
	}
	snap, err := snapshot.Open(*from)
	if err != nil {
		return err
	}
	m := snap.Manifest
	if len(m.Offsets) == 0 {
		return fmt.Errorf("snapshot %s names no output-topic offsets (it was taken without --brokers): a consumer cannot continue from it", *from)
	}
	state := snapshot.NewState()
	if err := state.Load(snap); err != nil {
		return err
	}
	jsonCols, err := jsonColumns(*from, m)
	if err != nil {
		return err
	}
	loaded := len(state.Keys())
	reg, err := schemas.NewRegistry([]string{*registry})
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...), kgo.ConsumePartitions(snap.ConsumeOffsets()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()

	next := map[int32]int64{}
	for _, o := range m.Offsets {
		next[o.Partition] = o.Offset
	}
	var end map[int32]int64
	if *caughtUp {
		offs, err := snapshot.CommittedOffsets(ctx, kadm.NewClient(cl), m.Topic)
		if err != nil {
			return err
		}
		end = map[int32]int64{}
		for _, o := range offs {
			end[o.Partition] = o.Offset
		}
	}
	done := func() bool {
		for p, e := range end {
			if next[p] < e {
				return false
			}
		}
		return true
	}
	var applied, skipped int
	for end == nil || !done() {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			if end != nil {
				return ctx.Err()
			}
			break
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("consume %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var derr error
		fetches.EachRecord(func(r *kgo.Record) {
			if derr != nil || (end != nil && r.Offset >= end[r.Partition]) {
				return
			}
			next[r.Partition] = r.Offset + 1 // control records too: they take offsets
			if r.Attrs.IsControl() {
				return
			}
			c, err := snapshot.DecodeRecord(ctx, reg, r.Key, r.Value)
			if err != nil {
				derr = fmt.Errorf("%s partition %d offset %d: %w", r.Topic, r.Partition, r.Offset, err)
				return
			}
			if snap.Covers(c.SystemFrom) {
				skipped++
				return
			}
			state.Apply(c)
			applied++
			if end == nil {
				printChange(stdout, c, *asJSON)
			}
		})
		if derr != nil {
			return derr
		}
	}
	if end != nil {
		if err := printState(stdout, state, jsonCols, *asJSON); err != nil {
			return err
		}
	}
	var parts []string
	for _, o := range m.Offsets {
		parts = append(parts, fmt.Sprintf("%d@%d..%d", o.Partition, o.Offset, next[o.Partition]))
	}
	fmt.Fprintf(stderr, "loaded %d keys from snapshot %s (as of %s); read %s partition@offsets %s: applied %d records, skipped %d the snapshot holds; %d keys now\n",
		loaded, *from, m.SystemText, m.Topic, strings.Join(parts, " "), applied, skipped, len(state.Keys()))
	return nil
}

// jsonColumns are the fields the snapshot's Parquet files hold as JSON
// text (records, arrays, maps and general unions): decoded again, they
// print like the same fields of a record read from the topic.
func jsonColumns(dir string, m *snapshot.Manifest) (map[string]bool, error) {
	text, err := os.ReadFile(filepath.Join(dir, m.Schema.File))
	if err != nil {
		return nil, err
	}
	s, err := schemas.ParsePublished(m.Schema.File, string(text))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, f := range s.Fields() {
		switch f.Type {
		case "record", "array", "map", "union":
			out[f.Name] = true
		}
	}
	return out, nil
}

// piece is one valid period of a key as printed.
type piece struct {
	Key       string         `json:"key"`
	ValidFrom string         `json:"validFrom"`
	ValidTo   *string        `json:"validTo"` // null: open
	Fields    map[string]any `json:"fields"`
}

func printState(w io.Writer, s *snapshot.State, jsonCols map[string]bool, asJSON bool) error {
	enc := json.NewEncoder(w)
	for _, k := range s.Keys() {
		for _, p := range s.Timeline(k) {
			pc := piece{Key: k, ValidFrom: formatMicros(p.ValidFrom), Fields: canonical(p.Fields, jsonCols)}
			if p.ValidTo != 0 {
				t := formatMicros(p.ValidTo)
				pc.ValidTo = &t
			}
			if asJSON {
				if err := enc.Encode(pc); err != nil {
					return err
				}
				continue
			}
			to := "-"
			if pc.ValidTo != nil {
				to = *pc.ValidTo
			}
			b, _ := json.Marshal(pc.Fields)
			fmt.Fprintf(w, "%s\t[%s, %s)\t%s\n", printable(k), pc.ValidFrom, to, b)
		}
	}
	return nil
}

func printChange(w io.Writer, c snapshot.Change, asJSON bool) {
	out := struct {
		Key        string         `json:"key"`
		ValidFrom  string         `json:"validFrom"`
		ValidTo    *string        `json:"validTo"`
		SystemFrom string         `json:"systemFrom"`
		Deleted    bool           `json:"deleted"`
		Fields     map[string]any `json:"fields,omitempty"`
	}{Key: c.Key, ValidFrom: formatMicros(c.ValidFrom), SystemFrom: formatMicros(c.SystemFrom), Deleted: c.Deleted}
	if c.ValidTo != 0 {
		t := formatMicros(c.ValidTo)
		out.ValidTo = &t
	}
	if !c.Deleted {
		out.Fields = canonical(c.Fields, nil)
	}
	if asJSON {
		json.NewEncoder(w).Encode(out)
		return
	}
	b, _ := json.Marshal(out.Fields)
	op := "put"
	if c.Deleted {
		op = "delete"
	}
	fmt.Fprintf(w, "%s\t%s\tvalid from %s\trecorded %s\t%s\n", op, printable(c.Key), out.ValidFrom, out.SystemFrom, b)
}

// canonical gives each field one form whichever reader decoded it (the
// Avro decoder or the Parquet file): times in UTC, decimals as exact
// fractions, JSON columns decoded.
func canonical(fields map[string]any, jsonCols map[string]bool) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		out[k] = canonicalValue(v)
		if s, ok := v.(string); ok && jsonCols[k] {
			var x any
			if json.Unmarshal([]byte(s), &x) == nil {
				out[k] = x
			}
		}
	}
	return out
}

func canonicalValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case *big.Rat:
		if x.IsInt() {
			return x.Num().String()
		}
		return x.FloatString(decimals(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = canonicalValue(e)
		}
		return m
	case []any:
		s := slices.Clone(x)
		for i := range s {
			s[i] = canonicalValue(s[i])
		}
		return s
	}
	return v
}

// decimals is enough digits to write r exactly when its denominator is a
// power of ten (a decimal's), else 18.
func decimals(r *big.Rat) int {
	d := new(big.Int).Set(r.Denom())
	ten := big.NewInt(10)
	n := 0
	for d.Cmp(big.NewInt(1)) > 0 && n < 38 {
		q, m := new(big.Int).QuoRem(d, ten, new(big.Int))
		if m.Sign() != 0 {
			return 18
		}
		d, n = q, n+1
	}
	return n
}

func formatMicros(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }

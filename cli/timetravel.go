package cli

import (
	"github.com/redis/go-redis/v9"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports/query"
)

// Shared by asof, history, corrections, replay and the audit proofs.

// parseArgs parses flags wherever they appear among the positional
// arguments (`meshlet asof DIR --system T KEY`), which flag.Parse alone
// stops at.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errUsage, err) // the flag set has printed it
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// timeFlag is an RFC 3339 time or "now".
type timeFlag struct {
	set bool
	now bool
	us  int64
}

func (t *timeFlag) String() string {
	switch {
	case !t.set:
		return ""
	case t.now:
		return "now"
	}
	return query.FormatTime(t.us)
}

func (t *timeFlag) Set(s string) error {
	t.set = true
	if strings.EqualFold(s, "now") {
		t.now = true
		return nil
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is not an RFC 3339 time (like 2026-05-01T12:00:00Z) or \"now\"", s)
	}
	t.now, t.us = false, tm.UnixMicro()
	return nil
}

// system is the flag as a system time: "now" (or unset) takes in every
// entry recorded, whatever the clocks said.
func (t *timeFlag) system() int64 {
	if !t.set || t.now {
		return auditlog.Latest
	}
	return t.us
}

// valid is the flag as a valid time: "now" (or unset) is the wall clock.
func (t *timeFlag) valid(now time.Time) int64 {
	if !t.set || t.now {
		return now.UnixMicro()
	}
	return t.us
}

// describe prints a system or valid time for a header line.
func describe(us int64) string {
	if us == auditlog.Latest {
		return "now (every entry recorded)"
	}
	return query.FormatTime(us)
}

// storeFlags are how a time-travel command finds a product's logs and schemas.
type storeFlags struct {
	index    string
	schemas  string
	registry string
	json     bool
	keys     string // Redis with the data-subject keys of pii fields
	product  string
}

func (o *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.index, "index", "", "keep the index under this directory instead of inside each log (for a read-only copy)")
	fs.StringVar(&o.schemas, "schemas", "", "directory of writer schemas <id>.avsc (default: DIR/schemas, or the one above the change logs)")
	fs.StringVar(&o.registry, "registry", "", "schema registry URL to ask for schema ids the schemas directory lacks")
	fs.BoolVar(&o.json, "json", false, "print JSON for machines instead of a table")
	fs.StringVar(&o.keys, "keys", "", "Redis (host:port) with the data-subject keys of pii fields: opens sealed fields, shows forgotten ones erased (default: sealed fields print null, named in _sealed); needs --product")
	fs.StringVar(&o.product, "product", "", "the product's URN, whose keys --keys reads")
}

func (o *storeFlags) open(dir string) (*auditlog.Store, error) {
	var opts []auditlog.StoreOption
	if o.index != "" {
		opts = append(opts, auditlog.IndexDir(o.index))
	}
	st, err := auditlog.OpenStore(dir, opts...)
	if err != nil {
		return nil, err
	}
	if len(st.Logs()) == 0 {
		st.Close()
		return nil, fmt.Errorf("no change log under %s", dir)
	}
	return st, nil
}

// findUp returns the first of dir, its parent and grandparent holding name.
func findUp(dir, name string) (string, bool) {
	d, _ := filepath.Abs(dir)
	for range 3 {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name), true
		}
		d = filepath.Dir(d)
	}
	return "", false
}

func (o *storeFlags) decoder(dir string) (*query.Decoder, error) {
	sd := o.schemas
	if sd == "" {
		if p, ok := findUp(dir, "schemas"); ok {
			sd = p
		} else {
			sd = query.SchemaDir(dir)
		}
	}
	dec, err := query.NewDecoder(sd, o.registry)
	if err != nil || o.keys == "" {
		return dec, err
	}
	if o.product == "" {
		return nil, fmt.Errorf("--keys needs --product: the keys are kept per product")
	}
	dec.Keys = governance.RedisKeys(redis.NewClient(&redis.Options{Addr: o.keys}), o.product)
	return dec, nil
}

// row is one line of a table: a key, decoded fields and trailing columns.
type row struct {
	key      string
	fields   map[string]any
	schemaID uint32
	tail     []string
}

// printRows prints an aligned table: lead columns, then the row fields (in
// schema order, schemas in order of first use), then the tail columns.
func printRows(ctx context.Context, w io.Writer, dec *query.Decoder, lead []string, tail []string, rows []row) {
	var fields []string
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			fields = append(fields, n)
		}
	}
	ids := map[uint32]bool{}
	for _, r := range rows {
		if r.fields == nil || ids[r.schemaID] {
			continue
		}
		ids[r.schemaID] = true
		names, err := dec.FieldNames(ctx, int(r.schemaID))
		if err != nil {
			names = sortedRowFields(r.fields)
		}
		for _, n := range names {
			add(n)
		}
	}
	for _, r := range rows { // fields a schema did not list (should not happen)
		for _, n := range sortedRowFields(r.fields) {
			add(n)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := append(append(append([]string{}, lead...), fields...), tail...)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rows {
		cols := []string{}
		if len(lead) > 0 {
			cols = append(cols, printable(r.key))
		}
		for _, f := range fields {
			if v, ok := r.fields[f]; ok {
				cols = append(cols, formatValue(v))
			} else {
				cols = append(cols, "")
			}
		}
		cols = append(cols, r.tail...)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	tw.Flush()
}

// printable shows a key as text, quoting it when it has unprintable bytes
// or blanks that would break the table.
func printable(k string) string {
	for _, r := range k {
		if r < 0x21 || r == 0x7f || r == '\ufffd' {
			return fmt.Sprintf("%q", k)
		}
	}
	return k
}

func timeOrOpen(us int64) string {
	if us == 0 {
		return "-"
	}
	return query.FormatTime(us)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fieldsOf decodes a fact's payload; a retraction has none worth showing.
func fieldsOf(ctx context.Context, d *query.Decoder, f *auditlog.Fact) (map[string]any, error) {
	if f.Op == auditlog.OpRetract || len(f.Payload) == 0 {
		return nil, nil
	}
	m, err := d.Fields(ctx, f.Payload)
	if err != nil {
		return nil, fmt.Errorf("log %s seq %d: %w", f.Log, f.Seq, err)
	}
	return m, nil
}

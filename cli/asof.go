package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/query"
)

func init() {
	register(command{name: "asof", synopsis: "DIR [KEY]  what the product believed at a system time about a valid time", run: plain(cmdAsOf)})
}

const asofUsage = `asof DIR [--system T] [--valid V] [--json] [KEY]

Answers what the product believed as of system time T about valid time V:
for each key, the version believed then, with its periods as history
prints them: valid over [_valid_from, _valid_to) as believed at T, believed
from _system_from until _system_to ("-" = open: until further notice / still
believed). It is the row of the key's history believed at T whose valid
period contains V; its value is the latest entry recorded at or before T
whose valid period contains V. A key whose latest such entry is a
retraction (a delete) is absent. Without KEY it prints the whole table as
believed then; with KEY that one entity.

DIR is the product's data directory (the change logs under DIR/changelog),
or a directory of change logs. Times are RFC 3339 (2026-05-01T12:00:00Z) or
"now"; --system now counts every entry recorded. The index the answer comes
from is kept beside each log and brought up to date first. Payload fields
are decoded with the writer schemas in DIR/schemas (see --schemas,
--registry).`

func cmdAsOf(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		o             storeFlags
		system, valid timeFlag
	)
	fs := newFlags("asof", asofUsage, stderr)
	fs.Var(&system, "system", "system time `T`: what had been recorded by then (default now)")
	fs.Var(&valid, "valid", "valid time `V`: the moment the belief is about (default now)")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "asof", pos, "DIR", "KEY?"); err != nil {
		return err
	}
	dir := pos[0]
	st, err := o.open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	dec, err := o.decoder(dir)
	if err != nil {
		return err
	}
	asOf, validAt := system.system(), valid.valid(time.Now())
	view := st.AsOf(asOf).ValidAt(validAt)

	var vs []auditlog.Version
	if len(pos) == 2 {
		v, ok, err := view.Get([]byte(pos[1]))
		if err != nil {
			return err
		}
		f := v.Fact
		if ok {
			vs = append(vs, v)
		} else if !o.json {
			why := "no entry of it was recorded by then whose valid period contains that time"
			if f.Op == auditlog.OpRetract {
				why = fmt.Sprintf("retracted by log %s seq %d, recorded %s", f.Log, f.Seq, query.FormatTime(f.SystemTime))
			}
			fmt.Fprintf(stdout, "%s: absent as of %s, valid at %s: %s\n", pos[1], describe(asOf), query.FormatTime(validAt), why)
			return nil
		}
	} else {
		err := view.Scan(func(v *auditlog.Version) error {
			c := *v
			c.Fact = v.Fact.Clone()
			vs = append(vs, c)
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(vs, func(a, b auditlog.Version) int { return compareBytes(a.Fact.Key, b.Fact.Key) })
	}

	if o.json {
		type rowJSON struct {
			Key string `json:"key"`
			query.VersionJSON
		}
		out := struct {
			AsOf    string    `json:"asOf"`
			ValidAt string    `json:"validAt"`
			Rows    []rowJSON `json:"rows"`
		}{AsOf: jsonSystem(asOf), ValidAt: query.FormatTime(validAt), Rows: []rowJSON{}}
		for _, v := range vs {
			j, err := query.Version(ctx, dec, v)
			if err != nil {
				return err
			}
			out.Rows = append(out.Rows, rowJSON{string(v.Fact.Key), j})
		}
		return writeJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "as of %s, valid at %s: %d row(s)\n", describe(asOf), query.FormatTime(validAt), len(vs))
	rows := make([]row, 0, len(vs))
	for _, v := range vs {
		f := &v.Fact
		fields, err := fieldsOf(ctx, dec, f)
		if err != nil {
			return err
		}
		rows = append(rows, row{key: string(f.Key), fields: fields, schemaID: f.Prov.SchemaID,
			tail: []string{query.FormatTime(v.ValidFrom), timeOrOpen(v.ValidTo), query.FormatTime(v.SystemFrom), timeOrOpen(v.SystemTo), f.Log, strconv.FormatUint(f.Seq, 10)}})
	}
	printRows(ctx, stdout, dec, []string{"KEY"}, []string{"_VALID_FROM", "_VALID_TO", "_SYSTEM_FROM", "_SYSTEM_TO", "LOG", "SEQ"}, rows)
	return nil
}

// jsonSystem prints a system time, "now" for Latest.
func jsonSystem(us int64) string {
	if us == auditlog.Latest {
		return "now"
	}
	return query.FormatTime(us)
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/meshlet/meshlet/ports/query"
)

func init() {
	register(command{name: "corrections", synopsis: "DIR --from T1 --to T2  back-dated entries recorded in [T1, T2)", run: plain(cmdCorrections)})
}

const correctionsUsage = `corrections DIR --from T1 --to T2 [--json]

Lists the corrections recorded in [T1, T2): entries that rewrote part of
the past the product had already published. An entry of key K is a
correction when its valid period starts before the latest valid-from
recorded for K before it (by any earlier entry, in any partition's log):
it is back-dated behind what consumers had already been told. PRIOR is that
latest earlier valid-from. A key's first entry is never a correction, nor
is an entry whose valid-from equals PRIOR (two changes of one source
transaction); deletes count like updates. Entries are ordered by system
time across logs. DIR is as for asof.`

func cmdCorrections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		o        storeFlags
		from, to timeFlag
	)
	fs := newFlags("corrections", correctionsUsage, stderr)
	fs.Var(&from, "from", "system time `T1` the range starts at (inclusive; required)")
	fs.Var(&to, "to", "system time `T2` the range ends at (exclusive; default now)")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "corrections", pos, "DIR"); err != nil {
		return err
	}
	if !from.set {
		fs.Usage()
		return usageError("corrections: missing --from T1 (the start of the system-time range)")
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
	t1, t2 := from.system(), to.system()
	if from.now {
		return fmt.Errorf("--from now leaves an empty range: give an RFC 3339 time")
	}
	cs, err := st.Corrections(t1, t2)
	if err != nil {
		return err
	}
	if o.json {
		type corrJSON struct {
			Key string `json:"key"`
			query.EntryJSON
			PriorValidFrom string `json:"prior_valid_from"`
		}
		out := struct {
			From        string     `json:"from"`
			To          string     `json:"to"`
			Corrections []corrJSON `json:"corrections"`
		}{From: query.FormatTime(t1), To: jsonSystem(t2), Corrections: []corrJSON{}}
		for i := range cs {
			e, err := query.Entry(ctx, dec, &cs[i].Fact)
			if err != nil {
				return err
			}
			out.Corrections = append(out.Corrections, corrJSON{string(cs[i].Key), e, query.FormatTime(cs[i].PriorValidFrom)})
		}
		return writeJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "corrections recorded in [%s, %s): %d\n", query.FormatTime(t1), describe(t2), len(cs))
	if len(cs) == 0 {
		return nil
	}
	rows := make([]row, 0, len(cs))
	for i := range cs {
		c := &cs[i]
		fields, err := fieldsOf(ctx, dec, &c.Fact)
		if err != nil {
			return err
		}
		rows = append(rows, row{key: string(c.Key), fields: fields, schemaID: c.Prov.SchemaID, tail: []string{
			query.OpName(c.Op), query.FormatTime(c.SystemTime), query.FormatTime(c.ValidFrom), timeOrOpen(c.ValidTo),
			query.FormatTime(c.PriorValidFrom), c.Log, strconv.FormatUint(c.Seq, 10)}})
	}
	printRows(ctx, stdout, dec, []string{"KEY"}, []string{"OP", "RECORDED", "_VALID_FROM", "_VALID_TO", "PRIOR", "LOG", "SEQ"}, rows)
	return nil
}

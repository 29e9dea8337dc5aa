package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/query"
)

func init() {
	register(command{name: "history", synopsis: "DIR KEY  every version of an entity, with valid and system periods", run: plain(cmdHistory)})
}

const historyUsage = `history DIR KEY [--entries] [--json]

Prints every version of KEY as the product believed it over time, each with
both periods, in XTDB's names: believed valid over [_valid_from, _valid_to)
from _system_from until _system_to ("-" = open: until further notice / still
believed). An entry closes, at the system time it was recorded, each version
whose valid period it overlaps; the part of that version outside the entry's
valid period is re-emitted as a new version from the same system time; an
assertion then adds its own version (a retraction, a delete, adds none). The
versions with _system_to "-" are the history as believed now.

--entries prints the entries of KEY as recorded instead (asserts and
retractions, in system-time order across logs). DIR is as for asof.`

func cmdHistory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		o       storeFlags
		entries bool
	)
	fs := newFlags("history", historyUsage, stderr)
	fs.BoolVar(&entries, "entries", false, "print the key's entries as recorded, not the versions")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "history", pos, "DIR", "KEY"); err != nil {
		return err
	}
	dir, key := pos[0], []byte(pos[1])
	st, err := o.open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	dec, err := o.decoder(dir)
	if err != nil {
		return err
	}
	if entries {
		return printEntries(ctx, st, dec, key, o.json, stdout)
	}
	vs, err := st.History(key)
	if err != nil {
		return err
	}
	if o.json {
		out := struct {
			Key      string              `json:"key"`
			Versions []query.VersionJSON `json:"versions"`
		}{Key: string(key), Versions: []query.VersionJSON{}}
		for _, v := range vs {
			j, err := query.Version(ctx, dec, v)
			if err != nil {
				return err
			}
			out.Versions = append(out.Versions, j)
		}
		return writeJSON(stdout, out)
	}
	if len(vs) == 0 {
		fmt.Fprintf(stdout, "%s: no versions (never asserted)\n", key)
		return nil
	}
	fmt.Fprintf(stdout, "%s: %d version(s)\n", key, len(vs))
	rows := make([]row, 0, len(vs))
	for _, v := range vs {
		fields, err := fieldsOf(ctx, dec, &v.Fact)
		if err != nil {
			return err
		}
		rows = append(rows, row{fields: fields, schemaID: v.Fact.Prov.SchemaID, tail: []string{
			query.FormatTime(v.ValidFrom), timeOrOpen(v.ValidTo), query.FormatTime(v.SystemFrom), timeOrOpen(v.SystemTo),
			v.Fact.Log, strconv.FormatUint(v.Fact.Seq, 10)}})
	}
	printRows(ctx, stdout, dec, nil, []string{"_VALID_FROM", "_VALID_TO", "_SYSTEM_FROM", "_SYSTEM_TO", "LOG", "SEQ"}, rows)
	return nil
}

func printEntries(ctx context.Context, st *auditlog.Store, dec *query.Decoder, key []byte, asJSON bool, stdout io.Writer) error {
	fs, err := st.Entries(key)
	if err != nil {
		return err
	}
	if asJSON {
		out := struct {
			Key     string            `json:"key"`
			Entries []query.EntryJSON `json:"entries"`
		}{Key: string(key), Entries: []query.EntryJSON{}}
		for i := range fs {
			e, err := query.Entry(ctx, dec, &fs[i])
			if err != nil {
				return err
			}
			out.Entries = append(out.Entries, e)
		}
		return writeJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "%s: %d entr(ies)\n", key, len(fs))
	rows := make([]row, 0, len(fs))
	for i := range fs {
		f := &fs[i]
		fields, err := fieldsOf(ctx, dec, f)
		if err != nil {
			return err
		}
		rows = append(rows, row{fields: fields, schemaID: f.Prov.SchemaID, tail: []string{
			query.OpName(f.Op), query.FormatTime(f.SystemTime), query.FormatTime(f.ValidFrom), timeOrOpen(f.ValidTo),
			f.Log, strconv.FormatUint(f.Seq, 10), f.Prov.SourcePosition}})
	}
	printRows(ctx, stdout, dec, nil, []string{"OP", "RECORDED", "_VALID_FROM", "_VALID_TO", "LOG", "SEQ", "SOURCE"}, rows)
	return nil
}

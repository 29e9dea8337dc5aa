package cli

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
)

func init() {
	register(command{name: "audit verify", synopsis: "DIR  check every change log under DIR: its hash chain and its newest signed checkpoint", run: plain(cmdAuditVerify)})
}

const verifyUsage = `audit verify [--since CHECKPOINT [--key KEY]] DIR
       meshlet audit verify [--key KEY] [--json] DIR
       meshlet audit verify --kafka BROKERS --product URN [--key KEY] [--json]

Checks every change log under DIR: frames, checksums, sequence and hash
chain, and that the log's entries still hash to the root of the newest
signed checkpoint stored beside it, so entries removed from the end, a
removed segment or a log rewritten with recomputed hashes fail, naming the
checkpoint. A log with no checkpoint is checked by its chain alone, and the
output says so. With --since (repeatable; a note file or a directory of
them), the logs must also extend the checkpoints you kept from an earlier
audit; a kept checkpoint whose log is gone fails.

Checkpoints are checked with --key (a verifier key or a file holding one),
else with checkpoint.pub found in the log's directory or the two above it;
a log with checkpoints and no key fails. The key beside the logs shows
damage and clumsy tampering; to rule out a replaced key and re-signed
notes, pass a key you obtained independently (audit key prints it).

With --kafka, the logs are read straight from the product's changelog
topic (meshlet.<product>.changelog) and checked the same way, each against
the newest checkpoint in its checkpoints topic, so an auditor with Kafka
access alone can verify; without --key, the verifier key published in the
checkpoints topic is used.

Prints a table of every log, fine or not, and exits 1 naming each log that
failed.`

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func cmdAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		since  listFlag
		key    string
		asJSON bool
	)
	fs := newFlags("audit verify", verifyUsage, stderr)
	fs.Var(&since, "since", "a signed checkpoint `FILE` (or a directory of them) from an earlier audit the logs must extend; repeatable")
	fs.StringVar(&key, "key", "", "the verifier `KEY` (or a file holding it) the checkpoints must be signed with (default: checkpoint.pub beside the logs)")
	fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	brokers := fs.String("kafka", "", "verify from the changelog topic on these comma-separated `BROKERS` instead of a directory")
	product := fs.String("product", "", "with --kafka: the product's `URN`")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *brokers != "" {
		if len(pos) != 0 || *product == "" || len(since) > 0 {
			fs.Usage()
			return usageError("audit verify --kafka needs --product URN and takes no DIR or --since")
		}
		return verifyKafka(ctx, stdout, *brokers, *product, key, asJSON)
	}
	if err := wantArgs(fs, "audit verify", pos, "DIR"); err != nil {
		return err
	}
	dir := pos[0]
	opts := []auditlog.VerifyOption{auditlog.Since(since...)}
	if key != "" {
		v, err := auditlog.ReadVerifier(key)
		if err != nil {
			return err
		}
		opts = append(opts, auditlog.CheckWith(v))
	}
	reports, err := auditlog.VerifyTree(dir, opts...)
	if len(reports) == 0 && err == nil {
		return fmt.Errorf("no change log under %s", dir)
	}
	if asJSON {
		if jerr := writeJSON(stdout, verifyJSON(reports, err == nil)); jerr != nil {
			return jerr
		}
		return err
	}
	printReports(stdout, reports, key != "")
	if errors.Is(err, auditlog.ErrNoVerifier) {
		fmt.Fprintln(stderr, "hint: give the product's verifier key with --key (meshlet audit key DATA prints it)")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified %d change log(s): every entry checks out\n", len(reports))
	return nil
}

// printReports prints a line per log, then what the table cannot say:
// which logs had no checkpoint, where the key came from, and which kept
// checkpoints the logs extend.
func printReports(w io.Writer, reports []auditlog.VerifyReport, keyGiven bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tSEGMENTS\tENTRIES\tSEQ\tHEAD\tCHECKPOINT\tRESULT\tDIR")
	var unchecked []string
	keys := map[string]bool{}
	for _, r := range reports {
		result := "ok"
		switch {
		case r.Dir == "":
			result = "MISSING"
		case r.Err != nil:
			result = "FAILED"
		case r.TornTail:
			result = "ok, torn tail (a crash mid-write; cut on next open)"
		}
		seqs := "-"
		if r.Entries > 0 {
			seqs = fmt.Sprintf("%d..%d", r.FirstSeq, r.LastSeq)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Log, r.Segments, r.Entries, seqs,
			hex.EncodeToString(r.Head[:8]), checkpointCell(r), result, r.Dir)
		if r.Dir != "" && r.Err == nil && r.StoredCheckpoints == 0 {
			unchecked = append(unchecked, r.Log)
		}
		if r.Verifier != "" && len(r.Checkpoints) > 0 {
			keys[r.Verifier] = true
		}
	}
	tw.Flush()
	if len(unchecked) > 0 {
		fmt.Fprintf(w, "no signed checkpoint beside %s: only the hash chain was checked, which entries removed from the end or a rewrite with recomputed hashes would pass\n",
			strings.Join(unchecked, ", "))
	}
	for k := range keys {
		fmt.Fprintf(w, "checkpoints checked with the key in %s, found beside the logs: pass --key with a key you obtained independently to rule out a replaced key\n", k)
	}
	if keyGiven {
		fmt.Fprintln(w, "checkpoints checked with the key given by --key")
	}
	for _, r := range reports {
		for _, c := range r.Checkpoints {
			if c.Kept && c.OK {
				fmt.Fprintf(w, "log %s: the log extends checkpoint %d (%s): entries 1..%d are unchanged\n", r.Log, c.Size, c.Note, c.Size)
			}
		}
	}
}

// checkpointCell says which checkpoints a log was checked against.
func checkpointCell(r auditlog.VerifyReport) string {
	if r.Dir == "" {
		return "kept, log gone"
	}
	if len(r.Checkpoints) == 0 {
		if r.StoredCheckpoints == 0 {
			return "none"
		}
		return "not checked"
	}
	var parts []string
	for _, c := range r.Checkpoints {
		s := fmt.Sprintf("%d", c.Size)
		if c.Kept {
			s += " (kept)"
		}
		if !c.OK {
			s += " FAILED"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

type verifyJSONLog struct {
	Log               string           `json:"log"`
	Dir               string           `json:"dir,omitempty"`
	OK                bool             `json:"ok"`
	Error             string           `json:"error,omitempty"`
	Segments          int              `json:"segments"`
	Entries           uint64           `json:"entries"`
	FirstSeq          uint64           `json:"first_seq"`
	LastSeq           uint64           `json:"last_seq"`
	Head              string           `json:"head"`
	TornTail          bool             `json:"torn_tail"`
	StoredCheckpoints int              `json:"stored_checkpoints"`
	Checkpoints       []verifyJSONNote `json:"checkpoints"`
	Verifier          string           `json:"verifier,omitempty"`
}

type verifyJSONNote struct {
	Size uint64 `json:"size"`
	Root string `json:"root"`
	Note string `json:"note"`
	Kept bool   `json:"kept"`
	OK   bool   `json:"ok"`
}

func verifyJSON(reports []auditlog.VerifyReport, ok bool) map[string]any {
	logs := []verifyJSONLog{}
	for _, r := range reports {
		j := verifyJSONLog{Log: r.Log, Dir: r.Dir, OK: r.Err == nil, Segments: r.Segments, Entries: r.Entries,
			FirstSeq: r.FirstSeq, LastSeq: r.LastSeq, Head: hex.EncodeToString(r.Head[:]), TornTail: r.TornTail,
			StoredCheckpoints: r.StoredCheckpoints, Checkpoints: []verifyJSONNote{}, Verifier: r.Verifier}
		if r.Err != nil {
			j.Error = r.Err.Error()
		}
		for _, c := range r.Checkpoints {
			j.Checkpoints = append(j.Checkpoints, verifyJSONNote{Size: c.Size, Root: b64(c.Root), Note: c.Note, Kept: c.Kept, OK: c.OK})
		}
		logs = append(logs, j)
	}
	return map[string]any{"ok": ok, "logs": logs}
}

// verifier is the key checkpoints are checked with: --key (a key or a file
// holding one), else the product's key found beside the logs. from says
// which, for the output.
func verifier(key, dir string) (v note.Verifier, from string, err error) {
	if key != "" {
		v, err := auditlog.ReadVerifier(key)
		return v, key, err
	}
	v, path, err := auditlog.FindVerifier(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%w: give the product's verifier key with --key", err)
	}
	return v, path + " (beside the log: pass --key with a key you obtained independently to rule out a replaced key)", nil
}

func b64(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }

func b64s(hs [][32]byte) []string {
	out := make([]string, len(hs))
	for i := range hs {
		out[i] = b64(hs[i])
	}
	return out
}

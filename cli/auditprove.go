package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/meshlet/meshlet/auditlog"
)

func init() {
	register(command{name: "audit prove", synopsis: "DIR --seq N | --from-checkpoint A --to-checkpoint B  Merkle proofs", run: plain(cmdAuditProve)})
	register(command{name: "audit verify-since", synopsis: "CHECKPOINT DIR  prove the log extends a checkpoint you kept", run: plain(cmdAuditVerifySince)})
	register(command{name: "audit checkpoint", synopsis: "DIR  sign a checkpoint of every change log under DIR now", run: plain(cmdAuditCheckpoint)})
	register(command{name: "audit key", synopsis: "DIR  print the product's checkpoint verifier key", run: plain(cmdAuditKey)})
}

const proveUsage = `audit prove DIR --seq N [--checkpoint FILE] [--log NAME] [--key KEY] [--json]
       meshlet audit prove DIR --from-checkpoint A --to-checkpoint B [--log NAME] [--key KEY] [--json]

With --seq, an RFC 6962 inclusion proof that entry N of the log is leaf N-1
of the Merkle tree a signed checkpoint commits to (default: the log's newest
checkpoint). With --from-checkpoint and --to-checkpoint, a consistency proof
that checkpoint B's tree extends checkpoint A's. The checkpoints' signatures
are checked with --key (a verifier key or a file holding one; default
checkpoint.pub found at or above DIR), every proof is verified before it is
printed, and the roots it is computed against must be the signed ones.

Leaves are the entries' bytes as framed (see the auditlog package doc), so
an inclusion proof speaks for the entry itself. Proofs are computed from the
Merkle tree stored beside the log (its checkpoints/ directory); to check the
entries themselves against a checkpoint, run audit verify-since.

DIR is a log directory, or a directory of logs with --log NAME (the log is
otherwise taken from the checkpoint's origin line).`

func cmdAuditProve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		o                    storeFlags
		seq                  uint64
		checkpoint, from, to string
		logName, key         string
	)
	fs := newFlags("audit prove", proveUsage, stderr)
	fs.Uint64Var(&seq, "seq", 0, "entry to prove the inclusion of")
	fs.StringVar(&checkpoint, "checkpoint", "", "signed checkpoint `FILE` to prove inclusion in (default: the log's newest)")
	fs.StringVar(&from, "from-checkpoint", "", "older signed checkpoint `FILE`")
	fs.StringVar(&to, "to-checkpoint", "", "newer signed checkpoint `FILE`")
	fs.StringVar(&logName, "log", "", "which log, when DIR holds several")
	fs.StringVar(&key, "key", "", "verifier `KEY` (or a file holding it) the checkpoints must be signed with")
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	consistency := from != "" || to != ""
	if err := wantArgs(fs, "audit prove", pos, "DIR"); err != nil {
		return err
	}
	if consistency == (seq != 0) || consistency && (from == "" || to == "") {
		fs.Usage()
		return usageError("audit prove: give either --seq N (inclusion) or --from-checkpoint A and --to-checkpoint B (consistency)")
	}
	dir := pos[0]
	v, vfrom, err := verifier(key, dir)
	if err != nil {
		return err
	}
	st, err := o.open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	// hint says how to find what changed when the stored tree disagrees
	// with a signed root.
	hint := func(err error, note, logDir string) error {
		if errors.Is(err, auditlog.ErrCorrupt) {
			return fmt.Errorf("%w (run meshlet audit verify-since %s %s to find where)", err, note, logDir)
		}
		return err
	}

	if consistency {
		a, _, err := auditlog.ReadCheckpoint(from, v)
		if err != nil {
			return err
		}
		b, _, err := auditlog.ReadCheckpoint(to, v)
		if err != nil {
			return err
		}
		l, err := pickLog(st, logName, &a)
		if err != nil {
			return err
		}
		p, err := st.ProveCheckpointsConsistent(l.Name, a, b)
		if err != nil {
			return hint(err, from, l.Dir)
		}
		if o.json {
			return writeJSON(stdout, map[string]any{"log": l.Name, "origin": a.Origin, "size1": a.Size, "size2": b.Size,
				"root1": b64(a.Root), "root2": b64(b.Root), "proof": b64s(p.Hashes), "verified": true})
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "log\t%s (%s)\n", l.Name, a.Origin)
		fmt.Fprintf(tw, "from checkpoint\t%s: size %d, root %s\n", from, a.Size, b64(a.Root))
		fmt.Fprintf(tw, "to checkpoint\t%s: size %d, root %s\n", to, b.Size, b64(b.Root))
		fmt.Fprintf(tw, "signatures\tverified with %s\n", vfrom)
		fmt.Fprintf(tw, "proof\t%d hash(es)\n", len(p.Hashes))
		for i, h := range p.Hashes {
			fmt.Fprintf(tw, "  %d\t%s\n", i, b64(h))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "verified: the tree of %d entries extends the tree of %d entries\n", b.Size, a.Size)
		return nil
	}

	var l auditlog.LogInfo
	if checkpoint == "" {
		if l, err = pickLog(st, logName, nil); err != nil {
			return err
		}
		path, ok, err := auditlog.NewestCheckpoint(l.Dir)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("log %s has no checkpoint yet (meshlet audit checkpoint signs one)", l.Dir)
		}
		checkpoint = path
	}
	cp, _, err := auditlog.ReadCheckpoint(checkpoint, v)
	if err != nil {
		return err
	}
	if l.Name == "" {
		if l, err = pickLog(st, logName, &cp); err != nil {
			return err
		}
	}
	p, err := st.ProveInCheckpoint(l.Name, seq, cp)
	if err != nil {
		return hint(err, checkpoint, l.Dir)
	}
	if o.json {
		return writeJSON(stdout, map[string]any{"log": l.Name, "origin": cp.Origin, "seq": seq, "leaf_index": seq - 1,
			"tree_size": cp.Size, "leaf_hash": b64(p.LeafHash), "root": b64(p.Root), "proof": b64s(p.Hashes), "verified": true})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "entry\t%s seq %d (leaf index %d)\n", l.Name, seq, seq-1)
	fmt.Fprintf(tw, "leaf hash\t%s\n", b64(p.LeafHash))
	fmt.Fprintf(tw, "checkpoint\t%s: %s, size %d\n", checkpoint, cp.Origin, cp.Size)
	fmt.Fprintf(tw, "root\t%s (as signed; verified with %s)\n", b64(cp.Root), vfrom)
	fmt.Fprintf(tw, "proof\t%d hash(es)\n", len(p.Hashes))
	for i, h := range p.Hashes {
		fmt.Fprintf(tw, "  %d\t%s\n", i, b64(h))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "verified: entry %d is in the tree of checkpoint %d\n", seq, cp.Size)
	return nil
}

// pickLog chooses the log a proof is about: the one named with --log,
// else the one cp is about (when there is a checkpoint), else the only
// one there is.
func pickLog(st *auditlog.Store, name string, cp *auditlog.Checkpoint) (auditlog.LogInfo, error) {
	logs := st.Logs()
	var names []string
	for _, l := range logs {
		names = append(names, l.Name)
		if name != "" && l.Name == name {
			return l, nil
		}
	}
	switch {
	case name != "":
		return auditlog.LogInfo{}, fmt.Errorf("no log named %q (logs: %s)", name, strings.Join(names, ", "))
	case cp != nil:
		return st.LogOf(*cp)
	case len(logs) == 1:
		return logs[0], nil
	}
	return auditlog.LogInfo{}, fmt.Errorf("%d logs here (%s): say which with --log", len(logs), strings.Join(names, ", "))
}

const verifySinceUsage = `audit verify-since CHECKPOINT DIR [--key KEY] [--json]

Proves that the change log in DIR extends the one CHECKPOINT (a signed
checkpoint note you kept from an earlier audit) describes: that its first N
entries are exactly the N entries checkpointed. It checks the note's
signature with --key (default checkpoint.pub at or above DIR; give the key
you obtained independently), walks the whole hash chain, recomputes the
Merkle tree from the entries, compares its root at the checkpoint's size,
and builds and verifies a consistency proof to the log's current size.

A change, removal or reordering of an entry is named by its seq; a log
rewritten behind the checkpoint with every later hash recomputed is named by
the range of entries holding the first difference. Exits 1 on any failure.

DIR is the log's directory, or a directory of logs (the log is taken from
the checkpoint's origin line). "audit verify --since CHECKPOINT DIR" makes the
same check for every log under DIR at once, without printing the proof.`

func cmdAuditVerifySince(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		key    string
		asJSON bool
	)
	fs := newFlags("audit verify-since", verifySinceUsage, stderr)
	fs.StringVar(&key, "key", "", "verifier `KEY` (or a file holding it) the checkpoint must be signed with")
	fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "audit verify-since", pos, "CHECKPOINT", "DIR"); err != nil {
		return err
	}
	path, dir := pos[0], pos[1]
	v, vfrom, err := verifier(key, dir)
	if err != nil {
		return err
	}
	cp, msg, err := auditlog.ReadCheckpoint(path, v)
	if err != nil {
		return err
	}
	logDir, err := auditlog.LogDirOf(dir, cp)
	if err != nil {
		return err
	}
	rep, err := auditlog.VerifySince(logDir, msg, v)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, map[string]any{"log": logDir, "origin": cp.Origin, "checkpoint_size": cp.Size,
			"checkpoint_root": b64(cp.Root), "size": rep.Size, "root": b64(rep.Root), "proof": b64s(rep.Proof.Hashes), "extends": true})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "checkpoint\t%s: %s, size %d, root %s\n", path, cp.Origin, cp.Size, b64(cp.Root))
	fmt.Fprintf(tw, "signature\tverified with %s\n", vfrom)
	fmt.Fprintf(tw, "log now\t%s: %d entries, root %s (recomputed from the entries)\n", logDir, rep.Size, b64(rep.Root))
	fmt.Fprintf(tw, "consistency\t%d -> %d: %d hash(es), verified\n", cp.Size, rep.Size, len(rep.Proof.Hashes))
	tw.Flush()
	fmt.Fprintf(stdout, "the log extends checkpoint %d: entries 1..%d are unchanged\n", cp.Size, cp.Size)
	return nil
}

const checkpointUsage = `audit checkpoint DIR [--name PRODUCT-ID] [--json]

Signs a checkpoint of every change log under DIR (a product's data
directory) as it stands now and saves it as checkpoints/<size>.note beside
each log: the C2SP tlog-checkpoint note format, an RFC 6962 Merkle root over
the log's entries, signed with the product's Ed25519 key (DIR/checkpoint.key,
made on first use under --name; DIR/checkpoint.pub is its verifier key).
Hand the notes to whoever will audit the product later: audit verify-since
proves the log still extends them. The logs must not be open in a running
product (which checkpoints them itself after each committed batch).`

func cmdAuditCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		name   string
		asJSON bool
	)
	fs := newFlags("audit checkpoint", checkpointUsage, stderr)
	fs.StringVar(&name, "name", "", "key name for a new key pair: the product id (no spaces or '+')")
	fs.BoolVar(&asJSON, "json", false, "print JSON for machines")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "audit checkpoint", pos, "DIR"); err != nil {
		return err
	}
	dir := pos[0]
	if _, err := os.Stat(filepath.Join(dir, auditlog.KeyFile)); err != nil && name == "" {
		return fmt.Errorf("no key pair in %s yet: give --name PRODUCT-ID to make one", dir)
	}
	signer, _, err := auditlog.LoadOrCreateKey(dir, name)
	if err != nil {
		return err
	}
	signed, err := auditlog.CheckpointTree(dir, signer)
	if err != nil {
		return err
	}
	if asJSON {
		type cpJSON struct {
			Log  string `json:"log"`
			Note string `json:"note"`
			Text string `json:"checkpoint"`
		}
		out := []cpJSON{}
		for _, s := range signed {
			out = append(out, cpJSON{s.Log, s.Note, string(s.Msg)})
		}
		return writeJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tSIZE\tROOT\tNOTE")
	for _, s := range signed {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Log, s.Checkpoint.Size, b64(s.Checkpoint.Root), s.Note)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "signed by %s\n", signer.Name())
	return nil
}

func cmdAuditKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit key", "audit key DIR\n\nPrints the verifier key of the product's checkpoint signing key (DIR/checkpoint.pub),\nto hand to auditors through a channel other than the data directory.", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "audit key", pos, "DIR"); err != nil {
		return err
	}
	v, p, err := auditlog.FindVerifier(pos[0])
	if err != nil {
		return fmt.Errorf("%w (audit checkpoint --name makes the key pair)", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s", b)
	fmt.Fprintf(stderr, "key name %s, key hash %08x (from %s)\n", v.Name(), v.KeyHash(), p)
	return nil
}

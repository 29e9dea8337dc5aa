package cli

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/auditlog"
)

// auditData writes a product data directory with two logs of n entries in
// small segments, signed with `meshlet audit checkpoint` as an operator
// would, and returns it with the product's verifier key.
func auditData(t *testing.T, n int) (root, key string) {
	t.Helper()
	root = t.TempDir()
	for p := range 2 {
		l, err := auditlog.Open(filepath.Join(root, "changelog", fmt.Sprintf("orders-%d", p)), auditlog.SegmentSize(1024), auditlog.SyncEachAppend(false))
		if err != nil {
			t.Fatal(err)
		}
		var es []auditlog.Entry
		for i := range n {
			es = append(es, auditlog.Entry{Seq: uint64(i + 1), SystemTime: int64(1_700_000_000_000_000 + i), ValidFrom: int64(i), Op: auditlog.OpAssert,
				Key: fmt.Appendf(nil, "order-%d", i%7), Payload: fmt.Appendf(nil, "\x00\x00\x00\x00\x01payload of entry %d", i+1),
				Prov: auditlog.Provenance{Topic: "shop.orders", Partition: int32(p), Offset: int64(i), SourcePosition: "lsn=1", SchemaID: 1}})
		}
		if err := l.Append(es); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	run0(t, "audit", "checkpoint", root, "--name", "urn:dataproduct:shop:orders")
	return root, strings.TrimSpace(run0(t, "audit", "key", root))
}

// frameOffsets lists where each frame of a segment file starts, read from
// the length fields alone (52-byte header, then 4-byte length + 4-byte CRC
// + payload per frame).
func frameOffsets(t *testing.T, seg string) []int64 {
	t.Helper()
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := 52; off < len(b); off += 8 + int(binary.BigEndian.Uint32(b[off:])) {
		offs = append(offs, int64(off))
	}
	return offs
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 2 {
		t.Fatalf("fixture: %d segments in %s", len(segs), dir)
	}
	slices.Sort(segs)
	return segs[len(segs)-1]
}

// TestAuditVerifyChecksCheckpoints: plain `audit verify` checks each log's
// newest stored checkpoint, so a cut, a removed segment and a rewrite with
// recomputed hashes fail naming the log and the checkpoint, while the
// table still lists the log that is fine.
func TestAuditVerifyChecksCheckpoints(t *testing.T) {
	const n = 40
	cases := []struct {
		name   string
		tamper func(t *testing.T, log string)
		want   string
	}{
		{"cut at a frame boundary", func(t *testing.T, log string) {
			seg := lastSegment(t, log)
			offs := frameOffsets(t, seg)
			if len(offs) < 2 {
				t.Fatalf("fixture: %d frames in %s", len(offs), seg)
			}
			if err := os.Truncate(seg, offs[len(offs)-2]); err != nil {
				t.Fatal(err)
			}
		}, `the log ends at seq 38 but checkpoint 40 \(\S+00040\.note\) covers 40 entries: entries 39\.\.40 were removed`},
		{"last segment removed", func(t *testing.T, log string) {
			if err := os.Remove(lastSegment(t, log)); err != nil {
				t.Fatal(err)
			}
		}, `checkpoint 40 \(\S+00040\.note\) covers 40 entries: entries \d+\.\.40 were removed`},
		{"rewritten with recomputed checksums and hashes", func(t *testing.T, log string) {
			l, err := auditlog.Open(log)
			if err != nil {
				t.Fatal(err)
			}
			var es []auditlog.Entry
			l.Scan(1, func(e *auditlog.Entry) error {
				c := *e
				c.Key, c.Payload = append([]byte(nil), e.Key...), append([]byte(nil), e.Payload...)
				es = append(es, c)
				return nil
			})
			l.Close()
			es[24].Payload = append(es[24].Payload, '!')
			segs, _ := filepath.Glob(filepath.Join(log, "*.seg"))
			for _, s := range segs {
				os.Remove(s)
			}
			if l, err = auditlog.Open(log, auditlog.SegmentSize(1024)); err != nil {
				t.Fatal(err)
			}
			if err := l.Append(es); err != nil {
				t.Fatal(err)
			}
			l.Close()
		}, `entries 1\.\.40 no longer hash to the root of checkpoint 40 \(\S+00040\.note\): the log was rewritten behind it .*in seq \d+\.\.\d+`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := auditData(t, n)
			out := run0(t, "audit", "verify", root)
			wantLines(t, out, `(?m)^orders-0\s+\d+\s+40\s+1\.\.40\s+\w+\s+40\s+ok\s`, `(?m)^orders-1\s+\d+\s+40\s+1\.\.40\s+\w+\s+40\s+ok\s`,
				`checkpoints checked with the key in \S+checkpoint\.pub, found beside the logs`, `verified 2 change log\(s\)`)

			tc.tamper(t, filepath.Join(root, "changelog", "orders-0"))
			out, errOut, code := meshlet(t, "audit", "verify", root)
			if code != 1 || !regexp.MustCompile(`log orders-0: change log corrupt: .*`+tc.want).MatchString(errOut) {
				t.Fatalf("exit %d, want 1 and an error matching %q\n%s%s", code, tc.want, out, errOut)
			}
			wantLines(t, out, `(?m)^orders-0\s.*\s40 FAILED\s+FAILED\s`, `(?m)^orders-1\s+\d+\s+40\s+1\.\.40\s+\w+\s+40\s+ok\s`)
			if strings.Contains(out, "verified 2") {
				t.Fatalf("a failed verify says it verified:\n%s", out)
			}
		})
	}
}

// A log with checkpoints and no key to check them with fails, saying so;
// one without checkpoints passes on its chain, and the output says that
// too. --json gives the same per log.
func TestAuditVerifyKeyAndJSON(t *testing.T) {
	root, key := auditData(t, 20)
	if err := os.Remove(filepath.Join(root, auditlog.VerifierFile)); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := meshlet(t, "audit", "verify", root)
	if code != 1 || !strings.Contains(errOut, "log orders-0: auditlog: log ") || !strings.Contains(errOut, "but no verifier key: no checkpoint.pub in") ||
		!strings.Contains(errOut, "--key") {
		t.Fatalf("no key: exit %d\n%s%s", code, out, errOut)
	}
	wantLines(t, out, `(?m)^orders-0\s.*not checked\s+FAILED\s`)

	plain := filepath.Join(root, "changelog", "orders-2")
	l, err := auditlog.Open(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]auditlog.Entry{{Seq: 1, SystemTime: 1, Op: auditlog.OpAssert, Key: []byte("k"), Prov: auditlog.Provenance{Topic: "shop.orders", Partition: 2}}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	out = run0(t, "audit", "verify", root, "--key", key)
	wantLines(t, out, `(?m)^orders-2\s+1\s+1\s+1\.\.1\s+\w+\s+none\s+ok\s`, `no signed checkpoint beside orders-2: only the hash chain was checked`,
		`checkpoints checked with the key given by --key`, `verified 3 change log\(s\)`)

	// Kept checkpoints, and JSON.
	kept := filepath.Join(t.TempDir(), "kept.note")
	b, _ := os.ReadFile(auditlog.NotePath(filepath.Join(root, "changelog", "orders-1"), 20))
	os.WriteFile(kept, b, 0o644)
	out = run0(t, "audit", "verify", "--json", "--since", kept, "--key", key, root)
	var got struct {
		OK   bool
		Logs []struct {
			Log               string
			OK                bool
			Entries           uint64
			StoredCheckpoints int `json:"stored_checkpoints"`
			Checkpoints       []struct {
				Size     uint64
				Kept, OK bool
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !got.OK || len(got.Logs) != 3 || got.Logs[1].Log != "orders-1" || len(got.Logs[1].Checkpoints) != 2 ||
		!got.Logs[1].Checkpoints[1].Kept || !got.Logs[1].Checkpoints[1].OK || got.Logs[2].StoredCheckpoints != 0 || len(got.Logs[2].Checkpoints) != 0 {
		t.Fatalf("json: %s", out)
	}
	// The kept checkpoint's log is gone: JSON and the exit code say so.
	os.RemoveAll(filepath.Join(root, "changelog", "orders-1"))
	out, errOut, code = meshlet(t, "audit", "verify", "--json", "--since", kept, "--key", key, root)
	if code != 1 || !strings.Contains(errOut, "log orders-1: ") || !strings.Contains(errOut, "the log was removed or moved") {
		t.Fatalf("kept checkpoint of a removed log: exit %d\n%s%s", code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.OK || len(got.Logs) != 3 || got.Logs[1].OK {
		t.Fatalf("json: %v\n%s", err, out)
	}
}

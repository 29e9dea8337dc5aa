package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/snapshot"
)

// TestSnapshotAndVerify takes snapshots of the data directory `dev --once`
// leaves (three change logs, checkpointed on close) with both binaries,
// verifies one, and insists that verify fails on a changed Parquet file and
// on a manifest that names the wrong checkpoint, naming what is wrong.
func TestSnapshotAndVerify(t *testing.T) {
	data := t.TempDir()
	if out, errOut, code := inventory(t, "dev", "--once", "--data", data); code != 0 {
		t.Fatalf("dev --once: exit %d\n%s%s", code, out, errOut)
	}
	snaps := t.TempDir()

	// The product's binary knows its port and topic; meshlet is told.
	a := filepath.Join(snaps, "a")
	out, errOut, code := inventory(t, "snapshot", data, "--out", a)
	if code != 0 {
		t.Fatalf("inventory snapshot: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{`snapshot .*/a of urn:dataproduct:inventory:products \(port products\)`,
		`table\.parquet\s+10 rows`, `history\.parquet\s+\d+ rows`, `log dbserver1\.inventory\.products-\d: entries 1\.\.\d+, proven by checkpoint \d+ `,
		`content sha256 [0-9a-f]{64}`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("snapshot output lacks %q:\n%s", want, out)
		}
	}
	_, errOut, code = meshlet(t, "snapshot", data, "--out", filepath.Join(snaps, "b"))
	if code != 2 || !strings.Contains(errOut, "--port NAME --topic TOPIC") {
		t.Fatalf("meshlet snapshot without the port: exit %d\n%s", code, errOut)
	}
	b := filepath.Join(snaps, "b")
	out, errOut, code = meshlet(t, "snapshot", data, "--out", b, "--port", "products", "--topic", "inventory.products.v1", "--kind", "table", "--json")
	if code != 0 {
		t.Fatalf("meshlet snapshot: exit %d\n%s%s", code, out, errOut)
	}
	var m snapshot.Manifest
	if err := json.Unmarshal([]byte(out), &m); err != nil || len(m.Files) != 1 || m.Files[0].Kind != snapshot.Table || m.Files[0].Rows != 10 {
		t.Fatalf("--json manifest %+v (%v)\n%s", m, err, out)
	}
	if _, errOut, code = meshlet(t, "snapshot", data, "--out", b, "--port", "products", "--topic", "inventory.products.v1"); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("a snapshot into an existing directory: exit %d\n%s", code, errOut)
	}

	out, errOut, code = meshlet(t, "snapshot", "verify", a, "--data", data)
	if code != 0 || !regexp.MustCompile(`verified snapshot .* against the change log`).MatchString(out) ||
		!regexp.MustCompile(`history\.parquet\s+\d+ rows re-derived from the log, identical`).MatchString(out) {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}

	// A changed Parquet file: one byte of the table.
	changed := copyDir(t, a, filepath.Join(snaps, "changed"))
	flipByte(t, filepath.Join(changed, "table.parquet"), 200)
	_, errOut, code = meshlet(t, "snapshot", "verify", changed, "--data", data)
	if code != 1 || !strings.Contains(errOut, "snapshot does not match: table.parquet: SHA-256") || !strings.Contains(errOut, "the file was changed") {
		t.Fatalf("verify of a changed Parquet file: exit %d\n%s", code, errOut)
	}
	out, _, code = meshlet(t, "snapshot", "verify", changed, "--data", data, "--json")
	var res struct {
		Verified bool `json:"verified"`
		Mismatch struct {
			File string `json:"File"`
		} `json:"mismatch"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Verified || res.Mismatch.File != "table.parquet" {
		t.Fatalf("verify --json of a changed file: exit %d\n%s", code, out)
	}

	// A manifest naming the wrong checkpoint: another log's.
	wrong := copyDir(t, a, filepath.Join(snaps, "wrong"))
	sm, err := snapshot.ReadManifest(wrong)
	if err != nil {
		t.Fatal(err)
	}
	var with []int
	for i, l := range sm.Logs {
		if l.Checkpoint != nil {
			with = append(with, i)
		}
	}
	if len(with) < 2 {
		t.Fatalf("the snapshot has %d logs with entries; the test needs two", len(with))
	}
	first, second := &sm.Logs[with[0]], &sm.Logs[with[1]]
	first.Checkpoint, second.Checkpoint = second.Checkpoint, first.Checkpoint
	writeManifest(t, wrong, sm)
	_, errOut, code = meshlet(t, "snapshot", "verify", wrong, "--data", data)
	if code != 1 || !strings.Contains(errOut, "not covered by a signed checkpoint: log "+first.Name) {
		t.Fatalf("verify of a manifest naming another log's checkpoint: exit %d\n%s", code, errOut)
	}
}

func copyDir(t *testing.T, from, to string) string {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	return to
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeManifest(t *testing.T, dir string, m *snapshot.Manifest) {
	t.Helper()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, snapshot.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

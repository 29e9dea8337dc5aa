package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// meshletBin is the generic tool and inventoryBin the example product's
// binary, built once for these tests, so they run the commands exactly as
// a user does.
var meshletBin, inventoryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshlet-bin-")
	if err != nil {
		panic(err)
	}
	meshletBin = filepath.Join(dir, "meshlet")
	inventoryBin = filepath.Join(dir, "inventory")
	for bin, pkg := range map[string]string{meshletBin: "../cmd/meshlet", inventoryBin: "../examples/inventory"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			panic("build " + pkg + ": " + err.Error() + "\n" + string(out))
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func meshlet(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	return runBin(t, meshletBin, args...)
}

// inventory runs the example product's binary.
func inventory(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	return runBin(t, inventoryBin, args...)
}

func runBin(t *testing.T, bin string, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func TestDevOncePrintsSummary(t *testing.T) {
	data := t.TempDir()
	out, errOut, code := inventory(t, "dev", "--once", "--data", data)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		`kafka     127\.0\.0\.1:\d+`,
		`registry  http://127\.0\.0\.1:\d+`,
		`fed 16 recorded events from cdc/samples/debezium-postgres-data-schema-include\.txt into dbserver1\.inventory\.products`,
		`events in\s+16 \(0 tombstones/heartbeats skipped, 0 re-sent by the source and dropped\)`,
		`records out\s+16 on inventory\.products\.v1 \(schema id \d+\)`,
		`dead letters\s+0 on inventory\.products\.dlq`,
		`change-log entries 16 in 3 log\(s\)`,
		`chain\s+verified`,
		`16 events on inventory\.products\.v1, decoded back through the registry`,
		`111\s+true\s+2020-07-29T08:23:08\.168000Z`, // the delete of 111, at its source commit time
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	// The logs the run left behind verify from the command line too.
	vout, verr, code := meshlet(t, "audit", "verify", filepath.Join(data, "changelog"))
	if code != 0 || !strings.Contains(vout, "verified 3 change log(s)") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, vout, verr)
	}

	// The checkpoint signed on close is one an auditor keeps; the log extends it.
	notes, _ := filepath.Glob(filepath.Join(data, "changelog", "*", "checkpoints", "*.note"))
	if len(notes) == 0 {
		t.Fatal("no checkpoint signed")
	}
	vout, verr, code = meshlet(t, "audit", "verify", "--since", notes[0], filepath.Join(data, "changelog"))
	if code != 0 || !strings.Contains(vout, "the log extends checkpoint") {
		t.Fatalf("audit verify --since: exit %d\n%s%s", code, vout, verr)
	}

	// Flip one byte inside an entry's body: verify must fail and name it.
	segs, _ := filepath.Glob(filepath.Join(data, "changelog", "*", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	seg := segs[0]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-40] ^= 0x01 // inside the last frame, before its stored hash
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	vout, verr, code = meshlet(t, "audit", "verify", filepath.Join(data, "changelog"))
	if code != 1 {
		t.Fatalf("audit verify after a flipped byte: exit %d, want 1\n%s%s", code, vout, verr)
	}
	name := filepath.Base(seg)
	if !regexp.MustCompile(`change log corrupt: segment ` + regexp.QuoteMeta(name) + ` offset \d+ entry seq \d+: `).MatchString(verr) {
		t.Fatalf("error does not name the segment, offset and entry:\n%s", verr)
	}
}

func TestUsage(t *testing.T) {
	_, errOut, code := meshlet(t)
	if code != 2 || regexp.MustCompile(`(?m)^  dev\s`).MatchString(errOut) ||
		!regexp.MustCompile(`(?m)^  audit verify\s+DIR`).MatchString(errOut) || !strings.Contains(errOut, "go run ./examples/inventory dev") {
		t.Fatalf("no args: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = inventory(t)
	if code != 2 || !regexp.MustCompile(`(?m)^  dev\s+run the product on an embedded Kafka`).MatchString(errOut) ||
		!regexp.MustCompile(`(?m)^  audit verify\s+DIR`).MatchString(errOut) || !strings.HasPrefix(errOut, "inventory is a Meshlet data product") {
		t.Fatalf("the product's binary without args: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "dev")
	if code != 2 || !strings.Contains(errOut, `"dev" runs a data product`) || !strings.Contains(errOut, "go run . dev") {
		t.Fatalf("meshlet dev: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "frobnicate")
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "histroy")
	if code != 2 || !strings.Contains(errOut, `unknown command "histroy"; did you mean "history"?`) {
		t.Fatalf("a typo: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "history", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "meshlet: history: missing KEY") {
		t.Fatalf("history without KEY: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "replay", t.TempDir(), "--to", "xml")
	if code != 2 || !strings.Contains(errOut, `--to must be jsonl, avro-ocf or kafka, not "xml"`) {
		t.Fatalf("replay --to xml: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = inventory(t, "dev", "extra")
	if code != 2 || !strings.Contains(errOut, `dev takes no arguments, got ["extra"]`) {
		t.Fatalf("dev with an argument: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "audit")
	if code != 2 || !strings.HasPrefix(errOut, "Usage: meshlet audit ") || !strings.Contains(errOut, "meshlet audit verify DIR") {
		t.Fatalf("audit alone: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "audit", "verify")
	if code != 2 || !strings.Contains(errOut, "Usage: meshlet audit verify [--since CHECKPOINT [--key KEY]] DIR") {
		t.Fatalf("verify without DIR: exit %d, stderr:\n%s", code, errOut)
	}
	_, errOut, code = meshlet(t, "audit", "verify", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "no change log under") {
		t.Fatalf("verify of an empty dir: exit %d, stderr:\n%s", code, errOut)
	}
}

// The generic tool carries no product: nothing under examples/ is linked
// into it, and the example product is run as a user's is.
func TestGenericToolImportsNoExample(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../cmd/meshlet").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/examples/") {
			t.Errorf("cmd/meshlet depends on %s", pkg)
		}
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^run:(?:\n\t.*)*\n\t\$\(GO\) run \./examples/inventory dev --once$`).Match(mk) {
		t.Error("make run does not run go run ./examples/inventory dev --once")
	}
}

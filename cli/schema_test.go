package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/schemas"
)

// runIn runs the meshlet binary in dir with extra environment, as a user
// in that directory would.
func runIn(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(meshletBin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &out, &errb
	cmd.Env = append(os.Environ(), env...)
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// copyExample copies the example product's manifest and schema to a
// directory the test may edit.
func copyExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"product.yaml", "schemas/product.avsc"} {
		b, err := os.ReadFile(filepath.Join("../examples/inventory/products", f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSchemaCheck(t *testing.T) {
	emb, err := schemas.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	dir := copyExample(t)
	check := func() (string, int) {
		t.Helper()
		out, errOut, code := meshlet(t, "schema", "check", "-registry", emb.URL(), dir)
		return out + errOut, code
	}

	out, code := check()
	if code != 0 || !strings.Contains(out, "accept: would be version 1, the subject's first") {
		t.Fatalf("empty subject: exit %d\n%s", code, out)
	}

	reg, err := schemas.NewRegistry([]string{emb.URL()})
	if err != nil {
		t.Fatal(err)
	}
	v1, err := schemas.Load(filepath.Join(dir, "schemas/product.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.Register(context.Background(), "inventory.products.v1-value", v1, schemas.CompatBackward)
	if err != nil {
		t.Fatal(err)
	}
	out, code = check()
	if code != 0 || !strings.Contains(out, "accept: already registered as version 1") {
		t.Fatalf("registered schema: exit %d\n%s", code, out)
	}

	avsc := filepath.Join(dir, "schemas/product.avsc")
	orig, err := os.ReadFile(avsc)
	if err != nil {
		t.Fatal(err)
	}
	addField := func(field string) {
		t.Helper()
		s := string(orig)
		i := strings.LastIndex(s, "]")
		if err := os.WriteFile(avsc, []byte(s[:i]+", "+field+s[i:]), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	addField(`{"name": "sku", "type": ["null", "string"], "default": null}`)
	out, code = check()
	want := regexp.MustCompile(`accept: would be version 2; compatible with version 1 \(id ` + strconv.Itoa(id) + `\)`)
	if code != 0 || !want.MatchString(out) {
		t.Fatalf("optional field: exit %d\n%s", code, out)
	}

	addField(`{"name": "sku", "type": "string"}`)
	out, code = check()
	refusal := `refuse: subject inventory.products.v1-value: BACKWARD: new schema cannot read version 1: field "sku" has no default (added required field)`
	if code != 1 || !strings.Contains(out, refusal) || !strings.Contains(out, "1 of 1 output port(s) refused") {
		t.Fatalf("required field: exit %d, want 1 and\n%s\ngot:\n%s", code, refusal, out)
	}
	t.Logf("meshlet schema check output:\n%s", out)

	_, errOut, code := meshlet(t, "schema", "check", "-registry", emb.URL(), t.TempDir())
	if code != 1 || !strings.Contains(errOut, "product.yaml") {
		t.Errorf("directory without a manifest: exit %d\n%s", code, errOut)
	}
}

func TestGenCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "types_gen.go")
	shipment, row := "../schemas/testdata/gen/shipment.avsc", "../schemas/testdata/gen/row.avsc"
	// Flags may come between the schema files.
	_, errOut, code := meshlet(t, "gen", shipment, "-pkg", "gentest", "-o", out, row)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var srcs []schemas.GoSource
	for _, f := range []string{shipment, row} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, schemas.GoSource{Name: f, Text: string(b)})
	}
	want, err := schemas.GenerateGo("gentest", srcs...)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("meshlet gen wrote something other than GenerateGo:\n%s", got)
	}
	if _, errOut, code := meshlet(t, "gen", shipment); code != 2 || !strings.Contains(errOut, "Usage: meshlet gen") {
		t.Errorf("gen without -pkg: exit %d\n%s", code, errOut)
	}
}

func TestContractCheckCommand(t *testing.T) {
	out, _, code := meshlet(t, "contract", "check", "../contracts/testdata/orders.odcs.yaml", "../contracts/testdata/invalid.odcs.yaml")
	if code != 1 || !strings.Contains(out, "orders.odcs.yaml: valid ODCS v3.1.0") ||
		!strings.Contains(out, "line 13: schema[0].properties[0].logicalType: value must be one of") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

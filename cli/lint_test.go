package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyProduct copies the example product's manifest and schema into a new
// directory, with a history of one published version.
func copyProduct(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"product.yaml", "schemas/product.avsc", "schemas/history/products/1.avsc"} {
		b, err := os.ReadFile(filepath.Join("../examples/inventory/products", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func edit(t *testing.T, file, from, to string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), from, to, 1)
	if s == string(b) {
		t.Fatalf("%s has no %q", file, from)
	}
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLint(t *testing.T) {
	dir := copyProduct(t)
	out, errOut, code := meshlet(t, "lint", dir)
	if code != 0 || !strings.Contains(out, "BACKWARD: the current schema is version 1") {
		t.Fatalf("the example product: exit %d\n%s%s", code, out, errOut)
	}

	// A new field with a default is a compatible version 2; --record keeps it.
	schema := filepath.Join(dir, "schemas/product.avsc")
	edit(t, schema, `"fields": [`, `"fields": [{"name": "sku", "type": ["null", "string"], "default": null},`)
	out, errOut, code = meshlet(t, "lint", "--record", dir)
	if code != 0 || !strings.Contains(out, "compatible with version 1 in") || !strings.Contains(out, "recorded as version 2") {
		t.Fatalf("a compatible change: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "schemas/history/products/2.avsc")); err != nil {
		t.Fatal(err)
	}

	// A required field without a default is refused, naming the field.
	edit(t, schema, `"fields": [`, `"fields": [{"name": "color", "type": "string"},`)
	out, errOut, code = meshlet(t, "lint", dir)
	if code != 1 || !strings.Contains(out, `compat products`) || !strings.Contains(out, `field "color" has no default`) ||
		!strings.Contains(errOut, "lint: 1 of") {
		t.Fatalf("an incompatible change: exit %d\n%s%s", code, out, errOut)
	}

	// A misspelt manifest key: the file, the line and the key it should be.
	edit(t, filepath.Join(dir, "product.yaml"), "outputPorts:", "outputPort:")
	out, errOut, code = meshlet(t, "lint", "--json", dir)
	if code != 1 || !strings.Contains(out, `outputPort: unknown field; did you mean outputPorts?`) || !strings.Contains(out, `"ok": false`) {
		t.Fatalf("a misspelt key: exit %d\n%s%s", code, out, errOut)
	}
}

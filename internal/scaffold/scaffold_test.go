package scaffold

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/runtime"
)

func fakeCheckout(t *testing.T, module string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+module+"\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFindMeshlet(t *testing.T) {
	real := fakeCheckout(t, MeshletModule)
	other := fakeCheckout(t, "example.com/other")
	deep := filepath.Join(real, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		explicit, env   string
		starts          []string
		want, wantError string
	}{
		{"flag first", real, other, nil, real, ""},
		{"then the environment", "", real, []string{other}, real, ""},
		{"then walking up", "", "", []string{other, deep}, real, ""},
		{"a flag pointing elsewhere is an error, not a fallback", other, real, nil, "", "--meshlet-dir"},
		{"nothing found", "", "", []string{other}, "", "no Meshlet checkout found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindMeshlet(tt.explicit, tt.env, tt.starts...)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("err = %v, want %q", err, tt.wantError)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestCreateWritesAValidProduct checks the scaffold without a go
// subprocess (cmd/meshlet's TestInitDemoPassesGoTest runs go test on it):
// the manifest passes runtime validation and names files that exist.
func TestCreateWritesAValidProduct(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "shop")
	res, err := Create(Options{Module: "example.com/acme/shop-orders", Dir: dir, MeshletDir: repo})
	if err != nil {
		t.Fatal(err)
	}
	if res.Package != "shoporders" {
		t.Errorf("package %q", res.Package)
	}
	m, err := runtime.LoadManifest(os.DirFS(dir), "product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, m.OutputPorts[0].Schema)); err != nil {
		t.Errorf("the manifest's schema: %v", err)
	}
	if _, err := Create(Options{Module: "Bad Name!", MeshletDir: repo}); err == nil {
		t.Error("a module path with spaces was accepted")
	}
	if _, err := Create(Options{Module: "x", Dir: t.TempDir(), MeshletDir: fakeCheckout(t, "example.com/other")}); err == nil ||
		!strings.Contains(err.Error(), "not a checkout of") {
		t.Errorf("a non-Meshlet checkout: %v", err)
	}
}

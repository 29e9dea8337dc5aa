package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitDemoPassesGoTest is what a new user does: meshlet init demo in
// an empty directory, then go test ./... inside it, with nothing between.
func TestInitDemoPassesGoTest(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH; this test runs a real go subprocess")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out, errOut, code := runIn(t, work, []string{"GOFLAGS=-mod=mod"}, "init", "demo", "--meshlet-dir", repo)
	if code != 0 {
		t.Fatalf("meshlet init: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("meshlet init demo:\n%s", out)
	for _, want := range []string{"created " + filepath.Join(work, "demo"), "item_gen.go", "testdata/items.jsonl", "ran go mod tidy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	demo := filepath.Join(work, "demo")
	gomod, err := os.ReadFile(filepath.Join(demo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), "replace github.com/meshlet/meshlet => "+repo) {
		t.Errorf("go.mod does not replace meshlet with the checkout:\n%s", gomod)
	}
	if sum, err := os.Stat(filepath.Join(demo, "go.sum")); err != nil || sum.Size() == 0 {
		t.Fatalf("go.sum missing or empty: %v", err)
	}

	test := exec.Command("go", "test", "./...")
	test.Dir = demo
	test.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	got, err := test.CombinedOutput()
	if err != nil {
		t.Fatalf("go test ./... in the new product failed: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), "ok  \tdemo") {
		t.Errorf("go test ran no tests in package demo:\n%s", got)
	}

	// A second init does not clobber the product.
	if _, errOut, code := runIn(t, work, nil, "init", "demo", "--meshlet-dir", repo); code != 1 || !strings.Contains(errOut, "exists and is not empty") {
		t.Errorf("init over an existing product: exit %d\n%s", code, errOut)
	}
}

// TestInitFindsTheCheckout: MESHLET_SRC stands in for --meshlet-dir; with
// neither, and nothing above the working directory or the binary, init
// says what to do.
func TestInitFindsTheCheckout(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// GOFLAGS=-mod=mod lets tidy fill go.sum; PATH without go skips it, as
	// on a machine without Go, and init says so.
	out, errOut, code := runIn(t, work, []string{"MESHLET_SRC=" + repo, "PATH=" + t.TempDir()}, "init", "github.com/acme/order-events", "--dir", "orders")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "package orderevents") || !strings.Contains(out, "go is not on PATH: run `go mod tidy`") {
		t.Errorf("output:\n%s", out)
	}
	for _, f := range []string{"handler.go", "main.go", "handler_test.go", "testdata/README.md"} {
		if _, err := os.Stat(filepath.Join(work, "orders", f)); err != nil {
			t.Error(err)
		}
	}

	// With neither, from a directory nowhere near a checkout, init uses the
	// checkout the meshlet binary was built from, and says so.
	out, errOut, code = runIn(t, work, []string{"MESHLET_SRC=", "PATH=" + t.TempDir()}, "init", "demo")
	if code != 0 || !strings.Contains(out, "replaces github.com/meshlet/meshlet with the checkout this meshlet was built from: "+repo) {
		t.Errorf("no checkout given: exit %d\n%s%s", code, out, errOut)
	}
}

package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/meshlet/meshlet/internal/scaffold"
)

func init() {
	register(command{name: "init", synopsis: "NAME  scaffold a new data product whose go test ./... passes at once", run: plain(cmdInit)})
}

const initUsage = `init NAME [--dir PATH] [--meshlet-dir PATH]

Creates a data product module NAME (a module path such as demo or
github.com/acme/orders): manifest, Avro schema, generated Go types, a typed
handler, recorded CDC and a test over it, and main.go, which makes the
binary the product with Meshlet's whole command line (go run . dev --once).

Meshlet is not fetched from a module proxy, so go.mod replaces it with a
local checkout: --meshlet-dir, else $MESHLET_SRC, else the checkout this
meshlet was built from, else the first found above the working directory or
this binary. Then runs go mod tidy, when go is on PATH, so go test ./...
passes with no further step.`

func cmdInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", initUsage, stderr)
	dir := fs.String("dir", "", "directory to create (default: NAME's last element)")
	meshletDir := fs.String("meshlet-dir", "", "Meshlet checkout for the replace directive")
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		fs.Usage()
		if len(names) == 0 {
			return usageError("init needs the new product's NAME, e.g. meshlet init demo")
		}
		return usageError("init takes one NAME, got %q", names)
	}
	built := scaffold.BuiltFrom()
	starts := []string{built}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	src, err := scaffold.FindMeshlet(*meshletDir, os.Getenv("MESHLET_SRC"), starts...)
	if err != nil {
		return err
	}
	res, err := scaffold.Create(scaffold.Options{Module: names[0], Dir: *dir, MeshletDir: src})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s (module %s, package %s)\n", res.Dir, names[0], res.Package)
	for _, f := range res.Files {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	switch {
	case *meshletDir != "":
		fmt.Fprintf(stdout, "go.mod replaces github.com/meshlet/meshlet with %s (--meshlet-dir)\n", src)
	case os.Getenv("MESHLET_SRC") != "":
		fmt.Fprintf(stdout, "go.mod replaces github.com/meshlet/meshlet with %s (MESHLET_SRC)\n", src)
	case src == built:
		fmt.Fprintf(stdout, "Meshlet is not fetched from a module proxy, so go.mod replaces github.com/meshlet/meshlet with the checkout this meshlet was built from: %s (--meshlet-dir overrides)\n", src)
	default:
		fmt.Fprintf(stdout, "Meshlet is not fetched from a module proxy, so go.mod replaces github.com/meshlet/meshlet with the checkout found at %s (--meshlet-dir overrides)\n", src)
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(stdout, "go is not on PATH: run `go mod tidy` in %s before `go test ./...`\n", res.Dir)
		return nil
	}
	tidy := exec.CommandContext(ctx, goBin, "mod", "tidy")
	tidy.Dir = res.Dir
	tidy.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := tidy.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go mod tidy in %s failed (the files are in place; fix and rerun it): %w\n%s", res.Dir, err, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(stdout, "ran go mod tidy: go.mod and go.sum are complete\nnext: cd %s && go test ./... && go run . lint && go run . dev --once\n", relOrAbs(res.Dir))
	return nil
}

func relOrAbs(dir string) string {
	wd, err := os.Getwd()
	if err != nil {
		return dir
	}
	if rel, err := filepath.Rel(wd, dir); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return dir
}

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

func cmdInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", "init NAME [--dir PATH] [--meshlet-dir PATH]\n\nCreates a data product module NAME (a module path such as demo or github.com/acme/orders):\nmanifest, Avro schema, generated Go types, a typed handler, recorded Debezium CDC and a test\nover it. Meshlet is not published, so go.mod replaces it with a local checkout: --meshlet-dir,\nelse $MESHLET_SRC, else the first checkout found above the working directory or this binary.\nThen runs go mod tidy, when go is on PATH, so go test ./... passes with no further step.", stderr)
	dir := fs.String("dir", "", "directory to create (default: NAME's last element)")
	meshletDir := fs.String("meshlet-dir", "", "Meshlet checkout for the replace directive")
	names, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		fs.Usage()
		return errUsage
	}
	var starts []string
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
	fmt.Fprintf(stdout, "go.mod replaces github.com/meshlet/meshlet with %s\n", src)

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
	fmt.Fprintf(stdout, "ran go mod tidy: go.mod and go.sum are complete\nnext: cd %s && go test ./...\n", relOrAbs(res.Dir))
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

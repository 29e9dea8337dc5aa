// Package scaffold writes a new data product directory for `meshlet init`:
// a module whose `go test ./...`, `go run . lint` and `go run . dev --once`
// pass before anyone edits it. The product is one main package: manifest,
// schema, generated record type, handler, a test of the handler over
// recorded CDC, and main.go, whose one call (cli.Main) makes the binary the
// product with Meshlet's whole command line.
//
// Meshlet is not fetched from a module proxy, so the module requires
// github.com/meshlet/meshlet at a placeholder version and replaces it with
// a local checkout, found by FindMeshlet (the one the running meshlet was
// built from, unless told otherwise). The checkout's go.mod requires and
// go.sum are copied too, so the product builds with the exact versions
// Meshlet was tested with and `go mod tidy` finds every checksum it needs
// without the network.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"text/template"
	"unicode"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/meshlet/meshlet/schemas"
)

// MeshletModule is the module path a checkout must declare.
const MeshletModule = "github.com/meshlet/meshlet"

// meshletVersion stands in for a release: the replace directive decides.
const meshletVersion = "v0.0.0-00010101000000-000000000000"

//go:embed template
var templates embed.FS

// Options says what to create.
type Options struct {
	// Module is the new module's path, e.g. "demo" or
	// "github.com/acme/orders"; its last element names the package.
	Module string
	// Dir is the directory to create; default: the module path's last
	// element, in the working directory. It must not exist or be empty.
	Dir string
	// MeshletDir is the Meshlet checkout for the replace directive.
	MeshletDir string
}

// Result says what was created.
type Result struct {
	Dir     string   // absolute
	Package string   // Go package name
	Files   []string // relative to Dir, in the order written
}

type data struct {
	Module, Package, Title string
}

// goPackage is the product's Go package: a binary, so main.
const goPackage = "main"

// Create writes the product directory.
func Create(o Options) (*Result, error) {
	if err := module.CheckImportPath(o.Module); err != nil {
		return nil, fmt.Errorf("scaffold: %q is not a usable module path: %w", o.Module, err)
	}
	last := o.Module[strings.LastIndexByte(o.Module, '/')+1:]
	pkg := packageName(last)
	if pkg == "" {
		return nil, fmt.Errorf("scaffold: cannot make a Go package name from %q", last)
	}
	if o.Dir == "" {
		o.Dir = last
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("scaffold: %s exists and is not empty; choose another --dir", dir)
	}
	if o.MeshletDir == "" {
		return nil, errors.New("scaffold: no Meshlet checkout given")
	}
	meshletMod, err := os.ReadFile(filepath.Join(o.MeshletDir, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	meshletSum, err := os.ReadFile(filepath.Join(o.MeshletDir, "go.sum"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	gomod, err := goMod(o.Module, o.MeshletDir, meshletMod)
	if err != nil {
		return nil, err
	}

	d := data{Module: o.Module, Package: pkg, Title: title(last)}
	res := &Result{Dir: dir, Package: pkg}
	write := func(name string, content []byte) error {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
		res.Files = append(res.Files, name)
		return nil
	}
	render := func(tmpl string) ([]byte, error) {
		// [[ ]] delimit the placeholders: Go composite literals are full of {{.
		t, err := template.New(tmpl).Delims("[[", "]]").ParseFS(templates, "template/"+tmpl)
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	schemaFile := "schemas/" + pkg + ".avsc"
	files := []struct{ name, tmpl string }{
		{"product.yaml", "product.yaml.tmpl"},
		{schemaFile, "schema.avsc.tmpl"},
		{"main.go", "main.go.tmpl"},
		{"handler.go", "handler.go.tmpl"},
		{"handler_test.go", "handler_test.go.tmpl"},
		{"testdata/items.jsonl", "items.jsonl.tmpl"},
		{"testdata/README.md", "testdata-README.md.tmpl"},
		{"README.md", "README.md.tmpl"},
		{".gitignore", "gitignore.tmpl"},
	}
	if err := write("go.mod", gomod); err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	if len(meshletSum) > 0 {
		if err := write("go.sum", meshletSum); err != nil {
			return nil, fmt.Errorf("scaffold: %w", err)
		}
	}
	var schemaText []byte
	for _, f := range files {
		content, err := render(f.tmpl)
		if err != nil {
			return nil, fmt.Errorf("scaffold: %s: %w", f.name, err)
		}
		if f.name == schemaFile {
			schemaText = content
		}
		if err := write(f.name, content); err != nil {
			return nil, fmt.Errorf("scaffold: %w", err)
		}
	}
	// The record type comes from the schema, through the same generator as
	// `meshlet gen`, so the two can never start out of step.
	code, err := schemas.GenerateGo(goPackage, schemas.GoSource{Name: schemaFile, Text: string(schemaText)})
	if err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	if err := write("item_gen.go", code); err != nil {
		return nil, fmt.Errorf("scaffold: %w", err)
	}
	return res, nil
}

// goMod writes the new module's go.mod: Meshlet at a placeholder version,
// replaced by the checkout, and every module the checkout requires at the
// version it requires (go mod tidy drops those the product does not need).
func goMod(path, meshletDir string, meshletMod []byte) ([]byte, error) {
	src, err := modfile.ParseLax("go.mod", meshletMod, nil)
	if err != nil {
		return nil, fmt.Errorf("scaffold: %s/go.mod: %w", meshletDir, err)
	}
	if src.Module == nil || src.Module.Mod.Path != MeshletModule {
		return nil, fmt.Errorf("scaffold: %s is not a checkout of %s", meshletDir, MeshletModule)
	}
	f := &modfile.File{}
	if err := f.AddModuleStmt(path); err != nil {
		return nil, err
	}
	goVersion := "1.26.0"
	if src.Go != nil {
		goVersion = src.Go.Version
	}
	if err := f.AddGoStmt(goVersion); err != nil {
		return nil, err
	}
	f.AddNewRequire(MeshletModule, meshletVersion, false)
	for _, r := range src.Require {
		f.AddNewRequire(r.Mod.Path, r.Mod.Version, true)
	}
	f.SetRequireSeparateIndirect(f.Require)
	if err := f.AddReplace(MeshletModule, "", meshletDir, ""); err != nil {
		return nil, err
	}
	f.Cleanup()
	return modfile.Format(f.Syntax), nil
}

// BuiltFrom is the checkout this program was compiled from, "" when that
// cannot be told (a -trimpath build, a checkout since moved or deleted):
// the compiler records each source file's absolute path, and this file
// lives two directories below the module root.
func BuiltFrom() string {
	_, file, _, ok := goruntime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	dir := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	if !isMeshlet(dir) {
		return ""
	}
	return dir
}

// FindMeshlet returns the absolute path of a Meshlet checkout: explicit
// when given, else the MESHLET_SRC value env, else the first directory
// holding Meshlet's go.mod found walking up from each of starts.
func FindMeshlet(explicit, env string, starts ...string) (string, error) {
	check := func(dir, from string) (string, error) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		if !isMeshlet(abs) {
			return "", fmt.Errorf("%s (%s) has no go.mod declaring module %s", abs, from, MeshletModule)
		}
		return abs, nil
	}
	if explicit != "" {
		return check(explicit, "--meshlet-dir")
	}
	if env != "" {
		return check(env, "MESHLET_SRC")
	}
	for _, start := range starts {
		if start == "" {
			continue
		}
		dir, err := filepath.Abs(start)
		if err != nil {
			continue
		}
		for {
			if isMeshlet(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("no Meshlet checkout found: Meshlet is not published, so the new module must point at a local checkout. "+
		"Pass --meshlet-dir PATH or set MESHLET_SRC (looked upwards from %s)", strings.Join(starts, " and "))
}

func isMeshlet(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	return modfile.ModulePath(b) == MeshletModule
}

// packageName makes a Go package name of a path element: lower case
// letters and digits ("order-events" -> "orderevents").
func packageName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	name := b.String()
	if name != "" && unicode.IsDigit(rune(name[0])) {
		name = "p" + name
	}
	return name
}

// title makes a heading of a path element: "order-events" -> "Order events".
func title(s string) string {
	s = strings.NewReplacer("-", " ", "_", " ", ".", " ").Replace(s)
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
)

func init() {
	register(command{name: "lint", synopsis: "[DIR]  check manifest, schemas, contracts and compatibility, offline", run: cmdLint})
}

const lintUsage = `lint [--registry URL] [--record] [--json] [DIR]

Checks a product without running it: the manifest (every field, with its
line and the fix), each output port's Avro schema, its ODCS contract
(validated against ODCS v3.1.0, its quality rules compiled), and the
schema's compatibility, at the port's level, with the versions the product
has published: by default the history kept in the product,
DIR/schemas/history/<port>/<version>.avsc, so it needs no network and runs
in a product's CI; with --registry, the versions registered under the
port's subject. --record adds each port's current schema to its history
once it passes (do this when the version is released).

DIR is the product's directory (default: the current one). In a product's
binary, lint also loads the product it was built with.`

// lintCheck is one line of lint's report.
type lintCheck struct {
	What   string `json:"what"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func cmdLint(ctx context.Context, e *env, args []string) error {
	fs := newFlags("lint", lintUsage, e.stderr)
	registry := fs.String("registry", "", "check compatibility against this schema registry instead of the product's schema history")
	record := fs.Bool("record", false, "add each port's current schema to the product's schema history when it passes")
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("lint takes at most one DIR, got %q", pos)
	}
	dir := "."
	if len(pos) == 1 {
		dir = pos[0]
	}
	checks := lint(ctx, e, dir, *registry, *record)
	failed := 0
	for _, c := range checks {
		if !c.OK {
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"dir": dir, "checks": checks, "failed": failed}); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, c := range checks {
			mark := "ok"
			if !c.OK {
				mark = "FAIL"
			}
			lines := strings.Split(c.Detail, "\n")
			fmt.Fprintf(tw, "%s\t%s\t%s\n", c.What, mark, lines[0])
			for _, l := range lines[1:] {
				fmt.Fprintf(tw, "\t\t%s\n", l)
			}
		}
		tw.Flush()
	}
	if failed > 0 {
		return fmt.Errorf("lint: %d of %d checks failed", failed, len(checks))
	}
	return nil
}

// lint runs every check on the product in dir.
func lint(ctx context.Context, e *env, dir, registry string, record bool) []lintCheck {
	var checks []lintCheck
	add := func(what string, err error, detail string) {
		if err != nil {
			detail = err.Error()
		}
		checks = append(checks, lintCheck{What: what, OK: err == nil, Detail: detail})
	}
	manifest := filepath.Join(dir, "product.yaml")
	m, err := runtime.LoadManifest(os.DirFS(dir), "product.yaml")
	if err != nil {
		add(manifest, err, "")
		return checks
	}
	add(manifest, nil, fmt.Sprintf("%s: %d input port(s), %d output port(s)", m.ID, len(m.InputPorts), len(m.OutputPorts)))
	p, err := runtime.NewProduct(os.DirFS(dir), "product.yaml", nil)
	if err != nil {
		add("product", err, "")
		return checks
	}
	var reg *schemas.Registry
	if registry != "" {
		if reg, err = schemas.NewRegistry([]string{registry}); err != nil {
			add("registry", err, "")
			return checks
		}
	}
	for i, port := range p.Manifest.OutputPorts {
		file := filepath.Join(dir, filepath.FromSlash(port.Schema))
		s, err := schemas.Load(file)
		if err != nil {
			add("schema "+port.Name, err, "")
			continue
		}
		add("schema "+port.Name, nil, fmt.Sprintf("%s (%s, %d fields)", file, s.RowName(), len(s.RowFields())))
		add("contract "+port.Name, lintContract(p.Contracts[i], port.Name), contractDetail(p.Contracts[i], port))
		level, err := schemas.ParseCompat(port.Compatibility)
		if err != nil {
			add("compat "+port.Name, fmt.Errorf("outputPorts[%d].compatibility: %w", i, err), "")
			continue
		}
		var res *schemas.CheckResult
		from := "the registry " + registry
		if reg != nil {
			res, err = reg.Check(ctx, port.Subject, s, level)
		} else {
			history, herr := schemas.LoadHistory(historyDir(dir, port.Name))
			if herr != nil {
				add("compat "+port.Name, herr, "")
				continue
			}
			from = filepath.Join(historyDir(dir, port.Name), "")
			res, err = schemas.CheckHistory(port.Subject, s, level, history)
		}
		if err != nil {
			add("compat "+port.Name, err, "")
			continue
		}
		add("compat "+port.Name, refusals(res), compatDetail(res, from))
		if record && len(res.Refusals) == 0 && reg == nil {
			text, _ := os.ReadFile(file)
			v, added, err := schemas.RecordHistory(historyDir(dir, port.Name), s, text)
			detail := fmt.Sprintf("already version %d", v)
			if added {
				detail = fmt.Sprintf("recorded as version %d", v)
			}
			add("record "+port.Name, err, detail)
		}
	}
	if e.app != nil {
		_, err := e.app.load()
		add("binary", err, "the product this binary was built with loads")
	}
	return checks
}

// historyDir is where a port's published schema versions are kept.
func historyDir(dir, port string) string {
	return filepath.Join(dir, "schemas", "history", port)
}

func lintContract(c *contracts.Contract, port string) error {
	checker, err := contracts.NewChecker(c, port)
	if err != nil {
		return err
	}
	if u := checker.Unchecked(); len(u) > 0 {
		return fmt.Errorf("rules not checked one record at a time, so not enforced: %s", strings.Join(u, "; "))
	}
	return nil
}

func contractDetail(c *contracts.Contract, port runtime.OutputPort) string {
	checker, err := contracts.NewChecker(c, port.Name)
	if err != nil {
		return ""
	}
	source := "generated from the manifest"
	if port.Contract != nil && port.Contract.File != "" {
		source = port.Contract.File
	}
	return fmt.Sprintf("ODCS %s (%s), %d quality rule(s)", c.ID, source, checker.Rules())
}

func refusals(res *schemas.CheckResult) error {
	if len(res.Refusals) == 0 {
		return nil
	}
	var errs []error
	for _, r := range res.Refusals {
		errs = append(errs, r)
	}
	return errors.Join(errs...)
}

func compatDetail(res *schemas.CheckResult, from string) string {
	switch {
	case res.Registered != nil:
		return fmt.Sprintf("%s: the current schema is version %d in %s", res.Level, res.Registered.Version, from)
	case len(res.Compared) == 0 && res.Next == 1:
		return fmt.Sprintf("%s: no version published yet in %s (lint --record adds this one as version 1)", res.Level, from)
	case len(res.Compared) == 0:
		return fmt.Sprintf("%s checks nothing; would be version %d", res.Level, res.Next)
	}
	return fmt.Sprintf("%s: compatible with %s in %s; would be version %d", res.Level, versionList(res.Compared), from, res.Next)
}

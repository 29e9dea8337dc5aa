package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
)

func init() {
	register(command{name: "schema check", synopsis: "[DIR]  compare each output port's .avsc with its subject's registered versions", run: plain(cmdSchemaCheck)})
}

func cmdSchemaCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("schema check", "schema check [flags] [DIR]\n\nReads DIR/product.yaml (default: the current directory) and checks each output port's\nschema against the versions registered under its subject, with the port's compatibility\nlevel, as product start does. Registers nothing. Exits 1 if any port is refused.", stderr)
	registry := fs.String("registry", envOr(envRegistry, "http://localhost:8081"), "schema registry URL ($"+envRegistry+")")
	asJSON := fs.Bool("json", false, "print each port's result as JSON")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		fs.Usage()
		return usageError("schema check takes at most one DIR, got %q", pos)
	}
	dir := "."
	if len(pos) == 1 {
		dir = pos[0]
	}
	type portResult struct {
		Port     string   `json:"port"`
		Subject  string   `json:"subject"`
		Level    string   `json:"compatibility"`
		Accepted bool     `json:"accepted"`
		Version  int      `json:"version"` // registered, or what registering would make
		Compared []int    `json:"compared_versions"`
		Refusals []string `json:"refusals,omitempty"`
		Schema   string   `json:"schema"`
		Existing bool     `json:"already_registered"`
	}
	var results []portResult
	m, err := runtime.LoadManifest(os.DirFS(dir), "product.yaml")
	if err != nil {
		return err
	}
	reg, err := schemas.NewRegistry([]string{*registry})
	if err != nil {
		return err
	}
	refused := 0
	for i, port := range m.OutputPorts {
		file := filepath.Join(dir, filepath.FromSlash(port.Schema))
		s, err := schemas.Load(file)
		if err != nil {
			return fmt.Errorf("outputPorts[%d] (%s): %w", i, port.Name, err)
		}
		level, err := schemas.ParseCompat(port.Compatibility)
		if err != nil {
			return fmt.Errorf("outputPorts[%d] (%s).compatibility: %w", i, port.Name, err)
		}
		res, err := reg.Check(ctx, port.Subject, s, level)
		if err != nil {
			return fmt.Errorf("outputPorts[%d] (%s): %w", i, port.Name, err)
		}
		pr := portResult{Port: port.Name, Subject: port.Subject, Level: string(level), Accepted: len(res.Refusals) == 0,
			Version: res.Next, Compared: []int{}, Schema: port.Schema, Existing: res.Registered != nil}
		if res.Registered != nil {
			pr.Version = res.Registered.Version
		}
		for _, v := range res.Compared {
			pr.Compared = append(pr.Compared, v.Version)
		}
		for _, r := range res.Refusals {
			pr.Refusals = append(pr.Refusals, r.Error())
		}
		results = append(results, pr)
		if len(res.Refusals) > 0 {
			refused++
		}
		if *asJSON {
			continue
		}
		fmt.Fprintf(stdout, "%s: subject %s, %s, %s\n", port.Name, port.Subject, level, port.Schema)
		switch {
		case res.Registered != nil:
			fmt.Fprintf(stdout, "  accept: already registered as version %d (id %d)\n", res.Registered.Version, res.Registered.ID)
		case len(res.Refusals) > 0:
			for _, r := range res.Refusals {
				fmt.Fprintf(stdout, "  refuse: %s\n", r)
			}
		case level == schemas.CompatNone:
			fmt.Fprintf(stdout, "  accept: would be version %d; level NONE checks nothing\n", res.Next)
		case len(res.Compared) == 0:
			fmt.Fprintf(stdout, "  accept: would be version %d, the subject's first\n", res.Next)
		default:
			fmt.Fprintf(stdout, "  accept: would be version %d; compatible with %s\n", res.Next, versionList(res.Compared))
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	}
	if refused > 0 {
		return fmt.Errorf("schema check: %d of %d output port(s) refused", refused, len(m.OutputPorts))
	}
	return nil
}

func versionList(vs []schemas.Version) string {
	if len(vs) == 1 {
		if vs[0].ID == 0 { // a version of the product's own history: no registry id
			return fmt.Sprintf("version %d", vs[0].Version)
		}
		return fmt.Sprintf("version %d (id %d)", vs[0].Version, vs[0].ID)
	}
	s := "versions"
	for i, v := range vs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf(" %d", v.Version)
	}
	return s
}

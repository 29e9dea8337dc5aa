package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/meshlet/meshlet/contracts"
)

func init() {
	register(command{name: "contract check", synopsis: "FILE...  validate ODCS contracts (JSON Schema v3.1.0) and compile their rules", run: plain(cmdContractCheck)})
}

func cmdContractCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("contract check", "contract check FILE...\n\nValidates each ODCS contract (YAML or JSON) against the official ODCS v3.1.0 JSON Schema\nand compiles its quality rules as the runtime would. Exits 1 if any file fails.", stderr)
	asJSON := fs.Bool("json", false, "print each file's result as JSON")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return usageError("contract check needs at least one FILE")
	}
	type result struct {
		File     string   `json:"file"`
		Valid    bool     `json:"valid"`
		ID       string   `json:"id,omitempty"`
		Version  string   `json:"version,omitempty"`
		Problems []string `json:"problems,omitempty"`
	}
	var results []result
	failed := 0
	for _, file := range files {
		c, err := contracts.Load(file)
		if err == nil {
			err = checkRules(c)
		}
		res := result{File: file, Valid: err == nil}
		if err != nil {
			failed++
			var ve *contracts.ValidationError
			if errors.As(err, &ve) {
				for _, p := range ve.Problems {
					res.Problems = append(res.Problems, p.String())
				}
			} else {
				res.Problems = []string{err.Error()}
			}
		} else {
			res.ID, res.Version = c.ID, c.Version
		}
		results = append(results, res)
		switch {
		case *asJSON:
		case err == nil:
			fmt.Fprintf(stdout, "%s: valid ODCS %s (%s %s)\n", file, c.APIVersion, c.ID, c.Version)
		case len(res.Problems) > 1 || errors.As(err, new(*contracts.ValidationError)):
			fmt.Fprintf(stdout, "%s: invalid\n", file)
			for _, p := range res.Problems {
				fmt.Fprintf(stdout, "  %s\n", p)
			}
		default:
			fmt.Fprintf(stdout, "%s: %v\n", file, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("contract check: %d of %d file(s) failed", failed, len(files))
	}
	return nil
}

// checkRules compiles every schema object's rules, as the runtime will.
func checkRules(c *contracts.Contract) error {
	for _, obj := range c.Schema {
		if _, err := contracts.NewChecker(c, obj.Name); err != nil {
			return err
		}
	}
	return nil
}

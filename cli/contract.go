package cli

import (
	"context"
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	failed := 0
	for _, file := range fs.Args() {
		c, err := contracts.Load(file)
		if err == nil {
			err = checkRules(c)
		}
		if err != nil {
			failed++
			var ve *contracts.ValidationError
			if errors.As(err, &ve) {
				fmt.Fprintf(stdout, "%s: invalid\n", file)
				for _, p := range ve.Problems {
					fmt.Fprintf(stdout, "  %s\n", p)
				}
				continue
			}
			fmt.Fprintf(stdout, "%s: %v\n", file, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: valid ODCS %s (%s %s)\n", file, c.APIVersion, c.ID, c.Version)
	}
	if failed > 0 {
		return fmt.Errorf("contract check: %d of %d file(s) failed", failed, fs.NArg())
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

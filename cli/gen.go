package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/meshlet/meshlet/schemas"
)

func init() {
	register(command{name: "gen", synopsis: "SCHEMA.avsc... -pkg NAME [-o FILE]  generate Go types (and the full schema) from Avro schemas", run: plain(cmdGen)})
}

func cmdGen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gen", "gen SCHEMA.avsc... -pkg NAME [-o FILE]\n\nWrites one Go file of types for the Avro schemas, through hamba/avro's generator: a\nstruct per record with avro and json tags holding the Avro field names (one type is a\nhandler's Avro output and also decodes a Debezium JSON row), a string type and constants\nper enum, and per struct Schema, Marshal and Unmarshal methods over its full schema, so\ntype and schema never drift. Nullable fields are pointers. Schemas may use types that\nothers define, given in any order; generate such schemas together, into one file.", stderr)
	pkg := fs.String("pkg", "", "Go package name of the generated file (required)")
	out := fs.String("o", "", "output file (default: standard output)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		fs.Usage()
		return usageError("gen: missing SCHEMA.avsc")
	}
	if *pkg == "" {
		fs.Usage()
		return usageError("gen: missing -pkg NAME, the Go package of the generated file")
	}
	var srcs []schemas.GoSource
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		srcs = append(srcs, schemas.GoSource{Name: filepath.ToSlash(f), Text: string(text)})
	}
	code, err := schemas.GenerateGo(*pkg, srcs...)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(code)
		return err
	}
	if err := os.WriteFile(*out, code, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s\n", *out)
	return nil
}

// parseInterleaved parses flags wherever they appear among the positional
// arguments ("a.avsc -pkg x b.avsc"), which the flag package alone stops at.
func parseInterleaved(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

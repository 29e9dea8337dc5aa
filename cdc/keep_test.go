package cdc

import (
	"context"
	"fmt"
	"testing"
)

// render writes out everything a change holds, images and strings by
// value, so that a later change written over an earlier one shows.
func render(c *Change) string {
	s := fmt.Sprintf("%d %q key=%s before=%s after=%s missing=%v t=%v src=%+v ddl=%q",
		c.Kind, c.Op, c.Key, c.Before, c.After, c.BeforeMissing, c.CommitTime, c.Source, c.DDL)
	if c.Tx != nil {
		s += fmt.Sprintf(" tx=%+v", *c.Tx)
	}
	if c.Boundary != nil {
		s += fmt.Sprintf(" boundary=%+v", *c.Boundary)
	}
	return s
}

// Changes share the chunks their images and strings are kept in: every
// change of a long run must still read as it did right after its decode.
func TestKeptChangesDoNotOverlap(t *testing.T) {
	for format, files := range map[string][]string{
		"debezium-json": sampleFiles,
		"canal-json":    {"canal-data.txt"},
		"maxwell-json":  {"maxwell-data.txt"},
		"ogg-json":      {"ogg-data.txt"},
	} {
		d, err := NewDecoder(format)
		if err != nil {
			t.Fatal(err)
		}
		md := d.(MultiDecoder)
		var all []Change
		var want []string
		// Enough rounds to run through several chunks of every kind.
		for round := 0; round < 40; round++ {
			for _, file := range files {
				for _, line := range readLines(t, file) {
					n := len(all)
					if all, err = md.DecodeAll(context.Background(), nil, line, all); err != nil {
						continue // the samples hold a few records a format refuses
					}
					for i := n; i < len(all); i++ {
						want = append(want, render(&all[i]))
					}
				}
			}
		}
		if len(all) < 100 {
			t.Fatalf("%s: only %d changes decoded", format, len(all))
		}
		for i := range all {
			if got := render(&all[i]); got != want[i] {
				t.Fatalf("%s: change %d changed after later decodes:\n got %s\nwant %s", format, i, got, want[i])
			}
		}
	}
}

package lineage

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// specDir holds the official OpenLineage schemas (see its NOTICE).
const specDir = "testdata/spec"

const coreSchema = "https://openlineage.io/spec/2-0-2/OpenLineage.json"

// facetOwnPart maps a facet schema URL whose "$ref" target is not vendored
// to a stand-in: the facet's own part of that schema (a subschema free of
// "$ref"), taken from the vendored file and added under the stand-in URL.
// The base facet rules the skipped "$ref" carried are checked by the 2-0-2
// core anyway.
var facetOwnPart = map[string]string{
	processingEngineSchemaURL: "urn:meshlet:test:ProcessingEngineRunFacet-1-1-0-own",
}

// ownParts says where each stand-in comes from: file and JSON pointer.
var ownParts = map[string]struct {
	file    string
	pointer []string
}{
	"urn:meshlet:test:ProcessingEngineRunFacet-1-1-0-own": {
		"facets/ProcessingEngineRunFacet.json", []string{"$defs", "ProcessingEngineRunFacet", "allOf", "1"},
	},
}

// facetNotVendored lists facet schema URLs Meshlet emits whose schema is not
// in testdata/spec; the core's generic facet rules still apply to them.
var facetNotVendored = map[string]bool{
	inputStatisticsSchemaURL: true,
}

type specValidator struct {
	mu       sync.Mutex
	compiler *jsonschema.Compiler
	compiled map[string]*jsonschema.Schema
}

var (
	specOnce sync.Once
	spec     *specValidator
	specErr  error
)

// loadSpec compiles the vendored schemas, each under its "$id", with
// formats asserted (date-time, uuid, uri) and no loading from anywhere else.
func loadSpec(t testing.TB) *specValidator {
	t.Helper()
	specOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		c.UseLoader(refuseLoader{})
		specErr = filepath.WalkDir(specDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			id, _ := doc.(map[string]any)["$id"].(string)
			if id == "" {
				return fmt.Errorf("%s: no $id", path)
			}
			return c.AddResource(id, doc)
		})
		for url, part := range ownParts {
			if specErr != nil {
				break
			}
			specErr = addOwnPart(c, url, filepath.Join(specDir, part.file), part.pointer)
		}
		spec = &specValidator{compiler: c, compiled: map[string]*jsonschema.Schema{}}
	})
	if specErr != nil {
		t.Fatalf("loading %s: %v", specDir, specErr)
	}
	return spec
}

// addOwnPart adds the subschema at pointer in file under url.
func addOwnPart(c *jsonschema.Compiler, url, file string, pointer []string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	cur := doc
	for _, p := range pointer {
		switch v := cur.(type) {
		case map[string]any:
			cur = v[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i < 0 || i >= len(v) {
				return fmt.Errorf("%s: no %v", file, pointer)
			}
			cur = v[i]
		}
		if cur == nil {
			return fmt.Errorf("%s: no %v", file, pointer)
		}
	}
	return c.AddResource(url, cur)
}

type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not vendored in %s", url, specDir)
}

func (v *specValidator) schema(loc string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.compiled[loc]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(loc)
	if err != nil {
		return nil, err
	}
	v.compiled[loc] = s
	return s, nil
}

// validate checks one event as sent on the wire: the whole event against the
// 2-0-2 core (as a RunEvent, and as the document root's oneOf), then every
// facet against the schema its _schemaURL names.
func (v *specValidator) validate(raw []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	for _, loc := range []string{coreSchema, coreSchema + "#/$defs/RunEvent"} {
		s, err := v.schema(loc)
		if err != nil {
			return fmt.Errorf("compiling %s: %w", loc, err)
		}
		if err := s.Validate(inst); err != nil {
			return fmt.Errorf("against %s: %w", loc, err)
		}
	}
	var errs []error
	for _, f := range facetsOf(inst) {
		url, _ := f.value["_schemaURL"].(string)
		if facetNotVendored[url] {
			continue
		}
		loc := url
		if own, ok := facetOwnPart[url]; ok {
			loc = own
		}
		s, err := v.schema(loc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: schema %q: %w", f.path, url, err))
			continue
		}
		if err := s.Validate(f.value); err != nil {
			errs = append(errs, fmt.Errorf("%s against %s: %w", f.path, loc, err))
		}
	}
	return errors.Join(errs...)
}

type facetAt struct {
	path  string
	value map[string]any
}

// facetsOf finds every facet of an event: run, job, and each dataset's
// facets, inputFacets and outputFacets.
func facetsOf(inst any) []facetAt {
	ev, _ := inst.(map[string]any)
	var out []facetAt
	collect := func(path string, container any) {
		m, _ := container.(map[string]any)
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			f, _ := m[k].(map[string]any)
			out = append(out, facetAt{path: path + "." + k, value: f})
		}
	}
	if run, ok := ev["run"].(map[string]any); ok {
		collect("run.facets", run["facets"])
	}
	if job, ok := ev["job"].(map[string]any); ok {
		collect("job.facets", job["facets"])
	}
	for _, side := range []string{"inputs", "outputs"} {
		list, _ := ev[side].([]any)
		for i, d := range list {
			ds, _ := d.(map[string]any)
			for _, key := range []string{"facets", "inputFacets", "outputFacets"} {
				collect(fmt.Sprintf("%s[%d].%s", side, i, key), ds[key])
			}
		}
	}
	return out
}

// TestVendoredSchemasAreTheRecordedOnes ties the files to the SHA-256 list
// in NOTICE, so neither an edited schema nor an unrecorded one goes unseen.
func TestVendoredSchemasAreTheRecordedOnes(t *testing.T) {
	notice, err := os.ReadFile(filepath.Join(specDir, "NOTICE"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^([0-9a-f]{64})  (\S+)$`)
	want := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(notice))
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			want[m[2]] = m[1]
		}
	}
	if len(want) == 0 {
		t.Fatal("NOTICE lists no SHA-256")
	}
	got := map[string]string{}
	err = filepath.WalkDir(specDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".json" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(specDir, path)
		got[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, sum := range got {
		if want[name] != sum {
			t.Errorf("%s: SHA-256 %s, NOTICE records %q", name, sum, want[name])
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("NOTICE lists %s, which is not in %s", name, specDir)
		}
	}
}

// TestEmittedSchemaURLsAreVendored makes sure the validator does not skip a
// facet for want of its schema, except the one NOTICE names.
func TestEmittedSchemaURLsAreVendored(t *testing.T) {
	v := loadSpec(t)
	for _, url := range []string{
		jobTypeSchemaURL, processingEngineSchemaURL, errorMessageSchemaURL, schemaSchemaURL,
		dataSourceSchemaURL, columnLineageSchemaURL, outputStatisticsSchemaURL, RunEventSchemaURL,
	} {
		loc := url
		if own, ok := facetOwnPart[url]; ok {
			loc = own
		}
		if _, err := v.schema(loc); err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
	if !strings.HasPrefix(RunEventSchemaURL, coreSchema+"#") {
		t.Errorf("events name %s, tests validate against %s", RunEventSchemaURL, coreSchema)
	}
}

// TestValidatorRejectsBrokenEvents proves the checks are not vacuous: each
// mutation of a valid event breaks one rule of the core or of a facet schema.
func TestValidatorRejectsBrokenEvents(t *testing.T) {
	v := loadSpec(t)
	rec := &recorder{}
	run := startTestRun(t, rec)
	if err := run.Running(t.Context(), Stats{Inputs: map[string]Counts{"orders": {Rows: 3, Bytes: 30}}, Outputs: map[string]Counts{"orders_enriched": {Rows: 2, Bytes: 40}}}); err != nil {
		t.Fatal(err)
	}
	if err := run.Stop(t.Context(), errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	start, fail := rec.raw(0), rec.raw(2)
	for _, raw := range [][]byte{start, fail, rec.raw(1)} {
		if err := v.validate(raw); err != nil {
			t.Fatalf("the unmutated event must pass: %v", err)
		}
	}
	cases := []struct {
		name   string
		base   []byte
		mutate func(ev map[string]any)
	}{
		{"unknown eventType", start, func(ev map[string]any) { ev["eventType"] = "PAUSED" }},
		{"runId not a UUID", start, func(ev map[string]any) { at(ev, "run")["runId"] = "run-1" }},
		{"eventTime not a date-time", start, func(ev map[string]any) { ev["eventTime"] = "yesterday" }},
		{"no producer", start, func(ev map[string]any) { delete(ev, "producer") }},
		{"facet without _producer", start, func(ev map[string]any) {
			delete(at(ev, "run", "facets", "processing_engine"), "_producer")
		}},
		{"processing_engine without version", start, func(ev map[string]any) {
			delete(at(ev, "run", "facets", "processing_engine"), "version")
		}},
		{"jobType without integration", start, func(ev map[string]any) {
			delete(at(ev, "job", "facets", "jobType"), "integration")
		}},
		{"schema field without name", start, func(ev map[string]any) {
			fields := at(ev, "inputs", "0", "facets", "schema")["fields"].([]any)
			delete(fields[0].(map[string]any), "name")
		}},
		{"dataSource uri not a URI", start, func(ev map[string]any) {
			at(ev, "inputs", "0", "facets", "dataSource")["uri"] = "not a uri"
		}},
		{"columnLineage input field without namespace", start, func(ev map[string]any) {
			src := at(ev, "outputs", "0", "facets", "columnLineage", "fields", "order_id")["inputFields"].([]any)
			delete(src[0].(map[string]any), "namespace")
		}},
		{"outputStatistics rowCount not an integer", fail, func(ev map[string]any) {
			at(ev, "outputs", "0", "outputFacets", "outputStatistics")["rowCount"] = "2"
		}},
		{"errorMessage without programmingLanguage", fail, func(ev map[string]any) {
			delete(at(ev, "run", "facets", "errorMessage"), "programmingLanguage")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev map[string]any
			if err := json.Unmarshal(tc.base, &ev); err != nil {
				t.Fatal(err)
			}
			tc.mutate(ev)
			raw, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.validate(raw); err == nil {
				t.Fatalf("accepted: %s", raw)
			}
		})
	}
}

// at walks a decoded JSON document by object keys and array indexes.
func at(doc map[string]any, path ...string) map[string]any {
	var cur any = doc
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			cur = c[i]
		}
	}
	m, _ := cur.(map[string]any)
	if m == nil {
		panic(fmt.Sprintf("no object at %v", path))
	}
	return m
}

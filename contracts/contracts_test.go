package contracts_test

import (
	"errors"
	"flag"
	"os"
	"path"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// inventorySpec is what the inventory team would write in its manifest's
// contract block.
const inventorySpec = `
sla:
  latency: 5m
  frequency: continuous
  retention: 7y
fields:
  id:
    classification: public
    quality:
      - metric: nullValues
      - metric: duplicateValues
        deadLetter: true
  name:
    classification: public
    quality:
      - metric: invalidValues
        description: Names are trimmed and not empty.
        arguments:
          pattern: '^\S(.*\S)?$'
        deadLetter: true
  weight_kg:
    classification: internal
    quality:
      - metric: invalidValues
        arguments:
          mustBeGreaterThan: 0
          mustBeLessOrEqualTo: 1000
        mustBeLessThan: 1
        unit: percent
`

// exampleContract generates the example product's contract from its
// manifest and schema, as the runtime will.
func exampleContract(t *testing.T) *contracts.Contract {
	t.Helper()
	fsys := os.DirFS("../examples/inventory/products")
	m, err := runtime.LoadManifest(fsys, "product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	port := m.OutputPorts[0]
	s, err := schemas.Load(path.Join("../examples/inventory/products", port.Schema))
	if err != nil {
		t.Fatal(err)
	}
	var spec contracts.Spec
	if err := yaml.Unmarshal([]byte(inventorySpec), &spec); err != nil {
		t.Fatal(err)
	}
	c, err := contracts.Generate(contracts.Product{
		ID: m.ID, Name: m.Name, Version: m.Version, Status: m.Status, Domain: m.Domain,
		Description: m.Description, TeamName: m.Team.Name, TeamEmail: m.Team.Email,
	}, contracts.Port{Name: port.Name, Version: port.Version, Topic: port.Topic, Subject: port.Subject, Schema: s, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGeneratedContractValidates(t *testing.T) {
	c := exampleContract(t)
	text, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	// Validated against the official ODCS JSON Schema, not against our
	// own idea of it.
	if err := contracts.Validate(text); err != nil {
		t.Fatalf("generated contract is not valid ODCS:\n%s\n%v", text, err)
	}

	golden := "testdata/inventory.odcs.golden.yaml"
	if *update {
		if err := os.WriteFile(golden, text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(text) != string(want) {
		t.Errorf("generated contract differs from %s (run with -update to accept):\n%s", golden, text)
	}

	// What a consumer reads off it.
	back, err := contracts.Parse("generated", text)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := back.Object("products")
	if err != nil {
		t.Fatal(err)
	}
	props := map[string]contracts.Property{}
	for _, p := range obj.Properties {
		props[p.Name] = p
	}
	if p := props["id"]; p.LogicalType != "integer" || !p.Required || p.Classification != "public" || len(p.Quality) != 2 {
		t.Errorf("id = %+v", p)
	}
	if p := props["weight_kg"]; p.LogicalType != "number" || p.Required || p.Classification != "internal" {
		t.Errorf("weight_kg = %+v: want a nullable number, internal", p)
	}
	if p := props["_valid_from"]; p.LogicalType != "timestamp" || !p.Required || p.Description == "" {
		t.Errorf("_valid_from = %+v: want a described, required timestamp", p)
	}
	if back.ID != "urn:dataproduct:inventory:products:products" || back.Version != "1.0.0" || back.Domain != "inventory" {
		t.Errorf("identity = %s %s %s", back.ID, back.Version, back.Domain)
	}
	var sla []string
	for _, s := range back.SLAProperties {
		sla = append(sla, s.Property)
	}
	if strings.Join(sla, ",") != "latency,frequency,retention" || back.SLAProperties[0].Unit != "min" {
		t.Errorf("slaProperties = %+v", back.SLAProperties)
	}
}

func TestHandWrittenInvalidContractRefused(t *testing.T) {
	_, err := contracts.Load("testdata/invalid.odcs.yaml")
	var ve *contracts.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, contracts.ErrInvalid) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	t.Log(err)
	want := []struct {
		path string
		line int
		msg  string
	}{
		{"schema[0].properties[0].logicalType", 13, "must be one of"},
		{"schema[0].properties[1].quality[0]", 16, "exactly one operator"},
		{"slaProperties[0]", 22, "missing property 'value'"},
		{"slaProperties[0]", 22, "'valu' not allowed"},
	}
	for _, w := range want {
		found := false
		for _, p := range ve.Problems {
			if p.Path == w.path && p.Line == w.line && strings.Contains(p.Msg, w.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem at %s (line %d) saying %q in:\n%v", w.path, w.line, w.msg, err)
		}
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("%d problems, want %d: %v", len(ve.Problems), len(want), ve.Problems)
	}
	if !strings.HasPrefix(err.Error(), "testdata/invalid.odcs.yaml: ") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestHandWrittenContract(t *testing.T) {
	c, err := contracts.Load("testdata/orders.odcs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := contracts.NewChecker(c, "")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Rules() != 4 {
		t.Errorf("%d rules enforced, want 4", ch.Rules())
	}
	unchecked := strings.Join(ch.Unchecked(), "\n")
	if !strings.Contains(unchecked, "rowCount") || !strings.Contains(unchecked, "type text") {
		t.Errorf("Unchecked = %q: want the rowCount and the text rule", unchecked)
	}
	dead := map[string]bool{}
	for _, s := range ch.Stats() {
		dead[s.Rule] = s.DeadLetter
	}
	if !dead["known-currency"] || !dead["order_id.duplicateValues"] || dead["amount_cents.invalidValues"] {
		t.Errorf("dead-letter flags = %v", dead)
	}
	// A hand-written contract is served as written.
	text, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile("testdata/orders.odcs.yaml"); string(raw) != string(text) {
		t.Error("YAML of a loaded contract is not the file")
	}
}

func TestGenerateRefusesBadSpecs(t *testing.T) {
	s, err := schemas.Load("../examples/inventory/products/schemas/product.avsc")
	if err != nil {
		t.Fatal(err)
	}
	product := contracts.Product{ID: "urn:dataproduct:x:y", Name: "Y", Version: "1.0.0"}
	tests := []struct {
		name, spec, want string
	}{
		{"unknown field", "fields: {sku: {classification: public}}", "contract.fields.sku: the schema com.example.inventory.Product has no such field"},
		{"exact count", "fields: {name: {quality: [{metric: nullValues, mustBe: 3}]}}", "mustBe: 3 asks for an exact count"},
		{"lower bound", "fields: {name: {quality: [{metric: nullValues, mustBeGreaterThan: 3}]}}", "a lower bound on the count"},
		{"no criteria", "fields: {name: {quality: [{metric: invalidValues}]}}", "invalidValues needs arguments"},
		{"bad pattern", "fields: {name: {quality: [{metric: invalidValues, arguments: {pattern: '(?=x)'}}]}}", "RE2"},
		{"unknown metric", "fields: {name: {quality: [{metric: nullValue}]}}", "metric: value must be one of"},
		{"bad sla", "sla: {latency: 5 parsecs}", "contract.sla.latency"},
		{"two operators", "fields: {name: {quality: [{metric: nullValues, mustBe: 0, mustBeLessThan: 2}]}}", "exactly one operator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var spec contracts.Spec
			if err := yaml.Unmarshal([]byte(tt.spec), &spec); err != nil {
				t.Fatal(err)
			}
			_, err := contracts.Generate(product, contracts.Port{Name: "p", Topic: "t", Subject: "t-value", Schema: s, Spec: spec})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

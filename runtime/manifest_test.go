package runtime

import (
	"errors"

	"github.com/meshlet/meshlet/cdc"
	"os"
	"strings"
	"testing"
)

const goodManifest = `apiVersion: v1.0.0
kind: DataProduct
id: urn:dataproduct:inventory:products
name: Inventory products
domain: inventory
inputPorts:
  - name: products-cdc
    topic: dbserver1.inventory.products
    format: debezium-json
outputPorts:
  - name: products
    topic: inventory.products.v1
    schema: schemas/product.avsc
`

func TestManifestDefaults(t *testing.T) {
	m, err := ParseManifest("product.yaml", []byte(goodManifest))
	if err != nil {
		t.Fatal(err)
	}
	out := m.OutputPorts[0]
	if out.Subject != "inventory.products.v1-value" {
		t.Errorf("subject default = %q, want the TopicName strategy's inventory.products.v1-value", out.Subject)
	}
	if out.Compatibility != "BACKWARD" {
		t.Errorf("compatibility default = %q, want BACKWARD", out.Compatibility)
	}
	if m.DeadLetter.Topic != "inventory.products.v1.dlq" {
		t.Errorf("dead-letter default = %q", m.DeadLetter.Topic)
	}
}

func TestManifestErrorsNameFileLineFieldAndFix(t *testing.T) {
	tests := []struct {
		name     string
		from, to string // replace in goodManifest
		want     string // the whole first error line
	}{
		{"unknown format", "format: debezium-json", "format: debezium-xml",
			`product.yaml:9: inputPorts[0].format: is "debezium-xml"; known formats: ` + strings.Join(cdc.Formats(), ", ")},
		{"id not a URN", "id: urn:dataproduct:inventory:products", "id: products",
			`product.yaml:3: id: is "products"; want a URN such as urn:dataproduct:inventory:products`},
		{"schema not avsc", "schema: schemas/product.avsc", "schema: schemas/product.json",
			`product.yaml:13: outputPorts[0].schema: is "schemas/product.json"; want the path of an Avro schema file (.avsc) relative to the manifest`},
		{"missing domain", "domain: inventory\n", "",
			`product.yaml: domain: is missing; name the business domain that owns the product, e.g. inventory`},
		{"reads its own output", "topic: dbserver1.inventory.products", "topic: inventory.products.v1",
			`product.yaml:8: inputPorts[0].topic: "inventory.products.v1" is also written by this product; reading your own output would loop`},
		{"whole transactions without their topic", "format: debezium-json", "format: debezium-json\n    transactions: whole",
			`product.yaml:7: inputPorts[0].transactionTopic: is ""; want the connector's transaction topic, <topic.prefix>.transaction (e.g. dbserver1.transaction)`},
		{"whole transactions of a format without them", "format: debezium-json", "format: canal-json\n    transactions: whole\n    transactionTopic: dbserver1.transaction",
			`product.yaml:10: inputPorts[0].transactions: whole needs Debezium's transaction metadata; format canal-json has none`},
		{"unknown transactions mode", "format: debezium-json", "format: debezium-json\n    transactions: all",
			`product.yaml:10: inputPorts[0].transactions: is "all"; want whole, or leave it out`},
		{"unknown policy action", "schema: schemas/product.avsc", "schema: schemas/product.avsc\n    policy:\n      actions:\n        pii: hide",
			`product.yaml:16: outputPorts[0].policy.actions.pii: is "hide"; want pass, mask or drop`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(goodManifest, tt.from, tt.to, 1)
			if text == goodManifest {
				t.Fatal("test case does not change the manifest")
			}
			_, err := ParseManifest("product.yaml", []byte(text))
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *ManifestError", err)
			}
			if got := strings.Split(err.Error(), "\n")[0]; got != tt.want {
				t.Fatalf("error\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestManifestRejectsUnknownFields(t *testing.T) {
	_, err := ParseManifest("product.yaml", []byte(strings.Replace(goodManifest, "domain:", "domian:", 1)))
	if err == nil || !strings.Contains(err.Error(), "product.yaml") || !strings.Contains(err.Error(), "domian") {
		t.Fatalf("err = %v, want one naming the file and the misspelt field", err)
	}
	tests := []struct {
		name, from, to, want string
	}{
		{"top-level key, nearest known", "outputPorts:", "outputPort:", "product.yaml:10: outputPort: unknown field; did you mean outputPorts?"},
		{"nested key", "    format: debezium-json", "    fromat: debezium-json", "product.yaml:9: inputPorts[0].fromat: unknown field; did you mean format?"},
		{"case only", "domain: inventory", "Domain: inventory", "product.yaml:5: Domain: unknown field; did you mean domain?"},
		{"nothing near", "domain: inventory", "domain: inventory\nzzzzzzzz: 1", "product.yaml:6: zzzzzzzz: unknown field; known here: apiVersion, deadLetter, description"},
		{"a type, said in words", "name: Inventory products", "name: [Inventory, products]", "product.yaml:4: name: is a list; want text"},
		{"a list where a mapping goes", "domain: inventory\n", "domain: inventory\nteam: [a]\n", "product.yaml:6: team: is a list; want a mapping (key: value)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(goodManifest, tt.from, tt.to, 1)
			if text == goodManifest {
				t.Fatal("test case does not change the manifest")
			}
			_, err := ParseManifest("product.yaml", []byte(text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err:\n%v\nwant a line with %q", err, tt.want)
			}
			for _, goName := range []string{"runtime.", "Manifest", "InputPort", "string", "int32"} {
				if strings.Contains(err.Error(), goName) && !strings.Contains(tt.want, goName) {
					t.Errorf("error names a Go type (%s): %v", goName, err)
				}
			}
		})
	}
}

func TestManifestReportsEveryProblem(t *testing.T) {
	_, err := ParseManifest("p.yaml", []byte("apiVersion: v1.0.0\n"))
	if err == nil {
		t.Fatal("empty manifest accepted")
	}
	for _, field := range []string{"id", "name", "domain", "inputPorts", "outputPorts", "deadLetter.topic"} {
		if !strings.Contains(err.Error(), "p.yaml: "+field+":") {
			t.Errorf("no error for %s in:\n%v", field, err)
		}
	}
}

func TestExampleManifestIsValid(t *testing.T) {
	data, err := os.ReadFile("../examples/inventory/products/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseManifest("product.yaml", data); err != nil {
		t.Fatal(err)
	}
}

package contracts_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/schemas"
)

const serverRow = `{"type":"record","name":"Thing","namespace":"t","fields":[{"name":"id","type":"long"}]}`

func generateWithServers(t *testing.T, servers ...contracts.Server) (*contracts.Contract, error) {
	t.Helper()
	s, err := schemas.Parse("thing.avsc", serverRow)
	if err != nil {
		t.Fatal(err)
	}
	return contracts.Generate(contracts.Product{ID: "urn:dataproduct:t:things", Name: "Things", Version: "1.0.0", Domain: "t"},
		contracts.Port{Name: "things", Topic: "t.things.v1", Subject: "t.things.v1-value", Schema: s, Spec: contracts.Spec{Servers: servers}})
}

// TestGeneratedServersValidate: the servers a product's snapshot ports
// become are valid ODCS (checked against the vendored JSON Schema), and
// read back as written.
func TestGeneratedServersValidate(t *testing.T) {
	props := []contracts.CustomProperty{{Property: "every", Value: "1h"}, {Property: "retain", Value: 30}}
	c, err := generateWithServers(t,
		contracts.Server{Server: "daily", Type: "local", Path: "/srv/snapshots/things/", Format: "parquet", CustomProperties: props},
		contracts.Server{Server: "lake", Type: "s3", Location: "s3://lake/things/", EndpointURL: "https://minio.example.com", Format: "parquet"},
		contracts.Server{Server: "other", Type: "custom", Location: "gs://lake/things/", Format: "parquet"},
	)
	if err != nil {
		t.Fatal(err)
	}
	text, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if err := contracts.Validate(text); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	back, err := contracts.Parse("generated", text)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Servers) != 3 || back.Servers[0].Path != "/srv/snapshots/things/" || back.Servers[1].EndpointURL != "https://minio.example.com" ||
		back.Servers[0].CustomProperties[1].Value != 30 {
		t.Fatalf("servers read back as %+v\n%s", back.Servers, text)
	}
}

// TestGenerateRefusesBadServers: a server ODCS refuses (a local one needs a
// format) fails generation with ODCS's reason, and ids must be unique.
func TestGenerateRefusesBadServers(t *testing.T) {
	_, err := generateWithServers(t, contracts.Server{Server: "daily", Type: "local", Path: "/srv/x"})
	if !errors.Is(err, contracts.ErrInvalid) || !strings.Contains(err.Error(), "servers[0]") || !strings.Contains(err.Error(), "format") {
		t.Fatalf("a local server without a format: %v", err)
	}
	_, err = generateWithServers(t, contracts.Server{Server: "a", Type: "custom"}, contracts.Server{Server: "a", Type: "custom"})
	if err == nil || !strings.Contains(err.Error(), `server "a"`) {
		t.Fatalf("two servers named a: %v", err)
	}
}

package control

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const testProduct = "urn:dataproduct:inventory:products"

// validCommand is a well-formed command of kind k.
func validCommand(k Kind) Command {
	c := Command{
		ID:       NewID(),
		Kind:     k,
		Product:  testProduct,
		Issuer:   Issuer{Name: "alice", Role: "operator"},
		IssuedAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
	}
	switch k {
	case KindReprocess:
		c.Reprocess = &Reprocess{Topic: "inventory.products", Partition: 2, Offset: 1042}
	case KindPolicy:
		c.Policy = &Policy{Actions: map[string]string{"restricted": "mask", "email": "drop"}}
	case KindForget:
		c.Forget = &Forget{Subject: "customer-42"}
	case KindSnapshot:
		c.Snapshot = &Snapshot{Port: "products-daily"}
	}
	return c
}

// fields lists the Field of every *FieldError in err.
func fields(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*FieldError); ok {
			out = append(out, fe.Field)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

func TestValidateAcceptsEveryKind(t *testing.T) {
	for _, k := range kinds {
		if err := validCommand(k).Validate(); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}

func TestValidateSnapshotWithoutPort(t *testing.T) {
	c := validCommand(KindSnapshot)
	c.Snapshot = nil // every snapshot port
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  Kind
		edit  func(*Command)
		field string
	}{
		{"no id", KindPause, func(c *Command) { c.ID = "" }, "id"},
		{"id with space", KindPause, func(c *Command) { c.ID = "a b" }, "id"},
		{"id too long", KindPause, func(c *Command) { c.ID = strings.Repeat("x", maxIDLen+1) }, "id"},
		{"no kind", KindPause, func(c *Command) { c.Kind = "" }, "kind"},
		{"unknown kind", KindPause, func(c *Command) { c.Kind = "restart" }, "kind"},
		{"product not a URN", KindPause, func(c *Command) { c.Product = "products" }, "product"},
		{"reprocess missing", KindReprocess, func(c *Command) { c.Reprocess = nil }, "reprocess"},
		{"reprocess bad topic", KindReprocess, func(c *Command) { c.Reprocess.Topic = "no spaces allowed" }, "reprocess.topic"},
		{"reprocess negative partition", KindReprocess, func(c *Command) { c.Reprocess.Partition = -1 }, "reprocess.partition"},
		{"reprocess negative offset", KindReprocess, func(c *Command) { c.Reprocess.Offset = -2 }, "reprocess.offset"},
		{"reprocess on pause", KindPause, func(c *Command) { c.Reprocess = &Reprocess{Topic: "t"} }, "reprocess"},
		{"policy missing", KindPolicy, func(c *Command) { c.Policy = nil }, "policy"},
		{"policy empty", KindPolicy, func(c *Command) { c.Policy.Actions = nil }, "policy.actions"},
		{"policy empty name", KindPolicy, func(c *Command) { c.Policy.Actions = map[string]string{" ": "mask"} }, "policy.actions"},
		{"policy empty action", KindPolicy, func(c *Command) { c.Policy.Actions["email"] = "" }, "policy.actions.email"},
		{"policy on forget", KindForget, func(c *Command) { c.Policy = &Policy{} }, "policy"},
		{"forget missing", KindForget, func(c *Command) { c.Forget = nil }, "forget"},
		{"forget empty subject", KindForget, func(c *Command) { c.Forget.Subject = " " }, "forget.subject"},
		{"forget on resume", KindResume, func(c *Command) { c.Forget = &Forget{Subject: "x"} }, "forget"},
		{"snapshot port with blanks", KindSnapshot, func(c *Command) { c.Snapshot.Port = " daily" }, "snapshot.port"},
		{"snapshot on pause", KindPause, func(c *Command) { c.Snapshot = &Snapshot{} }, "snapshot"},
		{"no issuer name", KindPause, func(c *Command) { c.Issuer.Name = "" }, "issuer.name"},
		{"no issuer role", KindPause, func(c *Command) { c.Issuer.Role = "" }, "issuer.role"},
		{"no issued_at", KindPause, func(c *Command) { c.IssuedAt = time.Time{} }, "issued_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validCommand(tc.kind)
			tc.edit(&c)
			err := c.Validate()
			if got := fields(err); !slices.Equal(got, []string{tc.field}) {
				t.Fatalf("fields %v, want [%s] (error: %v)", got, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	got := fields(Command{}.Validate())
	want := []string{"id", "kind", "product", "issuer.name", "issuer.role", "issued_at"}
	if !slices.Equal(got, want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
}

func TestDecodeCommand(t *testing.T) {
	for _, tc := range []struct {
		name, payload, id string
		ok                bool
	}{
		{"well formed", `{"id":"c1","kind":"pause","product":"` + testProduct + `","issuer":{"name":"a","role":"r"},"issued_at":"2026-03-01T12:00:00Z"}`, "c1", true},
		{"unknown field keeps the id", `{"id":"c2","kind":"pause","force":true}`, "c2", false},
		{"wrong type keeps the id", `{"id":"c3","reprocess":{"offset":"ten"}}`, "c3", false},
		{"trailing data", `{"id":"c4"} {}`, "c4", false},
		{"not json", `pause everything`, "", false},
		{"no id", `{"kind":"pause","force":1}`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, id, err := decodeCommand([]byte(tc.payload))
			if id != tc.id || (err == nil) != tc.ok {
				t.Fatalf("id %q err %v; want id %q ok %v", id, err, tc.id, tc.ok)
			}
		})
	}
}

func TestFieldErrorIsReachable(t *testing.T) {
	c := validCommand(KindForget)
	c.Forget.Subject = ""
	var fe *FieldError
	if err := c.Validate(); !errors.As(err, &fe) || fe.Field != "forget.subject" {
		t.Fatalf("errors.As gave %+v from %v", fe, err)
	}
}

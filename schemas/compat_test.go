package schemas

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// The subject history every matrix cell starts from. Each step is FULL
// compatible with the one before (so the history could have been
// registered under any level), yet v1 differs from v3 in two ways that only
// the transitive levels see:
//
//   - v1 declared note without a default; v2 gave it one.
//   - v1 had region as an int (default 0); v2 dropped it.
const (
	fID        = `{"name": "id", "type": "long"}`
	fName      = `{"name": "name", "type": "string"}`
	fQuantity  = `{"name": "quantity", "type": "int"}`
	fNoteReq   = `{"name": "note", "type": "string"}`
	fNote      = `{"name": "note", "type": "string", "default": ""}`
	fRegionInt = `{"name": "region", "type": "int", "default": 0}`
	fDisc      = `{"name": "discontinued", "type": "boolean", "default": false}`
)

func itemSchema(fields ...string) string {
	return `{"type": "record", "name": "Item", "namespace": "shop", "fields": [` + strings.Join(fields, ", ") + `]}`
}

var history = []string{
	itemSchema(fID, fName, fQuantity, fNoteReq, fRegionInt), // v1
	itemSchema(fID, fName, fQuantity, fNote),                // v2
	itemSchema(fID, fName, fQuantity, fNote, fDisc),         // v3, the latest
}

// matrixLevels is the column order of the matrix below.
var matrixLevels = []Compat{CompatBackward, CompatBackwardTransitive, CompatForward, CompatForwardTransitive,
	CompatFull, CompatFullTransitive, CompatNone}

// ok marks an accepted cell; a refused cell is "<version>:<field>", the
// version and field the refusal must name.
const ok = ""

// compatMatrix is written from the Avro specification's resolution rules,
// not from running the code: BACKWARD asks "can the new schema read the
// old data", FORWARD "can the old schema read the new data"; a reader
// ignores writer fields it does not declare, fills fields the writer lacks
// from its defaults (and fails without one), and accepts a writer int as
// long, float or double.
var compatMatrix = []struct {
	change string
	next   string
	want   [7]string // in matrixLevels order
}{
	{"add optional field (with default)",
		itemSchema(fID, fName, fQuantity, fNote, fDisc, `{"name": "color", "type": ["null", "string"], "default": null}`),
		[7]string{ok, ok, ok, ok, ok, ok, ok}},
	// Old readers ignore the new field, so every FORWARD level accepts it.
	{"add required field (no default)",
		itemSchema(fID, fName, fQuantity, fNote, fDisc, `{"name": "sku", "type": "string"}`),
		[7]string{"3:sku", "3:sku", ok, ok, "3:sku", "3:sku", ok}},
	// Surprising: FORWARD accepts, FORWARD_TRANSITIVE refuses. v3 fills the
	// missing note from its default, but v1 declared note without one.
	{"remove field (with default)",
		itemSchema(fID, fName, fQuantity, fDisc),
		[7]string{ok, ok, ok, "1:note", ok, "1:note", ok}},
	{"remove field (without default)",
		itemSchema(fID, fQuantity, fNote, fDisc),
		[7]string{ok, ok, "3:name", "3:name", "3:name", "3:name", ok}},
	// Promotion is one-way: a long reader reads an int, an int reader
	// cannot read a long.
	{"widen int to long",
		itemSchema(fID, fName, `{"name": "quantity", "type": "long"}`, fNote, fDisc),
		[7]string{ok, ok, "3:quantity", "3:quantity", "3:quantity", "3:quantity", ok}},
	// Surprising to many: a rename with an alias is backward-only. Aliases
	// are read by the reader only, so the new schema finds "name" through
	// its alias, but an old reader looking for "name" finds only "title".
	{"rename with alias",
		itemSchema(fID, `{"name": "title", "type": "string", "aliases": ["name"]}`, fQuantity, fNote, fDisc),
		[7]string{ok, ok, "3:name", "3:name", "3:name", "3:name", ok}},
	// What the transitive levels are for: reusing the name of a field
	// removed in v2 with another type is fine against v3 and breaks v1,
	// whose data holds an int there and whose readers expect one.
	{"re-add a removed field with another type",
		itemSchema(fID, fName, fQuantity, fNote, fDisc, `{"name": "region", "type": ["null", "string"], "default": null}`),
		[7]string{ok, "1:region", ok, "1:region", ok, "1:region", ok}},
}

func TestCompatibilityMatrix(t *testing.T) {
	ctx := context.Background()
	r := startRegistry(t)
	for ci, c := range compatMatrix {
		next, err := Parse(c.change, c.next)
		if err != nil {
			t.Fatal(err)
		}
		for li, level := range matrixLevels {
			want := c.want[li]
			t.Run(string(level)+"/"+c.change, func(t *testing.T) {
				subject := fmt.Sprintf("matrix-%d-%d-value", ci, li)
				var ids []int
				for v, text := range history {
					old, err := Parse(fmt.Sprintf("v%d", v+1), text)
					if err != nil {
						t.Fatal(err)
					}
					id, err := r.Register(ctx, subject, old, CompatNone)
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, id)
				}

				id, err := r.Register(ctx, subject, next, level)
				versions, verr := r.Client().SubjectVersions(ctx, subject)
				if verr != nil {
					t.Fatal(verr)
				}
				if hambaAccepts(t, level, c.next) != (want == ok) {
					t.Errorf("hamba's checker disagrees with the expected cell %q", want)
				}
				if want == ok {
					if err != nil {
						t.Fatalf("refused, want accepted: %v", err)
					}
					if len(versions) != 4 || id == ids[2] {
						t.Errorf("versions %v, id %d: want a fourth version with a new id", versions, id)
					}
					return
				}
				if err == nil {
					t.Fatalf("accepted as id %d, want refused naming %s", id, want)
				}
				t.Log(err)
				var ce *CompatError
				if !errors.As(err, &ce) || !errors.Is(err, ErrIncompatible) {
					t.Fatalf("err = %v (%T), want a *CompatError matching ErrIncompatible", err, err)
				}
				version, field, _ := strings.Cut(want, ":")
				for _, part := range []string{"subject " + subject, string(level) + ":", "version " + version, fmt.Sprintf("field %q", field)} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %q", err, part)
					}
				}
				if len(versions) != 3 {
					t.Errorf("versions = %v: the refused schema was registered", versions)
				}
			})
		}
	}
}

// hambaAccepts is an independent oracle: hamba's own compatibility check
// over the pairs the level compares.
func hambaAccepts(t *testing.T, level Compat, next string) bool {
	t.Helper()
	parse := func(text string) avro.Schema {
		s, err := Parse("oracle", text)
		if err != nil {
			t.Fatal(err)
		}
		return s.pub
	}
	rule := compatRules[level]
	olds := history[len(history)-1:]
	if rule.transitive {
		olds = history
	}
	n := parse(next)
	for _, o := range olds {
		old := parse(o)
		if rule.backward && avro.NewSchemaCompatibility().Compatible(n, old) != nil {
			return false
		}
		if rule.forward && avro.NewSchemaCompatibility().Compatible(old, n) != nil {
			return false
		}
	}
	return true
}

func TestCompatErrorMessage(t *testing.T) {
	ctx := context.Background()
	r := startRegistry(t)
	subject := "inventory.products.v1-value"
	for v, text := range history {
		s, err := Parse(fmt.Sprint(v), text)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Register(ctx, subject, s, CompatBackward); err != nil {
			t.Fatalf("v%d: %v", v+1, err)
		}
	}
	next, err := Parse("next", itemSchema(fID, fName, fQuantity, fNote, fDisc, `{"name": "sku", "type": "string"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Register(ctx, subject, next, CompatBackward)
	want := `subject inventory.products.v1-value: BACKWARD: new schema cannot read version 3: field "sku" has no default (added required field)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}

	res, err := r.Check(ctx, subject, next, CompatFullTransitive)
	if err != nil {
		t.Fatal(err)
	}
	if res.Next != 4 || len(res.Compared) != 3 || res.Compared[0].Version != 3 || res.Registered != nil {
		t.Errorf("Check = %+v, want versions 3, 2, 1 compared and version 4 next", res)
	}
	// The required sku breaks the backward half against every version.
	if len(res.Refusals) != 3 {
		t.Errorf("%d refusals, want 3: %v", len(res.Refusals), res.Refusals)
	}
}

// TestMismatchMessages pins the wording of each rule broken, since users
// read these when a deploy is refused.
func TestMismatchMessages(t *testing.T) {
	tests := []struct {
		name           string
		reader, writer string
		want           string
	}{
		{"removed without default, read by old", itemSchema(fID, fName), itemSchema(fID),
			`field "name" has no default in version 3 (removed field without default)`},
		{"renamed, read by old", itemSchema(fID, fName), itemSchema(fID, `{"name": "title", "type": "string", "aliases": ["name"]}`),
			`field "name" has no default in version 3 (renamed to "title"; aliases only help readers of the new schema)`},
		{"narrowed", itemSchema(`{"name": "id", "type": "int"}`), itemSchema(fID),
			`field "id": the new schema wrote long, version 3 reads int (no promotion from long to int)`},
		{"null branch", itemSchema(fNoteReq), itemSchema(`{"name": "note", "type": ["null", "string"], "default": null}`),
			`field "note": the new schema may write null (a branch of its union), which version 3 cannot read as string`},
		{"enum symbol",
			itemSchema(`{"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["NEW", "DONE"]}}`),
			itemSchema(`{"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["NEW", "DONE", "LOST"]}}`),
			`field "state": the new schema may write symbol "LOST", which version 3's enum shop.State lacks and it has no default`},
		{"nested record field",
			itemSchema(`{"name": "dims", "type": ["null", {"type": "record", "name": "Dims", "fields": [{"name": "w", "type": "int"}, {"name": "h", "type": "int"}]}], "default": null}`),
			itemSchema(`{"name": "dims", "type": ["null", {"type": "record", "name": "Dims", "fields": [{"name": "w", "type": "int"}]}], "default": null}`),
			`field "dims.h" has no default in version 3 (removed field without default)`},
		{"array items",
			itemSchema(`{"name": "tags", "type": {"type": "array", "items": "int"}}`),
			itemSchema(`{"name": "tags", "type": {"type": "array", "items": "string"}}`),
			`field "tags[]": the new schema wrote string, version 3 reads int (no promotion from string to int)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reader, err := Parse("reader", tt.reader)
			if err != nil {
				t.Fatal(err)
			}
			writer, err := Parse("writer", tt.writer)
			if err != nil {
				t.Fatal(err)
			}
			ms := resolve(reader.pub, writer.pub)
			if len(ms) == 0 {
				t.Fatal("compatible, want a mismatch")
			}
			e := &CompatError{Subject: "s", Level: CompatForward, Version: 3, Forward: true, Mismatch: ms[0]}
			if got := e.Error(); !strings.HasSuffix(got, tt.want) {
				t.Errorf("got  %s\nwant ...%s", got, tt.want)
			}
			if avro.NewSchemaCompatibility().Compatible(reader.pub, writer.pub) == nil {
				t.Error("hamba's checker calls the pair compatible")
			}
		})
	}
}

func TestCompatLevels(t *testing.T) {
	for _, l := range Compats() {
		if got, err := ParseCompat(string(l)); err != nil || got != l {
			t.Errorf("ParseCompat(%s) = %s, %v", l, got, err)
		}
	}
	_, err := ParseCompat("backward")
	if err == nil {
		t.Fatal("lower-case level accepted; Confluent's names are upper case")
	}
	for _, l := range Compats() {
		if !strings.Contains(err.Error(), string(l)) {
			t.Errorf("error %q does not list %s", err, l)
		}
	}
	r := startRegistry(t)
	if _, err := r.Register(context.Background(), "s", loadOrder(t), "SIDEWAYS"); err == nil || !strings.Contains(err.Error(), "FULL_TRANSITIVE") {
		t.Errorf("Register with an unknown level: %v", err)
	}
}

func TestSubjectFor(t *testing.T) {
	s := loadOrder(t)
	tests := []struct {
		strategy SubjectNaming
		want     string
	}{
		{"", "orders-value"},
		{TopicName, "orders-value"},
		{RecordName, "com.example.shop.Order"},
		{TopicRecordName, "orders-com.example.shop.Order"},
		{"io.confluent.kafka.serializers.subject.TopicRecordNameStrategy", "orders-com.example.shop.Order"},
	}
	for _, tt := range tests {
		got, err := SubjectFor(tt.strategy, "orders", s)
		if err != nil || got != tt.want {
			t.Errorf("SubjectFor(%q) = %q, %v; want %q", tt.strategy, got, err, tt.want)
		}
	}
	if _, err := SubjectFor("TopicNameStrategy", "orders", s); err == nil {
		t.Error("unknown strategy accepted")
	}
	if _, err := SubjectFor(TopicName, "", s); err == nil {
		t.Error("empty topic accepted")
	}
}

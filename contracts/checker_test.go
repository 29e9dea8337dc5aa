package contracts_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshlet/meshlet/contracts"
)

// order is a handler's output struct, as meshlet gen writes them.
type order struct {
	OrderID  string  `avro:"order_id"`
	Email    *string `avro:"customer_email"`
	Currency string  `avro:"currency"`
	Amount   int64   `avro:"amount_cents"`
	Note     *string `avro:"note"`
}

func str(s string) *string { return &s }

// checker builds a Checker from one property's quality rules in YAML.
func checker(t testing.TB, field, rules string) *contracts.Checker {
	t.Helper()
	indented := "          " + strings.ReplaceAll(strings.TrimSpace(rules), "\n", "\n          ")
	text := fmt.Sprintf(`apiVersion: v3.1.0
kind: DataContract
id: c
version: 1.0.0
status: active
schema:
  - name: orders
    properties:
      - name: order_id
      - name: customer_email
      - name: currency
      - name: amount_cents
      - name: note
      - name: %s
        quality:
%s
`, field, indented)
	c, err := contracts.Parse("test", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	ch, err := contracts.NewChecker(c, "orders")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestEachRuleCatchesItsViolation(t *testing.T) {
	clean := order{OrderID: "o-1", Email: str("a@example.com"), Currency: "EUR", Amount: 1999, Note: str("leave at the door")}
	tests := []struct {
		name  string
		field string
		rules string
		bad   func(o *order)
		want  string // in the violation's message
	}{
		{"nullValues", "customer_email", "- metric: nullValues\n  mustBe: 0",
			func(o *order) { o.Email = nil }, "customer_email is null; the contract allows none"},
		{"missingValues", "note", "- metric: missingValues\n  arguments:\n    missingValues: [null, '', N/A]\n  mustBe: 0",
			func(o *order) { o.Note = str("N/A") }, `note is "N/A", which counts as missing`},
		{"invalidValues validValues", "currency", "- metric: invalidValues\n  arguments:\n    validValues: [EUR, USD]\n  mustBe: 0",
			func(o *order) { o.Currency = "XXX" }, `currency "XXX" is not one of the valid values`},
		{"invalidValues pattern", "order_id", "- metric: invalidValues\n  arguments:\n    pattern: '^o-[0-9]+$'\n  mustBe: 0",
			func(o *order) { o.OrderID = "x-1" }, `order_id "x-1" does not match ^o-[0-9]+$`},
		{"range mustBeGreaterOrEqualTo", "amount_cents", "- metric: invalidValues\n  arguments:\n    mustBeGreaterOrEqualTo: 0\n  mustBe: 0",
			func(o *order) { o.Amount = -1 }, "amount_cents -1 is below the allowed range (>= 0)"},
		{"range mustBeLessThan", "amount_cents", "- metric: invalidValues\n  arguments:\n    mustBeLessThan: 10000\n  mustBe: 0",
			func(o *order) { o.Amount = 10000 }, "amount_cents 10000 is above the allowed range (< 10000)"},
		{"range mustBeBetween", "amount_cents", "- metric: invalidValues\n  arguments:\n    mustBeBetween: [1, 5000]\n  mustBe: 0",
			func(o *order) { o.Amount = 0 }, "amount_cents 0 is below the allowed range (>= 1)"},
		{"range mustBeGreaterThan", "amount_cents", "- metric: invalidValues\n  arguments:\n    mustBeGreaterThan: 0\n  mustBe: 0",
			func(o *order) { o.Amount = 0 }, "amount_cents 0 is below the allowed range (> 0)"},
		{"range mustBeLessOrEqualTo", "amount_cents", "- metric: invalidValues\n  arguments:\n    mustBeLessOrEqualTo: 2000\n  mustBe: 0",
			func(o *order) { o.Amount = 2001 }, "amount_cents 2001 is above the allowed range (<= 2000)"},
	}
	for _, tt := range tests {
		for _, form := range []string{"struct", "map"} {
			t.Run(tt.name+"/"+form, func(t *testing.T) {
				ch := checker(t, tt.field, tt.rules)
				row := func(o order) any {
					if form == "struct" {
						return o
					}
					m := map[string]any{"order_id": o.OrderID, "currency": o.Currency, "amount_cents": o.Amount, "customer_email": nil, "note": nil}
					if o.Email != nil {
						m["customer_email"] = *o.Email
					}
					if o.Note != nil {
						m["note"] = *o.Note
					}
					return m
				}
				for i := range 3 {
					vs, err := ch.Check(fmt.Sprint("k", i), row(clean), nil)
					if err != nil || len(vs) != 0 {
						t.Fatalf("clean record: %v %v", vs, err)
					}
				}
				bad := clean
				tt.bad(&bad)
				vs, err := ch.Check("k9", row(bad), nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(vs) != 1 || !strings.Contains(vs[0].Message, tt.want) || vs[0].Field != tt.field {
					t.Fatalf("violations = %+v\nwant one on %s saying %q", vs, tt.field, tt.want)
				}
				st := ch.Stats()[0]
				if st.Checked != 4 || st.Bad != 1 || st.Violations != 1 || st.Object != "orders" {
					t.Errorf("stats = %+v", st)
				}
			})
		}
	}
}

func TestDuplicateValues(t *testing.T) {
	ch := checker(t, "customer_email", "- metric: duplicateValues\n  mustBe: 0\n  arguments:\n    window: 3")
	check := func(key, email string) []contracts.Violation {
		t.Helper()
		vs, err := ch.Check(key, order{Email: str(email)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	steps := []struct {
		key, email string
		dup        bool
		why        string
	}{
		{"1", "a@x", false, "first holder"},
		{"1", "a@x", false, "a new version of the same entity keeps its value"},
		{"2", "a@x", true, "another entity takes the value"},
		{"1", "b@x", false, "entity 1 moves to b@x and releases a@x"},
		{"3", "a@x", false, "a@x is free again"},
		{"4", "b@x", true, "entity 1 holds b@x"},
	}
	for i, s := range steps {
		if vs := check(s.key, s.email); (len(vs) == 1) != s.dup {
			t.Fatalf("step %d (%s): violations %v", i, s.why, vs)
		}
	}
	ch.Retract("1")
	if vs := check("5", "b@x"); len(vs) != 0 {
		t.Fatalf("after entity 1 was retracted, b@x is free: %v", vs)
	}
	// Window 3: entities 6, 7, 8 push 3 and 5 out, so a@x is free again.
	check("6", "c@x")
	check("7", "d@x")
	check("8", "e@x")
	if vs := check("9", "a@x"); len(vs) != 0 {
		t.Fatalf("a@x's holder left the window: %v", vs)
	}
	// Nulls are nobody's value.
	for _, k := range []string{"10", "11"} {
		if vs, _ := ch.Check(k, order{}, nil); len(vs) != 0 {
			t.Fatalf("null counted as a duplicate: %v", vs)
		}
	}
}

func TestDuplicateValuesOverSeveralFields(t *testing.T) {
	text := `apiVersion: v3.1.0
kind: DataContract
id: c
version: 1.0.0
status: active
schema:
  - name: orders
    properties: [{name: order_id}, {name: currency}]
    quality:
      - metric: duplicateValues
        mustBe: 0
        arguments:
          properties: [order_id, currency]
`
	c, err := contracts.Parse("t", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := contracts.NewChecker(c, "")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range []struct {
		key, id, cur string
		dup          bool
	}{{"1", "o", "EUR", false}, {"2", "o", "USD", false}, {"3", "o", "EUR", true}} {
		vs, err := ch.Check(r.key, map[string]any{"order_id": r.id, "currency": r.cur}, nil)
		if err != nil || (len(vs) == 1) != r.dup {
			t.Fatalf("record %d: %v %v", i, vs, err)
		}
		if r.dup && vs[0].Field != "order_id,currency" {
			t.Errorf("field = %q", vs[0].Field)
		}
	}
}

// TestThresholds: the operator sets how many bad records a window
// tolerates; the rest are violations, and a new window starts afresh.
func TestThresholds(t *testing.T) {
	tests := []struct {
		name  string
		rule  string
		nulls []bool // per record: is customer_email null
		want  []bool // per record: a violation
	}{
		{"mustBeLessThan 3 rows, window 5",
			"- metric: nullValues\n  mustBeLessThan: 3\n  arguments: {window: 5}",
			[]bool{true, true, true, false, true, true, true, true},
			[]bool{false, false, true, false, true, false, false, true}},
		{"mustBeLessOrEqualTo 1",
			"- metric: nullValues\n  mustBeLessOrEqualTo: 1\n  arguments: {window: 4}",
			[]bool{true, true, false, false, true},
			[]bool{false, true, false, false, false}},
		{"mustBeBetween [0, 1]",
			"- metric: nullValues\n  mustBeBetween: [0, 1]\n  arguments: {window: 100}",
			[]bool{true, false, true},
			[]bool{false, false, true}},
		{"10 percent of a window of 10 tolerates 1",
			"- metric: nullValues\n  mustBeLessOrEqualTo: 10\n  unit: percent\n  arguments: {window: 10}",
			[]bool{true, false, true, true},
			[]bool{false, false, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := checker(t, "customer_email", tt.rule)
			for i, isNull := range tt.nulls {
				o := order{Email: str("a@x")}
				if isNull {
					o.Email = nil
				}
				vs, err := ch.Check(fmt.Sprint(i), &o, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(vs) == 1; got != tt.want[i] {
					t.Fatalf("record %d: violation %v, want %v (%v)", i, got, tt.want[i], vs)
				}
			}
		})
	}
}

func TestDeadLetterFlagAndBinding(t *testing.T) {
	ch := checker(t, "currency", `- metric: invalidValues
  arguments: {validValues: [EUR]}
  mustBe: 0
  customProperties:
    - property: meshletOnViolation
      value: deadLetter`)
	vs, err := ch.Check("k", &order{Currency: "USD"}, nil)
	if err != nil || len(vs) != 1 || !vs[0].DeadLetter || vs[0].Rule != "currency.invalidValues" {
		t.Fatalf("violations = %+v, %v", vs, err)
	}
	type wrong struct {
		OrderID string `avro:"order_id"`
	}
	if _, err := ch.Check("k", wrong{}, nil); err == nil || !strings.Contains(err.Error(), `no field tagged avro:"currency"`) {
		t.Errorf("a row type without the checked field: %v", err)
	}
	if _, err := ch.Check("k", 42, nil); err == nil {
		t.Error("a non-struct row was accepted")
	}
	bad := `apiVersion: v3.1.0
kind: DataContract
id: c
version: 1.0.0
status: active
schema:
  - name: o
    properties:
      - name: a
        quality:
          - metric: nullValues
            mustBe: 0
            customProperties: [{property: meshletOnViolation, value: explode}]
`
	c, err := contracts.Parse("t", []byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := contracts.NewChecker(c, ""); err == nil || !strings.Contains(err.Error(), "meshletOnViolation is explode") {
		t.Errorf("unknown action: %v", err)
	}
}

func BenchmarkCheck(b *testing.B) {
	ch := checker(b, "amount_cents", `- metric: invalidValues
  arguments: {mustBeBetween: [0, 100000000]}
  mustBe: 0
- metric: nullValues
  mustBe: 0`)
	o := order{OrderID: "o-1", Email: str("a@example.com"), Currency: "EUR", Amount: 1999}
	b.Run("struct", func(b *testing.B) {
		// Boxed once, as the runtime holds it (transforms.Output.Value).
		var row any = o
		b.ReportAllocs()
		var vs []contracts.Violation
		for b.Loop() {
			vs, _ = ch.Check("o-1", row, vs[:0])
		}
	})
	b.Run("pointer", func(b *testing.B) {
		b.ReportAllocs()
		var vs []contracts.Violation
		for b.Loop() {
			vs, _ = ch.Check("o-1", &o, vs[:0])
		}
	})
	m := map[string]any{"order_id": "o-1", "customer_email": "a@example.com", "currency": "EUR", "amount_cents": int64(1999)}
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		var vs []contracts.Violation
		for b.Loop() {
			vs, _ = ch.Check("o-1", m, vs[:0])
		}
	})
	dup := checker(b, "order_id", "- metric: duplicateValues\n  mustBe: 0")
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	b.Run("duplicates", func(b *testing.B) {
		b.ReportAllocs()
		var vs []contracts.Violation
		i := 0
		for b.Loop() {
			o.OrderID = keys[i%len(keys)]
			vs, _ = dup.Check(keys[i%len(keys)], &o, vs[:0])
			i++
		}
	})
}

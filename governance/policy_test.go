package governance

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// profile mixes nullable (pointer) and non-nullable fields.
type profile struct {
	ID       string     `avro:"id"`
	Email    string     `avro:"email"`
	Phone    *string    `avro:"phone"`
	Age      int32      `avro:"age"`
	Income   *float64   `avro:"income"`
	Verified bool       `avro:"verified"`
	Photo    []byte     `avro:"photo"`
	Born     time.Time  `avro:"born"`
	Nickname *string    `avro:"nickname"`
	Seen     *time.Time `avro:"seen"`
	Note     string     // untagged: Avro name "Note"
}

var profileClasses = map[string]string{
	"email": "PII", "phone": "pii", "age": "pii", "income": "restricted", "verified": "pii",
	"photo": "pii", "born": "pii", "nickname": "pii", "seen": "internal",
	"_valid_from": "public", // a meta field: in the contract, not in the row
}

func someone() profile {
	return profile{ID: "p1", Email: "eve@example.com", Phone: ptr("555"), Age: 41, Income: ptr(1e5), Verified: true,
		Photo: []byte{1, 2}, Born: time.Date(1985, 1, 2, 0, 0, 0, 0, time.UTC), Nickname: ptr("evie"), Seen: ptr(time.Unix(100, 0)), Note: "n"}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy(`
		# governance defaults
		pii = mask, restricted=drop
		field:nickname=pass   # shown on the public profile
		*=mask
	`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.String(), "pii=mask,restricted=drop,field:nickname=pass,*=mask"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		field, class string
		want         Action
	}{
		{"email", "PII", Mask},         // classifications ignore case
		{"income", "restricted", Drop}, // by classification
		{"nickname", "pii", Pass},      // a field rule wins
		{"seen", "internal", Mask},     // * covers other classified fields
		{"id", "", Pass},               // unclassified fields pass
	} {
		if got := p.Action(tc.field, tc.class); got != tc.want {
			t.Errorf("Action(%q, %q) = %s, want %s", tc.field, tc.class, got, tc.want)
		}
	}
	empty, err := ParsePolicy("")
	if err != nil || empty.Action("email", "pii") != Pass {
		t.Fatalf("empty policy: %v, %v", empty, err)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"pii", `rule 1 "pii": want TARGET=ACTION`},
		{"=mask", `rule 1 "=mask": want TARGET=ACTION`},
		{"pii=mask, pii=hide", `rule 2 "pii=hide": action "hide" is unknown; want pass, mask or drop`},
		{"pii=mask\nPII=drop", `rule 2 "PII=drop": PII already has a rule (rule 1)`},
		{"field:e-mail=drop", `"e-mail" is not an Avro field name`},
		{"field:=drop", `"" is not an Avro field name`},
		{"top secret=drop", `classification "top secret" may hold only`},
		{"*=mask,*=drop", `* already has a rule (rule 1)`},
		{"pii=Mask", `action "Mask" is unknown`},
	} {
		_, err := ParsePolicy(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePolicy(%q) = %v, want an error with %q", tc.spec, err, tc.want)
		}
	}
}

func TestPolicyApply(t *testing.T) {
	p, err := ParsePolicy("pii=mask, restricted=drop, field:nickname=drop, field:Note=mask, internal=drop")
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Bind(profile{}, profileClasses)
	if err != nil {
		t.Fatal(err)
	}
	in := someone()
	got, ok := r.Apply(in).(profile)
	if !ok {
		t.Fatalf("Apply(value) = %T, want profile", r.Apply(in))
	}
	want := profile{ID: "p1", Email: MaskedString, Phone: ptr(MaskedString), Photo: []byte{}, Note: MaskedString}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Apply =\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(in, someone()) || *in.Phone != "555" {
		t.Fatalf("Apply changed its input (or what it points to): %+v", in)
	}
	// A pointer in, a new pointer out.
	pin := ptr(someone())
	pout, ok := r.Apply(pin).(*profile)
	if !ok || pout == pin || !reflect.DeepEqual(*pout, want) || !reflect.DeepEqual(*pin, someone()) {
		t.Fatalf("Apply(pointer) = %+v", pout)
	}
	// A null stays null under a mask.
	nul := someone()
	nul.Phone = nil
	if got := r.Apply(nul).(profile); got.Phone != nil {
		t.Fatalf("masked null phone = %q", *got.Phone)
	}

	// A policy that passes everything returns the row itself.
	pass, _ := ParsePolicy("public=pass")
	pr, err := pass.Bind(&profile{}, profileClasses)
	if err != nil {
		t.Fatal(err)
	}
	if got := pr.Apply(pin); got != any(pin) {
		t.Fatal("a pass-through policy copied the row")
	}

	defer func() {
		if recover() == nil {
			t.Fatal("Apply on another type did not panic")
		}
	}()
	r.Apply(customer{})
}

func TestPolicyRefusesToDropANonNullableField(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"pii=drop", `drops field "email" (governance.profile.Email, a string), which cannot be null`},
		{"field:age=drop", `drops field "age" (governance.profile.Age, a int32)`},
		{"field:born=drop", `drops field "born"`},
		{"field:photo=drop", `drops field "photo"`},
		{"field:mail=mask", `rule field:mail: governance.profile has no field tagged avro:"mail"`},
	} {
		p, err := ParsePolicy(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Bind(profile{}, profileClasses); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Bind(%q) = %v, want an error with %q", tc.spec, err, tc.want)
		}
	}
	// Dropping nullable fields is fine.
	p, _ := ParsePolicy("field:phone=drop, field:seen=drop, restricted=drop")
	if _, err := p.Bind(profile{}, profileClasses); err != nil {
		t.Fatal(err)
	}
}

package cdc

import (
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestAppendFloat holds float rendering to encoding/json's, and checks that
// every rendering reads back to the same value.
func TestAppendFloat(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.1, 3.14, 1e20, 1e21, 1.5e-6, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-300} {
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f, 64); string(got) != string(want) {
			t.Errorf("appendFloat(%g) = %s, want %s", f, got, want)
		}
	}
	for _, f := range []float32{3.14, 0.1, 1e21, 1e-7, math.MaxFloat32} {
		want, _ := json.Marshal(f)
		got := appendFloat(nil, float64(f), 32)
		if string(got) != string(want) {
			t.Errorf("appendFloat(float32 %g) = %s, want %s", f, got, want)
		}
		var back float32
		if err := json.Unmarshal(got, &back); err != nil || back != f {
			t.Errorf("%s reads back as %g (%v)", got, back, err)
		}
	}
	for f, want := range map[float64]string{math.NaN(): `"NaN"`, math.Inf(1): `"Infinity"`, math.Inf(-1): `"-Infinity"`} {
		if got := appendFloat(nil, f, 64); string(got) != want {
			t.Errorf("appendFloat(%g) = %s, want %s", f, got, want)
		}
	}
}

func TestAppendDecimal(t *testing.T) {
	tests := []struct {
		unscaled string
		scale    int
		want     string
	}{
		{"1250", 2, "12.50"},
		{"-1234", 3, "-1.234"},
		{"5", 3, "0.005"},
		{"0", 2, "0.00"},
		{"0", -3, "0"},
		{"7", 0, "7"},
		{"7", -3, "7000"},
		{"7", -40, "7e40"},
		{"123", 40, "123e-40"},
		{"-1", 33, "-0." + strings.Repeat("0", 32) + "1"},
		{"-1", 34, "-1e-34"},
		{"123456789012345678901234567890", 10, "12345678901234567890.1234567890"},
	}
	for _, tt := range tests {
		n, _ := new(big.Int).SetString(tt.unscaled, 10)
		got := string(appendDecimal(nil, n, tt.scale))
		if got != tt.want {
			t.Errorf("appendDecimal(%s, %d) = %s, want %s", tt.unscaled, tt.scale, got, tt.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s is not a JSON number", got)
		}
	}
	// A hostile scale costs digits, not zeros.
	if got := appendDecimal(nil, big.NewInt(1), math.MaxInt32); len(got) > 20 {
		t.Errorf("scale 2^31-1 rendered in %d bytes", len(got))
	}
	for _, tt := range []struct {
		b    []byte
		want string
	}{{nil, "0"}, {[]byte{0xff}, "-1"}, {[]byte{0x80}, "-128"}, {[]byte{0x00, 0x80}, "128"}, {[]byte{0xfb, 0x2e}, "-1234"}} {
		n, err := twosComplement(tt.b)
		if err != nil || n.String() != tt.want {
			t.Errorf("twosComplement(%x) = %v, %v; want %s", tt.b, n, err, tt.want)
		}
	}
}

func TestAppendTimeOfDay(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                   `"00:00:00"`,
		56406123 * time.Millisecond:         `"15:40:06.123"`,
		-(time.Hour + time.Microsecond):     `"-01:00:00.000001"`,
		838*time.Hour + 59*time.Minute + 59: `"838:59:00.000000059"`,
		math.MinInt64:                       `"-2562047:47:16.854775808"`,
	} {
		if got := string(appendTimeOfDay(nil, d)); got != want {
			t.Errorf("appendTimeOfDay(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestParseAvroSchema(t *testing.T) {
	s, err := parseAvroSchema(`{"type":"record","name":"Envelope","namespace":"a.b","fields":[
		{"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"next","type":["null","Value"]}]}]},
		{"name":"after","type":["null","a.b.Value"]},
		{"name":"other","type":{"type":"record","name":"x.Other","fields":[{"name":"v","type":"a.b.Value"},{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}},{"name":"e2","type":"E"}]}},
		{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}},
		{"name":"m","type":{"type":"map","values":{"type":"array","items":"long"}}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if s.name != "a.b.Envelope" || len(s.fields) != 5 {
		t.Fatalf("%+v", s)
	}
	value := s.fields[0].typ.branches[1]
	if value.name != "a.b.Value" || value.fields[0].typ.branches[1] != value || s.fields[1].typ.branches[1] != value {
		t.Error("named references not resolved to the one definition")
	}
	other := s.fields[2].typ
	if other.name != "x.Other" || other.fields[1].typ.name != "x.E" || other.fields[2].typ != other.fields[1].typ {
		t.Errorf("namespace of a dotted name not applied: %q %q", other.name, other.fields[1].typ.name)
	}
	if d := s.fields[3].typ; d.kind != avroBytes || d.logical != "decimal" || d.scale != 2 || d.branchName() != "bytes.decimal" {
		t.Errorf("decimal %+v", d)
	}
	if m := s.fields[4].typ; m.kind != avroMap || m.items.kind != avroArray || m.items.items.kind != avroLong {
		t.Errorf("map %+v", m)
	}
	for _, bad := range []string{`{"type":"record","name":"R","fields":[{"name":"a","type":"Missing"}]}`, `{"type":"record","fields":[]}`, `nonsense`, `{"name":"x"}`, strings.Repeat("[", 300) + `"int"` + strings.Repeat("]", 300)} {
		if _, err := parseAvroSchema(bad); err == nil {
			t.Errorf("parseAvroSchema(%.40s) succeeded", bad)
		}
	}
}

func TestAvroValueMismatch(t *testing.T) {
	s, err := parseAvroSchema(`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"u","type":["null","string","long"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		v     map[string]any
		field string
	}{
		{map[string]any{"a": "x", "u": nil}, "a"},
		{map[string]any{"u": nil}, "a"},
		{map[string]any{"a": 1, "u": 1.5}, "u"},
		{map[string]any{"a": 1, "u": map[string]any{"boolean": true}}, "u"},
	} {
		_, err := appendAvro(nil, s, tt.v, 0)
		de, ok := err.(*DecodeError)
		if !ok || de.Field != tt.field {
			t.Errorf("%v: error %v, want one at %q", tt.v, err, tt.field)
		}
	}
	out, err := appendAvro(nil, s, map[string]any{"a": int32(1), "u": map[string]any{"long": int64(2)}}, 0)
	if err != nil || string(out) != `{"a":1,"u":2}` {
		t.Errorf("%s %v", out, err)
	}
	// A source that hands over a cyclic value hits the depth bound.
	loop := map[string]any{}
	loop["v"] = loop
	m, _ := parseAvroSchema(`{"type":"map","values":{"type":"map","values":"null"}}`)
	m.items = m // a map of maps of ...
	if _, err := appendAvro(nil, m, loop, 0); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("cyclic value: %v", err)
	}
}

func TestComparePositionsOgg(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"00000000000000000000143", "00000000000000000000144", -1},
		{"143", "00000000000000000000143", 0},
		{"00000000020030005758", "99", 1},
	} {
		if got, err := ComparePositions("ogg", Position{Trail: tt.a}, Position{Trail: tt.b}); err != nil || got != tt.want {
			t.Errorf("ComparePositions(ogg, %s, %s) = %d, %v; want %d", tt.a, tt.b, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "12a"} {
		if _, err := ComparePositions("ogg", Position{Trail: bad}, Position{Trail: "1"}); err == nil {
			t.Errorf("trail %q compared", bad)
		}
	}
	for _, c := range []string{"canal", "maxwell"} {
		if _, err := ComparePositions(c, Position{}, Position{}); err == nil {
			t.Errorf("%s positions compared", c)
		}
	}
}

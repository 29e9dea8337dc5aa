package cdc

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// productRow is the inventory example's row type.
type productRow struct {
	ID          int32    `json:"id"`
	Name        string   `json:"name"`
	Description *string  `json:"description"`
	Weight      *float64 `json:"weight"`
}

// wideRow has a field of every kind the plan reads itself, and of kinds it
// hands to encoding/json, with encoding/json's naming rules at work.
type wideRow struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Desc    *string  `json:"description"`
	Weight  *float64 `json:"weight"`
	Small   int8
	Short   int16 `json:"short,omitempty"`
	U16     uint16
	U       uint64 `json:"u"`
	UP      uintptr
	F32     float32 `json:"f32"`
	OK      bool    `json:"ok"`
	PB      *bool   `json:"pb"`
	PP      **int   `json:"pp"`
	When    time.Time
	WhenP   *time.Time      `json:"when_p"`
	Num     json.Number     `json:"num"`
	Raw     json.RawMessage `json:"raw"`
	Bytes   []byte          `json:"bytes"`
	Tags    []string        `json:"tags"`
	Attrs   map[string]any  `json:"attrs"`
	Any     any             `json:"any"`
	Text    textValue       `json:"text"`
	Nested  innerRow        `json:"nested"`
	NestedP *innerRow       `json:"nested_p"`
	Next    *wideRow        `json:"next"`
	Renamed string          `json:"Plain"` // wins over the untagged field of that name
	Plain   string
	CaseA   int    `json:"caseA"`
	CaseB   int    `json:"CASEA"` // an exact match beats the earlier fold match
	Uni     string `json:"ünïcödé"`
	K       string `json:"K"` // folds with the Kelvin sign, as encoding/json's
	Ignored string `json:"-"`
	Dash    string `json:"-,"`
	Bad     string `json:"a\\b"` // not a valid tag name: the Go name counts
	hidden  int
}

type innerRow struct {
	Zip string `json:"zip"`
	N   int    `json:"n"`
}

// textValue reads itself from text, so encoding/json gives it strings only.
type textValue struct{ S string }

func (t *textValue) UnmarshalText(b []byte) error {
	if string(b) == "bad" {
		return errors.New("bad text")
	}
	t.S = "text:" + string(b)
	return nil
}

// embeddedRow is read by encoding/json as a whole: the plan does not
// mirror its rules for promoted fields.
type embeddedRow struct {
	innerRow
	ID int `json:"id"`
}

// quotedRow is read by encoding/json as a whole for its ",string" option.
type quotedRow struct {
	ID int64 `json:"id,string"`
}

// checkRow decodes image with d and with encoding/json into fresh values
// and fails unless both reject it, or both accept it with equal results.
func checkRow[T any](t *testing.T, d *RowDecoder[T], image []byte) {
	t.Helper()
	var want, got T
	wantErr := json.Unmarshal(image, &want)
	gotErr := d.Decode(image, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%T from %q: got error %v, encoding/json %v", got, image, gotErr, wantErr)
	}
	if gotErr != nil {
		var de *DecodeError
		if !errors.As(gotErr, &de) || !errors.Is(gotErr, ErrMalformed) {
			t.Fatalf("%T from %q: error %v is not a DecodeError", got, image, gotErr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%T from %q:\n got %+v\nwant %+v", got, image, got, want)
	}
}

var rowCases = []string{
	`{"id":1001,"name":"hammer","description":"18oz carpenter hammer","weight":7.5}`,
	`{"id":1001,"name":"hammer","description":null,"weight":null}`,
	` {"weight":1,"id":-0,"name":"","description":""} `,
	`{"ID":5,"NAME":"upper","Description":"mixed","WEIGHT":2e3}`,
	`{"id":1,"id":2,"name":"a","name":null,"description":"x","description":null}`,
	`{"id":2147483647}`, `{"id":2147483648}`, `{"id":-2147483648}`, `{"id":-2147483649}`,
	`{"id":1.0}`, `{"id":1e2}`, `{"id":"1"}`, `{"id":true}`, `{"id":{}}`, `{"id":[]}`,
	`{"weight":1e400}`, `{"weight":-1e-400}`, `{"weight":123456789012345678901234567890}`, `{"weight":-0}`, `{"weight":0.1}`,
	`{"name":"a\u00e9\ud83d\ude00\ud800x\\\"\/\b\f\n\r\t"}`, "{\"name\":\"bad \xff\xfe utf8 \xed\xa0\x80\"}", `{"n\u0061me":"escaped key"}`,
	`{"name":1}`, `{"name":{"a":1}}`, `{"description":5}`, `{"id":null,"name":null}`,
	`null`, `[]`, `"row"`, `1`, `{}`, `{`, `{"id":1`, `{"id":1}x`, `{"id":01}`, `{"id":-}`, `{"id":1,}`, `{,}`,
	`{"unknown":{"deep":[1,2,{"x":null}]},"id":3}`, `{"unknown":[1,2,}`, `{"id":1 "name":"x"}`,

	`{"Small":127,"short":-32768,"U16":65535,"u":18446744073709551615,"UP":1,"f32":3.4e38}`,
	`{"Small":128}`, `{"U16":65536}`, `{"u":18446744073709551616}`, `{"u":-1}`, `{"u":-0}`, `{"f32":3.5e38}`, `{"f32":16777217}`,
	`{"ok":true,"pb":false}`, `{"ok":null,"pb":null}`, `{"ok":1}`, `{"ok":"true"}`, `{"pp":7}`, `{"pp":null}`,
	`{"When":"2020-05-13T15:40:06.123Z","when_p":"2020-05-13T17:40:06+02:00"}`, `{"When":null,"when_p":null}`, `{"When":"yesterday"}`, `{"When":5}`,
	`{"num":12.50,"raw":{"a":[1]},"bytes":"aGVsbG8=","tags":["a","b"],"attrs":{"k":1},"any":[1,"x",null]}`,
	`{"num":"12.5"}`, `{"num":"x"}`, `{"bytes":"!"}`, `{"tags":[1]}`, `{"attrs":[]}`,
	`{"text":"hi"}`, `{"text":"bad"}`, `{"text":5}`, `{"text":null}`,
	`{"nested":{"zip":"12345","n":3},"nested_p":{"zip":"z"},"next":{"id":9,"next":{"name":"deep"}}}`,
	`{"nested":null,"nested_p":null,"next":null}`, `{"nested":[],"nested_p":5}`, `{"next":{"next":{"n":"x"}}}`,
	`{"Plain":"tagged","plain":"also tagged, by folding"}`, `{"plain":"folds onto the tagged field"}`,
	`{"casea":1}`, `{"CASEA":2}`, `{"caseA":3,"casea":4}`,
	`{"ünïcödé":"exact","ÜNÏCÖDÉ":"folded"}`, "{\"\u212a\":\"kelvin\"}", `{"k":"lower"}`,
	`{"-":"dash","Ignored":"no"}`, `{"Bad":"go name","a\\b":"tag name"}`, `{"hidden":1}`,
}

func TestRowDecoderMatchesEncodingJSON(t *testing.T) {
	product, wide := NewRowDecoder[productRow](), NewRowDecoder[wideRow]()
	embedded, quoted := NewRowDecoder[embeddedRow](), NewRowDecoder[quotedRow]()
	mapped := NewRowDecoder[map[string]any]()
	if wide.plan == nil || product.plan == nil {
		t.Fatal("row types the plan covers are left to encoding/json")
	}
	if embedded.plan != nil || quoted.plan != nil || mapped.plan != nil {
		t.Fatal("row types the plan does not mirror are not left to encoding/json")
	}
	for _, c := range append(rowCases, `{"zip":"promoted","id":1}`, `{"id":"12"}`, `{"id":12}`) {
		checkRow(t, product, []byte(c))
		checkRow(t, wide, []byte(c))
		checkRow(t, embedded, []byte(c))
		checkRow(t, quoted, []byte(c))
		checkRow(t, mapped, []byte(c))
	}
}

// The fuzz corpus starts from the row images of the Flink samples.
func sampleImages(tb testing.TB) [][]byte {
	var images [][]byte
	d := decoder(tb)
	for _, file := range sampleFiles {
		for _, line := range readLines(tb, file) {
			var c Change
			if err := d.Decode(nil, line, &c); err != nil {
				tb.Fatal(err)
			}
			for _, img := range []json.RawMessage{c.Before, c.After} {
				if img != nil {
					images = append(images, img)
				}
			}
		}
	}
	return images
}

func TestRowDecoderSamples(t *testing.T) {
	d := NewRowDecoder[productRow]()
	images := sampleImages(t)
	if len(images) == 0 {
		t.Fatal("no row images in the samples")
	}
	for _, img := range images {
		checkRow(t, d, img)
	}
	// The rows are read, not just accepted: every sample row has a name.
	var r productRow
	if err := d.Decode(images[0], &r); err != nil || r.ID == 0 || r.Name == "" {
		t.Fatalf("sample row %s read as %+v (%v)", images[0], r, err)
	}
}

func TestRowDecoderErrorNamesField(t *testing.T) {
	d := NewRowDecoder[wideRow]()
	for image, field := range map[string]string{
		`{"weight":"heavy"}`:                  "weight",
		`{"nested":{"n":"x"}}`:                "nested.n",
		`{"next":{"next":{"Small":300}}}`:     "next.next.Small",
		`{"WEIGHT":"folded key, field name"}`: "weight",
	} {
		var r wideRow
		err := d.Decode([]byte(image), &r)
		var de *DecodeError
		if !errors.As(err, &de) || de.Field != field {
			t.Errorf("%s: error %v, want one naming field %q", image, err, field)
		}
	}
}

func TestRowDecoderDepth(t *testing.T) {
	d := NewRowDecoder[wideRow]()
	deep := strings.Repeat(`{"next":`, maxDepth+1) + "null" + strings.Repeat("}", maxDepth+1)
	var r wideRow
	if err := d.Decode([]byte(deep), &r); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("nesting past %d levels: %v", maxDepth, err)
	}
	ok := strings.Repeat(`{"next":`, 100) + "null" + strings.Repeat("}", 100)
	checkRow(t, d, []byte(ok))
}

func TestRowDecoderAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, so allocations are not the decoder's")
	}
	d := NewRowDecoder[productRow]()
	image := []byte(`{"id":1001,"name":"hammer","description":"18oz carpenter hammer","weight":7.5}`)
	var r productRow
	decode := testing.AllocsPerRun(1000, func() {
		r = productRow{}
		if err := d.Decode(image, &r); err != nil {
			t.Fatal(err)
		}
	})
	var kept []*productRow
	fresh := testing.AllocsPerRun(1000, func() {
		p, err := d.New(image)
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept[:0], p)
	})
	// The strings, the pointer targets and the rows come from chunks that
	// serve many rows each.
	if decode >= 1 || fresh >= 1 {
		t.Fatalf("allocations per row: %.0f by Decode, %.0f by New; want less than one", decode, fresh)
	}
	// Rows taken from the chunks do not share memory.
	a, _ := d.New(image)
	b, _ := d.New([]byte(`{"id":2,"name":"other","description":"d","weight":1}`))
	if a.ID != 1001 || a.Name != "hammer" || *a.Description != "18oz carpenter hammer" || *a.Weight != 7.5 || b.ID != 2 || b.Name != "other" || *b.Weight != 1 {
		t.Fatalf("rows overwrite each other: %+v %+v", a, b)
	}
}

func FuzzRowDecoder(f *testing.F) {
	for _, img := range sampleImages(f) {
		f.Add(img)
	}
	for _, c := range rowCases {
		f.Add([]byte(c))
	}
	product, wide, embedded := NewRowDecoder[productRow](), NewRowDecoder[wideRow](), NewRowDecoder[embeddedRow]()
	f.Fuzz(func(t *testing.T, image []byte) {
		checkRow(t, product, image)
		checkRow(t, wide, image)
		checkRow(t, embedded, image)
	})
}

func BenchmarkRowDecode(b *testing.B) {
	image := []byte(`{"id":1001,"name":"hammer","description":"18oz carpenter hammer","weight":7.5}`)
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(image)))
		b.ReportAllocs()
		for b.Loop() {
			var r productRow
			if err := json.Unmarshal(image, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plan", func(b *testing.B) {
		d := NewRowDecoder[productRow]()
		b.SetBytes(int64(len(image)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.New(image); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/meshlet/meshlet/schemas"
)

// Names of the columns Meshlet adds around the payload's fields.
const (
	colKey        = "_key"
	colValidFrom  = "_valid_from"
	colValidTo    = "_valid_to"
	colSystemFrom = "_system_from"
	colSystemTo   = "_system_to"
	colDeleted    = "_deleted"
	colLog        = "_log"
	colSeq        = "_seq"
	colSealed     = "_sealed"
	colErased     = "_erased"
)

// column is one Parquet leaf: its node and how a decoded Avro value (the
// Go value query.Decoder gives) becomes a Parquet value, and back.
type column struct {
	name     string
	node     parquet.Node // without the optional wrapper
	optional bool
	// field is the payload field the column holds; nil for the columns
	// Meshlet adds.
	field *schemas.Field
	to    func(v any) (parquet.Value, error) // v is never nil
	from  func(v parquet.Value) any          // v is never null
}

// layout is the columns of one kind of file, in order.
type layout struct {
	kind    Kind
	cols    []column
	payload []int // indexes of the payload columns
	sealed  bool  // _sealed and _erased are present
	schema  *parquet.Schema
}

// newLayout lays out the columns of kind for the published schema's row
// fields. pii names fields that may read as null because they are sealed.
func newLayout(kind Kind, fields []schemas.Field, pii []string) (*layout, error) {
	l := &layout{kind: kind, sealed: len(pii) > 0}
	text := func() column { return column{node: parquet.String(), to: toString, from: fromString} }
	micros := func() column {
		return column{node: parquet.Timestamp(parquet.Microsecond), to: toInt64, from: fromMicros}
	}
	add := func(name string, c column, optional bool) {
		c.name, c.optional = name, optional
		l.cols = append(l.cols, c)
	}
	add(colKey, text(), false)
	known := map[string]bool{}
	for i := range fields {
		f := &fields[i]
		if f.Meta || strings.HasPrefix(f.Name, "_") {
			// The published meta fields are the store's to say, and the
			// decoder drops every "_" field as it does for asof/history.
			continue
		}
		c, err := columnFor(f)
		if err != nil {
			return nil, fmt.Errorf("field %q (%s): %w", f.Name, f.Physical, err)
		}
		c.field = f
		l.payload = append(l.payload, len(l.cols))
		add(f.Name, c, f.Nullable || slices.Contains(pii, f.Name))
		known[f.Name] = true
	}
	for _, p := range pii {
		if !known[p] {
			return nil, fmt.Errorf("pii field %q is not a field of the schema", p)
		}
	}
	add(colValidFrom, micros(), false)
	add(colValidTo, micros(), true)
	add(colSystemFrom, micros(), false)
	if kind == History {
		add(colSystemTo, micros(), true)
		add(colDeleted, column{node: parquet.Leaf(parquet.BooleanType), to: toBool, from: fromBool}, false)
	}
	add(colLog, text(), false)
	add(colSeq, column{node: parquet.Int(64), to: toInt64, from: fromInt64}, false)
	if l.sealed {
		add(colSealed, text(), true)
		add(colErased, text(), true)
	}
	g := make(group, len(l.cols))
	for i, c := range l.cols {
		n := c.node
		if c.optional {
			n = parquet.Optional(n)
		}
		g[i] = &groupField{Node: n, name: c.name}
	}
	l.schema = parquet.NewSchema("meshlet_"+string(kind), g)
	return l, nil
}

// index returns the column named name, or -1.
func (l *layout) index(name string) int {
	return slices.IndexFunc(l.cols, func(c column) bool { return c.name == name })
}

// columnFor maps one Avro field to a Parquet column, logical type kept.
// Anything without a flat Parquet equivalent (records, arrays, maps,
// unions of several types) becomes a JSON column.
func columnFor(f *schemas.Field) (column, error) {
	switch f.Logical {
	case "timestamp-millis", "local-timestamp-millis":
		if f.Type == "long" {
			utc := f.Logical == "timestamp-millis"
			return column{node: parquet.TimestampAdjusted(parquet.Millisecond, utc), to: toMillis, from: fromMillis}, nil
		}
	case "timestamp-micros", "local-timestamp-micros":
		if f.Type == "long" {
			utc := f.Logical == "timestamp-micros"
			return column{node: parquet.TimestampAdjusted(parquet.Microsecond, utc), to: toMicros, from: fromMicros}, nil
		}
	case "date":
		if f.Type == "int" {
			return column{node: parquet.Date(), to: toDate, from: fromDate}, nil
		}
	case "time-millis":
		if f.Type == "int" {
			return column{node: parquet.TimeAdjusted(parquet.Millisecond, false), to: toTimeMillis, from: fromTimeMillis}, nil
		}
	case "time-micros":
		if f.Type == "long" {
			return column{node: parquet.TimeAdjusted(parquet.Microsecond, false), to: toTimeMicros, from: fromTimeMicros}, nil
		}
	case "decimal":
		return decimalColumn(f)
	}
	switch f.Type {
	case "boolean":
		return column{node: parquet.Leaf(parquet.BooleanType), to: toBool, from: fromBool}, nil
	case "int":
		return column{node: parquet.Int(32), to: toInt32, from: fromInt32}, nil
	case "long":
		return column{node: parquet.Int(64), to: toInt64, from: fromInt64}, nil
	case "float":
		return column{node: parquet.Leaf(parquet.FloatType), to: toFloat, from: fromFloat}, nil
	case "double":
		return column{node: parquet.Leaf(parquet.DoubleType), to: toDouble, from: fromDouble}, nil
	case "string", "enum":
		// Enums as plain strings: pandas and Spark read Parquet's ENUM
		// annotation as bytes.
		return column{node: parquet.String(), to: toString, from: fromString}, nil
	case "bytes":
		return column{node: parquet.Leaf(parquet.ByteArrayType), to: toBytes, from: fromBytes}, nil
	case "fixed":
		if f.Size > 0 && f.Logical == "" {
			return column{node: parquet.Leaf(parquet.FixedLenByteArrayType(f.Size)), to: toFixed(f.Size), from: fromFixed(f.Size)}, nil
		}
	}
	return column{node: parquet.JSON(), to: toJSON, from: fromJSON}, nil
}

// decimalColumn stores a decimal as Parquet's DECIMAL on the smallest
// physical type the specification allows for its precision, or on the
// Avro fixed's own width.
func decimalColumn(f *schemas.Field) (column, error) {
	p, s := f.Precision, f.Scale
	if p < 1 || s < 0 || s > p {
		return column{}, fmt.Errorf("decimal precision %d scale %d", p, s)
	}
	var (
		phys parquet.Type
		size int
	)
	switch {
	case f.Type == "fixed":
		size = f.Size
		phys = parquet.FixedLenByteArrayType(size)
	case p <= 9:
		phys = parquet.Int32Type
	case p <= 18:
		phys = parquet.Int64Type
	default:
		size = decimalBytes(p)
		phys = parquet.FixedLenByteArrayType(size)
	}
	c := column{node: parquet.Decimal(s, p, phys)}
	factor := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s)), nil)
	c.to = func(v any) (parquet.Value, error) {
		n, err := unscaled(v, s, factor)
		if err != nil {
			return parquet.Value{}, err
		}
		switch {
		case size > 0:
			b, ok := twosComplement(n, size)
			if !ok {
				return parquet.Value{}, fmt.Errorf("decimal %s does not fit %d bytes", n, size)
			}
			return parquet.FixedLenByteArrayValue(b), nil
		case p <= 9:
			if !n.IsInt64() || n.Int64() < math.MinInt32 || n.Int64() > math.MaxInt32 {
				return parquet.Value{}, fmt.Errorf("decimal %s exceeds precision %d", n, p)
			}
			return parquet.Int32Value(int32(n.Int64())), nil
		default:
			if !n.IsInt64() {
				return parquet.Value{}, fmt.Errorf("decimal %s exceeds precision %d", n, p)
			}
			return parquet.Int64Value(n.Int64()), nil
		}
	}
	c.from = func(v parquet.Value) any {
		var n *big.Int
		switch {
		case size > 0:
			n = fromTwosComplement(v.ByteArray())
		case p <= 9:
			n = big.NewInt(int64(v.Int32()))
		default:
			n = big.NewInt(v.Int64())
		}
		return new(big.Rat).SetFrac(n, factor)
	}
	return c, nil
}

// decimalBytes is the fewest bytes whose two's complement holds every
// unscaled value of precision p.
func decimalBytes(p int) int {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(p)), nil)
	return (limit.BitLen() + 1 + 7) / 8 // one more bit for the sign
}

// unscaled is a decimal value times factor (10^scale), which must be whole.
func unscaled(v any, scale int, factor *big.Int) (*big.Int, error) {
	var r *big.Rat
	switch x := v.(type) {
	case *big.Rat:
		r = x
	case big.Rat:
		r = &x
	case json.Number:
		var ok bool
		if r, ok = new(big.Rat).SetString(x.String()); !ok {
			return nil, fmt.Errorf("decimal %q is not a number", x)
		}
	case string:
		var ok bool
		if r, ok = new(big.Rat).SetString(x); !ok {
			return nil, fmt.Errorf("decimal %q is not a number", x)
		}
	default:
		return nil, typeError("a decimal", v)
	}
	n, rem := new(big.Int).QuoRem(new(big.Int).Mul(r.Num(), factor), r.Denom(), new(big.Int))
	if rem.Sign() != 0 {
		return nil, fmt.Errorf("decimal %s has more than %d digits after the point", r.FloatString(scale+4), scale)
	}
	return n, nil
}

// twosComplement writes n big-endian in size bytes, sign extended.
func twosComplement(n *big.Int, size int) ([]byte, bool) {
	b := make([]byte, size)
	if n.Sign() >= 0 {
		if n.BitLen() > size*8-1 {
			return nil, false
		}
		n.FillBytes(b)
		return b, true
	}
	// -n = ^(n-1): write n+1's magnitude inverted.
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	if m.BitLen() > size*8-1 {
		return nil, false
	}
	m.FillBytes(b)
	for i := range b {
		b[i] = ^b[i]
	}
	return b, true
}

func fromTwosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return n
}

// stringBytes aliases s: the Parquet writer copies values into its pages
// and never writes to them, so the string's bytes need no copy.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func typeError(want string, v any) error {
	return fmt.Errorf("%w: want %s, got %T", errType, want, v)
}

var errType = errors.New("value of the wrong type")

func toBool(v any) (parquet.Value, error) {
	if b, ok := v.(bool); ok {
		return parquet.BooleanValue(b), nil
	}
	return parquet.Value{}, typeError("a boolean", v)
}

// integer accepts the Go forms an Avro number takes on the way here: the
// decoder's int/int32/int64, a sealed field's json.Number, a default's.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case json.Number:
		i, err := x.Int64()
		return i, err == nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	}
	return 0, false
}

func toInt32(v any) (parquet.Value, error) {
	i, ok := integer(v)
	switch {
	case !ok:
		return parquet.Value{}, typeError("an int", v)
	case i < math.MinInt32 || i > math.MaxInt32:
		return parquet.Value{}, fmt.Errorf("%w: %d does not fit an int", errType, i)
	}
	return parquet.Int32Value(int32(i)), nil
}

func toInt64(v any) (parquet.Value, error) {
	if i, ok := integer(v); ok {
		return parquet.Int64Value(i), nil
	}
	return parquet.Value{}, typeError("a long", v)
}

func toFloat(v any) (parquet.Value, error) {
	switch x := v.(type) {
	case float32:
		return parquet.FloatValue(x), nil
	case float64:
		return parquet.FloatValue(float32(x)), nil
	}
	if i, ok := integer(v); ok {
		return parquet.FloatValue(float32(i)), nil
	}
	return parquet.Value{}, typeError("a float", v)
}

func toDouble(v any) (parquet.Value, error) {
	switch x := v.(type) {
	case float64:
		return parquet.DoubleValue(x), nil
	case float32:
		return parquet.DoubleValue(float64(x)), nil
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return parquet.DoubleValue(f), nil
		}
	}
	if i, ok := integer(v); ok {
		return parquet.DoubleValue(float64(i)), nil
	}
	return parquet.Value{}, typeError("a double", v)
}

func toString(v any) (parquet.Value, error) {
	if s, ok := v.(string); ok {
		return parquet.ByteArrayValue(stringBytes(s)), nil
	}
	return parquet.Value{}, typeError("a string", v)
}

func toBytes(v any) (parquet.Value, error) {
	switch x := v.(type) {
	case []byte:
		return parquet.ByteArrayValue(slices.Clone(x)), nil
	case string: // a default, or a sealed field's base64 the decoder could not type
		return parquet.ByteArrayValue([]byte(x)), nil
	}
	return parquet.Value{}, typeError("bytes", v)
}

// toFixed takes the decoder's [N]byte (or bytes of the right length).
func toFixed(size int) func(any) (parquet.Value, error) {
	return func(v any) (parquet.Value, error) {
		var b []byte
		switch x := v.(type) {
		case []byte:
			b = slices.Clone(x)
		case string:
			b = []byte(x)
		default:
			rv := reflect.ValueOf(v)
			if rv.Kind() != reflect.Array || rv.Type().Elem().Kind() != reflect.Uint8 {
				return parquet.Value{}, typeError(fmt.Sprintf("fixed(%d)", size), v)
			}
			b = make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
		}
		if len(b) != size {
			return parquet.Value{}, fmt.Errorf("%w: fixed(%d) holds %d bytes", errType, size, len(b))
		}
		return parquet.FixedLenByteArrayValue(b), nil
	}
}

// instant is a timestamp's time.Time, or a raw number (a default) as is.
func instant(v any, unit func(time.Time) int64) (int64, bool) {
	if t, ok := v.(time.Time); ok {
		return unit(t), true
	}
	if s, ok := v.(string); ok { // a sealed field opened: RFC 3339 text
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return unit(t), true
		}
	}
	return integer(v)
}

func toMillis(v any) (parquet.Value, error) {
	if i, ok := instant(v, time.Time.UnixMilli); ok {
		return parquet.Int64Value(i), nil
	}
	return parquet.Value{}, typeError("a timestamp", v)
}

func toMicros(v any) (parquet.Value, error) {
	if i, ok := instant(v, time.Time.UnixMicro); ok {
		return parquet.Int64Value(i), nil
	}
	return parquet.Value{}, typeError("a timestamp", v)
}

const microsPerDay = 86_400_000_000

func toDate(v any) (parquet.Value, error) {
	days, ok := instant(v, func(t time.Time) int64 {
		us := t.UnixMicro()
		d := us / microsPerDay
		if us%microsPerDay < 0 {
			d--
		}
		return d
	})
	if ok && days >= math.MinInt32 && days <= math.MaxInt32 {
		return parquet.Int32Value(int32(days)), nil
	}
	return parquet.Value{}, typeError("a date", v)
}

func toTimeMillis(v any) (parquet.Value, error) {
	switch x := v.(type) {
	case time.Duration:
		return parquet.Int32Value(int32(x / time.Millisecond)), nil
	}
	if i, ok := integer(v); ok && i >= 0 && i < 86_400_000 {
		return parquet.Int32Value(int32(i)), nil
	}
	return parquet.Value{}, typeError("a time of day", v)
}

func toTimeMicros(v any) (parquet.Value, error) {
	switch x := v.(type) {
	case time.Duration:
		return parquet.Int64Value(int64(x / time.Microsecond)), nil
	}
	if i, ok := integer(v); ok {
		return parquet.Int64Value(i), nil
	}
	return parquet.Value{}, typeError("a time of day", v)
}

func toJSON(v any) (parquet.Value, error) {
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return parquet.Value{}, fmt.Errorf("%w: as JSON: %w", errType, err)
	}
	return parquet.ByteArrayValue(b), nil
}

// jsonable turns the decoder's values into what encoding/json writes
// plainly: decimals as exact decimal strings, fixed as bytes (base64).
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonable(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = jsonable(e)
		}
		return s
	case *big.Rat:
		return exactDecimal(x)
	case time.Duration:
		return int64(x / time.Microsecond)
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
		b := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(b), rv)
		return b
	}
	return v
}

// exactDecimal writes r with as many digits after the point as it needs
// (a decimal's value always has finitely many).
func exactDecimal(r *big.Rat) string {
	for prec := 0; prec <= 76; prec++ {
		m := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(prec)), nil)))
		if m.IsInt() {
			return r.FloatString(prec)
		}
	}
	return r.RatString()
}

func fromBool(v parquet.Value) any   { return v.Boolean() }
func fromInt32(v parquet.Value) any  { return int(v.Int32()) } // as the Avro decoder gives an int
func fromInt64(v parquet.Value) any  { return v.Int64() }
func fromFloat(v parquet.Value) any  { return v.Float() }
func fromDouble(v parquet.Value) any { return v.Double() }
func fromString(v parquet.Value) any { return string(v.ByteArray()) }
func fromBytes(v parquet.Value) any  { return slices.Clone(v.ByteArray()) }
func fromMicros(v parquet.Value) any { return time.UnixMicro(v.Int64()).UTC() }
func fromMillis(v parquet.Value) any { return time.UnixMilli(v.Int64()).UTC() }
func fromDate(v parquet.Value) any {
	return time.UnixMicro(int64(v.Int32()) * microsPerDay).UTC()
}
func fromTimeMillis(v parquet.Value) any { return time.Duration(v.Int32()) * time.Millisecond }
func fromTimeMicros(v parquet.Value) any { return time.Duration(v.Int64()) * time.Microsecond }
func fromJSON(v parquet.Value) any {
	var x any
	if err := json.Unmarshal(v.ByteArray(), &x); err != nil {
		return string(v.ByteArray())
	}
	return x
}

func fromFixed(size int) func(parquet.Value) any {
	t := reflect.ArrayOf(size, reflect.TypeFor[byte]())
	return func(v parquet.Value) any {
		a := reflect.New(t).Elem()
		reflect.Copy(a, reflect.ValueOf(v.ByteArray()))
		return a.Interface()
	}
}

// group is a Parquet group whose fields keep the order given, where
// parquet.Group would sort them by name: the columns then read in the
// Avro schema's order.
type group []*groupField

type groupField struct {
	parquet.Node
	name string
}

func (f *groupField) Name() string { return f.name }

func (f *groupField) Value(base reflect.Value) reflect.Value {
	if base.Kind() == reflect.Map {
		return base.MapIndex(reflect.ValueOf(f.name))
	}
	return base.FieldByName(exported(f.name))
}

func (g group) ID() int            { return 0 }
func (g group) String() string     { return parquet.NewSchema("", g).String() }
func (g group) Type() parquet.Type { return parquet.Group{}.Type() }
func (g group) Optional() bool     { return false }
func (g group) Repeated() bool     { return false }
func (g group) Required() bool     { return true }
func (g group) Leaf() bool         { return false }
func (g group) Fields() []parquet.Field {
	fs := make([]parquet.Field, len(g))
	for i, f := range g {
		fs[i] = f
	}
	return fs
}
func (g group) Encoding() encoding.Encoding { return nil }
func (g group) Compression() compress.Codec { return nil }

// GoType is a struct of the fields in order; rows are written as
// parquet.Row, so nothing reflects on it but callers that ask.
func (g group) GoType() reflect.Type {
	sf := make([]reflect.StructField, len(g))
	for i, f := range g {
		sf[i] = reflect.StructField{Name: exported(f.name), Type: f.GoType(), Tag: reflect.StructTag(fmt.Sprintf("parquet:%q", f.name))}
	}
	return reflect.StructOf(sf)
}

// exported makes a Go field name of a column name: "F" and its index-free
// form, unique because column names are.
func exported(name string) string {
	var b strings.Builder
	b.WriteString("F_")
	for _, r := range name {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "x%x", r)
		}
	}
	return b.String()
}

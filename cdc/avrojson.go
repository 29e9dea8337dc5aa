package cdc

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/meshlet/meshlet/internal/jsontext"
)

// Rendering limits. The values come from an AvroSource that has already
// bounded the input; these keep the JSON within a small multiple of it
// whatever the source hands over.
const (
	maxAvroDepth    = 64      // nesting of records, unions, arrays and maps
	maxDecimalBytes = 1 << 16 // an unscaled decimal's two's-complement bytes
	maxDecimalScale = 1 << 12 // a schema's decimal scale
	maxPlainZeros   = 32      // beyond this many padding zeros, exponent notation
)

// Logical types by Kafka Connect name.
const (
	connectDecimal       = "org.apache.kafka.connect.data.Decimal"
	variableScaleDecimal = "io.debezium.data.VariableScaleDecimal"
)

// timeMeaning is what an integer (or hamba's time value) stands for.
type timeMeaning uint8

const (
	notTime timeMeaning = iota
	asDate
	asTimeOfDay
	asTimestamp
	asLocalTimestamp
)

// timeSemantics reads a type's time meaning and the unit of its integer
// form: days for dates, else nanoseconds per unit.
func timeSemantics(t *avroType) (timeMeaning, int64) {
	switch t.connect {
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		return asDate, 0
	case "io.debezium.time.Time", "org.apache.kafka.connect.data.Time":
		return asTimeOfDay, 1e6
	case "io.debezium.time.MicroTime":
		return asTimeOfDay, 1e3
	case "io.debezium.time.NanoTime":
		return asTimeOfDay, 1
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		return asTimestamp, 1e6
	case "io.debezium.time.MicroTimestamp":
		return asTimestamp, 1e3
	case "io.debezium.time.NanoTimestamp":
		return asTimestamp, 1
	}
	switch t.logical {
	case "date":
		return asDate, 0
	case "time-millis":
		return asTimeOfDay, 1e6
	case "time-micros":
		return asTimeOfDay, 1e3
	case "timestamp-millis":
		return asTimestamp, 1e6
	case "timestamp-micros":
		return asTimestamp, 1e3
	case "timestamp-nanos":
		return asTimestamp, 1
	case "local-timestamp-millis":
		return asLocalTimestamp, 1e6
	case "local-timestamp-micros":
		return asLocalTimestamp, 1e3
	case "local-timestamp-nanos":
		return asLocalTimestamp, 1
	}
	return notTime, 0
}

// appendAvro renders v, decoded with schema t, as JSON. See the package
// doc for what each type and logical type becomes.
func appendAvro(dst []byte, t *avroType, v any, depth int) ([]byte, error) {
	if depth > maxAvroDepth {
		return dst, &DecodeError{Reason: fmt.Sprintf("value nested deeper than %d", maxAvroDepth)}
	}
	switch t.kind {
	case avroUnion:
		b, inner, err := t.findBranch(v)
		if err != nil {
			return dst, err
		}
		return appendAvro(dst, b, inner, depth+1)
	case avroNull:
		if v != nil {
			return dst, mismatch(t, v)
		}
		return append(dst, "null"...), nil
	case avroBoolean:
		b, ok := v.(bool)
		if !ok {
			return dst, mismatch(t, v)
		}
		return strconv.AppendBool(dst, b), nil
	case avroInt, avroLong:
		return appendAvroInt(dst, t, v)
	case avroFloat, avroDouble:
		switch f := v.(type) {
		case float32:
			return appendFloat(dst, float64(f), 32), nil
		case float64:
			return appendFloat(dst, f, 64), nil
		}
		return dst, mismatch(t, v)
	case avroString, avroEnum:
		s, ok := v.(string)
		if !ok {
			return dst, mismatch(t, v)
		}
		return jsontext.AppendString(dst, s), nil
	case avroBytes, avroFixed:
		if t.logical == "decimal" || t.connect == connectDecimal {
			return appendAvroDecimal(dst, t, v)
		}
		b, ok := v.([]byte)
		if !ok {
			if b = fixedBytes(v); b == nil {
				return dst, mismatch(t, v)
			}
		}
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, '"'), nil
	case avroArray:
		a, ok := v.([]any)
		if !ok {
			return dst, mismatch(t, v)
		}
		dst = append(dst, '[')
		for i, e := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendAvro(dst, t.items, e, depth+1); err != nil {
				return dst, within(err, fmt.Sprintf("[%d]", i))
			}
		}
		return append(dst, ']'), nil
	case avroMap:
		m, ok := v.(map[string]any)
		if !ok {
			return dst, mismatch(t, v)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys) // Go maps have no order; the output must
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsontext.AppendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendAvro(dst, t.items, m[k], depth+1); err != nil {
				return dst, within(err, strconv.Quote(k))
			}
		}
		return append(dst, '}'), nil
	case avroRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return dst, mismatch(t, v)
		}
		if t.connect == variableScaleDecimal {
			return appendVariableScale(dst, m)
		}
		dst = append(dst, '{')
		for i, f := range t.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, f.quoted...)
			var err error
			if dst, err = appendAvro(dst, f.typ, m[f.name], depth+1); err != nil {
				return dst, within(err, f.name)
			}
		}
		return append(dst, '}'), nil
	}
	return dst, &DecodeError{Reason: fmt.Sprintf("unsupported Avro type %s", t.kind)}
}

func mismatch(t *avroType, v any) error {
	if v == nil {
		return &DecodeError{Reason: fmt.Sprintf("missing %s value", t.kind)}
	}
	return &DecodeError{Reason: fmt.Sprintf("Avro %s decoded as Go %T", t.kind, v)}
}

// appendAvroInt renders an int or long, as a number or, for the time
// logical types, as an ISO 8601 string.
func appendAvroInt(dst []byte, t *avroType, v any) ([]byte, error) {
	meaning, _ := timeSemantics(t)
	switch x := v.(type) {
	case time.Time:
		switch meaning {
		case asDate:
			return appendTime(dst, x.UTC(), "2006-01-02"), nil
		case asTimestamp:
			return appendTime(dst, x.UTC(), time.RFC3339Nano), nil
		case asLocalTimestamp:
			return appendTime(dst, x.UTC(), "2006-01-02T15:04:05.999999999"), nil
		}
		return dst, mismatch(t, v)
	case time.Duration:
		if meaning != asTimeOfDay {
			return dst, mismatch(t, v)
		}
		return appendTimeOfDay(dst, x), nil
	}
	n, ok := integer(v)
	if !ok {
		return dst, mismatch(t, v)
	}
	return appendAvroInteger(dst, t, n)
}

// appendAvroInteger renders the integer form of an int or long.
func appendAvroInteger(dst []byte, t *avroType, n int64) ([]byte, error) {
	meaning, unit := timeSemantics(t)
	switch meaning {
	case asDate:
		if n > math.MaxInt64/86400 || n < math.MinInt64/86400 {
			return dst, &DecodeError{Reason: fmt.Sprintf("date %d days out of range", n)}
		}
		return appendTime(dst, time.Unix(n*86400, 0).UTC(), "2006-01-02"), nil
	case asTimeOfDay:
		if n > math.MaxInt64/unit || n < math.MinInt64/unit {
			return dst, &DecodeError{Reason: fmt.Sprintf("time %d out of range", n)}
		}
		return appendTimeOfDay(dst, time.Duration(n*unit)), nil
	case asTimestamp, asLocalTimestamp:
		var ts time.Time
		switch unit {
		case 1e6:
			ts = time.UnixMilli(n)
		case 1e3:
			ts = time.UnixMicro(n)
		default:
			ts = time.Unix(0, n)
		}
		layout := time.RFC3339Nano
		if meaning == asLocalTimestamp {
			layout = "2006-01-02T15:04:05.999999999"
		}
		return appendTime(dst, ts.UTC(), layout), nil
	}
	return strconv.AppendInt(dst, n, 10), nil
}

func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}

func isTimeValue(v any) bool {
	switch v.(type) {
	case time.Time, time.Duration:
		return true
	}
	return false
}

func isDecimalValue(v any) bool {
	_, ok := v.(*big.Rat)
	return ok
}

func appendTime(dst []byte, t time.Time, layout string) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, layout)
	return append(dst, '"')
}

// appendTimeOfDay writes "HH:MM:SS" with the fraction's significant
// digits, if any. MySQL's TIME can be negative or past 24 hours, so the
// hours are not wrapped.
func appendTimeOfDay(dst []byte, d time.Duration) []byte {
	dst = append(dst, '"')
	u := uint64(d)
	if d < 0 {
		dst = append(dst, '-')
		u = -u
	}
	const second = uint64(time.Second)
	secs, frac := u/second, u%second
	h, m, s := secs/3600, secs/60%60, secs%60
	if h < 10 {
		dst = append(dst, '0')
	}
	dst = strconv.AppendUint(dst, h, 10)
	dst = append(dst, ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+s/10), byte('0'+s%10))
	if frac > 0 {
		var digits [9]byte
		for i := 8; i >= 0; i-- {
			digits[i] = byte('0' + frac%10)
			frac /= 10
		}
		n := 9
		for digits[n-1] == '0' {
			n--
		}
		dst = append(dst, '.')
		dst = append(dst, digits[:n]...)
	}
	return append(dst, '"')
}

// appendFloat writes a float the way encoding/json does: the shortest form
// that reads back exactly, in exponent notation only for very large and
// very small magnitudes. JSON has no NaN or infinity; they become the
// strings "NaN", "Infinity" and "-Infinity", as Kafka Connect's JSON
// converter writes them.
func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 reads better as 1e-7.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// fixedBytes returns the bytes of a fixed value, which hamba decodes to a
// [N]byte array; nil for anything else.
func fixedBytes(v any) []byte {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Array || rv.Type().Elem().Kind() != reflect.Uint8 {
		return nil
	}
	b := make([]byte, rv.Len())
	reflect.Copy(reflect.ValueOf(b), rv)
	return b
}

// appendAvroDecimal writes a Kafka Connect or Avro decimal as an exact JSON
// number. hamba hands over a *big.Rat when the schema says logicalType
// decimal; otherwise the value is the unscaled integer's two's-complement
// bytes and the scale comes from the schema.
func appendAvroDecimal(dst []byte, t *avroType, v any) ([]byte, error) {
	if t.scale < 0 || t.scale > maxDecimalScale {
		return dst, &DecodeError{Reason: fmt.Sprintf("decimal scale %d out of range", t.scale)}
	}
	if r, ok := v.(*big.Rat); ok {
		if r.Num().BitLen() > 8*maxDecimalBytes || r.Denom().BitLen() > 8*maxDecimalBytes {
			return dst, &DecodeError{Reason: "decimal too large"}
		}
		// The value is unscaled / 10^scale: recover unscaled exactly.
		pow := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.scale)), nil)
		q, rem := new(big.Int).QuoRem(pow, r.Denom(), new(big.Int))
		if rem.Sign() != 0 {
			return dst, &DecodeError{Reason: fmt.Sprintf("decimal %s has more digits than scale %d", r.String(), t.scale)}
		}
		return appendDecimal(dst, q.Mul(q, r.Num()), t.scale), nil
	}
	b, ok := v.([]byte)
	if !ok {
		if b = fixedBytes(v); b == nil {
			return dst, mismatch(t, v)
		}
	}
	return appendDecimalBytes(dst, t, b)
}

// appendDecimalBytes writes a decimal given as its unscaled value's
// two's-complement bytes, with the schema's scale.
func appendDecimalBytes(dst []byte, t *avroType, b []byte) ([]byte, error) {
	if t.scale < 0 || t.scale > maxDecimalScale {
		return dst, &DecodeError{Reason: fmt.Sprintf("decimal scale %d out of range", t.scale)}
	}
	if len(b) <= 8 {
		// Most decimals fit an int64: no big.Int needed.
		var n int64
		if len(b) > 0 && b[0]&0x80 != 0 {
			n = -1
		}
		for _, c := range b {
			n = n<<8 | int64(c)
		}
		var digits [20]byte
		u := uint64(n)
		if n < 0 {
			u = -u
		}
		return appendDecimalDigits(dst, n < 0, strconv.AppendUint(digits[:0], u, 10), t.scale), nil
	}
	unscaled, err := twosComplement(b)
	if err != nil {
		return dst, err
	}
	return appendDecimal(dst, unscaled, t.scale), nil
}

// appendVariableScale writes Debezium's VariableScaleDecimal, a record of
// the scale and the unscaled value's bytes, as an exact JSON number.
func appendVariableScale(dst []byte, m map[string]any) ([]byte, error) {
	scale, ok := integer(m["scale"])
	if !ok || scale < math.MinInt32 || scale > math.MaxInt32 {
		return dst, &DecodeError{Field: "scale", Reason: fmt.Sprintf("want an int, got %T", m["scale"])}
	}
	b, ok := m["value"].([]byte)
	if !ok {
		return dst, &DecodeError{Field: "value", Reason: fmt.Sprintf("want bytes, got %T", m["value"])}
	}
	unscaled, err := twosComplement(b)
	if err != nil {
		return dst, within(err, "value")
	}
	return appendDecimal(dst, unscaled, int(scale)), nil
}

func twosComplement(b []byte) (*big.Int, error) {
	if len(b) > maxDecimalBytes {
		return nil, &DecodeError{Reason: fmt.Sprintf("decimal of %d bytes exceeds %d", len(b), maxDecimalBytes)}
	}
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n, nil
}

// appendDecimal writes unscaled × 10^-scale exactly. Plain notation is used
// unless it would need more than maxPlainZeros padding zeros; then the
// digits get an exponent, so that a tiny value with a huge scale cannot
// blow up into a huge string.
func appendDecimal(dst []byte, unscaled *big.Int, scale int) []byte {
	return appendDecimalDigits(dst, unscaled.Sign() < 0, new(big.Int).Abs(unscaled).Append(nil, 10), scale)
}

// appendDecimalDigits writes the decimal whose unscaled magnitude has the
// given digits; see appendDecimal.
func appendDecimalDigits(dst []byte, neg bool, digits []byte, scale int) []byte {
	if neg {
		dst = append(dst, '-')
	}
	zero := len(digits) == 1 && digits[0] == '0'
	switch {
	case scale <= 0:
		dst = append(dst, digits...)
		if zero || scale == 0 {
			return dst
		}
		if -scale <= maxPlainZeros {
			for i := 0; i < -scale; i++ {
				dst = append(dst, '0')
			}
			return dst
		}
		dst = append(dst, 'e')
		return strconv.AppendInt(dst, int64(-scale), 10)
	case scale < len(digits):
		dst = append(dst, digits[:len(digits)-scale]...)
		dst = append(dst, '.')
		return append(dst, digits[len(digits)-scale:]...)
	case scale-len(digits) <= maxPlainZeros:
		dst = append(dst, '0', '.')
		for i := len(digits); i < scale; i++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits...)
	dst = append(dst, 'e', '-')
	return strconv.AppendInt(dst, int64(scale), 10)
}

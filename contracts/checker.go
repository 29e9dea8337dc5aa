package contracts

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The customProperty on a quality rule that says what a violation does.
const (
	OnViolationProperty   = "meshletOnViolation"
	OnViolationCount      = "count"      // the default: counted, the record is published
	OnViolationDeadLetter = "deadLetter" // the record goes to the dead-letter topic instead
)

// WindowArgument is the Meshlet argument (in a rule's arguments) that sets
// the window, in records, over which a threshold is judged and duplicates
// are remembered.
const WindowArgument = "window"

// DefaultWindow is the window when a rule does not set one.
const DefaultWindow = 10_000

var (
	metrics   = []string{"nullValues", "missingValues", "invalidValues", "duplicateValues"}
	operators = []string{"mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo",
		"mustBeLessThan", "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween"}
)

// Violation is one rule a record broke.
type Violation struct {
	Rule       string // the rule's name, or field.metric when it has none
	Field      string // the field, or the fields of an object-level rule, comma-separated
	Metric     string
	Message    string
	DeadLetter bool // the contract routes the record to the dead-letter topic
}

func (v Violation) String() string {
	return fmt.Sprintf("rule %s: %s", v.Rule, v.Message)
}

// RuleStats are one rule's counters since the Checker was built.
type RuleStats struct {
	Object     string // the schema object, i.e. the output port
	Rule       string
	Field      string
	Metric     string
	DeadLetter bool
	Checked    uint64 // records the rule looked at
	Bad        uint64 // records that counted toward the metric, tolerated or not
	Violations uint64 // records beyond what the threshold tolerates
}

// Checker enforces a contract's quality rules on a stream of records, one
// record at a time. Build one per output port with NewChecker; Check is
// safe for concurrent use (window state is behind a mutex), Stats may be
// read at any time.
type Checker struct {
	object    string
	rules     []*rule
	slots     []string // field names, indexed by slot
	unchecked []string

	seed     maphash.Seed
	bindings sync.Map // reflect.Type -> *binding or error

	mu     sync.Mutex
	anonID uint64
}

// NewChecker compiles the library rules of one schema object of c (object
// "" is the only one). Rules that cannot be judged one record at a time
// (rowCount, a lower bound on a count, text, sql and custom rules) are not
// compiled: they are refused with an error when they are library rules
// whose threshold makes no sense on a stream, and listed by Unchecked
// otherwise.
func NewChecker(c *Contract, object string) (*Checker, error) {
	obj, err := c.Object(object)
	if err != nil {
		return nil, err
	}
	ch := &Checker{object: obj.Name, seed: maphash.MakeSeed()}
	slot := func(name string) int {
		for i, s := range ch.slots {
			if s == name {
				return i
			}
		}
		ch.slots = append(ch.slots, name)
		return len(ch.slots) - 1
	}
	names := map[string]int{}
	add := func(at string, q Quality, fields []string) error {
		r, skip, err := compileRule(q, fields, at)
		if err != nil {
			return fmt.Errorf("contracts: %s: %w", at, err)
		}
		if skip != "" {
			ch.unchecked = append(ch.unchecked, at+": "+skip)
			return nil
		}
		for _, f := range fields {
			r.slots = append(r.slots, slot(f))
		}
		if names[r.name]++; names[r.name] > 1 {
			r.name += "#" + strconv.Itoa(names[r.name])
		}
		ch.rules = append(ch.rules, r)
		return nil
	}
	for i, p := range obj.Properties {
		for j, q := range p.Quality {
			at := fmt.Sprintf("schema[%s].properties[%d].quality[%d]", obj.Name, i, j)
			if err := add(at, q, []string{p.Name}); err != nil {
				return nil, err
			}
		}
		if hasNestedQuality(p) {
			return nil, fmt.Errorf("contracts: schema[%s].properties[%d] (%s): quality rules on nested properties are not checked yet; put them on a top-level field", obj.Name, i, p.Name)
		}
	}
	for j, q := range obj.Quality {
		at := fmt.Sprintf("schema[%s].quality[%d]", obj.Name, j)
		fields, err := argStrings(q.Arguments, "properties")
		if err != nil {
			return nil, fmt.Errorf("contracts: %s: %w", at, err)
		}
		if metricOf(q) != "duplicateValues" || len(fields) == 0 {
			if isLibrary(q) && metricOf(q) != "rowCount" {
				return nil, fmt.Errorf("contracts: %s: at object level Meshlet checks duplicateValues with arguments.properties; put %s on a property", at, metricOf(q))
			}
		}
		if err := add(at, q, fields); err != nil {
			return nil, err
		}
	}
	known := map[string]bool{}
	for _, p := range obj.Properties {
		known[p.Name] = true
	}
	for _, r := range ch.rules {
		for _, f := range r.fields {
			if !known[f] {
				return nil, fmt.Errorf("contracts: rule %s: object %s has no property %q", r.name, obj.Name, f)
			}
		}
	}
	return ch, nil
}

func hasNestedQuality(p Property) bool {
	for _, sub := range p.Properties {
		if len(sub.Quality) > 0 || hasNestedQuality(sub) {
			return true
		}
	}
	if p.Items != nil {
		return len(p.Items.Quality) > 0 || hasNestedQuality(*p.Items)
	}
	return false
}

// Unchecked lists the rules the Checker does not enforce, and why.
func (c *Checker) Unchecked() []string { return c.unchecked }

// Rules is the number of rules enforced.
func (c *Checker) Rules() int { return len(c.rules) }

// Stats returns every rule's counters.
func (c *Checker) Stats() []RuleStats {
	out := make([]RuleStats, len(c.rules))
	for i, r := range c.rules {
		out[i] = RuleStats{
			Object: c.object, Rule: r.name, Field: strings.Join(r.fields, ","), Metric: r.metric, DeadLetter: r.deadLetter,
			Checked: r.checked.Load(), Bad: r.bad.Load(), Violations: r.violations.Load(),
		}
	}
	return out
}

// Check checks one record version of entity key: row is the handler's
// output value (a struct or pointer to one, fields matched by avro tag as
// the encoder matches them) or a map[string]any by field name. Violations
// are appended to dst. The error is for a row type that lacks a field the
// rules need, which no record of that type can satisfy.
func (c *Checker) Check(key string, row any, dst []Violation) ([]Violation, error) {
	if len(c.rules) == 0 {
		return dst, nil
	}
	var a rowAccess
	if err := c.access(&a, row); err != nil {
		return dst, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if key == "" {
		// Without an entity key every record is its own entity.
		c.anonID++
		key = "\x00" + strconv.FormatUint(c.anonID, 10)
	}
	for _, r := range c.rules {
		if v, bad := r.check(c, key, &a); bad {
			dst = append(dst, v)
		}
	}
	return dst, nil
}

// Retract tells the Checker an entity was deleted: its values no longer
// count as taken for duplicateValues.
func (c *Checker) Retract(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.rules {
		if r.dups != nil {
			r.dups.forget(key)
		}
	}
}

// rule is one compiled library rule.
type rule struct {
	name       string
	metric     string
	fields     []string
	slots      []int
	deadLetter bool

	allowed int64 // bad records tolerated per window
	window  int64
	seen    int64 // records in the current window
	badNow  int64 // bad records in the current window
	limit   string

	missing      []value
	valid        map[string]bool // validValues as text
	validNums    map[float64]bool
	validGiven   bool
	pattern      *regexp.Regexp
	lo, hi       float64
	loInc, hiInc bool
	ranged       bool
	dups         *dupWindow

	checked, bad, violations atomic.Uint64
}

func isLibrary(q Quality) bool {
	return q.Type == "library" || (q.Type == "" && metricOf(q) != "")
}

func metricOf(q Quality) string {
	if q.Metric != "" {
		return q.Metric
	}
	return q.Rule
}

func countOperators(q Quality) int {
	n := 0
	for _, set := range []bool{q.MustBe != nil, q.MustNotBe != nil, q.MustBeGreaterThan != nil, q.MustBeGreaterOrEqualTo != nil,
		q.MustBeLessThan != nil, q.MustBeLessOrEqualTo != nil, q.MustBeBetween != nil, q.MustNotBeBetween != nil} {
		if set {
			n++
		}
	}
	return n
}

// compileRule returns the rule, or a reason to skip it.
func compileRule(q Quality, fields []string, at string) (*rule, string, error) {
	if !isLibrary(q) {
		if q.Type == "" {
			return nil, "", fmt.Errorf("no metric and no type")
		}
		return nil, fmt.Sprintf("type %s rules are not evaluated on the stream", q.Type), nil
	}
	metric := metricOf(q)
	if metric == "rowCount" {
		return nil, "rowCount counts a whole table; a stream has no end to count to", nil
	}
	r := &rule{metric: metric, fields: fields, window: DefaultWindow}
	r.name = q.Name
	if r.name == "" {
		r.name = strings.Join(fields, "+") + "." + metric
	}
	for _, cp := range q.CustomProperties {
		if cp.Property != OnViolationProperty {
			continue
		}
		switch cp.Value {
		case OnViolationDeadLetter:
			r.deadLetter = true
		case OnViolationCount:
		default:
			return nil, "", fmt.Errorf("customProperties %s is %v; want %s or %s", OnViolationProperty, cp.Value, OnViolationCount, OnViolationDeadLetter)
		}
	}
	if w, ok := q.Arguments[WindowArgument]; ok {
		n, ok := number(w)
		if !ok || n < 1 || n != math.Trunc(n) || n > 10_000_000 {
			return nil, "", fmt.Errorf("arguments.%s is %v; want a whole number of records from 1 to 10000000", WindowArgument, w)
		}
		r.window = int64(n)
	}
	if err := r.threshold(q); err != nil {
		return nil, "", err
	}
	switch metric {
	case "nullValues":
	case "missingValues":
		list, ok := q.Arguments["missingValues"].([]any)
		if !ok || len(list) == 0 {
			return nil, "", fmt.Errorf("missingValues needs arguments.missingValues, a list of the values that count as missing")
		}
		for _, m := range list {
			r.missing = append(r.missing, fromAny(m))
		}
	case "invalidValues":
		if err := r.validity(q.Arguments); err != nil {
			return nil, "", err
		}
	case "duplicateValues":
		r.dups = newDupWindow(int(r.window))
	default:
		return nil, "", fmt.Errorf("metric %q is not one of %s", metric, strings.Join(append(metrics, "rowCount"), ", "))
	}
	if len(fields) == 0 {
		return nil, "", fmt.Errorf("the rule names no field")
	}
	return r, "", nil
}

// threshold turns the rule's operator into the number of bad records a
// window tolerates. On a stream only upper bounds can be judged record by
// record: "at most n nulls" fails at the (n+1)th, while "at least n"
// cannot fail until the window ends.
func (r *rule) threshold(q Quality) error {
	if countOperators(q) != 1 {
		return fmt.Errorf("want exactly one operator (%s)", strings.Join(operators, ", "))
	}
	var bound float64
	inclusive := true
	switch {
	case q.MustBe != nil:
		n, ok := number(q.MustBe)
		if !ok || n != 0 {
			return fmt.Errorf("mustBe: %v asks for an exact count, which a stream cannot promise; write mustBe: 0 or an upper bound (mustBeLessOrEqualTo)", q.MustBe)
		}
	case q.MustBeLessThan != nil:
		bound, inclusive = *q.MustBeLessThan, false
	case q.MustBeLessOrEqualTo != nil:
		bound = *q.MustBeLessOrEqualTo
	case len(q.MustBeBetween) == 2 && q.MustBeBetween[0] <= 0:
		bound = q.MustBeBetween[1]
	default:
		return fmt.Errorf("a lower bound on the count of %s cannot be judged record by record; use mustBe: 0, mustBeLessThan, mustBeLessOrEqualTo or mustBeBetween [0, n]", r.metric)
	}
	var unit string
	switch q.Unit {
	case "", "rows":
		unit = "rows"
	case "percent":
		bound = bound * float64(r.window) / 100
		unit = "percent"
	default:
		return fmt.Errorf("unit %q: want rows or percent", q.Unit)
	}
	if bound < 0 || (!inclusive && bound <= 0) {
		return fmt.Errorf("the threshold tolerates less than zero bad records, so every record would fail")
	}
	if inclusive {
		r.allowed = int64(math.Floor(bound))
	} else {
		r.allowed = int64(math.Ceil(bound)) - 1
	}
	switch {
	case r.allowed == 0:
		r.limit = "the contract allows none"
	case unit == "percent":
		r.limit = fmt.Sprintf("the contract allows %d in %d records", r.allowed, r.window)
	default:
		r.limit = fmt.Sprintf("the contract allows %d per %d records", r.allowed, r.window)
	}
	return nil
}

// validity reads invalidValues' criteria: validValues, pattern, and
// Meshlet's value ranges, spelled with ODCS's operator names inside
// arguments (the operator outside still bounds the count).
func (r *rule) validity(args map[string]any) error {
	if vv, ok := args["validValues"]; ok {
		list, ok := vv.([]any)
		if !ok || len(list) == 0 {
			return fmt.Errorf("arguments.validValues must be a non-empty list")
		}
		r.validGiven = true
		r.valid, r.validNums = map[string]bool{}, map[float64]bool{}
		for _, v := range list {
			if n, ok := number(v); ok {
				r.validNums[n] = true
			}
			r.valid[fmt.Sprint(v)] = true
		}
	}
	if p, ok := args["pattern"]; ok {
		s, ok := p.(string)
		if !ok {
			return fmt.Errorf("arguments.pattern must be a string")
		}
		re, err := regexp.Compile(s)
		if err != nil {
			return fmt.Errorf("arguments.pattern: %w (Go's RE2 syntax; ECMA-262 look-arounds and back-references are not supported)", err)
		}
		r.pattern = re
	}
	r.lo, r.hi = math.Inf(-1), math.Inf(1)
	r.loInc, r.hiInc = true, true
	for _, op := range []string{"mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan", "mustBeLessOrEqualTo", "mustBeBetween"} {
		v, ok := args[op]
		if !ok {
			continue
		}
		r.ranged = true
		if op == "mustBeBetween" {
			pair, ok := v.([]any)
			if !ok || len(pair) != 2 {
				return fmt.Errorf("arguments.mustBeBetween must be [low, high]")
			}
			lo, ok1 := number(pair[0])
			hi, ok2 := number(pair[1])
			if !ok1 || !ok2 || lo > hi {
				return fmt.Errorf("arguments.mustBeBetween must be two numbers, low first")
			}
			r.lo, r.hi = max(r.lo, lo), min(r.hi, hi)
			continue
		}
		n, ok := number(v)
		if !ok {
			return fmt.Errorf("arguments.%s must be a number", op)
		}
		switch op {
		case "mustBeGreaterThan":
			r.lo, r.loInc = n, false
		case "mustBeGreaterOrEqualTo":
			r.lo = n
		case "mustBeLessThan":
			r.hi, r.hiInc = n, false
		case "mustBeLessOrEqualTo":
			r.hi = n
		}
	}
	if !r.validGiven && r.pattern == nil && !r.ranged {
		return fmt.Errorf("invalidValues needs arguments: validValues, pattern, or a range (mustBeGreaterThan, mustBeGreaterOrEqualTo, mustBeLessThan, mustBeLessOrEqualTo, mustBeBetween)")
	}
	return nil
}

// check judges one record; bad reports a violation.
func (r *rule) check(c *Checker, key string, a *rowAccess) (Violation, bool) {
	r.checked.Add(1)
	if r.seen == r.window {
		r.seen, r.badNow = 0, 0
	}
	r.seen++
	what, isBad := r.judge(c, key, a)
	if !isBad {
		return Violation{}, false
	}
	r.bad.Add(1)
	r.badNow++
	if r.badNow <= r.allowed {
		return Violation{}, false
	}
	r.violations.Add(1)
	return Violation{
		Rule: r.name, Field: strings.Join(r.fields, ","), Metric: r.metric, DeadLetter: r.deadLetter,
		Message: what + "; " + r.limit,
	}, true
}

// judge says whether the record counts toward the metric, and how.
func (r *rule) judge(c *Checker, key string, a *rowAccess) (string, bool) {
	field := r.fields[0]
	switch r.metric {
	case "nullValues":
		if a.get(r.slots[0]).kind == vNull {
			return field + " is null", true
		}
	case "missingValues":
		v := a.get(r.slots[0])
		for _, m := range r.missing {
			if v.equal(m) {
				return fmt.Sprintf("%s is %s, which counts as missing", field, v), true
			}
		}
	case "invalidValues":
		v := a.get(r.slots[0])
		if v.kind == vNull {
			return "", false // nullValues' business
		}
		if why := r.invalid(v); why != "" {
			return fmt.Sprintf("%s %s %s", field, v, why), true
		}
	case "duplicateValues":
		var h maphash.Hash
		h.SetSeed(c.seed)
		for _, s := range r.slots {
			v := a.get(s)
			if v.kind == vNull {
				return "", false
			}
			v.hash(&h)
		}
		if holder, dup := r.dups.observe(key, h.Sum64(), !r.deadLetter); dup {
			return fmt.Sprintf("%s repeats the value of entity %q", strings.Join(r.fields, "+"), holder), true
		}
	}
	return "", false
}

func (r *rule) invalid(v value) string {
	if r.validGiven {
		ok := false
		if n, isNum := v.number(); isNum {
			ok = r.validNums[n]
		}
		if !ok {
			ok = r.valid[v.text()]
		}
		if !ok {
			return "is not one of the valid values"
		}
	}
	if r.pattern != nil && !r.pattern.MatchString(v.text()) {
		return "does not match " + r.pattern.String()
	}
	if r.ranged {
		n, ok := v.number()
		switch {
		case !ok:
			return "is not a number"
		case n < r.lo || (n == r.lo && !r.loInc):
			return fmt.Sprintf("is below %s", bound(r.lo, r.loInc, ">"))
		case n > r.hi || (n == r.hi && !r.hiInc):
			return fmt.Sprintf("is above %s", bound(r.hi, r.hiInc, "<"))
		}
	}
	return ""
}

func bound(n float64, inclusive bool, op string) string {
	if inclusive {
		op += "="
	}
	return "the allowed range (" + op + " " + strconv.FormatFloat(n, 'g', -1, 64) + ")"
}

// value is one field's value, unboxed so checking allocates nothing.
type value struct {
	kind vkind
	i    int64
	f    float64
	s    string
	x    any // vOther
}

type vkind uint8

const (
	vNull vkind = iota
	vInt
	vFloat
	vString
	vBool
	vTime // i: Unix microseconds
	vOther
)

func (v value) String() string {
	switch v.kind {
	case vNull:
		return "null"
	case vString:
		return strconv.Quote(v.s)
	}
	return v.text()
}

func (v value) text() string {
	switch v.kind {
	case vNull:
		return "null"
	case vInt:
		return strconv.FormatInt(v.i, 10)
	case vFloat:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case vString:
		return v.s
	case vBool:
		return strconv.FormatBool(v.i == 1)
	case vTime:
		return time.UnixMicro(v.i).UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v.x)
}

func (v value) number() (float64, bool) {
	switch v.kind {
	case vInt:
		return float64(v.i), true
	case vFloat:
		return v.f, true
	}
	return 0, false
}

func (v value) equal(o value) bool {
	if a, ok := v.number(); ok {
		b, ok := o.number()
		return ok && a == b
	}
	if v.kind != o.kind {
		return false
	}
	switch v.kind {
	case vNull:
		return true
	case vString:
		return v.s == o.s
	case vBool, vTime:
		return v.i == o.i
	}
	return v.text() == o.text()
}

func (v value) hash(h *maphash.Hash) {
	if n, ok := v.number(); ok {
		h.WriteByte(byte(vFloat))
		var b [8]byte
		bits := math.Float64bits(n)
		for i := range b {
			b[i] = byte(bits >> (8 * i))
		}
		h.Write(b[:])
		return
	}
	h.WriteByte(byte(v.kind))
	switch v.kind {
	case vString:
		h.WriteString(v.s)
	case vBool, vTime:
		h.WriteString(strconv.FormatInt(v.i, 10))
	default:
		h.WriteString(v.text())
	}
	h.WriteByte(0) // separates the fields of a multi-field key
}

// fromAny unboxes a value from a map row or a contract argument.
func fromAny(x any) value {
	switch t := x.(type) {
	case nil:
		return value{kind: vNull}
	case string:
		return value{kind: vString, s: t}
	case bool:
		if t {
			return value{kind: vBool, i: 1}
		}
		return value{kind: vBool}
	case int:
		return value{kind: vInt, i: int64(t)}
	case int8:
		return value{kind: vInt, i: int64(t)}
	case int16:
		return value{kind: vInt, i: int64(t)}
	case int32:
		return value{kind: vInt, i: int64(t)}
	case int64:
		return value{kind: vInt, i: t}
	case uint:
		return value{kind: vInt, i: int64(t)}
	case uint8:
		return value{kind: vInt, i: int64(t)}
	case uint16:
		return value{kind: vInt, i: int64(t)}
	case uint32:
		return value{kind: vInt, i: int64(t)}
	case uint64:
		return value{kind: vInt, i: int64(t)}
	case float32:
		return value{kind: vFloat, f: float64(t)}
	case float64:
		return value{kind: vFloat, f: t}
	case []byte:
		return value{kind: vString, s: string(t)}
	case time.Time:
		return value{kind: vTime, i: t.UnixMicro()}
	case *big.Rat:
		if t == nil {
			return value{kind: vNull}
		}
		f, _ := t.Float64()
		return value{kind: vFloat, f: f}
	case map[string]any:
		// hamba's map form of a union branch: {"string": "x"}.
		if len(t) == 1 {
			for _, inner := range t {
				return fromAny(inner)
			}
		}
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return value{kind: vNull}
		}
		return fromAny(rv.Elem().Interface())
	case reflect.Slice, reflect.Map:
		if rv.IsNil() {
			return value{kind: vNull}
		}
	}
	return value{kind: vOther, x: x}
}

func number(x any) (float64, bool) {
	v := fromAny(x)
	return v.number()
}

func argStrings(args map[string]any, name string) ([]string, error) {
	raw, ok := args[name]
	if !ok {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("arguments.%s must be a list of property names", name)
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("arguments.%s must be a list of property names", name)
		}
		out = append(out, s)
	}
	return out, nil
}

// dupWindow remembers which entity holds which value, for the last size
// entities seen. An entity that keeps its value is not a duplicate of
// itself; one that changes it releases the old value.
type dupWindow struct {
	size  int
	gen   uint64
	byKey map[string]dupEntry
	byVal map[uint64]string
	order []dupEntry // oldest first, from head; stale entries are skipped
	head  int
}

type dupEntry struct {
	key  string
	hash uint64
	gen  uint64
}

func newDupWindow(size int) *dupWindow {
	return &dupWindow{size: size, byKey: map[string]dupEntry{}, byVal: map[uint64]string{}}
}

// observe records that key holds value h and returns the other entity that
// already holds it, if any. A duplicate is remembered only when keep (the
// record is published; a dead-lettered one never took the value).
func (d *dupWindow) observe(key string, h uint64, keep bool) (string, bool) {
	prev, had := d.byKey[key]
	if had && prev.hash == h {
		return "", false
	}
	holder, dup := d.byVal[h]
	if dup && !keep {
		return holder, true // not published: the entity keeps its old value
	}
	if had {
		d.release(prev)
	}
	if !dup {
		d.byVal[h] = key
	}
	d.gen++
	e := dupEntry{key: key, hash: h, gen: d.gen}
	d.byKey[key] = e
	d.order = append(d.order, e)
	for len(d.byKey) > d.size && d.head < len(d.order) {
		old := d.order[d.head]
		d.head++
		if cur, ok := d.byKey[old.key]; ok && cur.gen == old.gen {
			d.release(cur)
		}
	}
	// Entities that change value leave stale entries behind; drop them
	// once they outnumber the live ones, so memory stays O(size).
	if len(d.order)-d.head > 2*d.size+16 {
		live := d.order[:0]
		for _, o := range d.order[d.head:] {
			if cur, ok := d.byKey[o.key]; ok && cur.gen == o.gen {
				live = append(live, o)
			}
		}
		d.order, d.head = live, 0
	}
	return holder, dup
}

func (d *dupWindow) release(e dupEntry) {
	delete(d.byKey, e.key)
	if d.byVal[e.hash] == e.key {
		delete(d.byVal, e.hash)
	}
}

func (d *dupWindow) forget(key string) {
	if e, ok := d.byKey[key]; ok {
		d.release(e)
	}
}

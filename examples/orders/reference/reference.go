// Package reference computes what the orders product must publish by
// folding its input with plain maps, the naive way, for tests to compare
// the product's output against: no state store, no operators, no Kafka.
//
// Both outputs are timelines over valid time, one per key: the steps at
// which the published value changes (a step may be a deletion). The
// product's output, folded to the same form (Fold), must equal them
// exactly, however the input was split into batches, interleaved across
// topics, re-sent or replayed after a crash.
package reference

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/meshlet/meshlet/examples/orders/orders"
)

// Input is one Debezium message as it reached an input port.
type Input struct {
	Port  string
	Value []byte
}

// Step is a key's value from ValidFrom on (Deleted: no value).
type Step struct {
	ValidFrom int64 // unix µs
	Deleted   bool
	Value     string // the record as JSON
}

// Timeline is each key's steps in valid-time order.
type Timeline map[string][]Step

type message struct {
	Op     string          `json:"op"`
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	Source struct {
		TsMs int64 `json:"ts_ms"`
	} `json:"source"`
}

type version[T any] struct {
	at  int64 // valid from, unix µs: the commit time
	row *T    // nil: deleted
}

// put records a version, replacing one at the same valid time.
func put[T any](vs []version[T], at int64, row *T) []version[T] {
	for i := range vs {
		if vs[i].at == at {
			vs[i].row = row
			return vs
		}
	}
	vs = append(vs, version[T]{at, row})
	slices.SortFunc(vs, func(a, b version[T]) int { return cmp.Compare(a.at, b.at) })
	return vs
}

func asOf[T any](vs []version[T], t int64) *T {
	var row *T
	for _, v := range vs {
		if v.at <= t {
			row = v.row
		}
	}
	return row
}

// Expect folds the inputs, in the order they reached the product, into
// the enriched orders and the customer totals the product must publish.
// An order event the product refuses (quantity below 1, which the
// contract dead-letters; a purchaser change) changes nothing.
func Expect(in []Input) (enriched, totals Timeline, err error) {
	customers := map[string][]version[orders.Customer]{}
	ords := map[string][]version[orders.Order]{}
	for i, m := range in {
		var msg message
		if err := json.Unmarshal(m.Value, &msg); err != nil {
			return nil, nil, fmt.Errorf("input %d: %w", i, err)
		}
		at := time.UnixMilli(msg.Source.TsMs).UnixMicro()
		switch m.Port {
		case orders.CustomersPort:
			var before, after *orders.Customer
			decode(msg.Before, &before)
			decode(msg.After, &after)
			row := after
			if row == nil {
				row = before
			}
			id := strconv.FormatInt(row.ID, 10)
			customers[id] = put(customers[id], at, after)
		case orders.OrdersPort:
			var before, after *orders.Order
			decode(msg.Before, &before)
			decode(msg.After, &after)
			if after != nil && (after.Quantity < 1 || (before != nil && before.Purchaser != after.Purchaser)) {
				continue // refused: a dead letter
			}
			row := after
			if row == nil {
				row = before
			}
			n := strconv.FormatInt(row.OrderNumber, 10)
			ords[n] = put(ords[n], at, after)
		default:
			return nil, nil, fmt.Errorf("input %d: no port %q", i, m.Port)
		}
	}

	// Each order version joins its customer as of the version's time.
	enriched = Timeline{}
	groups := map[string][]string{} // purchaser -> order numbers
	for n, vs := range ords {
		var steps []Step
		for _, v := range vs {
			if v.row == nil {
				steps = append(steps, Step{ValidFrom: v.at, Deleted: true})
				continue
			}
			o := v.row
			e := orders.EnrichedOrder{OrderNumber: o.OrderNumber, OrderDate: o.OrderDate, CustomerID: o.Purchaser, Quantity: o.Quantity, ProductID: o.ProductID}
			if c := asOf(customers[strconv.FormatInt(o.Purchaser, 10)], v.at); c != nil {
				name := c.FirstName + " " + c.LastName
				email := c.Email
				e.CustomerName, e.CustomerEmail = &name, &email
			}
			steps = append(steps, Step{ValidFrom: v.at, Value: text(e)})
			g := strconv.FormatInt(o.Purchaser, 10)
			if !slices.Contains(groups[g], n) {
				groups[g] = append(groups[g], n)
			}
		}
		if s := compress(steps); len(s) > 0 {
			enriched[n] = s
		}
	}

	// A customer's totals at t fold the orders that hold at t.
	totals = Timeline{}
	for g, members := range groups {
		var points []int64
		for _, n := range members {
			for _, v := range ords[n] {
				points = append(points, v.at)
			}
		}
		slices.Sort(points)
		points = slices.Compact(points)
		id, _ := strconv.ParseInt(g, 10, 64)
		var steps []Step
		for _, t := range points {
			tot := orders.CustomerTotals{CustomerID: id}
			for _, n := range members {
				if o := asOf(ords[n], t); o != nil {
					tot.Orders++
					tot.Quantity += int64(o.Quantity)
				}
			}
			if tot.Orders == 0 {
				steps = append(steps, Step{ValidFrom: t, Deleted: true})
			} else {
				steps = append(steps, Step{ValidFrom: t, Value: text(tot)})
			}
		}
		if s := compress(steps); len(s) > 0 {
			totals[g] = s
		}
	}
	return enriched, totals, nil
}

func decode[T any](raw json.RawMessage, dst **T) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	var v T
	if json.Unmarshal(raw, &v) == nil {
		*dst = &v
	}
}

func text(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs
	}
	return string(b)
}

// compress drops steps that change nothing: a value equal to the one
// before, a deletion of nothing.
func compress(steps []Step) []Step {
	var out []Step
	for _, s := range steps {
		if len(out) == 0 && s.Deleted {
			continue
		}
		if len(out) > 0 {
			last := out[len(out)-1]
			if last.Deleted == s.Deleted && last.Value == s.Value {
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// Published is one record as an output topic carries it.
type Published struct {
	Key       string
	ValidFrom int64
	Deleted   bool
	Value     string
}

// Fold is the timeline a port's records make, in the order published:
// the last record of each key and valid time holds there.
func Fold(recs []Published) Timeline {
	last := map[string]map[int64]Published{}
	for _, r := range recs {
		if last[r.Key] == nil {
			last[r.Key] = map[int64]Published{}
		}
		last[r.Key][r.ValidFrom] = r
	}
	tl := Timeline{}
	for k, byTime := range last {
		var steps []Step
		for _, t := range slices.Sorted(maps.Keys(byTime)) {
			r := byTime[t]
			s := Step{ValidFrom: t, Deleted: r.Deleted}
			if !r.Deleted {
				s.Value = r.Value
			}
			steps = append(steps, s)
		}
		if s := compress(steps); len(s) > 0 {
			tl[k] = s
		}
	}
	return tl
}

// meta are the fields Meshlet adds to every published record.
type meta struct {
	ValidFrom time.Time `avro:"_valid_from"`
	Deleted   bool      `avro:"_deleted"`
}

// Decoder reads the records of the product's output ports.
type Decoder struct {
	schemas map[string]avro.Schema // by topic
	ports   map[string]string      // topic -> port
}

// NewDecoder reads the ports' published schemas from the product.
func NewDecoder() (*Decoder, error) {
	p, err := orders.New()
	if err != nil {
		return nil, err
	}
	d := &Decoder{schemas: map[string]avro.Schema{}, ports: map[string]string{}}
	for i, port := range p.Manifest.OutputPorts {
		s, err := p.PortSchema(i)
		if err != nil {
			return nil, err
		}
		sch, err := avro.Parse(s.Published())
		if err != nil {
			return nil, err
		}
		d.schemas[port.Topic], d.ports[port.Topic] = sch, port.Name
	}
	return d, nil
}

// Port is the output port publishing topic.
func (d *Decoder) Port(topic string) string { return d.ports[topic] }

// Decode reads one record of an output topic (Confluent wire format).
func (d *Decoder) Decode(topic string, key, value []byte) (Published, error) {
	sch, ok := d.schemas[topic]
	if !ok {
		return Published{}, fmt.Errorf("%s is no output topic of the orders product", topic)
	}
	if len(value) < 5 || value[0] != 0 {
		return Published{}, fmt.Errorf("%s: not the Confluent wire format", topic)
	}
	var m meta
	if err := avro.Unmarshal(sch, value[5:], &m); err != nil {
		return Published{}, fmt.Errorf("%s key %s: %w", topic, key, err)
	}
	pub := Published{Key: string(key), ValidFrom: m.ValidFrom.UnixMicro(), Deleted: m.Deleted}
	var err error
	switch d.ports[topic] {
	case orders.EnrichedPort:
		var e orders.EnrichedOrder
		err = avro.Unmarshal(sch, value[5:], &e)
		pub.Value = text(e)
	default:
		var t orders.CustomerTotals
		err = avro.Unmarshal(sch, value[5:], &t)
		pub.Value = text(t)
	}
	if err != nil {
		return Published{}, fmt.Errorf("%s key %s: %w", topic, key, err)
	}
	return pub, nil
}

// Diff describes how got differs from want, "" when they are equal.
func Diff(what string, got, want Timeline) string {
	var out string
	for k, w := range want {
		if g := got[k]; !slices.Equal(g, w) {
			out += fmt.Sprintf("%s %s:\n  got  %v\n  want %v\n", what, k, g, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out += fmt.Sprintf("%s %s: published %v, want nothing\n", what, k, g)
		}
	}
	return out
}

package reference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/examples/orders/orders"
	"github.com/meshlet/meshlet/ports/kafka"
)

// Topics are the product's input topics by port.
var Topics = map[string]string{
	orders.CustomersPort: "dbserver1.inventory.customers",
	orders.OrdersPort:    "dbserver1.inventory.orders",
}

// Feed is recorded CDC for one input port, in the order it reaches Kafka,
// each record on the partition the connectors' routing gives it.
type Feed struct {
	Port    string
	Records []*kgo.Record
}

// Recording is the product's own recording (orders.Recorded), routed to
// topics of partitions partitions.
func Recording(partitions int32) ([]Feed, error) {
	var feeds []Feed
	for _, r := range orders.Recorded() {
		recs, err := kafka.RecordedCDC(bytes.NewReader(r.Data), r.Name, Topics[r.Port], r.KeyFields)
		if err != nil {
			return nil, err
		}
		if err := kafka.RouteByField(recs, orders.Routes[r.Port], partitions); err != nil {
			return nil, err
		}
		feeds = append(feeds, Feed{Port: r.Port, Records: recs})
	}
	return feeds, nil
}

// Inputs are the feeds' messages, in feed order, for Expect.
func Inputs(feeds []Feed) []Input {
	var in []Input
	for _, f := range feeds {
		for _, r := range f.Records {
			in = append(in, Input{Port: f.Port, Value: r.Value})
		}
	}
	return in
}

// Spec shapes a Workload.
type Spec struct {
	Events    int // changes after the customers' snapshot
	Customers int
	// Lag is how many milliseconds (events: they commit 1ms apart) the
	// customers connector lags the orders one.
	Lag  int
	Seed uint64
	// Partitions is the input topics' partition count, for the routing.
	Partitions int32
	// StaticCustomers leaves the customers as the snapshot has them: no
	// email changes, so nothing is corrected and the output does not depend
	// on how the topics interleave (for benchmarks).
	StaticCustomers bool
}

// Workload is a larger stream on the same tables, in the envelope of the
// recording: the customers' snapshot, then changes of orders (placed,
// quantities changed, deleted) and of customers (new emails, one change
// in ten), with commit times 1ms apart. The customers connector lags, so a
// customer change reaches Kafka after orders committed later than it: a
// back-dated change for every order of that customer in between. About
// one order event in 50 is re-sent later (a Debezium duplicate), and one
// in 97 orders a quantity of 0, which the contract refuses. The records
// come in the order they reach Kafka, with the same as Inputs.
func Workload(spec Spec) ([]*kgo.Record, []Input, error) {
	events, customers, lag, seed, partitions := spec.Events, spec.Customers, spec.Lag, spec.Seed, spec.Partitions
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	const t0 = int64(1596001099434)
	type pending struct {
		port string
		rec  *kgo.Record
		at   int64 // commit time
	}
	var (
		out      []pending
		late     []pending // customer changes not yet released
		custs    = map[int64]orders.Customer{}
		live     = map[int64]orders.Order{}
		liveKeys []int64
		sent     []pending // recent order events, for re-sends
		nextNum  = int64(20001)
		lsn      = int64(40000000)
	)
	emit := func(port, table, op string, at int64, before, after any, snapshot bool) error {
		lsn += 200
		snap := "false"
		if snapshot {
			snap = "true"
		}
		v, err := json.Marshal(map[string]any{"before": before, "after": after, "op": op, "ts_ms": at + 400, "transaction": nil,
			"source": map[string]any{"version": "1.2.1.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": at,
				"snapshot": snap, "db": "postgres", "schema": "inventory", "table": table, "txId": lsn / 200, "lsn": lsn, "xmin": nil}})
		if err != nil {
			return err
		}
		row := after
		if row == nil {
			row = before
		}
		var key []byte
		switch r := row.(type) {
		case orders.Customer:
			key = fmt.Appendf(nil, `{"id":%d}`, r.ID)
		case orders.Order:
			key = fmt.Appendf(nil, `{"order_number":%d}`, r.OrderNumber)
		}
		rec := &kgo.Record{Topic: Topics[port], Key: key, Value: v}
		p, err := kafka.RoutedPartition(v, orders.Routes[port], partitions)
		if err != nil {
			return err
		}
		rec.Partition = p
		if port == orders.CustomersPort && !snapshot {
			late = append(late, pending{port, rec, at})
			return nil
		}
		out = append(out, pending{port, rec, at})
		if port == orders.OrdersPort {
			sent = append(sent, pending{port, rec, at})
			if len(sent) > 200 {
				sent = sent[1:]
			}
		}
		return nil
	}
	at := t0
	for i := range customers {
		c := orders.Customer{ID: int64(3001 + i), FirstName: fmt.Sprintf("First%d", i), LastName: fmt.Sprintf("Last%d", i), Email: fmt.Sprintf("c%d@example.com", i)}
		custs[c.ID] = c
		if err := emit(orders.CustomersPort, "customers", "r", at, nil, c, true); err != nil {
			return nil, nil, err
		}
		at++
	}
	for i := range events {
		at++
		// The lagging connector releases what committed lag events ago.
		for len(late) > 0 && late[0].at <= at-int64(lag) {
			out = append(out, late[0])
			late = late[1:]
		}
		k := rng.IntN(100)
		if spec.StaticCustomers && k < 10 {
			k += 12 // an order placed instead
		}
		switch {
		case k < 10: // a customer's new email
			id := int64(3001 + rng.IntN(customers))
			c := custs[id]
			n := c
			n.Email = fmt.Sprintf("c%d.%d@example.com", id, i)
			custs[id] = n
			if err := emit(orders.CustomersPort, "customers", "u", at, c, n, false); err != nil {
				return nil, nil, err
			}
		case k < 12 && len(sent) > 0: // the connector re-sends an order event
			dup := sent[rng.IntN(len(sent))]
			out = append(out, pending{dup.port, &kgo.Record{Topic: dup.rec.Topic, Partition: dup.rec.Partition, Key: dup.rec.Key, Value: dup.rec.Value}, dup.at})
		case k < 50 || len(liveKeys) < 5: // an order placed
			o := orders.Order{OrderNumber: nextNum, OrderDate: int32(18472 + i/1000), Purchaser: int64(3001 + rng.IntN(customers)),
				Quantity: int32(1 + rng.IntN(9)), ProductID: int64(101 + rng.IntN(9))}
			nextNum++
			if i%97 == 96 {
				o.Quantity = 0 // refused by the contract: nothing of it is kept
			} else {
				live[o.OrderNumber] = o
				liveKeys = append(liveKeys, o.OrderNumber)
			}
			if err := emit(orders.OrdersPort, "orders", "c", at, nil, o, false); err != nil {
				return nil, nil, err
			}
		case k < 85: // a quantity changed
			n := liveKeys[rng.IntN(len(liveKeys))]
			o := live[n]
			u := o
			u.Quantity = int32(1 + rng.IntN(9))
			live[n] = u
			if err := emit(orders.OrdersPort, "orders", "u", at, o, u, false); err != nil {
				return nil, nil, err
			}
		default: // an order deleted
			j := rng.IntN(len(liveKeys))
			n := liveKeys[j]
			o := live[n]
			delete(live, n)
			liveKeys = slices.Delete(liveKeys, j, j+1)
			if err := emit(orders.OrdersPort, "orders", "d", at, o, nil, false); err != nil {
				return nil, nil, err
			}
		}
	}
	out = append(out, late...)
	recs := make([]*kgo.Record, len(out))
	in := make([]Input, len(out))
	for i, p := range out {
		recs[i], in[i] = p.rec, Input{Port: p.port, Value: p.rec.Value}
	}
	return recs, in, nil
}

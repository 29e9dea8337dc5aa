// Package orders is an example data product that joins, aggregates and
// fans out: the orders of the Debezium tutorial's inventory database,
// each enriched with its customer as the customer was when the order was
// placed (port enriched-orders), and every customer's running totals
// (port customer-totals).
//
// The customers table is an input port of mode table: Meshlet keeps it in
// state, versioned by valid time (the commit time of each change). Each
// version of an order joins the customer valid at the order's valid time
// (a transforms.Lookup on the order's purchaser); each version of an order
// also counts toward its customer's totals (a transforms.Aggregate), an
// update taking back the order's old contribution first and a delete
// taking it out. A customer change that reaches the product after orders
// it applies to were published (its commit time is earlier than theirs:
// the customers connector lagged) corrects those orders: new versions of
// the same orders at the same valid times.
//
// The join needs a customer and their orders in one task: the connectors
// route customers by id and orders by purchaser to partitions with
// Debezium's PartitionRouting transform (partition.payload.fields), so the
// two topics are co-partitioned (dev does the same: cli.Route). An order
// therefore never changes its purchaser here: such an update would reach
// the new customer's partition only, and is refused (dead-lettered).
package orders

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strconv"

	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/state"
	"github.com/meshlet/meshlet/transforms"
)

//go:embed product.yaml schemas/*.avsc recorded/*.txt
var files embed.FS

// Customer is the customers table as Debezium captures it.
type Customer struct {
	ID        int64  `json:"id"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
}

// Order is the orders table as Debezium captures it.
type Order struct {
	OrderNumber int64 `json:"order_number"`
	OrderDate   int32 `json:"order_date"` // days since 1970-01-01 (io.debezium.time.Date)
	Purchaser   int64 `json:"purchaser"`
	Quantity    int32 `json:"quantity"`
	ProductID   int64 `json:"product_id"`
}

// EnrichedOrder is what port enriched-orders publishes
// (schemas/enriched-order.avsc).
type EnrichedOrder struct {
	OrderNumber   int64   `avro:"order_number" json:"order_number"`
	OrderDate     int32   `avro:"order_date" json:"order_date"`
	CustomerID    int64   `avro:"customer_id" json:"customer_id"`
	CustomerName  *string `avro:"customer_name" json:"customer_name"`
	CustomerEmail *string `avro:"customer_email" json:"customer_email"`
	Quantity      int32   `avro:"quantity" json:"quantity"`
	ProductID     int64   `avro:"product_id" json:"product_id"`
}

// CustomerTotals is what port customer-totals publishes
// (schemas/customer-totals.avsc).
type CustomerTotals struct {
	CustomerID int64 `avro:"customer_id" json:"customer_id"`
	Orders     int64 `avro:"orders" json:"orders"`
	Quantity   int64 `avro:"quantity" json:"quantity"`
}

// The ports, as the manifest names them.
const (
	CustomersPort = "customers-cdc"
	OrdersPort    = "orders-cdc"
	EnrichedPort  = "enriched-orders"
	TotalsPort    = "customer-totals"
)

// Enrich joins each order version with its customer as valid then. A
// left join: an order whose customer is not on record still shows, with
// no name or email.
var Enrich = &transforms.Lookup[Order, Customer, EnrichedOrder]{
	Name:  "enrich",
	Right: CustomersPort, // the table the customers port is materialized into
	Key:   func(o *Order) string { return strconv.FormatInt(o.Purchaser, 10) },
	Join: func(o *Order, c *Customer) (EnrichedOrder, bool) {
		e := EnrichedOrder{OrderNumber: o.OrderNumber, OrderDate: o.OrderDate, CustomerID: o.Purchaser, Quantity: o.Quantity, ProductID: o.ProductID}
		if c != nil {
			name := c.FirstName + " " + c.LastName
			e.CustomerName, e.CustomerEmail = &name, &c.Email
		}
		return e, true
	},
}

// Totals counts each customer's orders and sums their quantities.
var Totals = &transforms.Aggregate[Order, CustomerTotals]{
	Name:  "totals",
	Group: func(o *Order) string { return strconv.FormatInt(o.Purchaser, 10) },
	Fold: transforms.Fold[Order, CustomerTotals]{
		Zero: func() CustomerTotals { return CustomerTotals{} },
		Add: func(t CustomerTotals, o *Order) CustomerTotals {
			return CustomerTotals{CustomerID: o.Purchaser, Orders: t.Orders + 1, Quantity: t.Quantity + int64(o.Quantity)}
		},
	},
}

// ErrPurchaserChanged refuses an order moved to another customer: orders
// are partitioned by purchaser, so the old customer's task never sees it.
var ErrPurchaserChanged = errors.New("an order's purchaser changed")

// HandleOrder joins and counts each version of an order, valid from its
// commit time; a delete retracts the order from then on.
func HandleOrder(_ context.Context, c transforms.Change[Order], st *state.Txn) ([]transforms.Output, error) {
	o, before := c.After(), c.Before()
	row := o
	if row == nil {
		if row = before; row == nil {
			row = c.Key()
		}
	}
	if row == nil {
		return nil, fmt.Errorf("%w: %s without a row or a key", transforms.ErrUnsupportedOp, c.Op)
	}
	if o != nil && before != nil && before.Purchaser != o.Purchaser {
		return nil, fmt.Errorf("order %d: %w from %d to %d; the product needs orders partitioned by purchaser, so the order must be deleted and placed again",
			o.OrderNumber, ErrPurchaserChanged, before.Purchaser, o.Purchaser)
	}
	key := strconv.FormatInt(row.OrderNumber, 10)
	enriched, err := Enrich.OnLeft(st, key, c.CommitTime, o)
	if err != nil {
		return nil, err
	}
	for i := range enriched {
		enriched[i].Value.OrderNumber = row.OrderNumber // a retraction carries its key fields
	}
	totals, err := Totals.On(st, key, c.CommitTime, o)
	if err != nil {
		return nil, err
	}
	return append(transforms.To(EnrichedPort, enriched...), transforms.To(TotalsPort, customerKeyed(totals)...)...), nil
}

// HandleCustomer runs after Meshlet has written the customer's change into
// its table: it re-emits the enriched orders the change corrects.
func HandleCustomer(_ context.Context, c transforms.Change[Customer], st *state.Txn) ([]transforms.Output, error) {
	row := c.After()
	if row == nil {
		if row = c.Before(); row == nil {
			row = c.Key()
		}
	}
	if row == nil {
		return nil, fmt.Errorf("%w: %s without a row or a key", transforms.ErrUnsupportedOp, c.Op)
	}
	recs, err := Enrich.Corrections(st, strconv.FormatInt(row.ID, 10), c.CommitTime)
	return transforms.To(EnrichedPort, recs...), err
}

// customerKeyed fills in the customer of each totals version, which a
// retraction (a customer left without orders) has only as its key.
func customerKeyed(recs []transforms.Record[CustomerTotals]) []transforms.Record[CustomerTotals] {
	for i := range recs {
		if id, err := strconv.ParseInt(recs[i].Key, 10, 64); err == nil {
			recs[i].Value.CustomerID = id
		}
	}
	return recs
}

// New returns the product, ready to run.
func New() (*runtime.Product, error) {
	return runtime.NewProduct(files, "product.yaml", nil,
		transforms.On(CustomersPort, HandleCustomer),
		transforms.On(OrdersPort, HandleOrder))
}

// A recording: one input port's captured changes, in the order they reach
// Kafka.
type Recording struct {
	Port, Name string
	Data       []byte
	KeyFields  []string
}

// Recorded is the product's recorded CDC, in the order dev feeds it: the
// customers table's snapshot and first change, the orders, then the
// customers' later changes, which reached Kafka after the orders (the
// customers connector lagged). See recorded/README.md.
func Recorded() []Recording {
	read := func(name string) []byte {
		b, err := files.ReadFile("recorded/" + name)
		if err != nil {
			panic(err) // embedded: a missing file is a build mistake
		}
		return b
	}
	return []Recording{
		{CustomersPort, "recorded/customers.txt", read("customers.txt"), []string{"id"}},
		{OrdersPort, "recorded/orders.txt", read("orders.txt"), []string{"order_number"}},
		{CustomersPort, "recorded/customers-late.txt", read("customers-late.txt"), []string{"id"}},
	}
}

// Routes are the columns each input port's records are partitioned by, as
// the connectors' PartitionRouting transform routes them.
var Routes = map[string]string{CustomersPort: "id", OrdersPort: "purchaser"}

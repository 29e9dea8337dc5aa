// Package transforms is the API a domain engineer writes a data product
// against.
//
// A handler is one typed Go function. It receives a Change whose row images
// it reads as the engineer's struct (c.After(), c.Before(), c.Key(), each
// decoded only when asked for) and returns zero or more Records, each an
// entity version with a key, a valid-time period and a payload:
//
//	func handle(ctx context.Context, c transforms.Change[Product]) ([]transforms.Record[Product], error)
//
// Valid time is business time. A record whose ValidFrom is zero is valid from
// the source commit time, which is what most products want; a handler that
// knows better (an effective date in the row, a back-dated correction) sets it.
// System time is never the handler's business: the runtime stamps it when the
// record is appended to the change log.
//
// A product with several output ports (an enriched stream and an aggregate,
// say) gets one Record type per port: a handler registered with On returns
// Outputs, each addressed to its port by To; a record without a port goes to
// the first. The runtime refuses a record for a port the manifest does not
// declare, as the event's dead letter.
//
//	return append(transforms.To("enriched-orders", enriched...), transforms.To("customer-totals", totals...)...), nil
//
// Inside the runtime every handler has one untyped shape, Func, and every
// middleware is a func(Func) Func, so recovery, timeouts and the like stack by
// plain composition (as watermill's middlewares do). Typed adapts a typed
// handler to that shape; Projection is the ready handler for the common
// "publish the row" product.
//
// # State, joins and aggregates
//
// A handler that keeps state reads and writes tables of package state in
// its batch's state.Txn; the operators below are built on them, each
// keeping its own tables under its Name, so they commit, roll back and
// restore with the batch like any other state. All are bitemporal: a
// result holds over a valid-time period, and a change that arrives late
// (valid earlier than results already published) re-emits every result
// it affects as a correction, a record for the same result key and valid
// time with a new system time, so the corrections of the output port list
// them. Each operator emits only where the result differs from what it
// published there (its <Name>.out table), so replaying nothing changed
// emits nothing, and a result is never emitted twice.
//
// Supported joins:
//
//   - Stream-table (Lookup, Key returning the left row's own key): each
//     version of a left row (an event, or a CDC row's version) joins the
//     right table's row as valid at the left version's valid time. The
//     result is fixed at that time: a later right change does not touch
//     it; a back-dated one (valid before the left's time, in the period
//     that held it) corrects it. Kafka Streams' versioned joins and
//     Flink's temporal joins drop such a late table change for results
//     already out (KIP-889's late-arrival case); a Lookup revises them.
//   - Foreign-key (Lookup, Key returning a field: orders by customer_id):
//     the same semantics, the right row found by the field. Left rows
//     are indexed by right key, so a right change finds the results it
//     corrects. The right table must be readable where the left row is
//     processed: co-partitioned with the left input, both topics routed
//     to partitions by the join column (Debezium's PartitionRouting
//     transform: customers by id, orders by customer_id; see
//     examples/orders). Global tables (every replica holding all of one)
//     and re-keying through a repartition topic are not there yet.
//   - Table-table on one key (TableJoin): the result at t joins both
//     sides' versions valid at t, so it changes whenever either side does
//     and is re-emitted for each period a change on either side touches.
//     Join gets nil for a missing side, so inner, left and full joins are
//     the function's choice.
//
// Aggregate keeps count, sum, min, max or any Fold of a table's rows per
// group, as valid at each time: an update takes back the row's old
// contribution first (as Flink's -U/+U), a delete takes it out, a row
// moving to another group leaves the old one, and a group left empty is
// retracted. The group is folded again from its rows (kept in state) at
// each valid time a change affects, so folds need no inverse.
//
// Retention: an operator's tables keep what state.Retain says (the
// manifest's retention window for the product's tables). A change valid
// before the window of its key is refused with state.ErrRetention, and
// the event becomes a dead letter naming it, rather than a correction of
// results that state no longer holds.
package transforms

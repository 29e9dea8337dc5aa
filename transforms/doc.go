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
// Inside the runtime every handler has one untyped shape, Func, and every
// middleware is a func(Func) Func, so recovery, timeouts and the like stack by
// plain composition (as watermill's middlewares do). Typed adapts a typed
// handler to that shape; Projection is the ready handler for the common
// "publish the row" product.
package transforms

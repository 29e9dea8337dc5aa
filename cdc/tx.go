package cdc

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// TxAssembler holds back the changes of Debezium source transactions until
// each transaction is complete, so that a product can publish whole source
// transactions only. Feed it, in any order and from any number of topics,
// the changes (which carry Tx) and the BEGIN/END boundaries (KindTxBoundary,
// from the connector's transaction topic). A transaction is released once
// its END has arrived and, for every table the END lists that the product
// consumes, exactly the END's count of changes has arrived.
//
// Redelivered changes (the same Tx.TotalOrder twice), repeated ENDs, and
// anything of a transaction arriving after it was released (a redelivery,
// or a BEGIN that came last) are dropped and counted. Changes
// without a Tx, heartbeats and tombstones are not part of any transaction
// and come straight back.
//
// Held changes are not published yet, so the runtime must not commit input
// offsets at or past them: Held says, per partition, where to stop. The
// zero value is ready to use. A TxAssembler is not safe for concurrent use.
type TxAssembler struct {
	// Consumed reports whether the product reads a data collection, named
	// as in the END ("inventory.products"); nil means every collection.
	// Counts of collections it does not read are not waited for.
	Consumed func(collection string) bool
	// MaxHeld bounds the changes held back; Add fails with ErrTxOverflow
	// beyond it. 0 means DefaultMaxHeld.
	MaxHeld int

	pending map[string]*pendingTx
	held    int
	done    map[string]struct{} // recently released IDs, to drop late duplicates
	order   []string            // the same, oldest first
	dropped int64
}

// DefaultMaxHeld is TxAssembler's bound on held changes when MaxHeld is 0.
const DefaultMaxHeld = 1 << 20

// releasedMemory is how many released transaction IDs are remembered for
// dropping late redeliveries.
const releasedMemory = 4096

var (
	// ErrTxOverflow: more changes are held back than MaxHeld allows, most
	// likely because END messages are not arriving (the transaction topic
	// is not consumed, or transaction metadata is off).
	ErrTxOverflow = errors.New("cdc: too many changes held for incomplete transactions")
	// ErrTxInconsistent: a transaction's changes disagree with its END
	// (more changes than counted, or a table the END does not list).
	ErrTxInconsistent = errors.New("cdc: transaction changes disagree with its END")
)

// Transaction is a completed source transaction.
type Transaction struct {
	// ID is the source transaction's ID; "" for a change outside any
	// transaction, passed straight through.
	ID string
	// Changes in source order (Tx.TotalOrder).
	Changes []Change
	// Begin and End are the boundary messages, for their Origin; Begin is
	// nil when no BEGIN arrived before the transaction completed.
	Begin, End *Change
}

type pendingTx struct {
	changes []Change
	orders  map[int64]struct{} // TotalOrders seen, to drop redeliveries
	begin   *Change
	end     *Change
	// Once END is known: expected and arrived counts per END collection.
	expect, got []int64
	wantAll     bool // END lists no collections: count all changes
}

// Add feeds one change or boundary. It returns a transaction when c
// completed one (or when c belongs to none), with ok set.
func (a *TxAssembler) Add(c Change) (tx Transaction, ok bool, err error) {
	switch {
	case c.Kind == KindTxBoundary && c.Boundary != nil:
		return a.addBoundary(c)
	case c.Kind == KindChange && c.Tx != nil && c.Tx.ID != "":
		return a.addChange(c)
	}
	return Transaction{Changes: []Change{c}}, true, nil
}

func (a *TxAssembler) init() {
	if a.pending == nil {
		a.pending = make(map[string]*pendingTx)
		a.done = make(map[string]struct{})
	}
}

func (a *TxAssembler) addChange(c Change) (Transaction, bool, error) {
	a.init()
	id := c.Tx.ID
	if _, released := a.done[id]; released {
		a.dropped++
		return Transaction{}, false, nil
	}
	p := a.pending[id]
	if p == nil {
		p = &pendingTx{}
		a.pending[id] = p
	}
	if n := c.Tx.TotalOrder; n > 0 {
		if _, seen := p.orders[n]; seen {
			a.dropped++
			return Transaction{}, false, nil
		}
	}
	limit := a.MaxHeld
	if limit <= 0 {
		limit = DefaultMaxHeld
	}
	if a.held >= limit {
		return Transaction{}, false, fmt.Errorf("%w: %d held (transaction %s)", ErrTxOverflow, a.held, id)
	}
	if p.end != nil {
		if err := a.count(p, &c); err != nil {
			return Transaction{}, false, err
		}
	}
	if n := c.Tx.TotalOrder; n > 0 {
		if p.orders == nil {
			p.orders = make(map[int64]struct{})
		}
		p.orders[n] = struct{}{}
	}
	p.changes = append(p.changes, c)
	a.held++
	return a.release(id, p)
}

func (a *TxAssembler) addBoundary(c Change) (Transaction, bool, error) {
	a.init()
	b := c.Boundary
	if _, released := a.done[b.ID]; released {
		a.dropped++
		return Transaction{}, false, nil
	}
	p := a.pending[b.ID]
	if p == nil {
		p = &pendingTx{}
		a.pending[b.ID] = p
	}
	bc := c
	switch b.Status {
	case TxBegin:
		if p.begin == nil {
			p.begin = &bc
		}
		return Transaction{}, false, nil
	case TxEnd:
		if p.end != nil {
			if !sameEnd(p.end.Boundary, b) {
				return Transaction{}, false, fmt.Errorf("%w: transaction %s has two different ENDs", ErrTxInconsistent, b.ID)
			}
			a.dropped++
			return Transaction{}, false, nil
		}
		p.end = &bc
		p.wantAll = len(b.Collections) == 0
		if p.wantAll {
			p.expect = []int64{b.EventCount}
		} else {
			p.expect = make([]int64, len(b.Collections))
			for i, cc := range b.Collections {
				if a.Consumed == nil || a.Consumed(cc.Collection) {
					p.expect[i] = cc.EventCount
				}
			}
		}
		p.got = make([]int64, len(p.expect))
		for i := range p.changes {
			if err := a.count(p, &p.changes[i]); err != nil {
				p.end, p.expect, p.got = nil, nil, nil
				return Transaction{}, false, err
			}
		}
		return a.release(b.ID, p)
	}
	return Transaction{}, false, fmt.Errorf("%w: transaction %s: unknown status %q", ErrTxInconsistent, b.ID, b.Status)
}

func sameEnd(x, y *TxBoundary) bool {
	return x.EventCount == y.EventCount && slices.Equal(x.Collections, y.Collections)
}

// count adds c to the END's tally of its collection, or fails leaving
// the tally as it was.
func (a *TxAssembler) count(p *pendingTx, c *Change) error {
	i := 0
	if !p.wantAll {
		i = -1
		for j, cc := range p.end.Boundary.Collections {
			if collectionIs(cc.Collection, &c.Source) {
				i = j
				break
			}
		}
		switch {
		case i < 0:
			return fmt.Errorf("%w: transaction %s: a change to %s, which its END does not list", ErrTxInconsistent, c.Tx.ID, tableName(&c.Source))
		case a.Consumed != nil && !a.Consumed(p.end.Boundary.Collections[i].Collection):
			return fmt.Errorf("%w: transaction %s: a change to %s, which Consumed excludes", ErrTxInconsistent, c.Tx.ID, tableName(&c.Source))
		}
	}
	if p.got[i] >= p.expect[i] {
		return fmt.Errorf("%w: transaction %s: more changes than its END counts (%d)", ErrTxInconsistent, c.Tx.ID, p.expect[i])
	}
	p.got[i]++
	return nil
}

// release hands out transaction id if complete.
func (a *TxAssembler) release(id string, p *pendingTx) (Transaction, bool, error) {
	if p.end == nil || !slices.Equal(p.got, p.expect) {
		return Transaction{}, false, nil
	}
	delete(a.pending, id)
	a.held -= len(p.changes)
	a.done[id] = struct{}{}
	a.order = append(a.order, id)
	if len(a.order) > releasedMemory {
		delete(a.done, a.order[0])
		a.order = a.order[1:]
	}
	slices.SortStableFunc(p.changes, func(x, y Change) int {
		return cmp.Compare(x.Tx.TotalOrder, y.Tx.TotalOrder)
	})
	return Transaction{ID: id, Changes: p.changes, Begin: p.begin, End: p.end}, true, nil
}

// Held returns, for the input partition, the lowest offset of a change or
// boundary still held back; ok is false when nothing from it is held. The
// runtime commits that partition's input only below it.
func (a *TxAssembler) Held(topic string, partition int32) (offset int64, ok bool) {
	see := func(o Origin) {
		if o.Topic == topic && o.Partition == partition && (!ok || o.Offset < offset) {
			offset, ok = o.Offset, true
		}
	}
	for _, p := range a.pending {
		for i := range p.changes {
			see(p.changes[i].Origin)
		}
		for _, b := range [...]*Change{p.begin, p.end} {
			if b != nil {
				see(b.Origin)
			}
		}
	}
	return offset, ok
}

// Pending returns how many transactions are incomplete and how many
// changes they hold.
func (a *TxAssembler) Pending() (transactions, changes int) { return len(a.pending), a.held }

// Dropped returns how many changes and boundaries were dropped as
// redelivered or late.
func (a *TxAssembler) Dropped() int64 { return a.dropped }

// Released reports whether transaction id was released (and not held
// again since).
func (a *TxAssembler) Released(id string) bool {
	_, ok := a.done[id]
	return ok
}

// Hold takes back the release of transaction id: a caller that cannot
// publish all of it now (part of it is queued behind a held change) marks
// it held, so Released says so.
func (a *TxAssembler) Hold(id string) { delete(a.done, id) }

// collectionIs reports whether a data collection name denotes the table of
// s. Debezium joins the table's identifiers with dots, leaving out the
// ones its connector does not use: schema.table (PostgreSQL), db.table
// (MySQL), db.schema.table (SQL Server, Db2, Oracle).
func collectionIs(name string, s *Source) bool {
	return joinedIs(name, s.DB, s.Schema, s.Table) || joinedIs(name, "", s.Schema, s.Table) ||
		joinedIs(name, s.DB, "", s.Table) || joinedIs(name, "", "", s.Table)
}

// joinedIs reports whether name is the non-empty parts joined with dots,
// without building the joined string.
func joinedIs(name string, parts ...string) bool {
	rest, first := name, true
	for _, p := range parts {
		if p == "" {
			continue
		}
		if !first {
			if !strings.HasPrefix(rest, ".") {
				return false
			}
			rest = rest[1:]
		}
		if !strings.HasPrefix(rest, p) {
			return false
		}
		rest, first = rest[len(p):], false
	}
	return !first && rest == ""
}

func tableName(s *Source) string {
	var parts []string
	for _, p := range []string{s.DB, s.Schema, s.Table} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ".")
}

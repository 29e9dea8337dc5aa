package snapshot_test

import (
	"context"
	"fmt"
	"log"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/snapshot"
)

// A product's snapshot, taken beside its running pipeline: the output
// topic's committed offsets first, then the files as of the latest
// checkpointed moment.
func ExampleTake() {
	ctx := context.Background()
	dataDir := "/var/lib/meshlet/inventory"
	st, err := auditlog.OpenStore(dataDir) // a store of its own: Take holds its read lock
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	offs, err := snapshot.CommittedOffsets(ctx, kadm.NewClient(cl), "inventory.products.v1")
	if err != nil {
		log.Fatal(err)
	}
	m, err := snapshot.Take(ctx,
		snapshot.Source{Store: st, SchemaDir: query.SchemaDir(dataDir)},
		snapshot.Product{URN: "urn:dataproduct:inventory:products", Port: "products", Topic: "inventory.products.v1"},
		"/srv/snapshots/inventory/2026-05-01T12",
		snapshot.Offsets(offs...))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.SystemText, m.Files[0].Rows)
}

// An auditor proves a snapshot against the change log with the product's
// verifier key, obtained from the product's owners, not from the snapshot.
func ExampleVerify() {
	ctx := context.Background()
	dataDir := "/audit/copy-of-inventory"
	v, err := auditlog.ReadVerifier("/audit/inventory-checkpoint.pub")
	if err != nil {
		log.Fatal(err)
	}
	st, err := auditlog.OpenStore(dataDir, auditlog.IndexDir("/tmp/audit-index"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	rep, err := snapshot.Verify(ctx, "/srv/snapshots/inventory/2026-05-01T12",
		snapshot.Source{Store: st, SchemaDir: query.SchemaDir(dataDir)}, v)
	if err != nil {
		log.Fatal(err) // a *snapshot.MismatchError names file, row, key and column
	}
	fmt.Println(rep.Rows[snapshot.Table], "rows proven")
}

// A new consumer starts from a snapshot and tails the output topic from
// the manifest's offsets.
func ExampleState() {
	ctx := context.Background()
	snap, err := snapshot.Open("/srv/snapshots/inventory/2026-05-01T12")
	if err != nil {
		log.Fatal(err)
	}
	state := snapshot.NewState()
	if err := state.Load(snap); err != nil {
		log.Fatal(err)
	}
	reg, err := schemas.NewRegistry([]string{"http://localhost:8081"})
	if err != nil {
		log.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"),
		kgo.ConsumePartitions(snap.ConsumeOffsets()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			c, err := snapshot.DecodeRecord(ctx, reg, r.Key, r.Value)
			if err != nil {
				log.Fatal(err)
			}
			if !snap.Covers(c.SystemFrom) {
				state.Apply(c)
			}
		})
	}
}

package runtime_test

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"

	"github.com/meshlet/meshlet/snapshot"
)

// TestSnapshotPortToS3 writes a snapshot port to an S3 bucket through the
// runtime's S3 driver (gocloud.dev's s3blob, the AWS SDK underneath),
// speaking real S3 HTTP to an in-process S3 server (gofakes3), prefix and
// all; the snapshot downloaded from it verifies against the change log.
func TestSnapshotPortToS3(t *testing.T) {
	s3 := httptest.NewServer(gofakes3.New(s3mem.New(), gofakes3.WithAutoBucket(true)).Server())
	t.Cleanup(s3.Close)
	url := "s3://lake?region=us-east-1&anonymous=true&use_path_style=true&disable_https=true&prefix=inventory/&endpoint=" + s3.URL
	w := startSnapshotProduct(t, url)
	w.feed(7)
	w.clock.advance(time.Hour)

	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var manifest string
	waitUntil(t, "a snapshot in the bucket", func() bool {
		it := b.List(&blob.ListOptions{})
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(o.Key, "/"+snapshot.ManifestName) {
				manifest = o.Key
				return true
			}
		}
	})
	name := strings.TrimSuffix(manifest, "/"+snapshot.ManifestName)
	local := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(local, 0o750); err != nil {
		t.Fatal(err)
	}
	it := b.List(&blob.ListOptions{Prefix: name + "/"})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, strings.TrimPrefix(o.Key, name+"/")), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	proveHolds(t, w.data, local, w.r.Stats().Records.Load())

	// The contract says where the snapshots are, as ODCS's s3 server.
	contract := httpGet(t, w.base+"/v1/contracts/products")
	for _, want := range []string{"type: s3", "location: s3://lake/inventory/", "endpointUrl: " + s3.URL} {
		if !strings.Contains(contract, want) {
			t.Fatalf("the contract lacks %q:\n%s", want, contract)
		}
	}
}

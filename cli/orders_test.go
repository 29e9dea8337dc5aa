package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/meshlet/meshlet/examples/orders/orders"
)

// ordersBin is the orders example's binary (examples/orders), built once,
// beside the binaries TestMain builds.
var ordersBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(inventoryBin), "orders")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/orders").CombinedOutput(); err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return bin, nil
})

func mustOrdersBin(t *testing.T) string {
	t.Helper()
	bin, err := ordersBin()
	if err != nil {
		t.Fatalf("build examples/orders: %v\n%s", err, err.(*exec.ExitError).Stderr)
	}
	return bin
}

// TestOrdersDev runs the orders example as its README says: dev --once
// feeds its recordings and prints every output port with its counts and
// decoded events, and lint checks every port.
func TestOrdersDev(t *testing.T) {
	data := t.TempDir()
	out, errOut, code := runBin(t, mustOrdersBin(t), "dev", "--once", "--json", "--data", data)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var sum devSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	total := int64(0)
	for _, p := range sum.Ports {
		total += p.RecordsOut
		if p.RecordsOut == 0 || int64(len(p.Events)) != p.RecordsOut || p.SchemaID == 0 {
			t.Errorf("port %s: %d records out, %d events decoded, schema id %d", p.Name, p.RecordsOut, len(p.Events), p.SchemaID)
		}
	}
	if len(sum.Ports) != 2 || sum.Ports[0].Name != "enriched-orders" || sum.Ports[1].Name != "customer-totals" ||
		sum.Ports[0].SchemaID == sum.Ports[1].SchemaID {
		t.Fatalf("ports %+v: want enriched-orders and customer-totals, each with its own schema", sum.Ports)
	}
	if sum.EventsIn != 22 || total != sum.RecordsOut || uint64(total) != sum.Entries || sum.Chain != "verified" ||
		len(sum.DeadLetters) != 1 || sum.DeadLetters[0].Class != "contract" {
		t.Fatalf("summary %+v: want the 22 recorded events, every record in the change log, and order 10008 dead-lettered", sum)
	}
	for _, want := range []string{
		`fed 5 recorded events from recorded/customers\.txt into dbserver1\.inventory\.customers`,
		`fed 13 recorded events from recorded/orders\.txt into dbserver1\.inventory\.orders`,
		`fed 4 recorded events from recorded/customers-late\.txt into dbserver1\.inventory\.customers`,
		`records out\s+\d+ on 2 output ports`,
		`enriched-orders\s+\d+ on sales\.enriched-orders\.v1 \(schema id \d+\)`,
		`customer-totals\s+\d+ on sales\.customer-totals\.v1 \(schema id \d+\)`,
		`\d+ events on sales\.enriched-orders\.v1 \(port enriched-orders\), decoded back through the registry`,
		`\d+ events on sales\.customer-totals\.v1 \(port customer-totals\), decoded back through the registry`,
	} {
		if !regexp.MustCompile(want).MatchString(errOut) {
			t.Errorf("summary lacks %q:\n%s", want, errOut)
		}
	}
	vout, verr, code := meshlet(t, "audit", "verify", filepath.Join(data, "changelog"))
	if code != 0 || !strings.Contains(vout, "verified") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, vout, verr)
	}

	lout, lerr, code := meshlet(t, "lint", "../examples/orders/orders")
	if code != 0 {
		t.Fatalf("lint: exit %d\n%s%s", code, lout, lerr)
	}
	for _, port := range []string{"enriched-orders", "customer-totals"} {
		for _, check := range []string{"schema", "contract", "compat"} {
			if !regexp.MustCompile(`(?m)^` + check + ` ` + port + `\s+ok`).MatchString(lout) {
				t.Errorf("lint did not check %s of port %s:\n%s", check, port, lout)
			}
		}
	}
}

// TestDevFeedReplacesAPortsRecordings: --feed PORT=FILE replaces every
// recording of the port, in the place of its first, and keeps its key
// columns; the other ports' recordings keep their order.
func TestDevFeedReplacesAPortsRecordings(t *testing.T) {
	p, err := orders.New()
	if err != nil {
		t.Fatal(err)
	}
	var own []feed
	for _, r := range orders.Recorded() {
		own = append(own, feed{r.Port, r.Name, r.Data, r.KeyFields})
	}
	file := filepath.Join(t.TempDir(), "customers.txt")
	if err := os.WriteFile(file, []byte(`{"before":null,"after":{"id":1},"op":"c"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := devFeeds(p, own, []string{orders.CustomersPort + "=" + file})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].name != file || got[0].port != orders.CustomersPort || strings.Join(got[0].keyFields, ",") != "id" ||
		got[1].port != orders.OrdersPort {
		t.Fatalf("feeds %v: want the file for customers-cdc first, then the orders", got)
	}
	if _, err := devFeeds(p, own, []string{"no-such-port=" + file}); err == nil {
		t.Fatal("a --feed for an unknown port was taken")
	}
}

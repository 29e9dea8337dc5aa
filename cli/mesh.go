package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/meshlet/meshlet/ports/mesh"
)

func init() {
	register(command{name: "mesh list", synopsis: "list the live data products in the mesh registry", run: plain(cmdMeshList)})
	register(command{name: "mesh search", synopsis: "QUERY  find products by name, domain, tag, owner, port, topic or classification", run: plain(cmdMeshSearch)})
	register(command{name: "mesh lineage", synopsis: "show which products feed which, joined on their topics", run: plain(cmdMeshLineage)})
}

const meshRedisHelp = `

The registry is read from Redis: --redis ADDR (host:port or a redis:// URL),
else $MESHLET_REDIS, else 127.0.0.1:6379.`

// meshFlags are the flags every mesh command shares.
type meshFlags struct {
	redis  string
	prefix string
	json   bool
}

func (o *meshFlags) register(fs *flag.FlagSet) {
	addr := os.Getenv("MESHLET_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	fs.StringVar(&o.redis, "redis", addr, "Redis `ADDR` of the mesh registry: host:port or redis://...")
	fs.StringVar(&o.prefix, "prefix", "meshlet:mesh", "key prefix the products registered under")
	fs.BoolVar(&o.json, "json", false, "print JSON for machines instead of text")
}

// meshRegistry is a registry read through its own Redis connection; err
// says which Redis a failure came from.
type meshRegistry struct {
	*mesh.Registry
	rdb  *redis.Client
	addr string
}

func (o *meshFlags) open() (*meshRegistry, error) {
	opts := &redis.Options{Addr: o.redis}
	if strings.Contains(o.redis, "://") {
		var err error
		if opts, err = redis.ParseURL(o.redis); err != nil {
			return nil, fmt.Errorf("--redis %s: %w", o.redis, err)
		}
	}
	// One short attempt: a command line should say at once that Redis is
	// not there, and say it once (go-redis would log every dial to stderr).
	opts.DialTimeout, opts.DialerRetries, opts.MaxRetries = 3*time.Second, 1, -1
	logging.Disable()
	rdb := redis.NewClient(opts)
	return &meshRegistry{Registry: mesh.New(rdb, mesh.Prefix(o.prefix)), rdb: rdb, addr: opts.Addr}, nil
}

func (m *meshRegistry) close() { m.rdb.Close() }

func (m *meshRegistry) err(err error) error {
	if ne := net.Error(nil); errors.As(err, &ne) {
		return fmt.Errorf("mesh registry unreachable: redis %s: %w", m.addr, err)
	}
	return fmt.Errorf("mesh registry at redis %s: %w", m.addr, err)
}

func cmdMeshList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o meshFlags
	fs := newFlags("mesh list", "mesh list [--redis ADDR] [--json]\n\nLists the data products alive in the mesh registry: those with an instance whose\nheartbeat has not expired."+meshRedisHelp, stderr)
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "mesh list", pos); err != nil {
		return err
	}
	reg, err := o.open()
	if err != nil {
		return err
	}
	defer reg.close()
	ps, err := reg.List(ctx)
	if err != nil {
		return reg.err(err)
	}
	if o.json {
		return printMeshJSON(stdout, summaries(ps))
	}
	if len(ps) == 0 {
		fmt.Fprintf(stdout, "no live data products in the mesh registry at redis %s\n", reg.addr)
		return nil
	}
	printProducts(stdout, ps)
	return nil
}

func cmdMeshSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o meshFlags
	fs := newFlags("mesh search", "mesh search [--redis ADDR] [--json] QUERY...\n\nFinds the live products where every word of QUERY occurs, in any case, in the URN,\nname, domain, description, tags, owner, port names, topics, or a field's name or\nclassification: `meshlet mesh search pii` lists the products publishing pii fields."+meshRedisHelp, stderr)
	o.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	q := strings.TrimSpace(strings.Join(pos, " "))
	if q == "" {
		fs.Usage()
		return usageError("mesh search: missing QUERY")
	}
	reg, err := o.open()
	if err != nil {
		return err
	}
	defer reg.close()
	ps, err := reg.Search(ctx, q)
	if err != nil {
		return reg.err(err)
	}
	if o.json {
		return printMeshJSON(stdout, summaries(ps))
	}
	if len(ps) == 0 {
		fmt.Fprintf(stdout, "no live data product matches %q\n", q)
		return nil
	}
	printProducts(stdout, ps)
	return nil
}

func cmdMeshLineage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o meshFlags
	fs := newFlags("mesh lineage", "mesh lineage [--redis ADDR] [--json | --dot]\n\nPrints the lineage of the live products, one edge a line:\n\n  FROM --[TOPIC (OUTPUT-PORT -> INPUT-PORT)]--> TO\n\nwhere FROM's output port writes TOPIC and TO's input port reads it. A topic no live\nproduct writes (a raw CDC topic, say) appears as topic:NAME. --dot prints Graphviz\ntext (meshlet mesh lineage --dot | dot -Tsvg > mesh.svg)."+meshRedisHelp, stderr)
	o.register(fs)
	dot := fs.Bool("dot", false, "print Graphviz DOT text")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "mesh lineage", pos); err != nil {
		return err
	}
	if *dot && o.json {
		fs.Usage()
		return usageError("mesh lineage: --dot and --json print two different formats; choose one")
	}
	reg, err := o.open()
	if err != nil {
		return err
	}
	defer reg.close()
	g, err := reg.Lineage(ctx)
	if err != nil {
		return reg.err(err)
	}
	switch {
	case o.json:
		return printMeshJSON(stdout, g)
	case *dot:
		_, err := io.WriteString(stdout, g.DOT())
		return err
	}
	if len(g.Nodes) == 0 {
		fmt.Fprintf(stdout, "no live data products in the mesh registry at redis %s\n", reg.addr)
		return nil
	}
	linked := map[string]bool{}
	for _, e := range g.Edges {
		linked[e.From], linked[e.To] = true, true
		ports := strings.TrimSpace(e.OutputPort + " -> " + e.InputPort) // no output port from an external topic
		fmt.Fprintf(stdout, "%s --[%s (%s)]--> %s\n", e.From, e.Topic, ports, e.To)
	}
	for _, n := range g.Nodes {
		if !linked[n.ID] {
			fmt.Fprintf(stdout, "%s (no lineage: it reads and feeds no live product)\n", n.ID)
		}
	}
	return nil
}

// printProducts prints an aligned table, one product a row.
func printProducts(w io.Writer, ps []mesh.Product) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "URN\tNAME\tDOMAIN\tOWNER\tINSTANCES\tOUTPUTS")
	for _, p := range ps {
		var outs []string
		for _, out := range p.Outputs {
			outs = append(outs, out.Topic)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.URN, orDash(p.Name), orDash(p.Domain), orDash(p.Owner.Name),
			strconv.Itoa(len(p.Instances)), orDash(strings.Join(outs, ",")))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// summaries leaves the contracts' text out of a listing, as the HTTP port does.
func summaries(ps []mesh.Product) []mesh.Product {
	out := make([]mesh.Product, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Summary())
	}
	return out
}

func printMeshJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

package mesh

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// Node kinds.
const (
	KindProduct = "product" // a live data product; its ID is its URN
	KindTopic   = "topic"   // a topic no live product produces; its ID is "topic:" + name
)

// Graph is the mesh's lineage: who feeds whom, through which topic.
type Graph struct {
	Nodes []Node `json:"nodes"` // products first, then topics, each sorted by ID
	Edges []Edge `json:"edges"` // sorted by From, To, Topic, OutputPort, InputPort
}

// Node is a product or an external topic.
type Node struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Domain string `json:"domain,omitempty"`
}

// Edge says From's output port OutputPort writes Topic, which To's input
// port InputPort reads. OutputPort is "" when From is an external topic.
type Edge struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Topic      string `json:"topic"`
	OutputPort string `json:"outputPort,omitempty"`
	InputPort  string `json:"inputPort"`
}

// TopicNodeID is the node ID of a topic that no live product produces.
func TopicNodeID(topic string) string { return "topic:" + topic }

// Lineage joins the live products' output ports to the input ports that
// read the same topic.
func (r *Registry) Lineage(ctx context.Context) (Graph, error) {
	ps, err := r.List(ctx)
	if err != nil {
		return Graph{}, err
	}
	return lineage(ps), nil
}

type portRef struct{ urn, port string }

func lineage(ps []Product) Graph {
	g := Graph{Nodes: []Node{}, Edges: []Edge{}} // [] in JSON, not null
	producers := map[string][]portRef{}          // topic -> output ports writing it
	for _, p := range ps {
		g.Nodes = append(g.Nodes, Node{ID: p.URN, Kind: KindProduct, Name: p.Name, Domain: p.Domain})
		for _, out := range p.Outputs {
			producers[out.Topic] = append(producers[out.Topic], portRef{p.URN, out.Name})
		}
	}
	external := map[string]bool{}
	for _, p := range ps {
		for _, in := range p.Inputs {
			from := producers[in.Topic]
			if len(from) == 0 {
				external[in.Topic] = true
				g.Edges = append(g.Edges, Edge{From: TopicNodeID(in.Topic), To: p.URN, Topic: in.Topic, InputPort: in.Name})
			}
			for _, f := range from {
				g.Edges = append(g.Edges, Edge{From: f.urn, To: p.URN, Topic: in.Topic, OutputPort: f.port, InputPort: in.Name})
			}
		}
	}
	for topic := range external {
		g.Nodes = append(g.Nodes, Node{ID: TopicNodeID(topic), Kind: KindTopic, Name: topic})
	}
	slices.SortFunc(g.Nodes, func(a, b Node) int {
		return cmp.Or(cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)), cmp.Compare(a.ID, b.ID))
	})
	slices.SortFunc(g.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(a.OutputPort, b.OutputPort), cmp.Compare(a.InputPort, b.InputPort))
	})
	return g
}

func kindOrder(kind string) int {
	if kind == KindProduct {
		return 0
	}
	return 1
}

// Upstream returns the edges into the node id: what feeds it.
func (g Graph) Upstream(id string) []Edge {
	return g.edgesWhere(func(e Edge) bool { return e.To == id })
}

// Downstream returns the edges out of the node id: what it feeds.
func (g Graph) Downstream(id string) []Edge {
	return g.edgesWhere(func(e Edge) bool { return e.From == id })
}

func (g Graph) edgesWhere(keep func(Edge) bool) []Edge {
	var es []Edge
	for _, e := range g.Edges {
		if keep(e) {
			es = append(es, e)
		}
	}
	return es
}

// DOT renders the graph as Graphviz text: products as boxes labelled with
// name and URN, external topics as ellipses, edges labelled with the topic
// and "out-port -> in-port". Equal graphs give equal text.
func (g Graph) DOT() string {
	var b strings.Builder
	b.WriteString("digraph mesh {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n")
	for _, n := range g.Nodes {
		if n.Kind == KindProduct {
			fmt.Fprintf(&b, "  %s [shape=box, label=%s];\n", dotQuote(n.ID), dotLabel(n.Name, n.ID))
		} else {
			fmt.Fprintf(&b, "  %s [shape=ellipse, style=dashed, label=%s];\n", dotQuote(n.ID), dotLabel(n.Name))
		}
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", dotQuote(e.From), dotQuote(e.To), dotLabel(e.Topic, e.OutputPort+" -> "+e.InputPort))
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote makes s a DOT string: quoted, with quotes and backslashes
// escaped so a name can neither end the string nor start an escape.
func dotQuote(s string) string {
	return `"` + dotEscape(s) + `"`
}

// dotLabel is a quoted label of lines joined with DOT's line break.
func dotLabel(lines ...string) string {
	for i, l := range lines {
		lines[i] = dotEscape(strings.TrimSpace(l))
	}
	return `"` + strings.Join(lines, `\n`) + `"`
}

var dotEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", " ", "\r", " ")

func dotEscape(s string) string { return dotEscaper.Replace(s) }

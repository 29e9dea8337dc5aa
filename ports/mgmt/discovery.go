package mgmt

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/meshlet/meshlet/contracts"
)

// Product is what the management port needs to know of the product: the
// runtime fills it from its manifest and the contracts it generated.
type Product struct {
	ID          string   `json:"id"`
	Name        string   `json:"name,omitempty"`
	Version     string   `json:"version,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Description string   `json:"description,omitempty"`
	Team        Team     `json:"team"`
	Inputs      []Input  `json:"inputPorts"`
	Outputs     []Output `json:"outputPorts"`
	// DeadLetterTopic is where records the product could not process go.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
}

// Team owns the product.
type Team struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Input is a CDC topic the product consumes.
type Input struct {
	Name   string `json:"name"`
	Topic  string `json:"topic"`
	Format string `json:"format,omitempty"`
}

// Output is a topic the product publishes to, with its contract and the
// Avro schema it publishes with.
type Output struct {
	Name     string              `json:"name"`
	Topic    string              `json:"topic"`
	Subject  string              `json:"subject,omitempty"`
	Contract *contracts.Contract `json:"-"`
	Schema   []byte              `json:"-"` // the published .avsc
}

func (p *Product) output(name string) (*Output, bool) {
	for i := range p.Outputs {
		if p.Outputs[i].Name == name {
			return &p.Outputs[i], true
		}
	}
	return nil, false
}

func (p *Product) outputNames() string {
	names := make([]string, len(p.Outputs))
	for i, o := range p.Outputs {
		names[i] = o.Name
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// SchemaInfo is one output port's schema as the registry holds it.
type SchemaInfo struct {
	Port     string `json:"port"`
	Subject  string `json:"subject"`
	ID       int    `json:"id,omitempty"`       // the current schema's registry id
	Versions []int  `json:"versions,omitempty"` // the subject's versions, oldest first
	Schema   string `json:"-"`                  // the current schema text, when known
}

// SchemaSource asks the schema registry about the product's subjects.
type SchemaSource interface {
	Schemas(ctx context.Context) ([]SchemaInfo, error)
}

// Neighbors are the products around this one in the mesh.
type Neighbors struct {
	Upstream   []ProductRef `json:"upstream"`   // products whose output topics this one reads
	Downstream []ProductRef `json:"downstream"` // products that read this one's output topics
}

// ProductRef names another product and the topics that link it to this one.
type ProductRef struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Topics []string `json:"topics,omitempty"`
	URL    string   `json:"url,omitempty"` // its management port, when registered
}

func (s *Server) product(w http.ResponseWriter, r *http.Request) {
	if s.Manifest != nil {
		s.reply(w, http.StatusOK, s.Manifest)
		return
	}
	s.reply(w, http.StatusOK, s.Product)
}

type contractRef struct {
	Port    string `json:"port"`
	Topic   string `json:"topic"`
	ID      string `json:"id,omitempty"`
	Version string `json:"version,omitempty"`
	Status  string `json:"status,omitempty"`
	Link    string `json:"link,omitempty"`
}

func (s *Server) contractList(w http.ResponseWriter, r *http.Request) {
	out := []contractRef{}
	for _, o := range s.Product.Outputs {
		c := contractRef{Port: o.Name, Topic: o.Topic}
		if o.Contract != nil {
			c.ID, c.Version, c.Status = o.Contract.ID, o.Contract.Version, o.Contract.Status
			c.Link = "/v1/contracts/" + o.Name
		}
		out = append(out, c)
	}
	s.reply(w, http.StatusOK, map[string]any{"contracts": out})
}

func (s *Server) contract(w http.ResponseWriter, r *http.Request) {
	o, ok := s.portOr404(w, r)
	if !ok {
		return
	}
	if o.Contract == nil {
		s.reply(w, http.StatusNotFound, errorBody{Error: "output port " + o.Name + " has no contract"})
		return
	}
	y, err := o.Contract.YAML()
	if err != nil {
		s.reply(w, http.StatusInternalServerError, errorBody{Error: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(y)
}

func (s *Server) portOr404(w http.ResponseWriter, r *http.Request) (*Output, bool) {
	name := r.PathValue("port")
	o, ok := s.Product.output(name)
	if !ok {
		s.reply(w, http.StatusNotFound, errorBody{Error: fmt.Sprintf("no output port %q; the ports are %s", name, s.Product.outputNames())})
	}
	return o, ok
}

type schemaRef struct {
	SchemaInfo
	Link string `json:"link"`
}

// schemaInfos asks the registry when it can, and falls back to what the
// manifest says; registryErr is why the registry was not used.
func (s *Server) schemaInfos(ctx context.Context) (infos []SchemaInfo, registryErr error) {
	if s.Schemas != nil {
		infos, err := s.Schemas.Schemas(ctx)
		if err == nil {
			return infos, nil
		}
		registryErr = err
	}
	for _, o := range s.Product.Outputs {
		infos = append(infos, SchemaInfo{Port: o.Name, Subject: o.Subject})
	}
	return infos, registryErr
}

func (s *Server) schemaList(w http.ResponseWriter, r *http.Request) {
	infos, err := s.schemaInfos(r.Context())
	out := []schemaRef{}
	for _, in := range infos {
		out = append(out, schemaRef{SchemaInfo: in, Link: "/v1/schemas/" + in.Port})
	}
	ans := map[string]any{"schemas": out}
	if err != nil {
		// The manifest's subjects still answer the question; say why the
		// registry's ids are missing rather than fail discovery.
		ans["registry_error"] = err.Error()
	}
	s.reply(w, http.StatusOK, ans)
}

func (s *Server) schema(w http.ResponseWriter, r *http.Request) {
	o, ok := s.portOr404(w, r)
	if !ok {
		return
	}
	text := ""
	if infos, err := s.schemaInfos(r.Context()); err == nil {
		for _, in := range infos {
			if in.Port == o.Name {
				text = in.Schema
			}
		}
	}
	if text == "" {
		text = string(o.Schema)
	}
	if text == "" {
		s.reply(w, http.StatusNotFound, errorBody{Error: "output port " + o.Name + " has no published schema yet"})
		return
	}
	w.Header().Set("Content-Type", "application/json") // an .avsc is JSON
	w.Write([]byte(text))
}

type ownersAnswer struct {
	Name    string                 `json:"name,omitempty"`
	Email   string                 `json:"email,omitempty"`
	Members []contracts.TeamMember `json:"members"` // from the output ports' contracts
}

func (s *Server) owners(w http.ResponseWriter, r *http.Request) {
	s.reply(w, http.StatusOK, ownersAnswer{Name: s.Product.Team.Name, Email: s.Product.Team.Email, Members: s.members()})
}

// members are the contracts' team members, each username once.
func (s *Server) members() []contracts.TeamMember {
	out := []contracts.TeamMember{}
	seen := map[string]bool{}
	for _, o := range s.Product.Outputs {
		if o.Contract == nil || o.Contract.Team == nil {
			continue
		}
		for _, m := range o.Contract.Team.Members {
			if !seen[m.Username] {
				seen[m.Username] = true
				out = append(out, m)
			}
		}
	}
	return out
}

type lineageAnswer struct {
	Product    string       `json:"product"`
	Inputs     []Input      `json:"inputs"`
	Outputs    []Output     `json:"outputs"`
	Upstream   []ProductRef `json:"upstream"`
	Downstream []ProductRef `json:"downstream"`
	MeshError  string       `json:"mesh_error,omitempty"`
}

func (s *Server) lineage(w http.ResponseWriter, r *http.Request) {
	ans := lineageAnswer{
		Product: s.Product.ID, Inputs: orEmpty(s.Product.Inputs), Outputs: orEmpty(s.Product.Outputs),
		Upstream: []ProductRef{}, Downstream: []ProductRef{},
	}
	if s.Lineage != nil {
		n, err := s.Lineage(r.Context())
		if err != nil {
			// The product's own topics are still known; the mesh is extra.
			ans.MeshError = err.Error()
		} else {
			ans.Upstream, ans.Downstream = orEmpty(n.Upstream), orEmpty(n.Downstream)
		}
	}
	s.reply(w, http.StatusOK, ans)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// docs writes a Markdown page about the product from what the server
// knows: manifest, contracts (SLAs, fields, quality rules) and how to read
// the data.
func (s *Server) docs(w http.ResponseWriter, r *http.Request) {
	p := &s.Product
	var b strings.Builder
	title := p.Name
	if title == "" {
		title = p.ID
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	var facts []string
	if p.ID != "" {
		facts = append(facts, "id `"+p.ID+"`")
	}
	if p.Version != "" {
		facts = append(facts, "version "+p.Version)
	}
	if p.Domain != "" {
		facts = append(facts, "domain "+p.Domain)
	}
	if len(facts) > 0 {
		fmt.Fprintf(&b, "%s\n\n", strings.Join(facts, " · "))
	}
	if p.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", strings.TrimSpace(p.Description))
	}

	b.WriteString("## Owners\n\n")
	switch {
	case p.Team.Name != "" && p.Team.Email != "":
		fmt.Fprintf(&b, "%s <%s>\n", p.Team.Name, p.Team.Email)
	case p.Team.Name != "" || p.Team.Email != "":
		fmt.Fprintf(&b, "%s%s\n", p.Team.Name, p.Team.Email)
	default:
		b.WriteString("No owning team is declared.\n")
	}
	for _, m := range s.members() {
		fmt.Fprintf(&b, "- %s", m.Username)
		if m.Name != "" {
			fmt.Fprintf(&b, " (%s)", m.Name)
		}
		if m.Role != "" {
			fmt.Fprintf(&b, ", %s", m.Role)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")

	b.WriteString("## Output ports\n\n")
	if len(p.Outputs) == 0 {
		b.WriteString("This product declares no output ports.\n\n")
	}
	for _, o := range p.Outputs {
		s.docOutput(&b, &o)
	}

	b.WriteString("## Input ports\n\n")
	if len(p.Inputs) == 0 {
		b.WriteString("None declared.\n")
	}
	for _, in := range p.Inputs {
		fmt.Fprintf(&b, "- %s: topic `%s`", in.Name, in.Topic)
		if in.Format != "" {
			fmt.Fprintf(&b, ", %s", in.Format)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nUpstream and downstream products: `GET /v1/lineage`.\n\n")

	s.docHowTo(&b, r)
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.Write([]byte(b.String()))
}

func (s *Server) docOutput(b *strings.Builder, o *Output) {
	fmt.Fprintf(b, "### %s\n\n", o.Name)
	fmt.Fprintf(b, "- Topic: `%s`\n", o.Topic)
	if o.Subject != "" {
		fmt.Fprintf(b, "- Schema subject: `%s` (Avro; the schema is at `/v1/schemas/%s`)\n", o.Subject, o.Name)
	}
	c := o.Contract
	if c == nil {
		b.WriteString("- No data contract.\n\n")
		return
	}
	fmt.Fprintf(b, "- Contract: `%s` version %s, %s (`/v1/contracts/%s`)\n", c.ID, c.Version, c.Status, o.Name)
	if c.Description != nil && c.Description.Purpose != "" {
		fmt.Fprintf(b, "- Purpose: %s\n", c.Description.Purpose)
	}
	if c.Description != nil && c.Description.Limitations != "" {
		fmt.Fprintf(b, "- Limitations: %s\n", c.Description.Limitations)
	}
	if len(c.SLAProperties) > 0 {
		b.WriteString("\nService levels (measured live at `/v1/status`):\n\n")
		for _, sla := range c.SLAProperties {
			fmt.Fprintf(b, "- %s: %s", sla.Property, objective(sla))
			if d := slaMeaning[strings.ToLower(sla.Property)]; d != "" {
				fmt.Fprintf(b, " (%s)", d)
			}
			b.WriteString("\n")
		}
	}
	var rules []string
	for _, obj := range c.Schema {
		if len(obj.Properties) > 0 {
			fmt.Fprintf(b, "\nFields of `%s`:\n\n| field | type | required | classification |\n| --- | --- | --- | --- |\n", obj.Name)
			for _, prop := range obj.Properties {
				typ := prop.LogicalType
				if prop.PhysicalType != "" {
					typ += " (" + prop.PhysicalType + ")"
				}
				req := ""
				if prop.Required {
					req = "yes"
				}
				fmt.Fprintf(b, "| %s | %s | %s | %s |\n", prop.Name, cell(typ), req, cell(prop.Classification))
				for _, q := range prop.Quality {
					rules = append(rules, ruleLine(prop.Name, q))
				}
			}
		}
		for _, q := range obj.Quality {
			rules = append(rules, ruleLine(obj.Name, q))
		}
	}
	if len(rules) > 0 {
		sort.Strings(rules)
		b.WriteString("\nQuality rules (thresholds in the contract; violations at `/v1/status`):\n\n")
		for _, r := range rules {
			fmt.Fprintf(b, "- %s\n", r)
		}
	}
	b.WriteString("\n")
}

var slaMeaning = map[string]string{
	"latency":   "source commit to published event, 99th percentile",
	"frequency": "how often the data is updated",
	"retention": "how long versions are kept",
}

func ruleLine(on string, q contracts.Quality) string {
	metric := q.Metric
	if metric == "" {
		metric = q.Rule
	}
	if metric == "" {
		metric = q.Type
	}
	line := fmt.Sprintf("`%s`: %s", on, metric)
	if q.Name != "" {
		line += " (" + q.Name + ")"
	}
	if q.Description != "" {
		line += ": " + q.Description
	}
	if (q.Type != "" && q.Type != "library") || metric == "rowCount" {
		line += " (not checked on the stream)"
	}
	return line
}

// cell keeps a table cell on one line and its pipes literal.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", `\|`)
}

func (s *Server) docHowTo(b *strings.Builder, r *http.Request) {
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	b.WriteString("## How to subscribe\n\n")
	b.WriteString("Each output port is a Kafka topic of Avro records in the Confluent wire format (a magic byte, the schema id, the record); ")
	b.WriteString("read it with any Kafka client and a schema-registry deserializer. The record key is the entity key, and every record carries ")
	b.WriteString("its valid and system times, so a consumer can rebuild any past state. Consume with isolation level read_committed: ")
	b.WriteString("the product publishes in transactions.\n\n")
	for _, o := range s.Product.Outputs {
		fmt.Fprintf(b, "    kcat -b $BROKER -G my-group -X isolation.level=read_committed -s value=avro -r $REGISTRY %s\n", o.Topic)
	}
	b.WriteString("\n## How to query\n\n")
	b.WriteString("The query port answers with JSON and needs a bearer token. Every role reads current state; ")
	b.WriteString("the past (asOf, validAt, history) needs the auditor, owner or governance role.\n\n")
	fmt.Fprintf(b, "    curl -H \"Authorization: Bearer $TOKEN\" %s/v1/entities/KEY\n", base)
	fmt.Fprintf(b, "    curl -H \"Authorization: Bearer $TOKEN\" '%s/v1/entities/KEY?asOf=2026-05-01T12:00:00Z&validAt=now'\n", base)
	fmt.Fprintf(b, "    curl -H \"Authorization: Bearer $TOKEN\" %s/v1/entities/KEY/history\n", base)
	b.WriteString("\nStatus and service levels: `/v1/status`; metrics: `/metrics`.\n")
}

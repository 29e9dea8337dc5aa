package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Product is a data product as the registry knows it: its identity and
// ports, as in its product.yaml, and, when read back, its live instances.
type Product struct {
	URN           string       `json:"urn"`
	Name          string       `json:"name"`
	Domain        string       `json:"domain"`
	Version       string       `json:"version"`
	Description   string       `json:"description,omitempty"`
	Status        string       `json:"status,omitempty"`
	Owner         Owner        `json:"owner"`
	Tags          []string     `json:"tags,omitempty"`
	ManagementURL string       `json:"managementUrl,omitempty"` // base URL of the HTTP management port, "" if none
	Inputs        []InputPort  `json:"inputs,omitempty"`
	Outputs       []OutputPort `json:"outputs,omitempty"`
	// Instances are filled on read, sorted by ID; Register ignores them.
	Instances []Instance `json:"instances,omitempty"`
}

// Owner is the team that owns a product.
type Owner struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// InputPort is a topic a product consumes.
type InputPort struct {
	Name   string `json:"name"`
	Topic  string `json:"topic"`
	Format string `json:"format,omitempty"` // debezium-json, canal-json, ...
}

// OutputPort is a topic a product publishes, with its schema and contract.
type OutputPort struct {
	Name       string `json:"name"`
	Topic      string `json:"topic"`
	Subject    string `json:"subject,omitempty"`
	SchemaID   int    `json:"schemaId,omitempty"`
	Version    string `json:"version,omitempty"`
	ContractID string `json:"contractId,omitempty"`
	Contract   string `json:"contract,omitempty"` // ODCS YAML text
	// Classifications maps a field name to its classification (pii, internal, ...).
	Classifications map[string]string `json:"classifications,omitempty"`
}

// Instance is one running replica of a product.
type Instance struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr,omitempty"` // the management URL it registered with
	LastSeen time.Time `json:"lastSeen"`       // its last Register or Heartbeat, by the registry's clock
}

// Summary is p without its contracts' text, which can be large: what a
// listing shows. Get returns the whole product.
func (p Product) Summary() Product {
	p.Outputs = slices.Clone(p.Outputs)
	for i := range p.Outputs {
		p.Outputs[i].Contract = ""
	}
	return p
}

var (
	// ErrNotFound means no live product has the URN.
	ErrNotFound = errors.New("mesh: no live data product with this URN")
	// ErrNotRegistered means a heartbeat found no registration to refresh
	// (it expired, was deregistered or the data was lost): register again.
	ErrNotRegistered = errors.New("mesh: not registered")
	// ErrInvalid means a product or instance cannot be registered as given.
	ErrInvalid = errors.New("mesh: invalid registration")
)

// Registry reads and writes the mesh registry in Redis. It holds no state
// of its own and is safe for concurrent use.
type Registry struct {
	rdb    redis.UniversalClient
	prefix string // braced: "{meshlet:mesh}"
	ttl    time.Duration
	now    func() time.Time
}

// Option configures New.
type Option func(*Registry)

// Prefix puts the registry's keys under prefix (default "meshlet:mesh").
func Prefix(prefix string) Option { return func(r *Registry) { r.prefix = "{" + prefix + "}" } }

// TTL is how long an instance stays alive after its last heartbeat
// (default 15s; at least 1ms). Heartbeat well within it: Keep's every
// should be a third of it or less.
func TTL(d time.Duration) Option {
	return func(r *Registry) {
		if d >= time.Millisecond {
			r.ttl = d
		}
	}
}

// Clock replaces time.Now for the instances' last-seen times.
func Clock(now func() time.Time) Option { return func(r *Registry) { r.now = now } }

// New returns a registry over rdb.
func New(rdb redis.UniversalClient, opts ...Option) *Registry {
	r := &Registry{rdb: rdb, prefix: "{meshlet:mesh}", ttl: 15 * time.Second, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *Registry) indexKey() string               { return r.prefix + ":products" }
func (r *Registry) docKey(urn string) string       { return r.prefix + ":product:" + urn }
func (r *Registry) instancesKey(urn string) string { return r.prefix + ":instances:" + urn }
func (r *Registry) liveKey(urn, instance string) string {
	return r.prefix + ":live:" + urn + "#" + instance
}

// instanceInfo is an instance's entry in the instances hash.
type instanceInfo struct {
	Addr string `json:"addr,omitempty"`
}

// touchScript registers (ARGV[5] is the document) or heartbeats (ARGV[5]
// is "") one instance. A heartbeat without a document or instance entry
// returns 0. The document and instance hash only ever get a longer TTL,
// so they outlive every live key.
//
// KEYS: index, doc, instances, live. ARGV: urn, instance, ttl ms, last
// seen ms, doc JSON or "", instance JSON.
var touchScript = redis.NewScript(`
local ttl = tonumber(ARGV[3])
if ARGV[5] == "" then
  if redis.call("EXISTS", KEYS[2]) == 0 or redis.call("HEXISTS", KEYS[3], ARGV[2]) == 0 then
    return 0
  end
else
  redis.call("SET", KEYS[2], ARGV[5], "KEEPTTL")
  redis.call("HSET", KEYS[3], ARGV[2], ARGV[6])
end
redis.call("SET", KEYS[4], ARGV[4], "PX", ttl)
for _, k in ipairs({KEYS[2], KEYS[3]}) do
  if redis.call("PTTL", k) < ttl then redis.call("PEXPIRE", k, ttl) end
end
redis.call("SADD", KEYS[1], ARGV[1])
return 1
`)

// pruneScript drops the listed instances whose live keys are gone, then
// the whole product if it has no document or no instance left. Returns 1
// when the product was dropped.
//
// KEYS: index, doc, instances, live keys... ARGV: urn, instance ids...
var pruneScript = redis.NewScript(`
for i = 2, #ARGV do
  if redis.call("EXISTS", KEYS[i + 2]) == 0 then redis.call("HDEL", KEYS[3], ARGV[i]) end
end
if redis.call("EXISTS", KEYS[2]) == 0 or redis.call("HLEN", KEYS[3]) == 0 then
  redis.call("DEL", KEYS[2], KEYS[3])
  redis.call("SREM", KEYS[1], ARGV[1])
  return 1
end
return 0
`)

func validate(urn, instance string) error {
	switch {
	case urn == "":
		return fmt.Errorf("%w: empty URN", ErrInvalid)
	case strings.ContainsAny(urn, "# \t\r\n"):
		return fmt.Errorf("%w: URN %q contains '#' or whitespace", ErrInvalid, urn)
	case instance == "":
		return fmt.Errorf("%w: %s: empty instance id", ErrInvalid, urn)
	}
	return nil
}

// Register records p and marks instance alive for the TTL. Registering
// again is harmless: it replaces the document and refreshes the instance.
func (r *Registry) Register(ctx context.Context, p Product, instance string) error {
	if err := validate(p.URN, instance); err != nil {
		return err
	}
	p.Instances = nil
	doc, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("mesh: register %s: %w", p.URN, err)
	}
	info, _ := json.Marshal(instanceInfo{Addr: p.ManagementURL}) // a struct of one string always encodes
	if _, err := r.touch(ctx, p.URN, instance, string(doc), string(info)); err != nil {
		return fmt.Errorf("mesh: register %s instance %s: %w", p.URN, instance, err)
	}
	return nil
}

// Heartbeat keeps instance alive for another TTL. It returns
// ErrNotRegistered when there is no registration to refresh; the caller
// then registers again.
func (r *Registry) Heartbeat(ctx context.Context, urn, instance string) error {
	if err := validate(urn, instance); err != nil {
		return err
	}
	ok, err := r.touch(ctx, urn, instance, "", "")
	if err != nil {
		return fmt.Errorf("mesh: heartbeat %s instance %s: %w", urn, instance, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s instance %s", ErrNotRegistered, urn, instance)
	}
	return nil
}

func (r *Registry) touch(ctx context.Context, urn, instance, doc, info string) (bool, error) {
	keys := []string{r.indexKey(), r.docKey(urn), r.instancesKey(urn), r.liveKey(urn, instance)}
	n, err := touchScript.Run(ctx, r.rdb, keys, urn, instance, r.ttl.Milliseconds(), r.now().UnixMilli(), doc, info).Int()
	return n == 1, err
}

// Deregister removes instance at once; when it was the product's last
// instance, the product goes too.
func (r *Registry) Deregister(ctx context.Context, urn, instance string) error {
	if err := validate(urn, instance); err != nil {
		return err
	}
	if err := r.rdb.Del(ctx, r.liveKey(urn, instance)).Err(); err != nil {
		return fmt.Errorf("mesh: deregister %s instance %s: %w", urn, instance, err)
	}
	if err := r.prune(ctx, urn, []string{instance}); err != nil {
		return fmt.Errorf("mesh: deregister %s instance %s: %w", urn, instance, err)
	}
	return nil
}

func (r *Registry) prune(ctx context.Context, urn string, instances []string) error {
	keys := []string{r.indexKey(), r.docKey(urn), r.instancesKey(urn)}
	args := []any{urn}
	for _, id := range instances {
		keys = append(keys, r.liveKey(urn, id))
		args = append(args, id)
	}
	return pruneScript.Run(ctx, r.rdb, keys, args...).Err()
}

// Get returns the live product with the URN, or ErrNotFound.
func (r *Registry) Get(ctx context.Context, urn string) (Product, error) {
	ps, err := r.load(ctx, []string{urn})
	if err != nil {
		return Product{}, err
	}
	if len(ps) == 0 {
		return Product{}, fmt.Errorf("%w: %s", ErrNotFound, urn)
	}
	return ps[0], nil
}

// List returns every live product, sorted by URN.
func (r *Registry) List(ctx context.Context) ([]Product, error) {
	// The index holds one member per product, not the keyspace: SMEMBERS
	// stays cheap where KEYS would not.
	urns, err := r.rdb.SMembers(ctx, r.indexKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("mesh: list products: %w", err)
	}
	return r.load(ctx, urns)
}

// Search returns the live products matching every word of q, ignoring
// case, sorted by URN. A word matches a product when it occurs in its URN,
// name, domain, description, status, tags, owner, the names, topics,
// formats, subjects and contract ids of its ports, or in a classified
// field's name or classification: "pii" finds the products that publish
// pii fields. An empty q matches every product.
func (r *Registry) Search(ctx context.Context, q string) ([]Product, error) {
	all, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	words := strings.Fields(strings.ToLower(q))
	var found []Product
	for _, p := range all {
		text := strings.ToLower(strings.Join(searchable(p), "\n"))
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(text, w) }) {
			found = append(found, p)
		}
	}
	return found, nil
}

// searchable lists the texts of p that Search looks in.
func searchable(p Product) []string {
	s := []string{p.URN, p.Name, p.Domain, p.Description, p.Status, p.Owner.Name, p.Owner.Email}
	s = append(s, p.Tags...)
	for _, in := range p.Inputs {
		s = append(s, in.Name, in.Topic, in.Format)
	}
	for _, out := range p.Outputs {
		s = append(s, out.Name, out.Topic, out.Subject, out.ContractID)
		for field, class := range out.Classifications {
			s = append(s, field, class)
		}
	}
	return s
}

// load reads the products with the given URNs and keeps the live ones,
// sorted by URN; it prunes what it found dead.
func (r *Registry) load(ctx context.Context, urns []string) ([]Product, error) {
	if len(urns) == 0 {
		return nil, nil
	}
	slices.Sort(urns)
	docs := make([]*redis.StringCmd, len(urns))
	insts := make([]*redis.MapStringStringCmd, len(urns))
	cmds, err := r.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, urn := range urns {
			docs[i] = pipe.Get(ctx, r.docKey(urn))
			insts[i] = pipe.HGetAll(ctx, r.instancesKey(urn))
		}
		return nil
	})
	if err := pipeError(cmds, err); err != nil {
		return nil, fmt.Errorf("mesh: read products: %w", err)
	}

	type candidate struct {
		urn   string
		doc   string // "" when missing
		ids   []string
		infos map[string]string
		seen  []*redis.StringCmd
	}
	cands := make([]candidate, len(urns))
	cmds, err = r.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, urn := range urns {
			c := candidate{urn: urn, infos: insts[i].Val()}
			c.doc, _ = docs[i].Result() // redis.Nil: no document
			for id := range c.infos {
				c.ids = append(c.ids, id)
			}
			slices.Sort(c.ids)
			for _, id := range c.ids {
				c.seen = append(c.seen, pipe.Get(ctx, r.liveKey(urn, id)))
			}
			cands[i] = c
		}
		return nil
	})
	if err := pipeError(cmds, err); err != nil {
		return nil, fmt.Errorf("mesh: read instances: %w", err)
	}

	var live []Product
	for _, c := range cands {
		var (
			instances []Instance
			dead      []string
		)
		for j, id := range c.ids {
			ms, err := c.seen[j].Int64()
			if err != nil { // redis.Nil: expired
				dead = append(dead, id)
				continue
			}
			var info instanceInfo
			_ = json.Unmarshal([]byte(c.infos[id]), &info) // a damaged entry still counts as alive, without an address
			instances = append(instances, Instance{ID: id, Addr: info.Addr, LastSeen: time.UnixMilli(ms).UTC()})
		}
		var p Product
		ok := c.doc != "" && len(instances) > 0 && json.Unmarshal([]byte(c.doc), &p) == nil
		if len(dead) > 0 || !ok {
			// Best effort: the answer is right without it, and the next read retries.
			_ = r.prune(ctx, c.urn, dead)
		}
		if ok {
			p.URN, p.Instances = c.urn, instances
			live = append(live, p)
		}
	}
	return live, nil
}

// pipeError is the first failure among a pipeline's commands; a missing
// key (redis.Nil) is an answer, not a failure.
func pipeError(cmds []redis.Cmder, err error) error {
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			return e
		}
	}
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

package runtime

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports/control"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/ports/lineage"
	"github.com/meshlet/meshlet/ports/mgmt"
)

// Option sets how a product runs: where Kafka, the registry and the change
// log are, and everything else Start accepts. Options left out keep the
// defaults of defaultConfig, which work on the embedded stack.
type Option func(*config)

// config is what the options set. Every default is in defaultConfig.
type config struct {
	brokers     []string
	registryURL string
	dataDir     string // change logs live under dataDir/changelog

	delivery Delivery
	group    string // consumer group; "" until Start: the product id
	instance string // stable per replica, part of the transactional id

	maxBatch     int
	batchTimeout time.Duration
	dedupWindow  int

	sessionTimeout     time.Duration // 0: franz-go's default (45s)
	transactionTimeout time.Duration // 0: franz-go's default (40s)

	createTopics bool
	localLogOnly bool // no changelog topic: the local segments are the log
	standbys     int  // -1: as the manifest says

	redisAddr          string
	httpAddr           string
	checkpointInterval time.Duration

	kafkaSecurity    kafka.Security
	registryUser     string
	registryPassword string
	registryTLS      *tls.Config
	redisUser        string
	redisPassword    string
	redisTLS         *tls.Config

	tokens           *mgmt.Tokens
	lineage          lineage.Transport
	lineageInterval  time.Duration
	lineageNamespace string
	meshTTL          time.Duration
	controlBus       *control.Bus
	keys             governance.KeyStore

	logger *slog.Logger
	now    func() int64
}

// defaultConfig holds every default of Start, in one place.
func defaultConfig() config {
	return config{
		registryURL:        "http://127.0.0.1:8081",
		brokers:            []string{"127.0.0.1:9092"},
		dataDir:            "data",
		delivery:           ExactlyOnce,
		instance:           "0",
		maxBatch:           10_000,
		batchTimeout:       30 * time.Second,
		dedupWindow:        100_000,
		checkpointInterval: 10 * time.Second,
		lineageInterval:    lineage.DefaultKeepInterval,
		meshTTL:            15 * time.Second,
		standbys:           -1,
		logger:             slog.Default(),
		now:                func() int64 { return time.Now().UnixMicro() },
	}
}

// SeedBrokers are the Kafka brokers to bootstrap from (default 127.0.0.1:9092).
func SeedBrokers(addrs ...string) Option { return func(c *config) { c.brokers = addrs } }

// SchemaRegistry is the Confluent-compatible schema registry's URL
// (default http://127.0.0.1:8081).
func SchemaRegistry(url string) Option { return func(c *config) { c.registryURL = url } }

// DataDir is where the change logs, the checkpoint key and the published
// schemas are kept (default ./data).
func DataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithDelivery chooses what the product promises its consumers about
// duplicates (default ExactlyOnce).
func WithDelivery(d Delivery) Option { return func(c *config) { c.delivery = d } }

// ConsumerGroup names the consumer group (default: the product id).
func ConsumerGroup(name string) Option { return func(c *config) { c.group = name } }

// Instance names this replica, stable across its restarts (default "0"): it
// is the static group member id and part of the transactional id.
func Instance(id string) Option { return func(c *config) { c.instance = id } }

// MaxBatch caps the records of one poll batch, and so of one transaction
// (default 10,000; 0: whatever one poll returns).
func MaxBatch(n int) Option { return func(c *config) { c.maxBatch = n } }

// BatchTimeout bounds how long a started batch may take to commit, also when
// shutdown is asked for meanwhile (default 30s).
func BatchTimeout(d time.Duration) Option { return func(c *config) { c.batchTimeout = d } }

// DedupWindow is how many recent records per input partition are remembered
// to recognise events the source sends again (default 100,000).
func DedupWindow(n int) Option { return func(c *config) { c.dedupWindow = n } }

// SessionTimeout overrides franz-go's group session timeout (45s): how fast
// a dead replica's partitions move on.
func SessionTimeout(d time.Duration) Option { return func(c *config) { c.sessionTimeout = d } }

// TransactionTimeout overrides franz-go's transaction timeout (40s).
func TransactionTimeout(d time.Duration) Option {
	return func(c *config) { c.transactionTimeout = d }
}

// CreateTopics creates the output and dead-letter topics at start when they
// do not exist, with the input topics' partition count (default: they must
// exist, as on a cluster whose topics a platform team manages).
func CreateTopics() Option { return func(c *config) { c.createTopics = true } }

// LocalLogOnly keeps the change logs on the replica's disk only, without
// the changelog topic that is otherwise their durable home (see the
// package doc). A replica's disk is then the only copy of its logs, so a
// lost disk loses audit history and replicas must share a data directory;
// it exists for measuring what the mirroring costs, and at-least-once
// delivery implies it.
func LocalLogOnly() Option { return func(c *config) { c.localLogOnly = true } }

// Standbys keeps warm copies of the logs of n partitions beside each one
// this replica owns, caught up with the changelog topic, so a failover to
// it reads only what the topic gained since (default: the manifest's
// standbys, else 0). See standby.go.
func Standbys(n int) Option { return func(c *config) { c.standbys = n } }

// Redis is the Redis that holds shared state: the entities' current state
// for the query port, data-subject keys, the mesh registry and the control
// bus (default: none; current reads come from the change-log index).
func Redis(addr string) Option { return func(c *config) { c.redisAddr = addr } }

// ManagementAddr is where the management port listens, e.g. "127.0.0.1:8080"
// (default: no listener).
func ManagementAddr(addr string) Option { return func(c *config) { c.httpAddr = addr } }

// CheckpointInterval is how often committed change logs get a signed
// checkpoint (default 10s); one is also signed when a log is closed.
func CheckpointInterval(d time.Duration) Option {
	return func(c *config) { c.checkpointInterval = d }
}

// KafkaSecurity sets TLS and SASL for the brokers (default: plain text).
func KafkaSecurity(s kafka.Security) Option { return func(c *config) { c.kafkaSecurity = s } }

// RegistryAuth sets the registry's basic-auth login (user "": none) and the
// TLS config for an https URL with a private CA or client certificate (nil:
// the system's roots).
func RegistryAuth(user, password string, t *tls.Config) Option {
	return func(c *config) { c.registryUser, c.registryPassword, c.registryTLS = user, password, t }
}

// RedisAuth sets the Redis AUTH login (ACL user, or only a password for
// requirepass) and TLS (nil: plain text).
func RedisAuth(user, password string, t *tls.Config) Option {
	return func(c *config) { c.redisUser, c.redisPassword, c.redisTLS = user, password, t }
}

// Tokens authenticate the management port's control and query routes
// (default: none, so every guarded request is refused).
func Tokens(t *mgmt.Tokens) Option { return func(c *config) { c.tokens = t } }

// Lineage sends the product's OpenLineage run events to t: START, RUNNING
// every interval (0: the default), ABORT or FAIL at the end. namespace ""
// is meshlet://<domain>.
func Lineage(t lineage.Transport, interval time.Duration, namespace string) Option {
	return func(c *config) {
		c.lineage, c.lineageNamespace = t, namespace
		if interval > 0 {
			c.lineageInterval = interval
		}
	}
}

// MeshTTL is how long the product stays in the mesh registry without a
// heartbeat (default 15s; heartbeats go every third of it). Negative: do
// not register. The registry needs Redis.
func MeshTTL(d time.Duration) Option { return func(c *config) { c.meshTTL = d } }

// ControlBus carries control commands (default: Redis Streams when Redis is
// set, else an in-process channel).
func ControlBus(b *control.Bus) Option { return func(c *config) { c.controlBus = b } }

// KeyStore holds the data-subject keys pii fields are sealed with (default:
// in Redis when Redis is set; a product with pii fields needs one or the
// other).
func KeyStore(ks governance.KeyStore) Option { return func(c *config) { c.keys = ks } }

// Logger is where the product logs (default slog.Default()).
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Clock replaces the source of system time, unix microseconds; tests pin it.
func Clock(now func() int64) Option { return func(c *config) { c.now = now } }

func (c *config) registryOpts() []sr.ClientOpt {
	var opts []sr.ClientOpt
	if c.registryUser != "" {
		opts = append(opts, sr.BasicAuth(c.registryUser, c.registryPassword))
	}
	if c.registryTLS != nil {
		opts = append(opts, sr.DialTLSConfig(c.registryTLS))
	}
	return opts
}

func (c *config) redisOptions() *redis.Options {
	return &redis.Options{Addr: c.redisAddr, Username: c.redisUser, Password: c.redisPassword, TLSConfig: c.redisTLS}
}

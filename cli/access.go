package cli

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/ports/lineage"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/runtime"
)

// accessFlags are how `meshlet run` authenticates to Kafka, the registry
// and Redis, who may use its management port, and where its OpenLineage
// events go. Secrets come from the environment, never from flags, so they
// stay out of process listings and shell history.
type accessFlags struct {
	tokens string

	kafkaTLS                     bool
	kafkaCA, kafkaCert, kafkaKey string
	saslMechanism, saslUser      string
	registryUser                 string
	registryCA                   string
	redisUser                    string
	redisTLS                     bool
	redisCA                      string
	lineageURL, lineageFile      string
	lineageNamespace             string
}

func (a *accessFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.tokens, "tokens", "", "YAML file of bearer tokens and roles for the management port's control and query routes (also: MESHLET_TOKENS=name:role:token,...)")
	fs.BoolVar(&a.kafkaTLS, "kafka-tls", false, "connect to the brokers over TLS")
	fs.StringVar(&a.kafkaCA, "kafka-ca", "", "PEM file of the CA that signed the brokers' certificates (implies --kafka-tls)")
	fs.StringVar(&a.kafkaCert, "kafka-cert", "", "PEM client certificate for mutual TLS (with --kafka-key)")
	fs.StringVar(&a.kafkaKey, "kafka-key", "", "PEM key of --kafka-cert")
	fs.StringVar(&a.saslMechanism, "sasl-mechanism", "", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (password from MESHLET_SASL_PASSWORD)")
	fs.StringVar(&a.saslUser, "sasl-user", "", "Kafka SASL user")
	fs.StringVar(&a.registryUser, "registry-user", "", "schema registry basic-auth user (password from MESHLET_REGISTRY_PASSWORD)")
	fs.StringVar(&a.registryCA, "registry-ca", "", "PEM file of the CA of an https registry")
	fs.StringVar(&a.redisUser, "redis-user", "", "Redis ACL user (password from MESHLET_REDIS_PASSWORD, also without a user)")
	fs.BoolVar(&a.redisTLS, "redis-tls", false, "connect to Redis over TLS")
	fs.StringVar(&a.redisCA, "redis-ca", "", "PEM file of the CA of Redis's certificate (implies --redis-tls)")
	fs.StringVar(&a.lineageURL, "openlineage-url", "", "send OpenLineage run events to this HTTP endpoint, e.g. http://marquez:5000 (API key from OPENLINEAGE_API_KEY)")
	fs.StringVar(&a.lineageFile, "openlineage-file", "", "append OpenLineage run events to this file, one JSON object a line")
	fs.StringVar(&a.lineageNamespace, "openlineage-namespace", "", "OpenLineage job namespace (default meshlet://<domain>)")
}

// options turns the flags and the environment into the product's security,
// tokens and lineage options.
func (a *accessFlags) options() ([]runtime.Option, error) {
	var opts []runtime.Option
	switch {
	case a.tokens != "":
		t, err := mgmt.LoadTokens(a.tokens)
		if err != nil {
			return nil, err
		}
		opts = append(opts, runtime.Tokens(t))
	case os.Getenv("MESHLET_TOKENS") != "":
		t, err := mgmt.ParseTokenList(os.Getenv("MESHLET_TOKENS"))
		if err != nil {
			return nil, fmt.Errorf("MESHLET_TOKENS: %w", err)
		}
		opts = append(opts, runtime.Tokens(t))
	}
	var sec kafka.Security
	var err error
	if a.kafkaTLS || a.kafkaCA != "" || a.kafkaCert != "" {
		if sec.TLS, err = ports.TLSFiles(a.kafkaCA, a.kafkaCert, a.kafkaKey); err != nil {
			return nil, fmt.Errorf("--kafka-ca/--kafka-cert: %w", err)
		}
	}
	if a.saslMechanism != "" {
		pass := os.Getenv("MESHLET_SASL_PASSWORD")
		if a.saslUser == "" || pass == "" {
			return nil, fmt.Errorf("--sasl-mechanism %s needs --sasl-user and MESHLET_SASL_PASSWORD", a.saslMechanism)
		}
		sec.SASL = &kafka.SASL{Mechanism: strings.ToUpper(a.saslMechanism), User: a.saslUser, Password: pass}
	}
	opts = append(opts, runtime.KafkaSecurity(sec))
	var registryTLS, redisTLS *tls.Config
	if a.registryCA != "" {
		if registryTLS, err = ports.TLSFiles(a.registryCA, "", ""); err != nil {
			return nil, fmt.Errorf("--registry-ca: %w", err)
		}
	}
	var registryPassword string
	if a.registryUser != "" {
		registryPassword = os.Getenv("MESHLET_REGISTRY_PASSWORD")
	}
	opts = append(opts, runtime.RegistryAuth(a.registryUser, registryPassword, registryTLS))
	if a.redisTLS || a.redisCA != "" {
		if redisTLS, err = ports.TLSFiles(a.redisCA, "", ""); err != nil {
			return nil, fmt.Errorf("--redis-ca: %w", err)
		}
	}
	opts = append(opts, runtime.RedisAuth(a.redisUser, os.Getenv("MESHLET_REDIS_PASSWORD"), redisTLS))
	var ts lineage.Multi
	if a.lineageURL != "" {
		ts = append(ts, &lineage.HTTPTransport{URL: a.lineageURL, APIKey: os.Getenv("OPENLINEAGE_API_KEY")})
	}
	if a.lineageFile != "" {
		ts = append(ts, &lineage.FileTransport{Path: a.lineageFile})
	}
	switch len(ts) {
	case 0:
	case 1:
		opts = append(opts, runtime.Lineage(ts[0], 0, a.lineageNamespace))
	default:
		opts = append(opts, runtime.Lineage(ts, 0, a.lineageNamespace))
	}
	return opts, nil
}

package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

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

// apply fills cfg's security, tokens and lineage from the flags and the
// environment.
func (a *accessFlags) apply(cfg *runtime.Config) error {
	var err error
	switch {
	case a.tokens != "":
		if cfg.Tokens, err = mgmt.LoadTokens(a.tokens); err != nil {
			return err
		}
	case os.Getenv("MESHLET_TOKENS") != "":
		if cfg.Tokens, err = mgmt.ParseTokenList(os.Getenv("MESHLET_TOKENS")); err != nil {
			return fmt.Errorf("MESHLET_TOKENS: %w", err)
		}
	}
	sec := &cfg.Security
	if a.kafkaTLS || a.kafkaCA != "" || a.kafkaCert != "" {
		if sec.KafkaTLS, err = runtime.TLSFiles(a.kafkaCA, a.kafkaCert, a.kafkaKey); err != nil {
			return fmt.Errorf("--kafka-ca/--kafka-cert: %w", err)
		}
	}
	if a.saslMechanism != "" {
		pass := os.Getenv("MESHLET_SASL_PASSWORD")
		if a.saslUser == "" || pass == "" {
			return fmt.Errorf("--sasl-mechanism %s needs --sasl-user and MESHLET_SASL_PASSWORD", a.saslMechanism)
		}
		sec.KafkaSASL = &runtime.SASL{Mechanism: strings.ToUpper(a.saslMechanism), User: a.saslUser, Password: pass}
	}
	if a.registryUser != "" {
		sec.RegistryUser, sec.RegistryPassword = a.registryUser, os.Getenv("MESHLET_REGISTRY_PASSWORD")
	}
	if a.registryCA != "" {
		if sec.RegistryTLS, err = runtime.TLSFiles(a.registryCA, "", ""); err != nil {
			return fmt.Errorf("--registry-ca: %w", err)
		}
	}
	sec.RedisUser, sec.RedisPassword = a.redisUser, os.Getenv("MESHLET_REDIS_PASSWORD")
	if a.redisTLS || a.redisCA != "" {
		if sec.RedisTLS, err = runtime.TLSFiles(a.redisCA, "", ""); err != nil {
			return fmt.Errorf("--redis-ca: %w", err)
		}
	}
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
		cfg.Lineage = ts[0]
	default:
		cfg.Lineage = ts
	}
	cfg.LineageNamespace = a.lineageNamespace
	return nil
}

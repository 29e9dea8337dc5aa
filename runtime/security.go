package runtime

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/pkg/sr"
)

// Security is how a product authenticates to what it connects to. The zero
// value connects in plain text with no credentials, as the embedded stack
// expects.
type Security struct {
	// KafkaTLS encrypts connections to the brokers (nil: plain text).
	KafkaTLS *tls.Config
	// KafkaSASL authenticates to the brokers (nil: none).
	KafkaSASL *SASL

	// RegistryUser and RegistryPassword are the schema registry's HTTP
	// basic-auth credentials (empty user: none).
	RegistryUser, RegistryPassword string
	// RegistryTLS is used for an https registry URL with a private CA or
	// client certificate (nil: the system's roots).
	RegistryTLS *tls.Config

	// RedisUser and RedisPassword are sent with Redis AUTH (ACL user, or
	// only a password for requirepass).
	RedisUser, RedisPassword string
	// RedisTLS encrypts connections to Redis (nil: plain text).
	RedisTLS *tls.Config
}

// SASL is a Kafka SASL login.
type SASL struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	User      string
	Password  string
}

// kafkaOpts are the client options Security asks for.
func (s Security) kafkaOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.KafkaTLS != nil {
		opts = append(opts, kgo.DialTLSConfig(s.KafkaTLS))
	}
	if s.KafkaSASL != nil {
		m, err := s.KafkaSASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (a *SASL) mechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(a.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: a.User, Pass: a.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: a.User, Pass: a.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: a.User, Pass: a.Password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("kafka SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", a.Mechanism)
}

// registryOpts are the schema registry client options Security asks for.
func (s Security) registryOpts() []sr.ClientOpt {
	var opts []sr.ClientOpt
	if s.RegistryUser != "" {
		opts = append(opts, sr.BasicAuth(s.RegistryUser, s.RegistryPassword))
	}
	if s.RegistryTLS != nil {
		opts = append(opts, sr.DialTLSConfig(s.RegistryTLS))
	}
	return opts
}

// redisOptions are the go-redis options for addr.
func (s Security) redisOptions(addr string) *redis.Options {
	return &redis.Options{Addr: addr, Username: s.RedisUser, Password: s.RedisPassword, TLSConfig: s.RedisTLS}
}

// TLSFiles builds a client TLS config from PEM files: caFile adds a private
// CA to trust (empty: the system's roots), certFile and keyFile a client
// certificate for mutual TLS (both or neither).
func TLSFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", caFile)
		}
		c.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("TLS client certificate needs both a certificate and a key file (got cert %q, key %q)", certFile, keyFile)
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

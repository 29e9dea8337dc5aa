package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/meshlet/meshlet/internal/localredis"
	"github.com/meshlet/meshlet/schemas"
)

func init() {
	register(command{name: "stack", synopsis: "an embedded Kafka, schema registry and Redis for products run as separate processes", run: plain(cmdStack)})
}

// The environment variables `run` takes its defaults from, so a product
// finds the stack (or a real cluster) without flags.
const (
	envBrokers  = "MESHLET_BROKERS"
	envRegistry = "MESHLET_REGISTRY"
	envRedis    = "MESHLET_REDIS"
)

const stackUsage = `stack [flags]

Serves an embedded Kafka broker (franz-go's kfake, the real Kafka protocol
over TCP), an in-memory Confluent-compatible schema registry and, when
redis-server is installed, a Redis, until Ctrl-C. It prints their addresses
and the environment variables products read them from, so several products
(a mesh) run as separate processes on one machine, and a product's run
command is tried against it exactly as against a real cluster:

  meshlet stack &                      # prints export MESHLET_BROKERS=... lines
  export MESHLET_BROKERS=... MESHLET_REGISTRY=... MESHLET_REDIS=...
  go run . run --data /tmp/p1          # in a product's module

Topics a product does not create itself are created on first use. The
stack's state lives in memory and ends with it.`

func cmdStack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o stackOptions
	fs := newFlags("stack", stackUsage, stderr)
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("stack takes no arguments, got %q", fs.Args())
	}
	dir, err := os.MkdirTemp("", "meshlet-stack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, err := startStack(o, dir, true)
	if err != nil {
		return err
	}
	defer s.close()
	s.print(stdout)
	fmt.Fprintf(stdout, "\nserving; Ctrl-C to stop\n")
	<-ctx.Done()
	return nil
}

// stackOptions are the flags of the embedded stack, shared by stack and dev.
type stackOptions struct {
	kafkaPort, registryPort, redisPort int
	redis                              string
}

func (o *stackOptions) register(fs interface {
	IntVar(*int, string, int, string)
	StringVar(*string, string, string, string)
}) {
	fs.IntVar(&o.kafkaPort, "kafka-port", 0, "TCP port of the embedded Kafka broker (0: any free port)")
	fs.IntVar(&o.registryPort, "registry-port", 0, "HTTP port of the embedded schema registry (0: any free port)")
	fs.StringVar(&o.redis, "redis", "auto", "Redis: auto (start redis-server if installed), off, or the address of one")
	fs.IntVar(&o.redisPort, "redis-port", 0, "TCP port of the redis-server --redis auto starts (0: any free port)")
}

// stack is a running embedded Kafka, registry and Redis.
type stack struct {
	broker    *kfake.Cluster
	brokers   []string
	registry  *schemas.Embedded
	redisAddr string // "" without Redis
	stopRedis func()
}

// startStack starts the stack; dir holds Redis's working files. With
// autoTopics, topics are created when a client first uses them (a product
// run by `run` expects its topics to exist, as on a managed cluster).
func startStack(o stackOptions, dir string, autoTopics bool) (*stack, error) {
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(o.kafkaPort)}
	if autoTopics {
		kopts = append(kopts, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	}
	broker, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on port %d: %w (choose another with --kafka-port)", o.kafkaPort, err)
	}
	s := &stack{broker: broker, brokers: broker.ListenAddrs(), stopRedis: func() {}}
	if s.registry, err = schemas.StartEmbedded(fmt.Sprintf("127.0.0.1:%d", o.registryPort)); err != nil {
		broker.Close()
		return nil, fmt.Errorf("start embedded schema registry on port %d: %w (choose another with --registry-port)", o.registryPort, err)
	}
	switch o.redis {
	case "off":
	case "auto":
		srv, err := localredis.StartOn(dir, o.redisPort)
		switch {
		case errors.Is(err, localredis.ErrNotInstalled):
			// current state is then served from the change-log index
		case err != nil:
			s.close()
			return nil, fmt.Errorf("%w (use --redis off to do without)", err)
		default:
			s.redisAddr, s.stopRedis = srv.Addr, srv.Stop
		}
	default:
		s.redisAddr = o.redis
	}
	return s, nil
}

func (s *stack) close() {
	s.stopRedis()
	if s.registry != nil {
		s.registry.Close()
	}
	s.broker.Close()
}

// print says where the stack is and how products reach it.
func (s *stack) print(w io.Writer) {
	fmt.Fprintf(w, "kafka     %s  (embedded kfake broker)\n", strings.Join(s.brokers, ","))
	fmt.Fprintf(w, "registry  %s  (embedded schema registry)\n", s.registry.URL())
	if s.redisAddr != "" {
		fmt.Fprintf(w, "redis     %s  (current state, mesh registry, control bus, keys)\n", s.redisAddr)
	} else {
		fmt.Fprintf(w, "redis     none  (install redis-server for the mesh, control bus and pii keys)\n")
	}
	fmt.Fprintf(w, "\nproducts reach it with these (run reads them; flags override):\n")
	fmt.Fprintf(w, "  export %s=%s\n", envBrokers, strings.Join(s.brokers, ","))
	fmt.Fprintf(w, "  export %s=%s\n", envRegistry, s.registry.URL())
	if s.redisAddr != "" {
		fmt.Fprintf(w, "  export %s=%s\n", envRedis, s.redisAddr)
	}
}

// envOr is the environment variable's value, or def when it is unset.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

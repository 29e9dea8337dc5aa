// Command bench-broker is the peer benchmark's broker: one kfake broker on a
// fixed loopback port and the embedded schema registry, in a process of
// their own so that their CPU is not charged to the contender being
// measured. It prints "ready" once both listen and runs until SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/meshlet/meshlet/schemas"
)

func main() {
	port := flag.Int("port", 39092, "kfake port on 127.0.0.1; 0 runs the registry alone (for a real cluster)")
	registryAddr := flag.String("registry", "127.0.0.1:39081", "embedded schema registry listen address")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench-broker: ")

	if *port != 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(*port))
		if err != nil {
			log.Fatalf("kfake on port %d: %v", *port, err)
		}
		defer c.Close()
	}
	reg, err := schemas.StartEmbedded(*registryAddr)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}

// Command meshlet is Meshlet's generic tool: audit, time travel and replay
// of change logs, the mesh, control of running products, and the tools a
// product's author uses (init, gen, lint, schema, contract, stack). Every
// command is in package cli, which a product's own binary runs with the
// product in it (dev, run and all of these); keep this file to the one call.
package main

import "github.com/meshlet/meshlet/cli"

func main() { cli.Tool() }

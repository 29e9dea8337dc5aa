// Package mesh is the mesh registry: running data products announce
// themselves in Redis, users list and search them, and the lineage graph
// joins one product's output ports to the input ports that read the same
// Kafka topic.
//
// # Key layout
//
// Every key starts with the prefix (default "meshlet:mesh") wrapped in
// braces, a Redis Cluster hash tag: the whole registry lives in one slot,
// so the Lua scripts below may touch the index and a product's keys at
// once. A registry holds one entry per product and instance, small enough
// for one slot. With P the braced prefix and U a product's URN:
//
//	P:products          SET of the URNs that may be live (the index)
//	P:product:U         STRING, the product as JSON, without its instances
//	P:instances:U       HASH, instance id -> JSON {"addr": management URL}
//	P:live:U#ID         STRING, the instance's last heartbeat (Unix ms), with a TTL
//
// A URN may not contain '#' (RFC 8141 keeps it for fragments) or
// whitespace, so U#ID names one instance without ambiguity.
//
// # Liveness and TTL
//
// An instance is alive while its P:live key exists; Redis expires it TTL
// (default 15s) after the last Register or Heartbeat. A product is alive
// while any of its instances is, and only live products are read back:
// Get, List, Search and Lineage check the live keys, so a crashed product
// disappears when its last TTL runs out, whether or not anyone cleans up.
//
// Register writes the document, the instance entry, the live key and the
// index entry in one script, so a reader never sees half a registration.
// Heartbeat rewrites the live key only if the document and the instance
// entry are still there, and otherwise returns ErrNotRegistered: after a
// FLUSHDB, a failover that lost writes, or a pause longer than the TTL,
// the caller registers again (Keep does). The document and the instance
// hash carry a TTL that each write only extends, so they outlive every
// live key and vanish on their own once the last instance is gone.
//
// Readers prune lazily and never with KEYS: a read that finds a dead
// instance or a product without a document runs a script that removes it
// only after checking again, inside the script, that it is still dead,
// so pruning never undoes a registration that raced with the read.
// Deregister removes its live key and prunes the same way; the last
// instance to leave takes the document and the index entry with it.
//
// Replicas of one product register the same URN with their own instance
// ids. The document is the last registrant's (during a rolling upgrade,
// the newer version's); each instance keeps its own address and heartbeat.
//
// # Lineage
//
// Lineage reads every live product and joins on topic names: for each
// output port of A and each input port of B on the same topic there is an
// edge A -> B labelled with the topic and both ports' names. A topic read
// by a live product but produced by none (typically a raw CDC topic such
// as dbserver1.inventory.products) becomes a node of its own, "topic:"
// and its name, with edges to its readers. Nodes and edges are sorted, so
// the JSON and the Graphviz text (Graph.DOT) are deterministic.
//
// Handler serves all of this as JSON over HTTP under /v1/mesh, and
// `meshlet mesh list|search|lineage` prints it.
package mesh

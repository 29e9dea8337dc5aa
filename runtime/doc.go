// Package runtime runs a data product: it reads the manifest, registers the
// output ports' schemas, and drives the batch loop that carries CDC events
// from the input ports through the handlers into the change log and the
// output ports.
//
// # The batch cycle
//
// The loop works one poll batch at a time (at most Config.MaxBatch records),
// inside one Kafka transaction of a franz-go GroupTransactSession:
//
//  1. Poll the records fetched for every input partition assigned to this
//     instance, read_committed. Rebalances are blocked from here to step 6.
//  2. Begin the transaction.
//  3. For each partition, in offset order, each record goes through the
//     per-event stages (stage.go; each a func(next step) step in a file of
//     its own): decode with the input port's cdc decoder (tombstones and
//     heartbeats are counted and skipped); handle: the handler turns each
//     change into zero or more outputs; route: each output goes to the
//     output port it is addressed to (transforms.To; unaddressed: the
//     first), which the manifest must declare; dedup: an event whose source
//     position and entity key were already recorded is a Debezium re-send
//     and is dropped (see Duplicates); contract: its output port's rules;
//     govern: its port's policy (pii sealed, classified fields passed,
//     masked or dropped); encode: each output gets the next sequence
//     number and a system time (unix µs, max(now, previous+1), so strictly
//     increasing per change log), its valid time defaulting to the source
//     commit time; it is Avro-encoded with its port's registered schema id
//     and queued for the port's topic, once it and its change-log entry
//     are known to fit their topics (see Record size). The partition's
//     entries, of every port, are appended to its change log in one write
//     and fsynced; an entry of another port than the first names it
//     (auditlog.Entry.Port).
//  4. Anything one event breaks (undecodable, unknown op, handler error or
//     panic, an output that does not fit the schema or is too large for its
//     topic) becomes a dead letter: a stage returns a *ports.Poison with its
//     class, and the dead letter carries the original key and value, with
//     headers naming the class, the message and the origin
//     topic/partition/offset. The event's other outputs are rolled back
//     first, so an event is published whole or not at all. The loop goes on.
//  5. Produce the outputs and dead letters, and wait for the result of every
//     one (Session.Flush, then each promise). These results decide: End
//     commits whatever the brokers acknowledged and aborts only on a
//     rebalance, so a record a broker refused would otherwise be missing
//     from a batch that committed. Any failure aborts the batch.
//  6. End the transaction: outputs, dead letters and the input offsets commit
//     together, so read_committed consumers see all of a batch or none of it.
//     Nothing is counted (Stats, metrics, Redis, reprocessing progress)
//     before this commit.
//
// # Exactly once, and the crash rule
//
// After a kill -9 at any instant, the change log and the committed output
// must agree exactly. The log is written before the transaction commits, so
// the protocol is: append first, and take back what did not commit.
//
//   - The transaction aborts (a produce failed, a rebalance came): End
//     returns false and the entries this batch appended are rewound at once
//     (auditlog.Log.Rewind back to the tail before the batch, in the logs
//     the batch reached only). The session has reset the consumer to the
//     committed offsets (the at-least-once session does the same); the batch
//     is consumed again after a back-off that grows while failures persist.
//   - End fails and its outcome is unknown (a lost answer, a timeout, the
//     broker gone): the loop settles it at once, waiting out a broker that
//     is down (settle). It ends the transaction as aborted, which clears
//     franz-go's unconfirmed state and bumps the producer epoch, fencing
//     whatever may still be open; reads the group's committed offsets
//     stably; reconciles every log with them as below; and sets the
//     consumer there. A batch that did commit (the group's offset of a
//     partition it processed moved past where it began) is counted then;
//     one that did not is consumed again.
//   - The session breaks (franz-go refuses to begin a transaction after some
//     broker errors failed its producer id, or a failed End cannot be ended
//     as aborted): it is closed and a new one joins under the same static
//     member and transactional ids, and its assignment reconciles each
//     partition, as after a restart (reopen). No checkpoint is signed over a
//     log while its batch's outcome is unknown. A fenced producer stops the
//     product: another replica runs as this instance.
//   - The process dies anywhere from step 3 on: the next owner of the
//     partition (this instance after a restart, or another one after a
//     rebalance) reconciles when the partition is assigned. It reads the
//     group's committed offset for the partition stably (waiting out a
//     transaction still pending). Each
//     offset commit carries, as its metadata, the change log's last sequence
//     number at that commit (a commit marker), and it commits in the same
//     transaction as the outputs; so the entries past the marker's sequence
//     number are exactly those of the batch that never committed, and are
//     rewound. Offsets committed without a marker (an older Meshlet) fall
//     back to rewinding the entries whose input offset is at or past the
//     committed offset. A torn last frame (a kill mid-write) was already cut
//     by auditlog.Open.
//   - Sequence numbers and system times of a batch processed again continue
//     from the last committed entry, so the log has no gaps and no doubles.
//
// A marker naming a sequence number the log does not reach means committed
// entries are missing, and stops the product. Without a marker,
// reconciliation refuses to rewind entries that cannot all come from one
// uncommitted batch: their input offsets would span more than a batch can
// read. That happens only when the group's offsets were reset, deleted or
// expired (offsets.retention.minutes) or the log belongs to another group,
// and erasing committed history on that ground would break the rule. The
// product stops with ErrFatal and says which offset to restore.
//
// The transactional id is stable per instance (Config.Instance), so a
// restarted instance fences the zombie it replaces; the group instance id is
// too (static membership), so it takes its old place in the group at once.
//
// # Record size
//
// The largest record Meshlet accepts is the one every step of its path
// takes, written in one place (limits.go): never more than
// schemas.MaxEventBytes (8 MiB), which is what the schemas decoder, and so
// every reader of the log (index, query port, history, replay, a restore
// from the changelog topic), reads back; and no more than the topic it goes
// to accepts: the output and dead-letter topics' max.message.bytes, read at
// start (the broker's default when a topic sets none), and the changelog
// topic's own limit, measured as the producer measures a record batch,
// before compression. The producer batches to the same per-topic limits.
// An output record, or its change-log entry, that does not fit is a dead
// letter of class too-large, naming the limit, and nothing of its event is
// appended; a dead letter that does not fit its topic keeps its headers
// and the SHA-256 digest and length of its value (and key, if need be),
// and is never dropped. A broker that still refuses a record as too large
// (its topic's limit lowered meanwhile) aborts the batch, and the limits
// are read again before it is consumed again.
//
// # Duplicates from the source
//
// Debezium delivers at least once: after a connector restart it re-sends
// events from its last flushed offset. An event is recognised by its source
// position (Postgres lsn and txId, MySQL binlog file, position and row or
// GTID, SQL Server commit_lsn, change_lsn and event_serial_no) and the entity
// key of its first record; the key separates the rows of a snapshot, which
// share one position. The identities of the last Config.DedupWindow records
// of each partition are kept in memory and refilled from the change log on
// assignment, so this state commits with the transaction and can never
// disagree with what was published.
//
// # Failure classes
//
// Poison (malformed input, handler error or panic, schema misfit, a record
// too large) goes to the dead-letter topic inside the batch's transaction.
// Transient failures (broker or registry unavailable, timeouts, refused
// produces, a broken session) are retried with back-off and drop nothing.
// Fatal ones (an incompatible schema, a corrupt change log, a log that
// disagrees with the group beyond one batch, a fenced producer) stop the
// product with an error wrapping ErrFatal; `meshlet run` exits non-zero
// naming it.
//
// # Control, reprocessing and governance
//
// Control commands (ports/control) reach every replica over a watermill
// bus and are applied between batches. Pause stops polling after the batch
// in flight; Resume polls again. Reprocess consumes one input partition
// again from an offset up to the committed offset, handling every event
// again (the dedup window is bypassed for that range): the new records are
// appended as new versions, so the log shows the reprocessing as
// corrections. The commit marker keeps the crash rule although input
// offsets in the log go back; a state file (DataDir/reprocess) records the
// request so a reprocessing that had not committed a batch before a crash
// starts again. See reprocessState.
//
// An input port with transactions: whole publishes a Debezium source
// transaction only once all of it arrived, in one Kafka transaction: each
// partition is processed up to its first change of an incomplete
// transaction, and the batch's offset commit is amended to stop there; see
// txmode.go.
//
// Fields an output port's contract classifies pii are sealed before the
// append: the log keeps the row with those fields cleared inside an
// envelope that holds them encrypted with the data subject's key (package
// governance; the ports share the key store, so Forget erases a subject on
// every port). The hash chain covers the envelope, so destroying the key
// erases the fields for every reader while the log still verifies. The
// port's topic carries the row as the port's policy says (pass, mask or
// drop per classification or field); a policy control command replaces
// the first port's.
//
// # Several output ports
//
// Each stream output port has its own topic, schema and subject (with its
// compatibility level), contract and policy; all commit in the batch's one
// transaction, so an event's records on every port are published together
// or not at all. The ports share the input partitions' change logs: an
// entity is its key and its port (auditlog.EntityKey), so the query port
// (?port=), Redis's current state and snapshot ports keep the ports'
// entities apart.
//
// # The change log on Kafka
//
// The change logs' durable home is the product's changelog topic,
// meshlet.<product>.changelog (changelog.go): every entry a batch appends
// is also produced, in the batch's transaction, as one record (the entry
// as its segment frames it, with its chain hash) to the partition of the
// input partition's number, keyed by the log's name. read_committed
// readers of the topic therefore see exactly the committed log, and the
// segments on a replica's disk are a verified cache of it. Signed
// checkpoints go to meshlet.<product>.checkpoints, with the verifier key,
// so `meshlet audit verify --kafka` needs nothing but Kafka.
//
// The topic makes reconciliation simpler than the marker rule above, and
// the commit marker is kept only for what the topic cannot say:
// reconcileWithTopic makes the cache equal the committed log the topic
// holds (1..T), which it reads once the group's offsets are stable, so no
// previous owner's transaction is still open. Entries the cache lacks are
// restored, each chain hash checked; a cache that is not a prefix of the
// topic (another history, an old backup) is set aside and replaced; an
// uncommitted tail is rewound. The marker (S, in the same transaction)
// reaches further than T only for history committed before the product
// mirrored its log: those entries are copied from the cache to the topic,
// and a cache that lacks them stops the product, naming both counts.
// Without a marker, no more than one batch's worth is ever taken back, as
// above. A changelog.position file beside each log remembers where the
// cache last agreed with the topic, so a restore reads from there; it is
// checked against the topic before it is trusted. A restore that runs for
// more than a moment logs its progress (entries, entries/s, ETA) and shows
// the records it has left in meshlet_changelog_restore_remaining_records.
//
// LocalLogOnly (and at-least-once delivery) keeps the logs on the disk
// only, under the marker rule alone.
//
// # Stopping and scaling out
//
// On SIGTERM (context cancellation) the batch in flight is finished and
// committed, the logs are closed and Run returns nil. N replicas run in one
// consumer group, each with its own Instance and its own disk; each owns
// the change logs of the partitions it is assigned, restored from the
// changelog topic when its disk lacks them. A lock file keeps a log to one
// writer, so replicas may also share a data directory (LocalLogOnly needs
// that): during a rebalance the new owner waits until the old one has
// closed it between batches. With standbys, a replica keeps warm copies of
// the logs of the partitions beside its own (standby.go), so a failover
// restores only what the topic gained since the copy last caught up; the
// group's balancer (kafka.StandbyBalancer) gives a partition that lost its
// owner to a replica holding it warm. Stateful products balance by range
// instead (see Keyed state), which keeps a task's partitions together.
//
// franz-go's transact session reports only the first revocation between
// two transaction ends; so that an idle replica hears of every partition
// it loses, a revocation wakes the poll and the empty window is ended at
// once (kafka.Session.Settle).
//
// # Keyed state
//
// A product whose ports keep state (handlers registered with
// transforms.On, or input ports of mode: table) has one task per
// partition number: the partitions of that number of every input topic,
// which must all have as many partitions (checked at Start:
// ErrNotCoPartitioned) and are assigned together (range balancing).
// Equal counts are what Start can check; a join also needs each row and
// the rows that refer to it on one partition number, so the topics must
// be partitioned by the join column (Debezium's PartitionRouting
// transform, as examples/orders does), or keyed alike for a join on the
// key. Each task has a state log, mirrored to the changelog topic as
// meshlet.state-<n> in the batch's transaction, and a pebble store (package
// state). Handlers of the task's partitions share the batch's state.Txn; a
// dead-lettered or duplicate event's state writes are rolled back with its
// outputs. The batch's mutations are appended to the state log before the
// transaction ends and written to the store only after it committed, so
// the store never holds what did not commit; an abort rewinds the log. On
// assignment the state log is made equal to the committed log in the
// topic and the store restored from it (state.Restore): after a kill -9,
// or on the replica that takes a partition over, state is the fold of the
// committed log. A table port writes each row into its state table (key:
// its key column; valid from its validTime column or the commit time),
// then calls the port's handler, if any, which may emit corrections
// (transforms.Lookup.Corrections). State needs the changelog topic:
// exactly once, not LocalLogOnly. See state.go.
//
// A replica whose data directory is deleted or replaced while it runs (a
// wiped or remounted disk) notices at its next append: the log refuses it
// (auditlog.ErrRemoved) instead of writing on into unlinked files, the batch
// aborts, and the product stops with ErrFatal naming the directory. Its
// supervisor restarts it, and the restart restores the logs from the
// changelog topic on assignment, so nothing committed is lost. Stopping is
// the simplest correct answer: the directory also held the checkpoint key
// (a new one is made and published), the reprocess state and the schemas,
// and a start rebuilds all of them on one well-tried path. With
// LocalLogOnly there is no copy to restore from, and the restart stops on
// the commit marker, which names entries the empty log lacks.
//
// What is derived is rebuilt from the log: the dedup window on assignment,
// the index when a query reads it, and Redis's current state, from each
// log's applied mark on: on assignment, and after an outage (a failed
// apply, or applied marks lower than this replica set, as when Redis
// restarted empty) at the next commit or idle poll.
package runtime

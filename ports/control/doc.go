// Package control is a data product's control plane: the commands that
// pause, resume, reprocess from a position, replace a policy or forget a
// data subject, carried to every replica of the product and applied there
// exactly once per replica.
//
// # Commands
//
// A Command is JSON: an ID the issuer picks (NewID when it has none), a
// Kind, the product's URN, the argument of its kind (Reprocess, Policy or
// Forget), the Issuer (principal and role, for the audit trail) and
// IssuedAt. Validate names every wrong field by its JSON path. The HTTP
// control port authenticates and authorises the caller, then calls
// Bus.Publish; any other tool may publish too.
//
// # Delivery
//
// A Bus is one instance of the product. Commands are watermill messages
// (message UUID = command ID) consumed by a watermill message.Router, one at
// a time, in publication order. Two backends:
//
//   - NewRedisBus: the Redis stream meshlet.control.<product>. Every
//     instance reads it through its own consumer group, named after the
//     instance, so every command reaches every instance (broadcast, not
//     work sharing). A message is acked only after its command is settled,
//     so one delivered to an instance that stops or crashes before that
//     stays in the group's pending list. The instance's next Run first
//     reads those entries back, in stream order, as a consumer reads its
//     own history (XREADGROUP from ID 0), then continues from the group's
//     position: a stopped instance loses nothing and keeps the order. (No
//     idle-time claiming: each group has one consumer, and a claim could
//     only take an entry from under the run handling it.) A new instance
//     starts at the stream's end: it applies commands issued after it first
//     joined (Join), never replays history (an old reprocess would rewind
//     it); durable state such as "paused" belongs to the runtime, which
//     joins before reading it. The stream is capped at StreamMaxLen
//     commands.
//   - NewChannelBus: watermill's gochannel, in process, for `meshlet dev`
//     and tests. Publish returns once the running instance handled the
//     command.
//
// # Handling
//
// Each message passes through watermill middlewares (see middleware.go),
// outermost first:
//
//   - park: a command that failed every attempt with a transient error is
//     copied to the poison stream meshlet.control.<product>.poison (with
//     reason, instance and time) and acked, so it cannot block the commands
//     behind it. The channel bus has no poison stream.
//   - settle: decodes the command strictly (unknown fields are rejected: a
//     replica never half-applies a command it does not fully understand),
//     skips an ID this instance has done, and after the handler records
//     the Outcome and then marks the ID done.
//   - retry: watermill's Retry; transient errors are retried with
//     exponential back-off (Retries).
//   - timeout: watermill's Timeout; an attempt's context ends after
//     CommandTimeout.
//   - recoverer: watermill's Recoverer; a panicking handler becomes a
//     rejected command; the product keeps running.
//
// An error wrapping ErrRejected, an invalid command and a panic are
// permanent: recorded as StatusRejected, marked done, never retried.
// Retries running out is StatusFailed: recorded, parked, not marked done,
// so publishing the same ID again retries it.
//
// # Idempotency
//
// Done records the IDs an instance has handled (RedisDone: key
// meshlet:<product>:control:done:<instance>:<id>, SET NX, kept for the
// retention period, 7 days by default; MemoryDone for the channel bus).
// The same ID delivered twice, whether redelivered after a crash or
// published twice by an issuer, runs once per instance. The ID is marked
// only after the handler returned, so a crash between the two runs the
// command again: handlers must be idempotent, which pause, resume, policy
// and forget are by nature (the state they set does not depend on how
// often it is set) and reprocess is when it seeks to the given offset.
//
// # Outcomes
//
// Each instance records how each command ended (Outcome: status, error,
// attempts, time) under the command's ID: on Redis a hash
// meshlet:<product>:control:outcome:<id> with one field per instance,
// kept for the retention period. Results(ctx, id) answers the control
// port's question "has every replica applied it?".
package control

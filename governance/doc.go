// Package governance carries out what governance decides about a product's
// data: the right to be forgotten on an immutable change log, by
// crypto-shredding (sealing, data-subject keys, forgetting), and the output
// port's policy for classified fields (pass, mask, drop).
//
// The change log (auditlog) is append-only and hash-chained: nothing in it
// may ever be rewritten. So the fields a product's contract classifies as
// personal data (PII) are not written to it in clear. A Sealer encrypts
// them, per record, under a key that belongs to one data subject (a
// customer, a patient: by default the record's entity key, or the value of
// a chosen subject field). Forgetting the subject (`meshlet forget
// SUBJECT`) destroys that key: every value ever sealed under it becomes
// unreadable, everywhere the log was copied, while the log's hash chain,
// computed over the stored bytes, still verifies.
//
// # Writing a record
//
//	cleared, sealed, err := sealer.Seal(ctx, key, row) // PII encrypted; cleared has the PII fields zeroed
//	wire, err := encoder.Append(nil, cleared, meta)     // the Confluent wire bytes of the cleared row
//	payload := governance.Frame(nil, sealed, wire)            // what the change log stores
//
// Seal cannot know the wire bytes (they encode the row it returns), so the
// envelope is tied to them in two steps: the plaintext Seal encrypts starts
// with a fresh 32-byte binding key, and Frame writes an HMAC-SHA-256 under
// that key over the whole envelope and the wire bytes. Moving an envelope
// to another entry, or altering the wire bytes under it, fails that check
// once the envelope is opened. (Once the key is destroyed the binding can
// no longer be checked; nothing in the envelope can be read either, and
// the log's hash chain still covers every byte.) The binding key is only
// in the clear inside the in-memory result of Seal, which must go nowhere
// but Frame.
//
// # Reading a record
//
// Open splits a payload. A plain Confluent payload comes back as it is
// (Opened.Sealed false). A framed one is opened with the subject's key:
// the PII values come back in Opened.Fields. If the key was destroyed, or
// the subject has a newer key (the key id differs), the field names come
// back in Opened.Erased and the wire still decodes, with those fields
// empty.
//
// Erasure is claimed only when it is certain, because an outage, a flipped
// bit or a wiped key store must never make data look forgotten:
//
//   - a key store that cannot be reached is an error;
//   - an envelope that fails authentication under the key that sealed it,
//     or whose binding tag does not match its wire bytes, is ErrCorrupt;
//   - a missing key counts as erasure only if the store recorded a forget
//     of the subject; otherwise the subject bytes were altered or the store
//     lost keys, and that is ErrCorrupt too;
//   - an envelope that opens under the subject's current key once its key
//     id is put back had its key id altered: ErrCorrupt.
//
// # Byte layout of a framed payload (version 1)
//
//	offset  size      field
//	0       1         magic 0xC5: a Confluent wire payload starts with 0x00
//	1       1         version 0x01
//	2       uvarint   s, the subject's length, 1..1024
//	        s         subject, as bytes
//	        8         key id: which of the subject's keys sealed this
//	        uvarint   n, the number of sealed fields, 1..256
//	        n times   uvarint name length (1..255), then the Avro field name
//	        12        AES-GCM nonce, random
//	        uvarint   c, the ciphertext's length, 50..(1 MiB + 48)
//	        c         AES-256-GCM ciphertext and 16-byte tag of
//	                  binding key (32 bytes) || JSON object {field: value}
//	                  additional data: every byte before the nonce
//	        32        binding tag: HMAC-SHA-256(binding key,
//	                  every byte from the magic through the ciphertext || wire)
//	        rest      wire: the Confluent wire-format record (0x00, 4-byte
//	                  schema id, Avro body) with the sealed fields at their
//	                  zero value (nil for pointers)
//
// Field names are in clear: a name is not personal data, and a reader
// without the key must still be able to say which fields were erased. The
// values are JSON as encoding/json writes them (bytes as base64, times as
// RFC 3339); Open reads numbers as json.Number so no digit is lost.
// Lengths are bounded before anything is sliced or allocated, because a
// log file is input like any other.
//
// # Keys
//
// A KeyStore holds one current 256-bit key per subject, with an 8-byte
// random id. RedisKeys keeps them in Redis under
// meshlet:<product>:keys:<subject> (version byte 1, id, secret), created
// with SET NX and re-read, so replicas racing to create a subject's first
// key agree on one. Destroy first records the forget in the hash
// meshlet:<product>:forgotten (subject -> unix ms), then deletes the key,
// so a reader never finds a key gone with no forget recorded. Cached puts
// a bounded cache in front, since the runtime seals every record; every
// replica must Invalidate a subject when a forget command arrives (a
// replica that misses one seals new records under the destroyed key, which
// reads as erased; Open itself re-asks the store when a cached key's id
// does not match).
//
// # Output ports
//
// A Policy says, per classification and per field, whether an output port
// passes, masks or drops a field; bound to a row type (Policy.Bind) it
// rewrites rows (Redactor.Apply). It is immutable: to change a port's
// policy, swap the Redactor.
package governance

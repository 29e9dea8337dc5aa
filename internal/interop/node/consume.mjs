#!/usr/bin/env node
// consume.mjs - a consumer that is not Meshlet's code.
//
// Reads an output-port topic with KafkaJS and decodes every value through a
// Confluent-compatible schema registry with @kafkajs/confluent-schema-registry,
// exactly as a JavaScript consumer of a Meshlet data product would.
//
// Usage:
//   node consume.mjs --brokers host:port[,host:port] --topic T \
//     --registry http://host:port --count N [--timeout-ms 30000]
//
// Joins a fresh consumer group (random id), reads from the beginning with
// read_committed isolation, and prints one JSON line per event to stdout:
//   {"partition":p,"offset":"o","key":"...","schemaId":id,"value":{...}}
// It exits 0 after N events and non-zero (with a message on stderr) on
// timeout or error. Logs go to stderr only; stdout carries events only.
//
// How values are printed (typed by the writer schema, so nothing is lost):
//   - long: decoded as BigInt (avsc's default number-based long would refuse
//     values beyond 2^53), printed as an exact JSON integer. Logical types are
//     not applied, so timestamp-micros / timestamp-millis print as the raw
//     integer count (micros since the epoch fit in 2^53 until year 2255, but
//     we do not rely on that).
//   - int: JSON integer. float / double: JSON number that always carries a
//     '.' or an exponent (2 prints as 2.0); NaN and +/-Infinity print as the
//     strings "NaN", "Infinity", "-Infinity".
//   - boolean, string, null, enum (symbol string), array, map, record: as JSON.
//   - bytes / fixed: base64 string.
//   - union: null, or the branch value itself when the union is [null, T];
//     otherwise {"<branch name>": value} as in Avro's JSON encoding.
//   - key: the record key as a UTF-8 string, or null when absent.

import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import kafkajs from 'kafkajs';
import registryPkg from '@kafkajs/confluent-schema-registry';
import avsc from 'avsc';
import SnappyCodec from 'kafkajs-snappy';

const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = kafkajs;

// KafkaJS decodes only gzip by itself. Producers, franz-go among them, use
// snappy by default, so a JS consumer registers the codec, as done here.
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
const { SchemaRegistry, SchemaType } = registryPkg;

function fail(msg, code = 1) {
  process.stderr.write(`consume.mjs: ${msg}\n`);
  process.exit(code);
}

function parseCLI() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        brokers: { type: 'string' },
        topic: { type: 'string' },
        registry: { type: 'string' },
        count: { type: 'string' },
        'timeout-ms': { type: 'string', default: '30000' },
      },
      strict: true,
    });
  } catch (err) {
    fail(`${err.message}\nusage: node consume.mjs --brokers host:port --topic T --registry http://host:port --count N [--timeout-ms 30000]`, 2);
  }
  const v = parsed.values;
  for (const name of ['brokers', 'topic', 'registry', 'count']) {
    if (!v[name]) fail(`missing --${name}`, 2);
  }
  const count = Number(v.count);
  const timeoutMs = Number(v['timeout-ms']);
  if (!Number.isInteger(count) || count < 0) fail(`--count must be a non-negative integer, got ${v.count}`, 2);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail(`--timeout-ms must be a positive integer, got ${v['timeout-ms']}`, 2);
  return {
    brokers: v.brokers.split(',').map((s) => s.trim()).filter(Boolean),
    topic: v.topic,
    registry: v.registry,
    count,
    timeoutMs,
  };
}

// An Avro long that decodes to BigInt so every 64-bit value is exact.
const bigLong = avsc.types.LongType.__with({
  fromBuffer: (buf) => buf.readBigInt64LE(),
  toBuffer: (n) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (x) => BigInt(x),
  toJSON: (n) => Number(n),
  isValid: (n) => typeof n === 'bigint',
  compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
});

// Replace every long (bare "long" or {"type":"long", ...}) while avsc builds a
// type. A hook rather than avsc's `registry` option, because that registry
// object would be shared across schemas and collide on named types when two
// versions of one record are read.
function longHook(schema) {
  if (schema === 'long') return bigLong;
  if (schema && typeof schema === 'object' && !Array.isArray(schema) && schema.type === 'long') return bigLong;
  return undefined;
}

function jsonFloat(x) {
  if (Number.isNaN(x)) return '"NaN"';
  if (x === Infinity) return '"Infinity"';
  if (x === -Infinity) return '"-Infinity"';
  if (Object.is(x, -0)) return '-0.0';
  const s = String(x);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

// Writes val as JSON, directed by its avsc type.
function typedJSON(type, val) {
  const name = type.typeName;
  switch (name) {
    case 'null':
      return 'null';
    case 'boolean':
      return val ? 'true' : 'false';
    case 'int':
      return String(val);
    case 'long':
    case 'abstract:long':
      return BigInt(val).toString();
    case 'float':
    case 'double':
      return jsonFloat(val);
    case 'string':
    case 'enum':
      return JSON.stringify(val);
    case 'bytes':
    case 'fixed':
      return JSON.stringify(Buffer.from(val).toString('base64'));
    case 'array':
      return `[${val.map((item) => typedJSON(type.itemsType, item)).join(',')}]`;
    case 'map':
      return `{${Object.keys(val).map((k) => `${JSON.stringify(k)}:${typedJSON(type.valuesType, val[k])}`).join(',')}}`;
    case 'record':
    case 'error':
      return `{${type.fields.map((f) => `${JSON.stringify(f.name)}:${typedJSON(f.type, val[f.name])}`).join(',')}}`;
    case 'union:wrapped': {
      if (val === null || val === undefined) return 'null';
      const branchName = Object.keys(val)[0];
      const branch = type.types.find((t) => t.branchName === branchName);
      if (!branch) throw new Error(`union value has unknown branch ${branchName}`);
      const nonNull = type.types.filter((t) => t.typeName !== 'null');
      const inner = typedJSON(branch, val[branchName]);
      return nonNull.length === 1 ? inner : `{${JSON.stringify(branchName)}:${inner}}`;
    }
    default:
      if (type.underlyingType) return typedJSON(type.underlyingType, val);
      throw new Error(`unsupported Avro type ${name}`);
  }
}

function stderrLogCreator(level) {
  return ({ namespace, label, log }) => {
    if (level === logLevel.NOTHING) return;
    const { message, ...extra } = log;
    process.stderr.write(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`);
  };
}

async function main() {
  const args = parseCLI();
  const registry = new SchemaRegistry(
    { host: args.registry },
    { [SchemaType.AVRO]: { wrapUnions: true, typeHook: longHook } },
  );
  const kafka = new Kafka({
    clientId: 'meshlet-interop-kafkajs',
    brokers: args.brokers,
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
    retry: { retries: 5 },
  });
  const consumer = kafka.consumer({
    groupId: `meshlet-interop-${randomUUID()}`,
    readUncommitted: false, // read_committed: only committed transactional records
    allowAutoTopicCreation: false,
  });

  let seen = 0;
  let finished = false;
  let settle;
  const done = new Promise((resolve, reject) => {
    settle = { resolve, reject };
  });
  const timer = setTimeout(() => {
    const err = new Error(`timed out after ${args.timeoutMs} ms with ${seen} of ${args.count} events from topic ${args.topic}`);
    err.stack = err.message; // a timeout needs no stack trace
    settle.reject(err);
  }, args.timeoutMs);

  // Writes one line and waits until stdout accepted it, so no event is lost
  // when the process exits right after the last one.
  const writeLine = (line) => new Promise((resolve, reject) => {
    process.stdout.write(`${line}\n`, (err) => (err ? reject(err) : resolve()));
  });

  if (args.count === 0) settle.resolve();

  consumer.on(consumer.events.CRASH, (e) => {
    if (!e.payload.restart) settle.reject(e.payload.error);
  });

  // Setup runs beside the timer: a broker that never answers must still end
  // in the timeout message, so every failure settles `done`.
  done.catch(() => {});
  const start = async () => {
    await consumer.connect();
    await consumer.subscribe({ topics: [args.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (finished) return;
        try {
          const buf = message.value;
          if (!buf || buf.length < 5 || buf[0] !== 0) {
            throw new Error(`partition ${partition} offset ${message.offset}: value is not in Confluent wire format`);
          }
          const schemaId = buf.readInt32BE(1);
          const decoded = await registry.decode(buf);
          const type = await registry.getSchema(schemaId);
          const key = message.key === null || message.key === undefined ? 'null' : JSON.stringify(message.key.toString('utf8'));
          if (finished) return;
          seen += 1;
          if (seen >= args.count) finished = true;
          await writeLine(`{"partition":${partition},"offset":${JSON.stringify(String(message.offset))},"key":${key},"schemaId":${schemaId},"value":${typedJSON(type, decoded)}}`);
          if (finished) settle.resolve();
        } catch (err) {
          finished = true;
          settle.reject(err);
        }
      },
    });
  };
  start().catch((err) => settle.reject(err));

  try {
    await done;
  } catch (err) {
    clearTimeout(timer);
    process.stderr.write(`consume.mjs: ${err && err.stack ? err.stack : err}\n`);
    await Promise.race([consumer.disconnect().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    process.exit(1);
  }
  clearTimeout(timer);
  await Promise.race([consumer.disconnect().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  process.exit(0);
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));

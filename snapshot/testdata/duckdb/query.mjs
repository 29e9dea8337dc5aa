// Runs SQL queries with DuckDB (its Node API ships the engine) and prints
// their results as JSON, for the snapshot package's tests: the queries come
// as a JSON array of strings on stdin; the output is a JSON array with, per
// query, {"columns": [...], "rows": [[...], ...]}, every value as DuckDB's
// JSON conversion gives it (cast in SQL to fix the form). A failing query
// exits 1 with DuckDB's message on stderr.
import { DuckDBInstance } from '@duckdb/node-api';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const queries = JSON.parse(input);

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
const out = [];
for (const q of queries) {
  try {
    const reader = await conn.runAndReadAll(q);
    out.push({ columns: reader.columnNames(), rows: reader.getRowsJson() });
  } catch (e) {
    process.stderr.write(`query failed: ${q}\n${e.message}\n`);
    process.exit(1);
  }
}
process.stdout.write(JSON.stringify(out));

// Validates an AsyncAPI document with the pinned @asyncapi/parser (tools/node/package.json).
// Usage: node tools/node/validate-asyncapi.mjs FILE
// Prints one JSON object: {"errors": [...], "warnings": [...], "infos": n, "hints": n}; each
// diagnostic as {code, message, path}. Exit code 1 when the parser reports an error or cannot
// build the document, 2 on a usage error.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate-asyncapi.mjs FILE");
  process.exit(2);
}
const text = await readFile(file, "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: file });
const brief = (d) => ({ code: String(d.code), message: d.message, path: d.path.join(".") });
const report = {
  errors: diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map(brief),
  warnings: diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning).map(brief),
  infos: diagnostics.filter((d) => d.severity === DiagnosticSeverity.Information).map(brief),
  hints: diagnostics.filter((d) => d.severity === DiagnosticSeverity.Hint).length,
  parsed: document !== undefined,
  version: document ? document.version() : null,
  channels: document ? document.channels().length : 0,
  messages: document ? document.allMessages().length : 0,
};
console.log(JSON.stringify(report, null, 2));
process.exit(report.errors.length === 0 && report.parsed ? 0 : 1);

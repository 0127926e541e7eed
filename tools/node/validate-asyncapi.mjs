// Validates AsyncAPI documents with the pinned @asyncapi/parser (tools/node/package.json).
// Usage: node tools/node/validate-asyncapi.mjs FILE [FILE...]
// Prints a JSON list, one report a file: {file, errors, warnings, infos, hints, parsed,
// version, channels, messages}, each diagnostic as {code, message, path}. Exit code 1 when the
// parser reports an error in any file or cannot build its document, 2 on a usage error.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate-asyncapi.mjs FILE [FILE...]");
  process.exit(2);
}
const parser = new Parser();
const brief = (d) => ({ code: String(d.code), message: d.message, path: d.path.join(".") });
const of = (diagnostics, severity) => diagnostics.filter((d) => d.severity === severity);
const reports = [];
for (const file of files) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"), {
    source: file,
  });
  reports.push({
    file,
    errors: of(diagnostics, DiagnosticSeverity.Error).map(brief),
    warnings: of(diagnostics, DiagnosticSeverity.Warning).map(brief),
    infos: of(diagnostics, DiagnosticSeverity.Information).map(brief),
    hints: of(diagnostics, DiagnosticSeverity.Hint).map(brief),
    parsed: document !== undefined,
    version: document ? document.version() : null,
    channels: document ? document.channels().length : 0,
    messages: document ? document.allMessages().length : 0,
  });
}
console.log(JSON.stringify(reports, null, 2));
process.exit(reports.every((r) => r.errors.length === 0 && r.parsed) ? 0 : 1);

// Validate an AsyncAPI document with the official parser (@asyncapi/parser), driven by
// tests/unit/test_asyncapi.py.
//
// Input: argv[2], the path of the document (JSON or YAML).
// Output (stdout, JSON): every diagnostic as {severity, code, message, path}; severity 0 is
// an error, 1 a warning, 2 information, 3 a hint. Exit status 1 when any is an error.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node asyncapi_validate.mjs <document>");
  process.exit(2);
}
const text = await readFile(path, "utf8");
const diagnostics = await new Parser().validate(text, { source: path });
const out = diagnostics.map((d) => ({
  severity: d.severity,
  code: d.code,
  message: d.message,
  path: d.path.join("/"),
}));
console.log(JSON.stringify(out, null, 2));
process.exit(out.some((d) => d.severity === 0) ? 1 : 0);

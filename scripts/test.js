#!/usr/bin/env node
// npm test: every test file under test/ with node's test runner (spec reporter, whose
// closing lines "ℹ pass N / ℹ fail N" are the machine-readable summary). Runs on
// PGlite unless DATABASE_URL is set; PostgreSQL-only tests then skip and say why.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  console.error(`custos tests need Node 22 (found ${process.version}); run them through npm (npm test), which uses the pinned node from devDependencies`);
  process.exit(1);
}

const root = path.resolve(import.meta.dirname, '..');
const only = process.argv.slice(2);
const files = only.length > 0 ? only : readdirSync(path.join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => path.join('test', f));

// Types first: a type error fails the run before any test.
const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--noEmit'], { cwd: root, stdio: 'inherit' });
if (tsc.status !== 0) {
  console.error('typecheck failed (tsc): fix the errors above');
  process.exit(1);
}

const db = process.env.DATABASE_URL ? 'PostgreSQL (DATABASE_URL)' : 'PGlite in memory';
console.log(`custos tests on ${db}: ${files.length} files`);
if (!process.env.DATABASE_URL) {
  console.log('note: DATABASE_URL is not set, so PostgreSQL-only tests (concurrency, locking, crash) are skipped; .ci/run runs them.');
}
// A test that hangs fails after 10 minutes instead of holding CI until its deadline.
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=600000', ...files], {
  cwd: root,
  stdio: 'inherit',
  env: process.env,
});
process.exit(result.status ?? 1);

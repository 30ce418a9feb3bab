#!/usr/bin/env node
// The one entry point. Runs the TypeScript sources directly (Node 22 strips types).
import { main } from '../src/cli.ts';

const code = await main(process.argv.slice(2));
if (typeof code === 'number') process.exitCode = code;

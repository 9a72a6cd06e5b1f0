#!/usr/bin/env node
// Entry point of the `portcullis` executable (package.json "bin").
import { EXIT } from './command.js';
import { main } from './main.js';

// `portcullis ... | head`: a reader that goes away early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`portcullis: ${String(err)}\n`);
    process.exitCode = EXIT.failure;
  },
);

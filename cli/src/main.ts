/** The infermesh command line: run the mesh, call it, read its statistics (commands in program.ts). */
import { runCli } from './program.js';

runCli(process.argv.slice(2)).then((code) => {
  // -1: the command keeps running (infermesh up) until Ctrl-C.
  if (code >= 0) process.exitCode = code;
});

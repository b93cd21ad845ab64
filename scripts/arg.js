// `--name value` from the command line of the measuring scripts, or `dflt` when absent.
'use strict';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

module.exports = { arg };

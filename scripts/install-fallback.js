#!/usr/bin/env node
// Runs when node-gyp-build found no prebuild for this platform and could not compile one (no
// compiler, or not Linux x86-64). The install still succeeds: copies then run in JavaScript on
// the calling thread, and dmacopy says so once at run time (DMACOPY_NO_NATIVE).
'use strict';
console.warn(
  'dmacopy: no native build for this platform and compiling one failed; copyBatch will copy in JavaScript. ' +
    'On Linux x86-64 install a C++17 compiler, make and Python 3, then run `npm rebuild dmacopy`.',
);

'use strict';
// console.* with Lambda's line format: "<ISO time>\t<request id>\t<LEVEL>\t<message>\n"
// on stdout (stderr for nothing: Lambda sends every level to the same log stream).
// The request id is "undefined" outside an invocation, as on Lambda.

const util = require('util');

const state = { requestId: undefined };

function write(level, message) {
  process.stdout.write(`${new Date().toISOString()}\t${state.requestId}\t${level}\t${message}\n`);
}

function install() {
  const levels = { log: 'INFO', info: 'INFO', debug: 'DEBUG', warn: 'WARN', error: 'ERROR' };
  for (const [method, level] of Object.entries(levels)) {
    console[method] = (...args) => write(level, util.format(...args));
  }
  console.trace = (...args) => {
    const err = { name: 'Trace', message: util.format(...args) };
    Error.captureStackTrace(err, console.trace);
    write('TRACE', err.stack);
  };
  console.fatal = (...args) => write('FATAL', util.format(...args));
}

/** Lambda's log line for an error document (e.g. "Invoke Error", "Uncaught Exception"). */
function logError(label, doc) {
  const shown = { errorType: doc.errorType, errorMessage: doc.errorMessage, stack: doc.trace };
  write('ERROR', `${label} \t${JSON.stringify(shown)}`);
}

module.exports = { install, logError, state };

'use strict';
// Error documents as Lambda's Node.js runtime reports them: {errorType, errorMessage, trace}.

const util = require('util');

/** Frames of this runtime's own files are not the function's business. */
const RUNTIME_DIR = require('path').dirname(__dirname);

/** A runtime-level failure with a Lambda error type (Runtime.ImportModuleError, ...). */
class RuntimeFault extends Error {
  constructor(errorType, message, cause) {
    super(message);
    this.name = errorType;
    this.cause = cause;
  }
}

function isErrorLike(value) {
  return util.types.isNativeError(value) || value instanceof Error;
}

function traceOf(stack) {
  return String(stack)
    .split('\n')
    .filter((line) => !(line.trimStart().startsWith('at ') && line.includes(RUNTIME_DIR + '/')));
}

/**
 * The error document for a thrown value, a rejection or callback(err): Lambda uses the
 * error's name as errorType and the stack lines as trace; for a value that is not an
 * Error, its typeof and its string.
 */
function toErrorDocument(value) {
  try {
    if (value instanceof RuntimeFault) {
      const trace = [`${value.name}: ${value.message}`];
      if (value.cause && value.cause.stack) trace.push(...traceOf(value.cause.stack));
      return { errorType: value.name, errorMessage: value.message, trace };
    }
    if (isErrorLike(value)) {
      return {
        errorType: String(value.name),
        errorMessage: String(value.message),
        trace: value.stack ? traceOf(value.stack) : [],
      };
    }
    return { errorType: typeof value, errorMessage: String(value), trace: [] };
  } catch (err) {
    return {
      errorType: 'handled',
      errorMessage: 'the error could not be read (its name, message or stack threw)',
      trace: [],
    };
  }
}

module.exports = { RuntimeFault, toErrorDocument };

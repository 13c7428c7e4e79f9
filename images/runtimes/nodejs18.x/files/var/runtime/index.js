'use strict';
// Flint's nodejs18.x runtime: an AWS Lambda Runtime API (2018-06-01) client.
//
// Started by ./bootstrap (node with V8's heap sized to the function's memory), which
// flint-init runs as the function's runtime (or, with FLINT_PRESTART=1, by the warm
// pool before its function is known). Loads the handler named by _HANDLER once, then
// loops: GET /runtime/invocation/next, call handler(event, context, callback), POST the
// result or an error document. Behaves like Lambda's nodejs18.x: async and callback
// handlers, callbackWaitsForEmptyEventLoop, the context object, error documents
// {errorType, errorMessage, trace}, Runtime.* init errors and console lines
// "<time>\t<request id>\t<LEVEL>\t<message>".
// An init error is POSTed to /runtime/init/error and the process exits (status 129).

const Module = require('module');
const { RuntimeApi } = require('./lib/runtime-api.js');
const { toErrorDocument } = require('./lib/errors.js');
const logs = require('./lib/console.js');
const { functionInfo, makeContext } = require('./lib/context.js');
const { loadHandler } = require('./lib/loader.js');

// Where Lambda's Node runtimes look for modules outside the function (layers first).
const NODE_PATH = '/opt/nodejs/node18/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task';

// What runs when the event loop empties during an invocation (see waitForEmptyLoop).
let onEmptyLoop = null;
process.on('beforeExit', () => {
  const run = onEmptyLoop;
  onEmptyLoop = null;
  if (run) run();
});

// The invocation in progress, for errors that escape the handler.
let current = null;
// Set once the handler is loaded: from then on an escaped error belongs to no init.
let initialised = false;

/**
 * Reports an error that escaped the handler (or the module's initialisation) and exits.
 * Between invocations there is nobody to report it to: it is only logged.
 */
async function fatal(api, label, doc, status) {
  logs.logError(label, doc);
  try {
    if (current) await api.postError(current, doc);
    else if (!initialised) await api.postInitError(doc);
  } finally {
    process.exit(status);
  }
}

/** Calls the handler; resolves {error} or {result} the way Lambda decides the outcome. */
function runHandler(handler, event, info, headers) {
  return new Promise((resolve) => {
    let finished = false;
    const finish = (outcome) => {
      if (finished) return;
      finished = true;
      onEmptyLoop = null;
      resolve(outcome);
    };
    let context;
    const complete = (err, result) => {
      const outcome = err !== undefined && err !== null ? { error: err } : { result };
      if (context.callbackWaitsForEmptyEventLoop) {
        // Lambda answers once everything the function started has finished.
        onEmptyLoop = () => finish(outcome);
      } else {
        finish(outcome);
      }
    };
    context = makeContext(info, headers, complete);
    // Neither a promise nor the callback, and nothing left to do: the answer is null.
    onEmptyLoop = () => finish({ result: null });
    let returned;
    try {
      returned = handler(event, context, complete);
    } catch (err) {
      finish({ error: err });
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then(
        (result) => finish({ result }),
        (err) => finish({ error: err === undefined || err === null ? 'handled' : err }),
      );
    }
  });
}

async function invokeOnce(api, handler, info) {
  const { headers, body } = await api.next();
  const requestId = headers['lambda-runtime-aws-request-id'] || '';
  const traceId = headers['lambda-runtime-trace-id'];
  if (traceId) process.env._X_AMZN_TRACE_ID = traceId;
  else delete process.env._X_AMZN_TRACE_ID;
  current = requestId;
  logs.state.requestId = requestId;
  try {
    let event;
    try {
      event = body.length ? JSON.parse(body.toString('utf8')) : null;
    } catch (err) {
      const doc = { errorType: 'Runtime.UnmarshalError', errorMessage: `Unable to parse the event as JSON: ${err.message}`, trace: [] };
      logs.logError('Invoke Error', doc);
      await api.postError(requestId, doc);
      return;
    }
    const outcome = await runHandler(handler, event, info, headers);
    if ('error' in outcome) {
      const doc = toErrorDocument(outcome.error);
      logs.logError('Invoke Error', doc);
      await api.postError(requestId, doc);
      return;
    }
    let payload;
    try {
      payload = JSON.stringify(outcome.result === undefined ? null : outcome.result);
    } catch (err) {
      const doc = { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body: ${err.message}`, trace: [] };
      logs.logError('Invoke Error', doc);
      await api.postError(requestId, doc);
      return;
    }
    await api.postResponse(requestId, payload === undefined ? 'null' : payload);
  } finally {
    current = null;
  }
}

/** Takes on the function's environment when the warm pool started us before it. */
async function functionEnvironment(api) {
  if (process.env.FLINT_PRESTART !== '1') return;
  const environment = await api.waitForFunction();
  for (const key of Object.keys(process.env)) delete process.env[key];
  Object.assign(process.env, environment);
}

async function main() {
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    process.stderr.write('bootstrap: AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(1);
  }
  const api = new RuntimeApi(address);
  process.on('uncaughtException', (err) => fatal(api, 'Uncaught Exception', toErrorDocument(err), 129));
  process.on('unhandledRejection', (reason) => {
    const doc = toErrorDocument(reason);
    fatal(api, 'Unhandled Promise Rejection', {
      errorType: 'Runtime.UnhandledPromiseRejection',
      errorMessage: `${doc.errorType}: ${doc.errorMessage}`,
      trace: doc.trace,
    }, 128);
  });
  logs.install();
  await functionEnvironment(api);

  const taskRoot = process.env.LAMBDA_TASK_ROOT || '/var/task';
  process.env.LAMBDA_TASK_ROOT = taskRoot;
  process.env.LAMBDA_RUNTIME_DIR = process.env.LAMBDA_RUNTIME_DIR || '/var/runtime';
  process.env.NODE_PATH = process.env.NODE_PATH || NODE_PATH;
  // NODE_PATH is read at start-up; read it again (it may have arrived with the function).
  if (typeof Module._initPaths === 'function') Module._initPaths();
  try {
    process.chdir(taskRoot);
  } catch (_) {
    // A missing task root shows up as an import error below.
  }

  let handler;
  try {
    handler = await loadHandler(taskRoot, process.env._HANDLER || '');
  } catch (err) {
    await fatal(api, 'Uncaught Exception', toErrorDocument(err), 129);
    return;
  }
  initialised = true;
  const info = functionInfo(process.env);
  for (;;) await invokeOnce(api, handler, info);
}

main().catch((err) => {
  process.stderr.write(`bootstrap: Runtime API failure: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});

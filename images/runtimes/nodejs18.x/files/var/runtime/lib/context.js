'use strict';
// The context object handed to handler(event, context[, callback]), as on Lambda's nodejs18.x.

/** What does not change between invocations, read from the environment once. */
function functionInfo(env) {
  return {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME || '',
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST',
    // A string, as on Lambda.
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '128',
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME || '',
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME || '',
  };
}

function parseJsonHeader(raw) {
  if (!raw) return undefined;
  try {
    const doc = JSON.parse(raw);
    return doc !== null && typeof doc === 'object' ? doc : undefined;
  } catch (_) {
    return undefined;
  }
}

/**
 * The context of one invocation. `complete(err, result)` is what callback, done,
 * succeed and fail report to; callbackWaitsForEmptyEventLoop is read when they are called.
 */
function makeContext(info, headers, complete) {
  const deadline = Number(headers['lambda-runtime-deadline-ms']) || 0;
  const identity = parseJsonHeader(headers['lambda-runtime-cognito-identity']);
  const clientContext = parseJsonHeader(headers['lambda-runtime-client-context']);
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    ...info,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'] || '',
    awsRequestId: headers['lambda-runtime-aws-request-id'] || '',
    identity: identity && {
      cognitoIdentityId: identity.cognitoIdentityId,
      cognitoIdentityPoolId: identity.cognitoIdentityPoolId,
    },
    clientContext,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    // The pre-async-era completion methods Lambda still offers.
    done: (err, result) => complete(err, result),
    succeed: (result) => complete(null, result),
    fail: (err) => complete(err === undefined || err === null ? 'handled' : err),
  };
  return context;
}

module.exports = { functionInfo, makeContext };

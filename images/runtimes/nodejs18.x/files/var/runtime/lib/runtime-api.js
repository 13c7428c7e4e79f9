'use strict';
// The Lambda Runtime API (2018-06-01) client: one keep-alive HTTP/1.1 connection to
// flint-init. An idle keep-alive socket is unref'd by node's http.Agent, so it never
// keeps the event loop alive on its own (callbackWaitsForEmptyEventLoop relies on it).

const http = require('http');

const PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
// flint-init's warm-pool extension: a prestarted runtime waits here for its function.
const FUNCTION_PATH = '/flint/v1/function';

class RuntimeApi {
  constructor(address) {
    const colon = address.lastIndexOf(':');
    const port = Number(address.slice(colon + 1));
    if (colon < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      throw new Error(`AWS_LAMBDA_RUNTIME_API must be host:port, got ${JSON.stringify(address)}`);
    }
    this.host = address.slice(0, colon) || '127.0.0.1';
    this.port = port;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  /** One request; resolves {status, headers, body: Buffer}. */
  exchange(method, path, body, headers) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.host, port: this.port, method, path, agent: this.agent, headers },
        (res) => {
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.setNoDelay(true);
      req.end(body);
    });
  }

  /** Like exchange, but reconnects once if the server closed our idle connection. */
  async request(method, path, body, headers = {}) {
    try {
      return await this.exchange(method, path, body, headers);
    } catch (err) {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') throw err;
      return this.exchange(method, path, body, headers);
    }
  }

  /** Warm pool: blocks until flint-init has this sandbox's function; returns its environment. */
  async waitForFunction() {
    const res = await this.request('GET', FUNCTION_PATH);
    if (res.status !== 200) {
      throw new Error(`GET ${FUNCTION_PATH} returned HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
    }
    return JSON.parse(res.body.toString()).environment;
  }

  /** The next invocation: {headers, body: Buffer}. */
  async next() {
    const res = await this.request('GET', `${PREFIX}/invocation/next`);
    if (res.status !== 200) {
      throw new Error(`GET /invocation/next returned HTTP ${res.status}: ${res.body.toString().slice(0, 200)}`);
    }
    return res;
  }

  postResponse(requestId, payload) {
    return this.post(`/invocation/${requestId}/response`, payload);
  }

  postError(requestId, doc) {
    return this.post(`/invocation/${requestId}/error`, JSON.stringify(doc), doc.errorType);
  }

  postInitError(doc) {
    return this.post('/init/error', JSON.stringify(doc), doc.errorType);
  }

  async post(path, payload, errorType) {
    const body = Buffer.from(payload);
    const headers = { 'Content-Type': 'application/json', 'Content-Length': body.length };
    if (errorType !== undefined) headers[ERROR_TYPE_HEADER] = headerSafe(errorType);
    const res = await this.request('POST', PREFIX + path, body, headers);
    if (res.status >= 300) {
      process.stderr.write(`[WARN] POST ${path} returned HTTP ${res.status}: ${res.body.toString().slice(0, 200)}\n`);
    }
  }
}

/** An error type as a header value: printable ASCII only. */
function headerSafe(value) {
  return String(value).replace(/[^\x20-\x7e]/g, '?').slice(0, 256);
}

module.exports = { RuntimeApi };

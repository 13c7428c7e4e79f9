'use strict';
// Finds and loads the function's handler from _HANDLER ("dir/file.export", the export may
// be nested: "file.obj.fn") the way Lambda's nodejs18.x does: file.js, file.mjs, file.cjs
// in that order, then node's own resolution (a folder or a package); a .js file is an ES
// module when its nearest package.json says "type": "module".

const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const { RuntimeFault } = require('./errors.js');

/** Splits _HANDLER into the module's folder, its name and the export path. */
function parseHandler(spec) {
  if (spec.includes('..')) {
    throw new RuntimeFault(
      'Runtime.MalformedHandlerName',
      `'${spec}' is not a valid handler name: '..' is not allowed, name the file from the task root (e.g. src/app.handler)`,
    );
  }
  const slash = spec.lastIndexOf('/');
  const dir = spec.slice(0, slash + 1);
  const match = /^([^.]+)\.(.+)$/.exec(spec.slice(slash + 1));
  if (!match) {
    throw new RuntimeFault(
      'Runtime.MalformedHandlerName',
      `Bad handler '${spec}': expected file.export, e.g. index.handler`,
    );
  }
  return { dir, module: match[1], exportPath: match[2] };
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_) {
    return false;
  }
}

/** True if the nearest package.json above `file` says "type": "module". */
function inModulePackage(file) {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (isFile(pkg)) {
      try {
        return JSON.parse(fs.readFileSync(pkg, 'utf8')).type === 'module';
      } catch (_) {
        return false;
      }
    }
    if (dir === path.dirname(dir)) return false;
  }
}

async function importFile(file) {
  return import(pathToFileURL(file).href);
}

/** Loads the module; returns its exports (CommonJS) or namespace (ES module). */
async function loadModule(taskRoot, dir, name) {
  const base = path.resolve(taskRoot, dir, name);
  if (isFile(`${base}.js`)) {
    if (inModulePackage(`${base}.js`)) return importFile(`${base}.js`);
    try {
      return require(`${base}.js`);
    } catch (err) {
      if (err.code === 'ERR_REQUIRE_ESM') return importFile(`${base}.js`);
      throw err;
    }
  }
  if (isFile(`${base}.mjs`)) return importFile(`${base}.mjs`);
  if (isFile(`${base}.cjs`)) return require(`${base}.cjs`);
  // A folder with an index or package.json, or a package under node_modules.
  let resolved;
  for (const request of [base, name]) {
    try {
      resolved = require.resolve(request, { paths: [path.resolve(taskRoot, dir), taskRoot] });
      break;
    } catch (_) {
      // Try the next form; none found is reported below.
    }
  }
  if (resolved === undefined) {
    const err = new Error(`Cannot find module '${dir}${name}' (looked for ${base}.js, .mjs, .cjs, a folder and a package)`);
    err.code = 'MODULE_NOT_FOUND';
    throw err;
  }
  if (resolved.endsWith('.mjs') || (resolved.endsWith('.js') && inModulePackage(resolved))) {
    return importFile(resolved);
  }
  return require(resolved);
}

/** Lambda's error types for a failed load. */
function classify(err) {
  if (err instanceof SyntaxError) {
    return new RuntimeFault('Runtime.UserCodeSyntaxError', `${err.name}: ${err.message}`, err);
  }
  if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
    return new RuntimeFault('Runtime.ImportModuleError', `${err.name}: ${err.message}`, err);
  }
  // Anything else the module threw while initialising is reported as it is.
  return err;
}

/** Loads the handler function named by `spec`; throws RuntimeFault (or the module's own error). */
async function loadHandler(taskRoot, spec) {
  const { dir, module, exportPath } = parseHandler(spec);
  let exports;
  try {
    exports = await loadModule(taskRoot, dir, module);
  } catch (err) {
    throw classify(err);
  }
  const handler = exportPath.split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), exports);
  if (handler === undefined) {
    throw new RuntimeFault('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  }
  if (typeof handler !== 'function') {
    throw new RuntimeFault('Runtime.HandlerNotFound', `${spec} is not a function`);
  }
  return handler;
}

module.exports = { loadHandler, parseHandler };

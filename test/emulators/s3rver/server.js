#!/usr/bin/env node
'use strict';
/*
 * Launcher for the pinned s3rver (npm "s3rver" 3.7.1), the S3 stand-in used by
 * sfexport's tests and demo.
 *
 *   test/emulators/start s3rver --directory DIR [--port N|0] [--port-file PATH]
 *        [--address 127.0.0.1] [--configure-bucket NAME]... [--key ID=SECRET]...
 *        [--silent]
 *
 * - Always binds to a loopback address (127.0.0.1 by default; anything that is
 *   not 127.x/::1/localhost is refused).
 * - --port 0 lets the kernel pick a free port; once listening the actual port
 *   is written to --port-file (written to a temp file then renamed, so readers
 *   never see a partial file).
 * - --configure-bucket creates the bucket at start-up (s3rver's own
 *   configureBuckets option; repeatable).
 * - --key ID=SECRET registers extra access keys.  s3rver only knows the key
 *   S3RVER/S3RVER out of the box and answers InvalidAccessKeyId for any other
 *   key id; it does NOT verify SigV4 signatures (see its
 *   lib/middleware/authentication.js: "Signature version 4 calculation is
 *   unimplemeneted").  Signatures are verified by ../s3_front/server.py placed in
 *   front of it; the keys given here must match the front's --key list so that
 *   requests the front forwards unchanged are accepted here too.
 */
const fs = require('fs');
const path = require('path');
const S3rver = require('s3rver');
const AWSAccount = require('s3rver/lib/models/account');

function usage(msg) {
  if (msg) process.stderr.write(`s3rver: ${msg}\n`);
  process.stderr.write(
    'usage: node server.js --directory DIR [--port N] [--port-file PATH]\n' +
      '       [--address 127.0.0.1] [--configure-bucket NAME]... [--key ID=SECRET]... [--silent]\n',
  );
  process.exit(2);
}

const opts = {
  directory: null,
  port: 0,
  portFile: null,
  address: '127.0.0.1',
  buckets: [],
  keys: [],
  silent: false,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  switch (a) {
    case '-d':
    case '--directory':
      opts.directory = val();
      break;
    case '-p':
    case '--port':
      opts.port = Number(val());
      if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
        usage('bad --port');
      break;
    case '--port-file':
      opts.portFile = val();
      break;
    case '-a':
    case '--address':
      opts.address = val();
      break;
    case '--configure-bucket':
      opts.buckets.push(val());
      break;
    case '--key': {
      const v = val();
      const eq = v.indexOf('=');
      if (eq <= 0 || eq === v.length - 1) usage('--key wants ID=SECRET');
      opts.keys.push([v.slice(0, eq), v.slice(eq + 1)]);
      break;
    }
    case '-s':
    case '--silent':
      opts.silent = true;
      break;
    case '-h':
    case '--help':
      usage();
      break;
    default:
      usage(`unknown argument ${a}`);
  }
}
if (!opts.directory) usage('--directory is required');
if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(opts.address))
  usage('refusing to listen on a non-loopback address');

fs.mkdirSync(opts.directory, { recursive: true });

for (const [id, secret] of opts.keys) {
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(id, secret);
}

function writePortFile(file, port) {
  const tmp = path.join(
    path.dirname(path.resolve(file)),
    `.${path.basename(file)}.${process.pid}.tmp`,
  );
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, file);
}

const server = new S3rver({
  directory: opts.directory,
  address: opts.address,
  port: opts.port,
  silent: opts.silent,
  configureBuckets: opts.buckets.map(name => ({ name, configs: [] })),
});

server
  .run()
  .then(({ address, port }) => {
    if (opts.portFile) writePortFile(opts.portFile, port);
    process.stderr.write(
      `s3rver: s3rver listening on ${address}:${port} dir=${opts.directory}` +
        ` buckets=[${opts.buckets.join(',')}] keys=${opts.keys.length + 1}\n`,
    );
  })
  .catch(err => {
    process.stderr.write(`s3rver: failed to start: ${err && err.stack}\n`);
    process.exit(1);
  });

function shutdown(sig) {
  process.stderr.write(`s3rver: ${sig}, closing\n`);
  server.close().then(
    () => process.exit(0),
    () => process.exit(0),
  );
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

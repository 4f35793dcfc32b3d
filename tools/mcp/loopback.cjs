// Preloaded into Node servers that `reconciler` starts (node --require tools/mcp/loopback.cjs …):
// a listen() on a TCP port without a host binds to 127.0.0.1 (or $RECONCILER_LISTEN_HOST) instead of
// every interface. The MCP reference server calls app.listen(PORT) with no host.
"use strict";
const net = require("node:net");
const host = process.env.RECONCILER_LISTEN_HOST || "127.0.0.1";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (typeof args[1] !== "string") args.splice(1, 0, host);
  } else if (first && typeof first === "object" && first.path === undefined && !first.host) {
    args[0] = { ...first, host };
  }
  return listen.apply(this, args);
};

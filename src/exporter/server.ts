/**
 * The exporter's HTTP server (node:http): GET /metrics builds a fresh report and renders it;
 * GET / links to it; anything else is 404, non-GET/HEAD is 405. A client that hangs up mid-scrape
 * only ends that response; SIGTERM/SIGINT stop accepting, finish in-flight scrapes, and exit 0.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { KvmemError } from "../units/errors.js";

export interface ListenAddress {
  host: string;
  port: number;
}

/** "127.0.0.1:9477", "[::1]:9477", ":9477" (all interfaces), "localhost:9477". */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) {
    throw new KvmemError({
      code: "E_USAGE",
      input: "--listen",
      message: `'${text}' is not an address to listen on`,
      hint: "HOST:PORT with a port 0-65535, e.g. 127.0.0.1:9477, [::1]:9477 or :9477",
    });
  }
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

export type MetricsSource = () => Promise<{ contentType: string; text: string }>;

const INDEX = `<!doctype html><html><head><title>kvmem exporter</title></head><body>
<h1>kvmem exporter</h1><p><a href="/metrics">/metrics</a>: KVM memory virtualization of this host.</p>
</body></html>
`;

export function createExporterServer(
  metrics: MetricsSource,
  onError: (msg: string) => void,
): Server {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    res.on("error", () => {}); // a client that went away: nothing to do
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res
        .writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" })
        .end("method not allowed\n");
      return;
    }
    if (url === "/") {
      res
        .writeHead(200, { "Content-Type": "text/html; charset=utf-8" })
        .end(req.method === "HEAD" ? undefined : INDEX);
      return;
    }
    if (url !== "/metrics") {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    metrics().then(
      ({ contentType, text }) => {
        if (res.destroyed) return; // hung up while we read the host
        res.writeHead(200, {
          "Content-Type": contentType,
          "Content-Length": Buffer.byteLength(text),
        });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (e: unknown) => {
        const msg = e instanceof Error ? e.message : String(e);
        onError(`scrape failed: ${msg}`);
        if (!res.destroyed && !res.headersSent)
          res.writeHead(500, { "Content-Type": "text/plain" }).end(`scrape failed: ${msg}\n`);
      },
    );
  });
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    else socket.destroy();
  });
  return server;
}

/** Listen, turning the OS's refusals into one-line errors. */
export function listen(server: Server, addr: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const where = `${addr.host.includes(":") ? `[${addr.host}]` : addr.host}:${addr.port}`;
      const why: Record<string, [string, string]> = {
        EADDRINUSE: [
          `${where} is already in use`,
          "stop the other listener or choose another port",
        ],
        EACCES: [
          `no permission to listen on ${where}`,
          "ports below 1024 need privileges; use 9477",
        ],
        EADDRNOTAVAIL: [
          `${addr.host} is not an address of this machine`,
          "use 127.0.0.1, 0.0.0.0 or a local interface address",
        ],
        ENOTFOUND: [`cannot resolve host '${addr.host}'`, "use an IP address or a resolvable name"],
      };
      const [message, hint] = why[e.code ?? ""] ?? [
        `cannot listen on ${where}: ${e.message}`,
        "check the address",
      ];
      reject(new KvmemError({ code: "E_NET", input: "--listen", message, hint }));
    };
    server.once("error", onError);
    server.listen(addr.port, addr.host, () => {
      server.off("error", onError);
      const a = server.address();
      resolve(typeof a === "object" && a ? { host: a.address, port: a.port } : addr);
    });
  });
}

/** Stop on SIGTERM/SIGINT: no new connections, in-flight scrapes finish, then exit 0. */
export function stopOnSignals(server: Server, log: (s: string) => void): void {
  const stop = (sig: string) => {
    log(`kvmem exporter: ${sig}, shutting down\n`);
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

"""Listen where LiteLLM would (the --port argument, default 4000) and answer 503 to everything."""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Unhealthy(BaseHTTPRequestHandler):
    def _refuse(self):
        body = b'{"error": "stand-in for a broken release: never healthy"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _refuse


args = sys.argv[1:]
port = int(args[args.index("--port") + 1]) if "--port" in args else 4000
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop at once, as the real proxy does
print(f"never-healthy stand-in: answering 503 on port {port}", file=sys.stderr, flush=True)
ThreadingHTTPServer(("0.0.0.0", port), Unhealthy).serve_forever()

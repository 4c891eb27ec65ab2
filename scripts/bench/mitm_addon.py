"""mitmdump addon for the benchmarks: send `localhost` to 127.0.0.1 (never ::1, where
the upstream does not listen), as socialgate's `upstream.resolve` and Squid's
`hosts_file` do."""


class BenchResolve:
    def server_connect(self, data):
        host, port = data.server.address
        if host in ("localhost", "bench.test"):
            data.server.address = ("127.0.0.1", port)


addons = [BenchResolve()]

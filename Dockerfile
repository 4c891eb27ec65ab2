# socialgate container: build in a Rust image, run as a non-root user in a slim one.
# Mount your policies and the CA:  -v ./policies:/app/policies:ro -v ./certs:/app/certs
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/socialgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app socialgate \
 && mkdir -p /app/certs /app/policies && chown -R socialgate /app/certs
COPY --from=build /src/target/release/socialgate /usr/local/bin/socialgate
COPY policies /app/policies
WORKDIR /app
USER socialgate
VOLUME ["/app/certs", "/app/policies"]
EXPOSE 3128 9128
ENTRYPOINT ["socialgate"]
# Mount /app/socialgate.yaml (with listen: 0.0.0.0:3128) to configure it.
CMD ["run"]

# socialgate container: build in a Rust image, run as a non-root user in a slim one.
#   docker build -t socialgate .
#   docker run -p 3128:3128 -p 9128:9128 -v sg-certs:/app/certs socialgate
# Mount your policy over /app/policies and your settings over /app/socialgate.yaml.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libkrb5-dev libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/socialgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libgssapi-krb5-2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app socialgate \
 && mkdir -p /app/certs /app/policies && chown socialgate /app/certs
COPY --from=build /src/target/release/socialgate /usr/local/bin/socialgate
COPY policies /app/policies
COPY deploy/container/socialgate.yaml /app/socialgate.yaml
COPY deploy/pages /app/pages
WORKDIR /app
USER socialgate
VOLUME ["/app/certs"]
EXPOSE 3128 9128
ENTRYPOINT ["socialgate"]
CMD ["run", "--config", "/app/socialgate.yaml"]
